"""Assessments embedded in a session on the real HAPI: PUT, read back equal, every resource `$validate`-clean
(each response checked against its stored Questionnaire), and retracted with the session, their answers taken
off the patient's one suicide-risk Flag, while an assessment sent on its own naming the session keeps its
resources and its place on the Flag (H-09, H-10, H-40..H-42).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas import parse_record
from service.instruments import DEFINITIONS
from service.mappers import resource_ids
from service.mappers.ids import resource_ref
from service.mappers.questionnaire import questionnaire_id
from service.safety.flags import details
from service.settings import Settings
from tests.integration.test_assessments import UNRESOLVED, _held, _issues

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "infusion_session" / "embedded-assessments"
FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}


@pytest.fixture
def settings(settings: Settings, run_id: str, fhir_cleanup) -> Iterator[Settings]:
    """A canonical base of this test's own, so the Questionnaires the API writes are this test's (deleted after)."""
    ours = settings.model_copy(update={"canonical_base": f"https://test.infusion-fhir.example/{run_id}/fhir"})
    config = ours.mapping_config()
    fhir_cleanup.track(*(f"Questionnaire/{questionnaire_id(config, i)}" for i in DEFINITIONS))
    yield ours


def _session(run_id: str) -> dict[str, Any]:
    """The golden session (an embedded GAD-7 and a C-SSRS screener at triage moderate) under fresh keys."""
    body = json.loads((GOLDEN / "input.json").read_text(encoding="utf-8"))
    body.pop("kind")
    body["key"] = f"S-{run_id}"
    body["patient"] = {**body["patient"], "mrn": f"EA-{run_id}"}
    for child in body["assessments"]:
        child["key"] = f"{child['key']}-{run_id}"
    return body


def _embedded(body: dict[str, Any]) -> dict[str, Any]:
    return {a["instrument"]: a for a in body["assessments"]}


def _get(fhir_base_url: str, ref: str) -> dict[str, Any]:
    response = httpx.get(f"{fhir_base_url}/{ref}", headers=FHIR_JSON, timeout=60)
    assert response.status_code == 200, (ref, response.status_code)
    return dict(response.json())


def _status(fhir_base_url: str, ref: str) -> str:
    return str(_get(fhir_base_url, ref)["status"])


@pytest.mark.needs("$validate")
def test_embedded_assessments_round_trip_validate_and_retract_with_their_session_and_flag(
    api, settings, fhir_base_url, run_id, capsys: pytest.CaptureFixture
) -> None:
    body = _session(run_id)
    url = f"/v1/infusion-sessions/{body['key']}"
    written = api.put(url, json=body)
    assert written.status_code == 201, written.text
    got = api.get(url)
    assert got.status_code == 200, got.text
    assert parse_record({"kind": "infusion_session", **got.json()}) == parse_record(
        {"kind": "infusion_session", **body}
    )
    assert [a["instrument"] for a in got.json()["assessments"]] == ["gad7", "cssrs_screen"]

    config = settings.mapping_config()
    embedded = _embedded(body)
    refs = [rid.ref for a in embedded.values() for rid in resource_ids("assessment", a["key"], config)]
    held = _held(fhir_base_url, refs)
    flag = resource_ref("assessment", embedded["cssrs_screen"]["key"], "flag", config)
    assert {r["resourceType"] for r in held} == {"QuestionnaireResponse", "Observation", "Flag"}
    assert _status(fhir_base_url, flag) == "active"
    issues = [issue for resource in held for issue in _issues(fhir_base_url, resource)]
    errors = [i for i in issues if i.get("severity") in ("error", "fatal")]
    with capsys.disabled():
        warnings = sum(1 for i in issues if i.get("severity") == "warning")
        print(f"\n$validate embedded assessments: {len(held)} resources, {len(errors)} errors, {warnings} warnings")
    assert errors == [], errors
    assert [i for i in issues if UNRESOLVED.search(i.get("diagnostics", ""))] == []

    # An assessment sent on its own naming the session, positive too: it joins the patient's one Flag, and is
    # not the session's to retract.
    own = {**embedded["cssrs_screen"], "key": f"OWN-{run_id}", "patient": body["patient"], "session_key": body["key"]}
    assert api.put(f"/v1/assessments/{own['key']}", json=own).status_code == 201
    panels = {a: resource_ref("assessment", a, "panel", config) for a in (embedded["cssrs_screen"]["key"], own["key"])}
    assert set(details(_get(fhir_base_url, flag))) == set(panels.values())

    assert api.delete(url).status_code == 204
    answers = [r for r in held if r["resourceType"] != "Flag"]
    retracted = _held(fhir_base_url, [f"{r['resourceType']}/{r['id']}" for r in answers])
    assert len(retracted) == len(answers)
    assert {r["status"] for r in retracted} == {"entered-in-error"}
    assert api.get(url).status_code == 404
    left = _get(fhir_base_url, flag)
    assert left["status"] == "active" and details(left) == (panels[own["key"]],)
    still = api.get(f"/v1/assessments/{own['key']}")
    assert still.status_code == 200 and still.json()["session_key"] == body["key"]

    assert api.delete(f"/v1/assessments/{own['key']}").status_code == 204  # nothing left: the Flag goes too
    assert _status(fhir_base_url, flag) == "entered-in-error"


def test_a_resent_session_leaves_the_flag_a_clinician_closed(api, settings, fhir_base_url, run_id) -> None:
    body = _session(run_id)
    url = f"/v1/infusion-sessions/{body['key']}"
    assert api.put(url, json=body).status_code == 201
    flag_ref = resource_ref("assessment", _embedded(body)["cssrs_screen"]["key"], "flag", settings.mapping_config())
    flag = httpx.get(f"{fhir_base_url}/{flag_ref}", headers=FHIR_JSON, timeout=60).json()
    flag["status"] = "inactive"  # a clinician has reviewed the risk
    assert httpx.put(f"{fhir_base_url}/{flag_ref}", json=flag, headers=FHIR_JSON, timeout=60).status_code == 200

    assert api.put(url, json=body).status_code == 200
    assert _status(fhir_base_url, flag_ref) == "inactive"
