"""Liveness and readiness against fake FHIR servers (the real one is in tests/integration)."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings


def _app_with(handler) -> TestClient:
    settings = Settings(FHIR_BASE_URL="http://fhir.test/fhir")
    return TestClient(create_app(settings, transport=httpx.MockTransport(handler)))


def _capability(version: str = "4.0.1", interactions: tuple[str, ...] = ("transaction", "batch")) -> dict:
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": version,
        "rest": [{"mode": "server", "interaction": [{"code": c} for c in interactions]}],
    }


def test_healthz_does_not_touch_the_fhir_server() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise AssertionError("healthz must not call the FHIR server")

    with _app_with(boom) as api:
        assert api.get("/healthz").json() == {"status": "ok"}


def test_readyz_ok_names_the_fhir_version() -> None:
    with _app_with(lambda request: httpx.Response(200, json=_capability())) as api:
        response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json()["fhirVersion"] == "4.0.1"


@pytest.mark.parametrize(
    ("capability", "expected"),
    [
        (_capability(version="5.0.0"), "FHIR 5.0.0"),
        (_capability(interactions=("batch",)), "transaction"),
        ({"resourceType": "Bundle"}, "CapabilityStatement"),
    ],
)
def test_readyz_503_when_the_server_does_not_fit(capability: dict, expected: str) -> None:
    with _app_with(lambda request: httpx.Response(200, json=capability)) as api:
        response = api.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert expected in body["issue"][0]["diagnostics"]


def test_readyz_503_when_the_server_errors_without_retrying() -> None:
    calls = []

    def failing(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503)

    with _app_with(failing) as api:
        response = api.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert len(calls) == 1


def test_readyz_names_an_operation_the_server_does_not_declare() -> None:
    """Medplum's engine declares no operations and has no `$validate` (docs/compatibility.md, row 6)."""
    with _app_with(lambda request: httpx.Response(200, json=_capability())) as api:
        response = api.get("/readyz")
    assert response.status_code == 200  # writes do not need it
    (lack,) = response.json()["lacks"]
    assert lack["capability"] == "$validate" and "infusion-fhir validate" in lack["consequence"]


def test_readyz_lacks_nothing_where_a_resource_declares_validate() -> None:
    capability = _capability()
    capability["rest"][0]["resource"] = [{"type": "Patient", "operation": [{"name": "validate"}]}]
    with _app_with(lambda request: httpx.Response(200, json=capability)) as api:
        assert api.get("/readyz").json()["lacks"] == []
