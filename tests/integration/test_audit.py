"""The audit trail on the real HAPI: every /v1 operation, allowed and refused, leaves exactly one AuditEvent naming
the caller, the patient, the outcome and the request id, in the 0600 audit file and in the FHIR audit store (also
the events spooled while the store was down, sent by the next start); each passes `$validate`; a batch job leaves
one per patient."""

from __future__ import annotations

import socket
import stat
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import key_digest
from service.settings import Settings
from tests.integration.batch_support import Namespace
from tests.integration.conftest import TrackingApi, track
from tests.integration.test_api_sync import session_body

API_KEY = "audit-test-key"
CALLER = "ehr-audit"
FHIR_JSON = "application/fhir+json"


def audited_settings(fhir_base_url: str, run_id: str, where: Path, store_url: str | None, **extra: object) -> Settings:
    values: dict[str, object] = {
        "FHIR_BASE_URL": fhir_base_url,
        "api_keys": f"{CALLER}={key_digest(API_KEY)}",
        "identifier_system_base": f"https://test.infusion-fhir.example/{run_id}/sid",
        "mrn_system": f"https://test.infusion-fhir.example/{run_id}/mrn",
        "audit_log": str(where / "audit.jsonl"),
        "audit_spool_dir": str(where / "spool"),
        "audit_fhir_url": store_url,
        "audit_drain_seconds": 5,
        "retry_max_attempts": 2,
        "retry_backoff_base_s": 0.01,
    }
    return Settings(**{**values, **extra})  # type: ignore[arg-type]


def events_in(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def request_id_of(event: dict) -> str | None:
    return next(
        (e["what"]["identifier"]["value"] for e in event.get("entity", []) if e["type"]["code"] == "XrequestId"), None
    )


def mrns_of(event: dict) -> list[str]:
    return [
        e["what"]["identifier"]["value"]
        for e in event.get("entity", [])
        if e.get("role", {}).get("code") == "1" and "identifier" in e["what"]
    ]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.needs("$validate")
def test_every_operation_leaves_one_event_in_the_file_and_the_store(
    fhir_base_url, run_id, tmp_path, fhir_cleanup
) -> None:
    settings = audited_settings(fhir_base_url, run_id, tmp_path, store_url=fhir_base_url)
    key, mrn = f"s-{run_id}", f"AUD-{run_id}"
    body = session_body(key, mrn)
    orphan = {
        **body["vital_signs"][2],
        "key": f"o-{run_id}",
        "patient": body["patient"],
        "session_key": f"none-{run_id}",
    }
    auth = {"Authorization": f"Bearer {API_KEY}"}
    # (method, path, json, headers, expected status, the patient named or None)
    calls = [
        ("PUT", f"/v1/infusion-sessions/{key}", body, auth, 201, mrn),
        ("PUT", f"/v1/infusion-sessions/{key}", body, auth, 200, mrn),
        ("GET", f"/v1/infusion-sessions/{key}", None, auth, 200, mrn),
        ("GET", f"/v1/infusion-sessions/{key}/$monitoring-summary", None, auth, 200, None),
        ("POST", f"/v1/infusion-sessions/{key}/$monitoring-summary", None, auth, 200, None),
        ("POST", "/v1/patients/$phq9-trend", {"mrn": mrn}, auth, 200, mrn),
        ("POST", "/v1/patients/$outcome-trend", {"mrn": mrn}, auth, 200, mrn),
        ("POST", "/v1/$convert", [{"kind": "infusion_session", **body}], auth, 200, mrn),
        ("GET", f"/v1/vital-signs/missing-{run_id}", None, auth, 404, None),
        ("PUT", f"/v1/vital-signs/{orphan['key']}", orphan, auth, 409, mrn),
        ("PUT", f"/v1/vital-signs/bad-{run_id}", {"key": f"bad-{run_id}"}, auth, 422, None),
        ("GET", f"/v1/infusion-sessions/{key}", None, {}, 401, None),
        ("DELETE", f"/v1/infusion-sessions/{key}", None, auth, 204, mrn),
    ]
    answered = []
    with TestClient(create_app(settings)) as client:
        api = TrackingApi(client, fhir_cleanup)
        for method, path, payload, headers, _, _ in calls:
            request_id = f"audit-test-{uuid.uuid4().hex[:12]}"
            response = api.client.request(method, path, json=payload, headers={**headers, "X-Request-Id": request_id})
            track(response, fhir_cleanup)
            api.settle()
            answered.append((request_id, response.status_code))
    assert [status for _, status in answered] == [call[4] for call in calls]

    path = tmp_path / "audit.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    events = events_in(path)
    fhir_cleanup.track(*(f"AuditEvent/{e['id']}" for e in events))
    assert len(events) == len(calls)
    for (request_id, status), (method, route, _, headers, _, patient) in zip(answered, calls, strict=True):
        (event,) = [e for e in events if request_id_of(e) == request_id]  # exactly one per request
        assert event["outcomeDesc"] == f"HTTP {status}"
        assert event["outcome"] == ("0" if status < 400 else "4" if status < 500 else "8")
        client_agent = event["agent"][0]
        assert client_agent["who"].get("display") == (CALLER if headers else "unauthenticated"), (method, route)
        if patient is not None:
            assert mrns_of(event) == [patient], (method, route)
        assert "meta" not in event  # no BALP profile claimed by default (INFUSION_FHIR_AUDIT_BALP_PROFILES)

    with httpx.Client(base_url=fhir_base_url, headers={"Accept": FHIR_JSON}, timeout=60) as store:
        for event in events:  # the store holds every one (the app drained its spool at shutdown)
            kept = store.get(f"AuditEvent/{event['id']}")
            assert kept.status_code == 200, event["id"]
        for event in events:
            assert_valid(store, event)
    assert list((tmp_path / "spool").glob("*.json")) == []


def assert_valid(store: httpx.Client, event: dict) -> None:
    """No error from `$validate` of the event as emitted. It claims no BALP profile by default (the BALP
    StructureDefinitions are not on the local HAPI: no source of the IHE package is reachable here); what the profiles
    fix is checked by the unit tests with the claim on (tests/unit/test_audit_event.py)."""
    assert "meta" not in event or "profile" not in event["meta"], event["id"]
    answer = store.post("AuditEvent/$validate", json=event, headers={"Content-Type": FHIR_JSON})
    errors = [i for i in answer.json().get("issue", []) if i["severity"] in ("error", "fatal")]
    assert errors == [], (event["id"], errors)


def test_events_spooled_while_the_store_was_down_reach_it_after_a_restart(
    fhir_base_url, run_id, tmp_path, fhir_cleanup
) -> None:
    down = f"http://127.0.0.1:{closed_port()}/fhir"
    first = audited_settings(fhir_base_url, run_id, tmp_path, store_url=down)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with TestClient(create_app(first)) as client:
        for n in range(3):
            assert (
                client.post("/v1/patients/$phq9-trend", json={"mrn": f"NONE-{run_id}-{n}"}, headers=auth).status_code
                == 404
            )
    spooled = sorted((tmp_path / "spool").glob("*.json"))
    assert len(spooled) == 3  # the store was down: all kept, none lost
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in spooled)
    ids = [orjson.loads(p.read_bytes())["id"] for p in spooled]
    fhir_cleanup.track(*(f"AuditEvent/{i}" for i in ids))

    second = audited_settings(fhir_base_url, run_id, tmp_path, store_url=fhir_base_url)  # the store is back
    with TestClient(create_app(second)):
        pass  # started (sends the spool) and stopped (drains)
    assert list((tmp_path / "spool").glob("*.json")) == []
    with httpx.Client(base_url=fhir_base_url, headers={"Accept": FHIR_JSON}, timeout=60) as store:
        for event_id in ids:
            assert store.get(f"AuditEvent/{event_id}").status_code == 200


def test_a_rotated_audit_file_is_0600(fhir_base_url, run_id, tmp_path) -> None:
    settings = audited_settings(fhir_base_url, run_id, tmp_path, store_url=None, audit_log_max_bytes=3000)
    with TestClient(create_app(settings)) as client:
        for _ in range(4):
            client.post("/v1/$convert", json=[], headers={"Authorization": f"Bearer {API_KEY}"})
    rotated = tmp_path / "audit.jsonl.1"
    assert rotated.exists()
    assert stat.S_IMODE(rotated.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "audit.jsonl").stat().st_mode) == 0o600


@pytest.fixture
def ns(fhir_base_url: str, run_id: str):
    namespace = Namespace(fhir_base_url, run_id)
    yield namespace
    namespace.purge()


def test_a_batch_job_leaves_one_event_per_patient(ns, tmp_path) -> None:
    data = tmp_path / "demo.ndjson"
    assert ns.cli("demo-data", "--patients", "2", "--seed", "5", "-o", str(data)).returncode == 0
    audit = tmp_path / "audit.jsonl"
    result = ns.cli(
        "sync", str(data), "--rejects", str(tmp_path / "rejects.ndjson"), INFUSION_FHIR_AUDIT_LOG=str(audit)
    )
    assert result.returncode == 0, result.stderr
    events = events_in(audit)
    mrns = {parse_mrn(line) for line in data.read_bytes().splitlines() if parse_mrn(line)}
    assert len(events) == len(mrns) == 2
    assert sorted(m for e in events for m in mrns_of(e)) == sorted(mrns)
    assert {e["action"] for e in events} == {"C"} and {e["outcome"] for e in events} == {"0"}
    assert all(e["agent"][0]["who"]["identifier"]["system"].endswith("/caller/batch") for e in events)


def parse_mrn(line: bytes) -> str | None:
    return (orjson.loads(line).get("patient") or {}).get("mrn")
