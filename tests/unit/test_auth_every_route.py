"""Every /v1 route, enumerated from the app itself, refuses a missing or wrong API key with 401."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient

from schemas.kinds import SEGMENTS
from service.app import create_app
from service.auth import key_digest
from service.settings import Settings
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, CAPABILITY

KEY = "the-right-key"
PUBLIC = {
    "/.well-known/jwks.json",  # the public half of the SMART client key: the EHR fetches it without credentials
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/docs-assets",
}
BAD_AUTHORIZATION = {
    "none": None,
    "wrong key": "Bearer not-the-key",
    "empty bearer": "Bearer ",
    "right key, wrong scheme": f"Basic {KEY}",
    "right key, no scheme": KEY,
    "key digest instead of key": f"Bearer {key_digest(KEY)}",
}


def make_app(calls: list[httpx.Request]):
    def server(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.url.path.endswith("/metadata"):
            return httpx.Response(200, json=CAPABILITY)
        return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})

    settings = Settings(FHIR_BASE_URL=BASE, api_keys=key_digest(KEY), retry_max_attempts=1)
    return create_app(settings, transport=httpx.MockTransport(server))


def app_routes(app) -> list[tuple[str, set[str]]]:
    """(path, methods) of every route of the app, included routers flattened with their prefixes.

    FastAPI >= 0.16x keeps `app.routes` as included-router nodes; `iter_route_contexts` walks them
    as the OpenAPI generator does (older FastAPI: `app.routes` is already flat).
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI
        routes = list(app.routes)
    else:
        routes = list(iter_route_contexts(app.routes))
    return [(route.path, set(getattr(route, "methods", None) or ())) for route in routes]


def v1_operations() -> list[tuple[str, str]]:
    return sorted(
        (method, path) for path, methods in app_routes(make_app([])) if path.startswith("/v1") for method in methods
    )


OPERATIONS = v1_operations()


def test_the_enumeration_covers_every_record_route_convert_and_trend() -> None:
    expected = {(m, f"/v1/{segment}/{{key}}") for segment in SEGMENTS for m in ("PUT", "GET", "DELETE")}
    expected |= {
        ("POST", "/v1/$convert"),
        ("POST", "/v1/patients/$phq9-trend"),
        ("POST", "/v1/patients/$outcome-trend"),
    }
    assert expected <= set(OPERATIONS)


def test_every_route_outside_v1_is_a_known_public_one() -> None:
    """A route added outside /v1 would be served without a key: it has to be listed here on purpose."""
    outside = {path for path, _ in app_routes(make_app([])) if not path.startswith("/v1")}
    assert outside == PUBLIC


def _call(api: TestClient, method: str, path: str, authorization: str | None) -> httpx.Response:
    url = re.sub(r"\{[^}]+\}", "k1", path)
    headers = {} if authorization is None else {"Authorization": authorization}
    body = {**EXAMPLES["vital_sign"], "key": "k1"} if "-trend" not in path else {"mrn": "MRN-1"}
    if method in ("PUT", "POST"):
        return api.request(method, url, json=[body] if path.endswith("$convert") else body, headers=headers)
    return api.request(method, url, headers=headers)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_v1_route_refuses_a_missing_or_wrong_key(method: str, path: str) -> None:
    calls: list[httpx.Request] = []
    with TestClient(make_app(calls)) as api:
        for label, authorization in BAD_AUTHORIZATION.items():
            response = _call(api, method, path, authorization)
            assert response.status_code == 401, (label, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer", label
            body = response.json()
            assert body["resourceType"] == "OperationOutcome", label
            assert body["issue"][0]["code"] == "login", label
        assert calls == []  # nothing reached the FHIR server
        accepted = _call(api, method, path, f"Bearer {KEY}")
    assert accepted.status_code != 401  # the same request with the key gets past the check


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_and_metrics_need_no_key(path: str) -> None:
    with TestClient(make_app([])) as api:
        response = api.get(path)
    assert response.status_code == 200
    assert "WWW-Authenticate" not in response.headers
