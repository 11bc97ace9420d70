"""PHI scrubbing of a FHIR server's OperationOutcome: service.sync.redact.redact_error / phi_values."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from schemas import parse_record
from service.errors import Conflict, FhirRejected
from service.fhir_client import open_fhir_client
from service.mappers import MappingConfig, search_escape
from service.mappers.ids import match_identifier, match_param, patient_token, visit_token
from service.mappers.narrative import escape
from service.mappers.patient import patient_if_none_exist
from service.settings import Settings
from service.sync import SyncEngine
from service.sync.redact import REDACTED, phi_values, redact_error
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, FakeFhir

MRN = "Q7|x,9$\\ k/ü"
PHI = {
    "mrn": MRN,
    "family": "O'Vandersloot & Daughters",
    "given 1": "Philippa",
    "given 2": "Marisol",
    "birth date": "1966-06-06",
    "session note": "Patient disclosed divorce proceedings",
    "stop reason": "Stopped: patient vomited twice",
    "visit_id": "VIS|IT,42$x",
    "clinician name": "Dr. Hollowbrook",
    "embedded AE description": "Tingling in left hand embedded",
    "embedded AE note": "Husband drove her home embedded",
    "AE description": "Standalone metallic taste",
    "AE note": "Standalone note about sister",
}


def records() -> list[Any]:
    patient = {
        "mrn": MRN,
        "family": PHI["family"],
        "given": [PHI["given 1"], PHI["given 2"]],
        "birth_date": PHI["birth date"],
    }
    session = copy.deepcopy(EXAMPLES["infusion_session"])
    session.update(
        patient=patient,
        status="stopped",
        stop_reason=PHI["stop reason"],
        note=PHI["session note"],
        visit_id=PHI["visit_id"],
        clinician={"id": "C-1", "name": PHI["clinician name"]},
    )
    session["adverse_events"][0].update(
        event="other", description=PHI["embedded AE description"], note=PHI["embedded AE note"]
    )
    ae = copy.deepcopy(EXAMPLES["adverse_event"])
    ae.update(key="A-2", patient=patient, event="other", description=PHI["AE description"], note=PHI["AE note"])
    return [parse_record(session), parse_record(ae)]


def forms(text: str) -> list[str]:
    """A value as a server may echo it: as sent, FHIR-search-escaped, URL-encoded, both; as a narrative
    holds it (XHTML-escaped; a date as `6 Jun 1966`)."""
    out = [text, search_escape(text), quote(text, safe=""), quote(search_escape(text), safe=""), escape(text)]
    return out + (["6 Jun 1966"] if text == PHI["birth date"] else [])


def leaking_outcome() -> dict[str, Any]:
    config = MappingConfig()
    echoes = [form for value in PHI.values() for form in forms(value)]
    echoes += [
        patient_if_none_exist(MRN, config),
        "identifier=" + quote(visit_token(PHI["visit_id"], config), safe=""),
        "identifier=" + quote(match_param(config.visit_system, PHI["visit_id"], config), safe=""),
        patient_token(MRN, config),
    ]
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "processing",
                "diagnostics": f"HAPI-0001: bad value <{echo}> in entry",
                "details": {"text": f"details mention {echo}!"},
                "expression": [f"Bundle.entry[0].resource.where(value='{echo}')", "Patient.name"],
            }
            for echo in echoes
        ],
    }


def assert_no_phi(outcome: dict[str, Any]) -> None:
    text = orjson.dumps(outcome).decode("utf-8")
    decoded = orjson.loads(text)
    flat = " ".join(
        str(v)
        for issue in decoded["issue"]
        for v in (issue.get("diagnostics"), (issue.get("details") or {}).get("text"), *issue.get("expression", []))
    )
    for label, value in PHI.items():
        for form in forms(value):
            assert form not in flat, f"{label} leaks as {form!r}"
    for key in match_keys():
        assert key not in flat, "a match key (a digest of an MRN or visit id) leaks"


def match_keys() -> list[str]:
    """The match keys (`ids.match_identifier`) of the records' MRN and visit id, which need escaping."""
    config = MappingConfig()
    keys = [
        match_identifier(config.mrn_system, MRN, config),
        match_identifier(config.visit_system, PHI["visit_id"], config),
    ]
    assert all(k is not None for k in keys)
    return [k["value"] for k in keys if k is not None]


def test_phi_values_lists_every_phi_field_in_every_form_longest_first() -> None:
    values = phi_values(records(), MappingConfig())
    for label, value in PHI.items():
        for form in forms(value):
            assert form in values, (label, form)
    assert set(match_keys()) <= set(values)
    assert [len(v) for v in values] == sorted((len(v) for v in values), reverse=True)
    assert "C-1" not in values and "S-1" not in values and "nausea" not in values  # not PHI


@pytest.mark.parametrize("error_type", [FhirRejected, Conflict])
def test_redact_error_blanks_every_phi_value_out_of_diagnostics_details_and_expression(error_type: type) -> None:
    outcome = leaking_outcome()
    error = error_type("POST /: the FHIR server rejected the request (400)", status_code=400, operation_outcome=outcome)

    redacted = redact_error(error, records(), MappingConfig())

    assert type(redacted) is error_type
    assert redacted.status_code == 400 and redacted.message == error.message
    assert_no_phi(redacted.operation_outcome)
    issues = redacted.operation_outcome["issue"]
    assert len(issues) == len(outcome["issue"])
    assert all(i["diagnostics"].startswith("HAPI-0001: bad value <") and REDACTED in i["diagnostics"] for i in issues)
    assert all(REDACTED in i["details"]["text"] and i["expression"][1] == "Patient.name" for i in issues)
    assert error.operation_outcome == leaking_outcome()  # the original is not changed


async def test_a_rejected_upsert_raises_an_error_with_no_phi_in_its_outcome() -> None:
    fake = FakeFhir()
    fake.intercept = lambda request, body: (
        httpx.Response(400, json=leaking_outcome()) if request.url.path.rstrip("/") == "/fhir" else None
    )
    settings = Settings(FHIR_BASE_URL=BASE)
    async with open_fhir_client(settings, transport=fake.transport()) as fhir:
        with pytest.raises(FhirRejected) as caught:
            await SyncEngine(fhir, settings.mapping_config()).upsert(records())
    assert caught.value.status_code == 400
    assert_no_phi(caught.value.operation_outcome)
    assert not [v for v in PHI.values() if v in caught.value.message]
