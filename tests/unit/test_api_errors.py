"""The API's error edge with a fake FHIR server: each failure gets its status and an OperationOutcome."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import key_digest
from service.settings import Settings

AUTH = {"Authorization": "Bearer unit-key"}
MRN = "SECRET|MRN,1"
VITAL = {
    "patient": {"mrn": MRN, "family": "Hiddenname"},
    "measured_at": "2026-03-02T09:30:00-05:00",
    "type": "heart_rate",
    "value": 80,
    "unit": "/min",
}


def client_for(handler, **overrides) -> TestClient:
    settings = Settings(
        FHIR_BASE_URL="http://fhir.test/fhir",
        api_keys=key_digest("unit-key"),
        retry_max_attempts=2,
        retry_backoff_base_s=0.001,
        **overrides,
    )
    return TestClient(create_app(settings, transport=httpx.MockTransport(handler)))


def test_server_rejection_is_502_with_its_diagnostics_scrubbed_of_phi() -> None:
    def reject(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "processing",
                        "diagnostics": f"HAPI-0001: bad identifier {MRN} for Hiddenname",
                    }
                ],
            },
        )

    with client_for(reject) as api:
        response = api.put("/v1/vital-signs/v1", json=VITAL, headers=AUTH)
    assert response.status_code == 502
    text = response.text
    assert "HAPI-0001: bad identifier" in text
    assert MRN not in text and "Hiddenname" not in text


def test_unavailable_server_is_503_after_retries() -> None:
    calls = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    with client_for(down) as api:
        response = api.put("/v1/vital-signs/v1", json=VITAL, headers=AUTH)
    assert response.status_code == 503
    assert response.json()["issue"][0]["code"] == "transient"
    assert len(calls) == 2


def test_transport_failure_is_503() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with client_for(unreachable) as api:
        response = api.get("/v1/vital-signs/v1", headers=AUTH)
    assert response.status_code == 503


def test_oversized_body_is_413_without_touching_the_server() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no FHIR call expected")

    with client_for(never, max_body_bytes=1000) as api:
        response = api.put(
            "/v1/vital-signs/v1",
            content=b"{" + b" " * 5000 + b"}",
            headers={**AUTH, "Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-long"


def test_oversized_chunked_body_is_413() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no FHIR call expected")

    def chunks():
        for _ in range(10):
            yield b" " * 500

    with client_for(never, max_body_bytes=1000) as api:
        response = api.put("/v1/vital-signs/v1", content=chunks(), headers=AUTH)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b"[]",
        b"42",
        b'"text"',
        b"{",
        b'{"key": 5}',
        b"\xff\xfe",
        b'{"patient": []}',
        b'{"measured_at": 1e999}',
    ],
)
def test_garbage_bodies_are_422_never_500(body: bytes) -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no FHIR call expected")

    with client_for(never) as api:
        for url in ("/v1/vital-signs/v1", "/v1/infusion-sessions/s1", "/v1/phq9-assessments/p1"):
            response = api.put(url, content=body, headers=AUTH)
            assert response.status_code == 422, (url, response.text)
            assert response.json()["resourceType"] == "OperationOutcome"
        assert api.post("/v1/$convert", content=body, headers=AUTH).status_code == (200 if body == b"[]" else 422)
        assert api.post("/v1/patients/$phq9-trend", content=body, headers=AUTH).status_code == 422


def test_key_in_url_and_body_must_agree() -> None:
    with client_for(lambda r: httpx.Response(500)) as api:
        response = api.put("/v1/vital-signs/v1", json={**VITAL, "key": "other"}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["key"]


def test_bad_key_in_url_is_422() -> None:
    with client_for(lambda r: httpx.Response(500)) as api:
        response = api.put("/v1/vital-signs/bad%20key", json=VITAL, headers=AUTH)
    assert response.status_code == 422


def test_convert_maps_without_server_io() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no FHIR call expected")

    with client_for(never) as api:
        response = api.post("/v1/$convert", json=[{"kind": "vital_sign", "key": "v1", **VITAL}], headers=AUTH)
        ndjson = api.post(
            "/v1/$convert",
            content=b'{"kind": "vital_sign", "key": "v1", "patient": {"mrn": "m"}, "measured_at": "2026-03-02T09:30:00Z", "type": "spo2", "value": 97, "unit": "%"}\n',
            headers={**AUTH, "Content-Type": "application/x-ndjson"},
        )
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["type"] == "transaction"
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient", "Observation"]
    assert ndjson.status_code == 200


def test_metrics_count_requests_by_route_without_phi() -> None:
    with client_for(lambda r: httpx.Response(503)) as api:
        api.put("/v1/vital-signs/v1", json=VITAL, headers=AUTH)
        exposition = api.get("/metrics").text
    assert 'route="/v1/vital-signs/{key}"' in exposition
    assert 'status="503"' in exposition
    assert "infusion_fhir_fhir_retries_total" in exposition
    assert MRN not in exposition and 'v1"' not in exposition


def test_a_fhir_server_refusing_our_credentials_is_502_saying_so_not_a_data_error() -> None:
    with client_for(lambda request: httpx.Response(401, json={"resourceType": "OperationOutcome", "issue": []})) as api:
        response = api.put("/v1/vital-signs/v1", json=VITAL, headers=AUTH)
    assert response.status_code == 502
    issue = response.json()["issue"][0]
    assert issue["code"] == "security" and "refused the service's credentials" in issue["diagnostics"]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, text="<html>nope</html>"),
        httpx.Response(200, text="<html>hello</html>"),
        httpx.Response(200, json={"resourceType": "CapabilityStatement", "fhirVersion": "3.0.2"}),
    ],
    ids=["404", "not-fhir", "stu3"],
)
def test_readyz_names_a_base_url_that_is_not_a_fhir_r4_server(answer: httpx.Response) -> None:
    with client_for(lambda request: answer) as api:
        response = api.get("/readyz")
    assert response.status_code == 503
    issue = response.json()["issue"][0]
    assert issue["code"] == "not-supported" and "misconfigured" in issue["diagnostics"]


def test_server_data_that_cannot_be_read_back_is_502_not_422_or_500() -> None:
    """A vital-sign Observation whose code this service does not know (another writer changed it)."""
    from service.mappers import MappingConfig, resource_ids

    rid = resource_ids("vital_sign", "v1", MappingConfig())[0]
    observation = {
        "resourceType": "Observation",
        "id": rid.id,
        "status": "final",
        "code": {"text": "something else"},
        "subject": {"reference": "Patient/p1"},
        "identifier": [{"system": "https://infusion-fhir.example.org/fhir/sid/vital-sign", "value": "v1"}],
    }
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "https://infusion-fhir.example.org/fhir/sid/mrn", "value": "M1"}],
    }

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Patient/p1"):
            return httpx.Response(200, json=patient)
        return httpx.Response(200, json={"resourceType": "Bundle", "entry": [{"resource": observation}]})

    with client_for(server) as api:
        response = api.get("/v1/vital-signs/v1", headers=AUTH)
    assert response.status_code == 502
    assert "holds data this service cannot read" in response.json()["issue"][0]["diagnostics"]


def test_a_503_tells_the_caller_when_to_retry_passing_on_the_fhir_servers_retry_after() -> None:
    with client_for(lambda request: httpx.Response(503, headers={"Retry-After": "7"}), retry_after_cap_s=0.01) as api:
        response = api.put("/v1/vital-signs/v1", json=VITAL, headers=AUTH)
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    with client_for(lambda request: httpx.Response(502)) as api:
        response = api.put("/v1/vital-signs/v1", json=VITAL, headers=AUTH)
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
