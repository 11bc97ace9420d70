"""`infusion-fhir validate`'s `_validate` coroutine over a mocked transport (pytest-httpx)."""

from __future__ import annotations

import copy
from pathlib import Path

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from service.batch.command import _validate
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

    counts = await _validate(str(records), Settings(FHIR_BASE_URL=BASE), concurrency=2)

    assert counts == {"records": 4, "resources": 8, "records_with_errors": 2, "invalid_lines": 1, "warnings": 2}
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
    assert len(validated) == 8
    assert {r.url.path.rsplit("/", 2)[-2] for r in validated} == {"Patient", "Observation", "AdverseEvent"}
