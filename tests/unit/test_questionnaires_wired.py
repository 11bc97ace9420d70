"""The Questionnaires are on the server before the first QuestionnaireResponse names one (issue 21).

API: one `QuestionnairesOnce` per process, awaited before a PUT that writes a QuestionnaireResponse,
so the Questionnaire transaction comes first and is sent once. Batch `sync`: `ensure_questionnaires`
right after the server check; its failure stops the job like any other server error, and
`--dry-run` and `validate` write nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import key_digest
from service.batch import command
from service.batch.report import Report
from service.batch.source import read_lines
from service.fhir_client import open_fhir_client
from service.settings import Settings
from service.sync.questionnaires import carry_questionnaire_responses
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, FakeFhir

AUTH = {"Authorization": "Bearer unit-key"}


def assessment(key: str, instrument: str = "gad7", items: list[Any] | None = None) -> dict[str, Any]:
    body = {k: v for k, v in EXAMPLES["assessment"].items() if k not in ("session_key", "kind", "key")}
    if instrument != "gad7":
        body = {k: v for k, v in body.items() if k not in ("difficulty", "total")}
        body["instrument"] = instrument
        body["items"] = items
    return {**body, "key": key}


def vital(key: str) -> dict[str, Any]:
    body = {k: v for k, v in EXAMPLES["vital_sign"].items() if k not in ("session_key", "kind")}
    return {**body, "key": key}


def types_in(bundle: dict[str, Any]) -> set[str]:
    return {e["request"]["url"].split("/")[0].split("?")[0] for e in bundle["entry"]}


def client_for(fake: FakeFhir) -> TestClient:
    # Provenance off: these count the transactions, and its Device and Organization are written once in one more
    settings = Settings(FHIR_BASE_URL=BASE, api_keys=key_digest("unit-key"), retry_max_attempts=2, provenance=False)
    return TestClient(create_app(settings, transport=fake.transport()))


def test_assessments_phq9s_and_sessions_embedding_one_carry_questionnaire_responses() -> None:
    from schemas import parse_record

    records = {kind: parse_record(body) for kind, body in EXAMPLES.items()}
    assert [k for k, r in records.items() if carry_questionnaire_responses([r])] == ["phq9_assessment", "assessment"]
    embedding = {**EXAMPLES["infusion_session"], "phq9_assessments": [{"key": "P-9", **_phq9_fields()}]}
    assert carry_questionnaire_responses([parse_record(embedding)])


def _phq9_fields() -> dict[str, Any]:
    return {k: EXAMPLES["phq9_assessment"][k] for k in ("completed_at", "items")}


def test_api_writes_the_questionnaires_before_a_session_carrying_an_assessment() -> None:
    """An assessment embedded in a session writes its QuestionnaireResponse with the session's transaction."""
    fake = FakeFhir()
    body = {k: v for k, v in EXAMPLES["infusion_session"].items() if k != "kind"}
    body["assessments"] = [{k: v for k, v in assessment("Q-E").items() if k != "patient"}]
    with client_for(fake) as api:
        assert api.put("/v1/infusion-sessions/S-1", json=body, headers=AUTH).status_code == 201
    kinds = [types_in(b) for b in fake.transactions]
    assert kinds[0] == {"Questionnaire"}
    assert kinds[1] == {"Patient"}  # the new patient's own transaction (service.sync.identities)
    assert "QuestionnaireResponse" in kinds[2]
    assert kinds[3:] == [{"DiagnosticReport", "Observation"}]  # then the session's monitoring summary


def test_api_writes_the_questionnaires_once_before_the_first_questionnaire_response() -> None:
    fake = FakeFhir()
    with client_for(fake) as api:
        assert api.put("/v1/vital-signs/V-1", json=vital("V-1"), headers=AUTH).status_code == 201
        assert not fake.of_type("Questionnaire")  # a record without a response does not need them
        assert api.put("/v1/assessments/Q-1", json=assessment("Q-1"), headers=AUTH).status_code == 201
        madrs = assessment("Q-2", "madrs", [1, 2, 1, 0, 1, 2, 1, 0, 1, 0])
        assert api.put("/v1/assessments/Q-2", json=madrs, headers=AUTH).status_code == 201
        assert api.put("/v1/assessments/Q-1", json=assessment("Q-1"), headers=AUTH).status_code == 200
    kinds = [types_in(b) for b in fake.transactions]
    with_questionnaires = [n for n, t in enumerate(kinds) if "Questionnaire" in t]
    with_responses = [n for n, t in enumerate(kinds) if "QuestionnaireResponse" in t]
    assert kinds[0] == {"Patient"}  # the new patient's own transaction, then the vital sign's
    assert with_questionnaires == [2]  # after the vital sign's, once, alone
    assert kinds[2] == {"Questionnaire"}
    assert with_responses and min(with_responses) > 2
    assert len(fake.of_type("Questionnaire")) == 8
    searches = [r for r in fake.requests if r.url.path.endswith("Questionnaire/_search")]
    assert len(searches) == 1  # checked once per process, not per request


def test_api_refuses_the_assessment_when_the_questionnaires_cannot_be_written_and_tries_again_next_time() -> None:
    fake = FakeFhir()
    down = [True]

    def refuse_questionnaires(request: httpx.Request, body: Any) -> httpx.Response | None:
        if down[0] and "Questionnaire" in request.url.path and "Response" not in request.url.path:
            return httpx.Response(503, json={"resourceType": "OperationOutcome", "issue": []})
        return None

    fake.intercept = refuse_questionnaires
    settings = Settings(
        FHIR_BASE_URL=BASE, api_keys=key_digest("unit-key"), retry_max_attempts=1, retry_backoff_base_s=0.001
    )
    with TestClient(create_app(settings, transport=fake.transport())) as api:
        assert api.put("/v1/assessments/Q-1", json=assessment("Q-1"), headers=AUTH).status_code == 503
        assert not fake.of_type("QuestionnaireResponse")  # no response without its form
        down[0] = False
        assert api.put("/v1/assessments/Q-1", json=assessment("Q-1"), headers=AUTH).status_code == 201
    assert [types_in(b) for b in fake.transactions][0] == {"Questionnaire"}


@contextlib.contextmanager
def batch_on(fake: FakeFhir, monkeypatch: pytest.MonkeyPatch):
    @contextlib.asynccontextmanager
    async def on_fake(settings: Settings, **options: Any) -> AsyncIterator[Any]:
        async with open_fhir_client(settings, transport=fake.transport(), **options) as client:
            yield client

    monkeypatch.setattr(command, "open_fhir_client", on_fake)
    yield


def ndjson(tmp_path: Path, records: list[dict[str, Any]]) -> str:
    path = tmp_path / "in.ndjson"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return str(path)


def run_sync(path: str, tmp_path: Path) -> dict[str, Any]:
    settings = Settings(FHIR_BASE_URL=BASE, retry_max_attempts=1, retry_backoff_base_s=0.001)
    with open(tmp_path / "rejects.ndjson", "wb") as rejects:
        report = Report(rejects)
        return command.asyncio.run(
            command._sync(read_lines([path]), command._ticker(report, None), settings, report, 2, 2)
        )


def test_batch_sync_writes_the_questionnaires_once_before_any_line(tmp_path, monkeypatch) -> None:
    fake = FakeFhir()
    records = [{**assessment(f"Q-{n}"), "kind": "assessment"} for n in range(5)]
    path = ndjson(tmp_path, records)
    with batch_on(fake, monkeypatch):
        first = run_sync(path, tmp_path)
        assert first["exit_code"] == 0
        assert types_in(fake.transactions[0]) == {"Questionnaire"}
        assert all("Questionnaire" not in types_in(b) for b in fake.transactions[1:])
        written = len(fake.transactions)
        second = run_sync(path, tmp_path)  # a new job checks again, and finds nothing to write
    assert second["exit_code"] == 0
    assert all("Questionnaire" not in types_in(b) for b in fake.transactions[written:])
    assert len(fake.of_type("Questionnaire")) == 8


def test_batch_sync_stops_before_any_line_when_the_questionnaires_cannot_be_written(tmp_path, monkeypatch) -> None:
    fake = FakeFhir()
    fake.intercept = lambda request, body: (
        httpx.Response(503, json={"resourceType": "OperationOutcome", "issue": []})
        if "Questionnaire/_search" in request.url.path
        else None
    )
    path = ndjson(tmp_path, [{**assessment("Q-1"), "kind": "assessment"}])
    with batch_on(fake, monkeypatch):
        summary = run_sync(path, tmp_path)
    assert summary["exit_code"] == 2
    assert "unavailable" in summary["stopped_reason"]
    assert fake.transactions == []
    assert (tmp_path / "rejects.ndjson").read_bytes() == b""  # no line blamed


def test_batch_dry_run_and_validate_write_nothing(tmp_path, monkeypatch) -> None:
    fake = FakeFhir()
    path = ndjson(tmp_path, [{**assessment("Q-1"), "kind": "assessment"}, {**vital("V-1"), "kind": "vital_sign"}])
    settings = Settings(FHIR_BASE_URL=BASE)
    with batch_on(fake, monkeypatch):
        with open(tmp_path / "rejects.ndjson", "wb") as rejects:
            summary = command._dry_run(read_lines([path]), settings, Report(rejects))
        assert summary["dry_run"] is True
        command.asyncio.run(command._validate(path, settings, 2))
    assert fake.transactions == []
    assert not any(r.method == "PUT" for r in fake.requests)
