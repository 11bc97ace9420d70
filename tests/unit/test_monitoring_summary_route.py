"""`GET /v1/infusion-sessions/{key}/$monitoring-summary` through the app on an in-memory FHIR server: the
summary of what the server holds (whichever way the readings arrived), 404 for an unknown or retracted
session as an OperationOutcome, the answer valid against the published schema, no MRN in any URL."""

from __future__ import annotations

from typing import Any

import jsonschema
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import key_digest
from service.openapi import documented_app
from service.settings import Settings
from tests.monitoring_sessions import hypertensive, separate, session
from tests.unit.fake_fhir import BASE, FakeFhir

AUTH = {"Authorization": "Bearer unit-key"}
MRN = "MRN|SUM,1"
SEGMENTS = {"vital_sign": "vital-signs", "monitoring_score": "monitoring-scores", "adverse_event": "adverse-events"}


def client(fake: FakeFhir) -> TestClient:
    settings = Settings(FHIR_BASE_URL=BASE, api_keys=key_digest("unit-key"), retry_max_attempts=1)
    return TestClient(create_app(settings, transport=fake.transport()))


def _put(api: TestClient, segment: str, record: dict[str, Any]) -> None:
    body = {k: v for k, v in record.items() if k not in ("key", "kind")}
    response = api.put(f"/v1/{segment}/{record['key']}", json=body, headers=AUTH)
    assert response.status_code in (200, 201), response.text


def _summary(api: TestClient, key: str) -> Any:
    return api.get(f"/v1/infusion-sessions/{key}/$monitoring-summary", headers=AUTH)


def validator() -> jsonschema.Draft202012Validator:
    document = documented_app().openapi()
    operation = document["paths"]["/v1/infusion-sessions/{key}/$monitoring-summary"]["get"]
    schema = {
        **operation["responses"]["200"]["content"]["application/json"]["schema"],
        "components": document["components"],
    }
    return jsonschema.Draft202012Validator(schema)


def test_the_summary_of_a_session_sent_embedded_equals_the_one_sent_as_separate_records() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        _put(api, "infusion-sessions", {**session("S-E", MRN), **hypertensive("E")})
        embedded = _summary(api, "S-E")
        _put(api, "infusion-sessions", session("S-P", MRN))
        for record in reversed(separate(hypertensive("E"), "S-P", MRN)):  # same keys: another session's records
            _put(api, SEGMENTS[record["kind"]], {**record, "key": record["key"].replace("E-", "P-")})
        parted = _summary(api, "S-P")
    assert embedded.status_code == parted.status_code == 200
    one, other = embedded.json(), parted.json()
    validator().validate(one)
    validator().validate(other)
    assert [c["rule"] for c in one["confirmed"]] == ["blood_pressure_repeated", "blood_pressure_single"]
    assert _renamed(other) == _renamed(one)  # the same but for keys and the ids made from them


def _renamed(value: Any) -> Any:
    """The summary with record keys of either session named alike and resource ids left out."""
    if isinstance(value, dict):
        return {k: _renamed(v) for k, v in value.items() if k != "observation"}
    if isinstance(value, list):
        return [_renamed(v) for v in value]
    if isinstance(value, str):
        return value.replace("S-P", "S-E").replace("P-", "E-")
    return value


def test_an_unknown_session_is_404_as_an_operation_outcome() -> None:
    with client(FakeFhir()) as api:
        response = _summary(api, "S-NONE")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_retracted_session_is_404() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        _put(api, "infusion-sessions", {**session("S-R", MRN), **hypertensive("R")})
        assert _summary(api, "S-R").status_code == 200
        assert api.delete("/v1/infusion-sessions/S-R", headers=AUTH).status_code == 204
        assert _summary(api, "S-R").status_code == 404


def test_no_mrn_in_any_url_and_only_reads() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        _put(api, "infusion-sessions", {**session("S-U", MRN), **hypertensive("U")})
        before = len(fake.requests)
        assert _summary(api, "S-U").status_code == 200
    asked = fake.requests[before:]
    assert asked and all(r.method == "GET" or r.url.path.endswith("/_search") for r in asked)
    assert not any("MRN" in str(r.url) for r in fake.requests)


def test_a_reading_the_service_cannot_read_back_is_a_502_not_a_crash() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        _put(api, "infusion-sessions", {**session("S-B", MRN), **hypertensive("B")})
        broken = next(o for o in fake.of_type("Observation") if o["identifier"][0]["value"] == "B-hr1")
        fake.put({**broken, "code": {"text": "not a vital sign this service writes"}})
        got, posted = _summary(api, "S-B"), api.post("/v1/infusion-sessions/S-B/$monitoring-summary", headers=AUTH)
    assert got.status_code == posted.status_code == 502
    assert got.json()["resourceType"] == "OperationOutcome" and "S-B" in got.text
