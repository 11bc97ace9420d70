"""`infusion-fhir validate` over a mocked transport (pytest-httpx): issues per record with `--all-issues`,
grouped by message otherwise, each distinct resource validated once."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from service.batch.command import _validate
from service.batch.terminal import validate_summary
from service.batch.validate import KEYS_SHOWN, message_of
from service.mappers import MappingConfig, resource_ids
from service.settings import Settings
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, CAPABILITY

CONFIG = MappingConfig()


def _id(kind: str, key: str) -> str:
    return resource_ids(kind, key, CONFIG)[0].id


def _issue(severity: str, diagnostics: str) -> dict:
    return {"severity": severity, "code": "processing", "diagnostics": diagnostics}


def _outcome(*issues: dict) -> dict:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


# The server's verdict per resource id: (status, OperationOutcome); anything else is fine.
VERDICTS = {
    _id("vital_sign", "V-ERR"): (
        422,
        _outcome(_issue("error", "Obs-1: bad code"), _issue("fatal", "Obs-2: worse"), _issue("warning", "Obs-3: meh")),
    ),
    _id("adverse_event", "A-412"): (412, _outcome(_issue("error", "AE-7: precondition"))),
    _id("vital_sign", "V-WARN"): (
        200,
        _outcome(_issue("warning", "Obs-9: best practice"), _issue("information", "fyi")),
    ),
}


def _vital(key: str) -> dict:
    out = {**copy.deepcopy(EXAMPLES["vital_sign"]), "key": key}
    out.pop("session_key")
    return out


@pytest.fixture
def records(tmp_path: Path) -> Path:
    ae = {**copy.deepcopy(EXAMPLES["adverse_event"]), "key": "A-412"}
    for field in ("session_key", "causality"):
        ae.pop(field)
    lines = [
        orjson.dumps(_vital("V-OK")),
        orjson.dumps(_vital("V-ERR")),
        orjson.dumps(ae),
        b"{not json",
        orjson.dumps(_vital("V-WARN")),
    ]
    path = tmp_path / "records.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _server(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/metadata"):
        return httpx.Response(200, json=CAPABILITY)
    assert request.method == "POST" and request.url.path.endswith("/$validate")
    resource = orjson.loads(request.content)
    status, outcome = VERDICTS.get(resource.get("id"), (200, _outcome(_issue("information", "All OK"))))
    return httpx.Response(status, json=outcome)


async def test_error_issues_are_counted_per_record_and_422_or_412_answers_are_read_as_outcomes(
    records: Path, httpx_mock: HTTPXMock, capsys: pytest.CaptureFixture[str]
) -> None:
    httpx_mock.add_callback(_server, is_reusable=True)

    validation = await _validate(str(records), Settings(FHIR_BASE_URL=BASE), concurrency=2, all_issues=True)

    assert validation.counts == {
        "records": 4,
        "resources": 8,
        "validated": 5,  # the four records' one Patient once
        "records_with_errors": 2,
        "invalid_lines": 1,
        "warnings": 2,
    }
    emitted = {
        line.get("key") or f"line {line['line']}": line
        for line in map(orjson.loads, capsys.readouterr().out.splitlines())
    }
    assert set(emitted) == {"V-ERR", "A-412", "V-WARN", "line 4"}
    by_record = {
        key: [(i["severity"], i["diagnostics"]) for i in line.get("issues", [])] for key, line in emitted.items()
    }
    assert by_record["V-ERR"] == [("error", "Obs-1: bad code"), ("fatal", "Obs-2: worse"), ("warning", "Obs-3: meh")]
    assert by_record["A-412"] == [("error", "AE-7: precondition")]  # the 412's own outcome, not a rejection message
    assert by_record["V-WARN"] == [("warning", "Obs-9: best practice")]
    assert emitted["V-ERR"]["issues"][0]["resource"] == f"Observation/{_id('vital_sign', 'V-ERR')}"
    validated = [r for r in httpx_mock.get_requests() if r.url.path.endswith("/$validate")]
    assert len(validated) == 5
    assert Counter(r.url.path.rsplit("/", 2)[-2] for r in validated) == {
        "Patient": 1,
        "Observation": 3,
        "AdverseEvent": 1,
    }


PATIENT_WARNING = "dom-6: A resource should have narrative"


def _warn_every_patient(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/Patient/$validate"):
        return httpx.Response(200, json=_outcome(_issue("warning", PATIENT_WARNING)))
    return _server(request)


async def test_grouped_issues_count_each_distinct_resource_once_and_errors_name_their_records(
    records: Path, httpx_mock: HTTPXMock, capsys: pytest.CaptureFixture[str]
) -> None:
    httpx_mock.add_callback(_warn_every_patient, is_reusable=True)

    validation = await _validate(str(records), Settings(FHIR_BASE_URL=BASE), concurrency=2, all_issues=False)

    assert capsys.readouterr().out == ""  # nothing per record without --all-issues
    lines = validate_summary(validation)
    assert lines == [
        "validate: 4 records, 8 resources mapped, 5 distinct (each validated once)",
        "errors: 3 in 2 records",
        "        1 x AE-7: precondition (AdverseEvent 1) in A-412",
        "        1 x Obs-1: bad code (Observation 1) in V-ERR",
        "        1 x Obs-2: worse (Observation 1) in V-ERR",
        "invalid lines: 1",
        "        1 x (record): not valid JSON in line 4",
        "warnings: 3 (--all-issues lists every issue of every record)",
        "        1 x Obs-3: meh (Observation 1)",
        "        1 x Obs-9: best practice (Observation 1)",
        f"        1 x {PATIENT_WARNING} (Patient 1)",
        "exit 1: some records have errors or are invalid",
    ]


async def test_a_shared_resources_error_names_a_few_records_and_counts_the_rest(
    tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    def refuse_the_patient(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Patient/$validate"):
            return httpx.Response(422, json=_outcome(_issue("error", "Pat-1: no name for 'http://x.example#1'")))
        return _server(request)

    httpx_mock.add_callback(refuse_the_patient, is_reusable=True)
    path = tmp_path / "many.ndjson"
    path.write_bytes(b"".join(orjson.dumps(_vital(f"V-{n}")) + b"\n" for n in range(KEYS_SHOWN + 3)))

    validation = await _validate(str(path), Settings(FHIR_BASE_URL=BASE), concurrency=2, all_issues=False)

    assert validation.counts["records_with_errors"] == KEYS_SHOWN + 3
    assert validation.counts["validated"] == 1 + KEYS_SHOWN + 3
    (error,) = [line for line in validate_summary(validation) if "Pat-1" in line]
    shown = ", ".join(f"V-{n}" for n in range(KEYS_SHOWN))
    assert error == f"        1 x Pat-1: no name for '…' (Patient 1) in {shown} and 3 more"


async def test_a_resource_whose_content_changed_is_validated_again(tmp_path: Path, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_callback(_server, is_reusable=True)
    first, same, changed = _vital("V-1"), _vital("V-1"), {**_vital("V-1"), "systolic": 131}
    path = tmp_path / "repeats.ndjson"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in (first, same, changed)))

    validation = await _validate(str(path), Settings(FHIR_BASE_URL=BASE), concurrency=2, all_issues=False)

    assert validation.counts["resources"] == 6
    assert validation.counts["validated"] == 3  # the Patient, and the Observation before and after its change
    sent = [r for r in httpx_mock.get_requests() if r.url.path.endswith("/$validate")]
    assert len(sent) == 3


@pytest.mark.parametrize(
    ("diagnostics", "grouped"),
    [
        (
            "CodeSystem is unknown and can't be validated: http://loinc.org for 'http://loinc.org#8462-4'",
            "CodeSystem is unknown and can't be validated: http://loinc.org for '…'",
        ),
        (
            "cannot apply filters '[org.hl7.fhir.r5.model.ValueSet$ConceptSetFilterComponent@685e511b]' because",
            "cannot apply filters '…' because",
        ),
        (
            "Constraint failed: dom-6: 'A resource should have narrative for robust management'",
            "Constraint failed: dom-6: 'A resource should have narrative for robust management'",
        ),
    ],
)
def test_messages_group_with_their_quoted_codes_and_urls_masked_but_not_their_quoted_sentences(
    diagnostics: str, grouped: str
) -> None:
    assert message_of({"diagnostics": diagnostics}) == grouped
