"""The audit hook over the API (a fake FHIR server): one event per request, refused and failed ones too, before the
answer; and the failure policy when no sink can record: `refuse` answers 503, `serve` answers and counts."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import key_digest
from service.settings import Settings

AUTH = {"Authorization": "Bearer unit-key"}
MRN = "AUDIT|MRN,7"
VITAL = {
    "kind": "vital_sign",
    "key": "v-1",
    "patient": {"mrn": MRN},
    "measured_at": "2026-03-02T09:30:00-05:00",
    "type": "heart_rate",
    "value": 80,
    "unit": "/min",
}


def no_server(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503)


def client_for(audit_log: Path | str, **overrides: object) -> TestClient:
    settings = Settings(
        FHIR_BASE_URL="http://fhir.test/fhir",
        api_keys=key_digest("unit-key"),
        retry_max_attempts=1,
        max_body_bytes=10_000,
        audit_log=str(audit_log),
        **overrides,
    )
    return TestClient(create_app(settings, transport=httpx.MockTransport(no_server)), raise_server_exceptions=False)


def events(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def test_one_event_per_request_whatever_its_answer(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with client_for(path) as api:
        answers = [
            api.post("/v1/$convert", json=[VITAL], headers=AUTH).status_code,  # 200, no server needed
            api.get("/v1/vital-signs/v-1").status_code,  # 401
            api.get("/v1/vital-signs/v-1", headers=AUTH).status_code,  # 503: the FHIR server is down
            api.post("/v1/$convert", content=b"x" * 20_000, headers=AUTH).status_code,  # 413
            api.put("/v1/vital-signs/v-1", content=b"{", headers=AUTH).status_code,  # 422
            api.get("/healthz").status_code,  # not /v1: not audited
        ]
    assert answers == [200, 401, 503, 413, 422, 200]
    recorded = events(path)
    assert [(e["outcomeDesc"], e["outcome"]) for e in recorded] == [
        ("HTTP 200", "0"),
        ("HTTP 401", "4"),
        ("HTTP 503", "8"),
        ("HTTP 413", "4"),
        ("HTTP 422", "4"),
    ]
    patient = next(e for e in recorded[0]["entity"] if e.get("role", {}).get("code") == "1")
    assert patient["what"]["identifier"]["value"] == MRN  # the audit names the patient; the log never does


def test_refuse_answers_503_when_no_sink_can_record(tmp_path: Path) -> None:
    unwritable = tmp_path / "a-directory"
    unwritable.mkdir()  # the audit log path is a directory: every append fails
    with client_for(unwritable, audit_failure="refuse") as api:
        response = api.post("/v1/$convert", json=[VITAL], headers=AUTH)
        metrics = api.get("/metrics").text
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["issue"][0]["code"] == "transient"
    assert "Bundle" not in response.text  # the answer it would have given is not sent
    assert 'infusion_fhir_audit_sink_failures_total{sink="file"} 1.0' in metrics


def test_serve_answers_and_logs_the_failure_without_phi(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    unwritable = tmp_path / "a-directory"
    unwritable.mkdir()
    with client_for(unwritable, audit_failure="serve") as api:
        response = api.post("/v1/$convert", json=[VITAL], headers=AUTH)
        metrics = api.get("/metrics").text
    assert response.status_code == 200
    failed = [r for r in caplog.records if r.getMessage() == "audit.sink_failed"]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR
    assert 'infusion_fhir_audit_sink_failures_total{sink="file"} 1.0' in metrics
    logged = "\n".join(orjson.dumps(vars(r), default=str).decode() for r in caplog.records)
    assert MRN not in logged and "AUDIT|MRN" not in logged


def test_audit_off_records_nothing_and_serves(tmp_path: Path) -> None:
    with client_for("") as api:
        assert api.post("/v1/$convert", json=[VITAL], headers=AUTH).status_code == 200
        assert api.app.state.audit.enabled is False
