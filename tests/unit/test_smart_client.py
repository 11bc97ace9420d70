"""The FHIR client on a SMART-protected server: discovery, token cache, single flight, 401 refresh, errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from pytest_httpx import HTTPXMock

from service.errors import FhirAuthRefused, FhirMisconfigured, FhirUnavailable
from service.fhir_client import FhirClient, open_fhir_client
from service.settings import Settings
from service.smart import DEFAULT_SMART_SCOPES, JWT_BEARER, SigningKey, SmartBackendAuth, generate_signing_key

BASE = "http://fhir.test/fhir"
DISCOVERY = f"{BASE}/.well-known/smart-configuration"
TOKEN_URL = "https://auth.test/realms/clinic/token"
CLIENT_ID = "infusion-fhir-backend"
PATIENT = {"resourceType": "Patient", "id": "p1"}
SMART_CONFIGURATION = {
    "token_endpoint": TOKEN_URL,
    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
    "grant_types_supported": ["client_credentials"],
}


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return generate_signing_key("ES384")


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory, key: SigningKey) -> Path:
    path = tmp_path_factory.mktemp("smart") / "private-key.pem"
    path.write_bytes(
        key.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _settings(key_file: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "FHIR_BASE_URL": BASE,
        "smart_client_id": CLIENT_ID,
        "smart_private_key_file": str(key_file),
        "retry_max_attempts": 3,
        "retry_backoff_base_s": 0.0,
        **overrides,
    }
    return Settings(**values)


def _token(value: str, expires_in: int = 300) -> dict[str, Any]:
    return {"access_token": value, "token_type": "Bearer", "expires_in": expires_in, "scope": DEFAULT_SMART_SCOPES}


def _auth(fhir: FhirClient) -> SmartBackendAuth:
    auth = fhir.http.auth
    assert isinstance(auth, SmartBackendAuth)
    return auth


def _token_requests(httpx_mock: HTTPXMock) -> list[httpx.Request]:
    return [r for r in httpx_mock.get_requests() if str(r.url) == TOKEN_URL]


def _fhir_requests(httpx_mock: HTTPXMock) -> list[httpx.Request]:
    return [r for r in httpx_mock.get_requests() if str(r.url).startswith(f"{BASE}/Patient")]


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def _bearer_is(
    expected: str, then: Callable[[], httpx.Response], seen: list[str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    """A FHIR server that answers `then()` to `Bearer <expected>` and 401 to anything else;
    `seen` collects each request's Authorization as it arrived (a retried request is the same object)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"Bearer {expected}":
            return httpx.Response(401, json={"resourceType": "OperationOutcome", "issue": []})
        return then()

    return answer


def _patient() -> httpx.Response:
    return httpx.Response(200, json=PATIENT)


# -- discovery and the token request ---------------------------------------------------------


async def test_token_endpoint_is_discovered_and_the_token_request_is_smart_backend_services(
    httpx_mock: HTTPXMock, key_file: Path, key: SigningKey
) -> None:
    httpx_mock.add_response(method="GET", url=DISCOVERY, json=SMART_CONFIGURATION)
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token("tok-1"))
    httpx_mock.add_response(method="GET", url=f"{BASE}/Patient/p1", json=PATIENT)
    async with open_fhir_client(_settings(key_file)) as fhir:
        assert await fhir.read("Patient", "p1") == PATIENT
    discovery, token, read = httpx_mock.get_requests()
    assert "Authorization" not in discovery.headers
    assert token.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert token.headers["Accept"] == "application/json"  # none of the FHIR client's headers
    assert "Authorization" not in token.headers
    form = _form(token)
    assert set(form) == {"grant_type", "scope", "client_assertion_type", "client_assertion"}
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == DEFAULT_SMART_SCOPES
    assert form["client_assertion_type"] == JWT_BEARER
    claims = jwt.decode(
        form["client_assertion"], jwt.PyJWK(key.public_jwk()).key, algorithms=["ES384"], audience=TOKEN_URL
    )
    assert claims["iss"] == claims["sub"] == CLIENT_ID  # aud = the discovered token endpoint (checked above)
    assert jwt.get_unverified_header(form["client_assertion"])["kid"] == key.kid
    assert read.headers["Authorization"] == "Bearer tok-1"
    assert read.headers["Accept"] == "application/fhir+json"


async def test_a_configured_token_url_and_scopes_skip_discovery(httpx_mock: HTTPXMock, key_file: Path) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token("tok-1"))
    httpx_mock.add_response(method="GET", url=f"{BASE}/Patient/p1", json=PATIENT)
    settings = _settings(key_file, smart_token_url=TOKEN_URL, smart_scopes="system/Patient.rs  system/Flag.cruds")
    async with open_fhir_client(settings) as fhir:
        await fhir.read("Patient", "p1")
    assert _form(_token_requests(httpx_mock)[0])["scope"] == "system/Patient.rs system/Flag.cruds"


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, text="<html>no</html>"),
        httpx.Response(200, json={"authorization_endpoint": "https://auth.test/authorize"}),
        httpx.Response(200, json={"token_endpoint": "not a url"}),
    ],
)
async def test_no_usable_discovery_document_is_a_configuration_error(
    httpx_mock: HTTPXMock, key_file: Path, answer: httpx.Response
) -> None:
    httpx_mock.add_callback(lambda request: answer, method="GET", url=DISCOVERY)
    async with open_fhir_client(_settings(key_file)) as fhir:
        with pytest.raises(FhirMisconfigured, match="INFUSION_FHIR_SMART_TOKEN_URL"):
            await fhir.read("Patient", "p1")
    assert _fhir_requests(httpx_mock) == []


# -- the token cache ----------------------------------------------------------------------------


async def test_the_token_is_cached_until_shortly_before_it_expires(httpx_mock: HTTPXMock, key_file: Path) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token("tok-1", expires_in=300))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token("tok-2", expires_in=300))
    httpx_mock.add_response(method="GET", url=f"{BASE}/Patient/p1", json=PATIENT, is_reusable=True)
    now = [1000.0]
    async with open_fhir_client(_settings(key_file, smart_token_url=TOKEN_URL)) as fhir:
        _auth(fhir).clock = lambda: now[0]
        await fhir.read("Patient", "p1")
        await fhir.read("Patient", "p1")
        assert len(_token_requests(httpx_mock)) == 1  # two requests, one token fetch
        now[0] += 239  # still more than a minute left
        await fhir.read("Patient", "p1")
        assert len(_token_requests(httpx_mock)) == 1
        now[0] += 2  # under a minute left: fetched anew before use
        await fhir.read("Patient", "p1")
    assert len(_token_requests(httpx_mock)) == 2
    assert [r.headers["Authorization"] for r in _fhir_requests(httpx_mock)] == ["Bearer tok-1"] * 3 + ["Bearer tok-2"]


async def test_a_short_lived_token_is_kept_for_half_its_life(httpx_mock: HTTPXMock, key_file: Path) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token("tok-1", expires_in=30))
    httpx_mock.add_response(method="GET", url=f"{BASE}/Patient/p1", json=PATIENT, is_reusable=True)
    now = [0.0]
    async with open_fhir_client(_settings(key_file, smart_token_url=TOKEN_URL)) as fhir:
        _auth(fhir).clock = lambda: now[0]
        await fhir.read("Patient", "p1")
        now[0] = 14.0
        await fhir.read("Patient", "p1")
    assert len(_token_requests(httpx_mock)) == 1


async def test_concurrent_requests_share_one_token_fetch(httpx_mock: HTTPXMock, key_file: Path) -> None:
    async def slow_token(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)  # every other request arrives while this fetch is in flight
        return httpx.Response(200, json=_token("tok-1"))

    httpx_mock.add_response(method="GET", url=DISCOVERY, json=SMART_CONFIGURATION)
    httpx_mock.add_callback(slow_token, method="POST", url=TOKEN_URL)
    httpx_mock.add_response(method="GET", url=f"{BASE}/Patient/p1", json=PATIENT, is_reusable=True)
    async with open_fhir_client(_settings(key_file)) as fhir:
        results = await asyncio.gather(*(fhir.read("Patient", "p1") for _ in range(25)))
    assert results == [PATIENT] * 25
    assert len(_token_requests(httpx_mock)) == 1
    assert len([r for r in httpx_mock.get_requests() if str(r.url) == DISCOVERY]) == 1
    assert {r.headers["Authorization"] for r in _fhir_requests(httpx_mock)} == {"Bearer tok-1"}


# -- 401: one refresh, one retry ----------------------------------------------------------------


async def test_a_401_refreshes_the_token_once_and_retries_the_request(httpx_mock: HTTPXMock, key_file: Path) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token("tok-1"))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token("tok-2"))
    seen: list[str] = []
    answer = _bearer_is("tok-2", _patient, seen)
    httpx_mock.add_callback(answer, method="GET", url=f"{BASE}/Patient/p1", is_reusable=True)
    async with open_fhir_client(_settings(key_file, smart_token_url=TOKEN_URL)) as fhir:
        assert await fhir.read("Patient", "p1") == PATIENT
        assert await fhir.read("Patient", "p1") == PATIENT  # the new token is the cached one now
    assert len(_token_requests(httpx_mock)) == 2
    assert seen == [
        "Bearer tok-1",
        "Bearer tok-2",
        "Bearer tok-2",
    ]


async def test_a_second_401_is_fhir_auth_refused_without_another_refresh(httpx_mock: HTTPXMock, key_file: Path) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token("tok-1"))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token("tok-2"))
    seen: list[str] = []
    httpx_mock.add_callback(_bearer_is("never", _patient, seen), method="POST", url=f"{BASE}/", is_reusable=True)
    async with open_fhir_client(_settings(key_file, smart_token_url=TOKEN_URL)) as fhir:
        with pytest.raises(FhirAuthRefused) as caught:
            await fhir.transaction({"resourceType": "Bundle", "type": "transaction", "entry": []}, idempotent=True)
    assert caught.value.status_code == 401
    assert len(_token_requests(httpx_mock)) == 2
    fhir_posts = [r for r in httpx_mock.get_requests() if str(r.url) == f"{BASE}/"]
    assert len(fhir_posts) == 2  # the same request, retried once
    assert seen == ["Bearer tok-1", "Bearer tok-2"]


async def test_many_requests_refused_with_the_same_token_share_one_refresh(
    httpx_mock: HTTPXMock, key_file: Path
) -> None:
    async def slow_token(value: str) -> httpx.Response:
        await asyncio.sleep(0.02)
        return httpx.Response(200, json=_token(value))

    tokens = iter(["tok-1", "tok-2", "tok-3"])
    httpx_mock.add_callback(lambda request: slow_token(next(tokens)), method="POST", url=TOKEN_URL, is_reusable=True)
    httpx_mock.add_callback(_bearer_is("tok-2", _patient), method="GET", url=f"{BASE}/Patient/p1", is_reusable=True)
    async with open_fhir_client(_settings(key_file, smart_token_url=TOKEN_URL)) as fhir:
        results = await asyncio.gather(*(fhir.read("Patient", "p1") for _ in range(10)))
    assert results == [PATIENT] * 10
    assert len(_token_requests(httpx_mock)) == 2  # the first token, and one refresh for all ten 401s


async def test_a_403_is_refused_without_a_refresh(httpx_mock: HTTPXMock, key_file: Path) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token("tok-1"))
    httpx_mock.add_response(method="GET", url=f"{BASE}/Patient/p1", status_code=403)
    async with open_fhir_client(_settings(key_file, smart_token_url=TOKEN_URL)) as fhir:
        with pytest.raises(FhirAuthRefused):
            await fhir.read("Patient", "p1")
    assert len(_token_requests(httpx_mock)) == 1


# -- token endpoint errors ------------------------------------------------------------------


async def test_token_endpoint_refusal_is_fhir_auth_refused_with_its_error_and_nothing_secret(
    httpx_mock: HTTPXMock, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        assertion = _form(request)["client_assertion"]
        description = f"signature check failed for {assertion}"  # a careless server echoes the assertion
        return httpx.Response(400, json={"error": "invalid_client", "error_description": description})

    httpx_mock.add_callback(refuse, method="POST", url=TOKEN_URL)
    caplog.set_level(logging.DEBUG)
    async with open_fhir_client(_settings(key_file, smart_token_url=TOKEN_URL)) as fhir:
        with pytest.raises(FhirAuthRefused) as caught:
            await fhir.read("Patient", "p1")
    assertion = _form(_token_requests(httpx_mock)[0])["client_assertion"]
    message = str(caught.value)
    assert "invalid_client" in message
    assert "signature check failed for [client assertion]" in message
    assert caught.value.status_code == 400
    for secret in (assertion, *assertion.split(".")):
        assert secret not in message
        assert all(secret not in str(vars(record)) for record in caplog.records)
    assert "eyJ" not in message
    assert _fhir_requests(httpx_mock) == []


async def test_no_token_text_reaches_logs_or_errors(
    httpx_mock: HTTPXMock, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "tok-very-secret-value"
    httpx_mock.add_response(method="GET", url=DISCOVERY, json=SMART_CONFIGURATION)
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token(secret))
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token(secret + "-2"))
    httpx_mock.add_response(method="GET", url=f"{BASE}/Patient/p1", status_code=401, is_reusable=True)
    caplog.set_level(logging.DEBUG)
    async with open_fhir_client(_settings(key_file)) as fhir:
        with pytest.raises(FhirAuthRefused) as caught:
            await fhir.read("Patient", "p1")
    assert secret not in str(caught.value)
    assert caplog.records and all(secret not in str(vars(record)) for record in caplog.records)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": "invalid_scope", "error_description": "system/Flag.cruds not allowed"}, "invalid_scope"),
        ({"error": "unauthorized_client"}, "(401 unauthorized_client)"),
        (None, "(401)"),
    ],
)
async def test_other_refusals_name_what_the_endpoint_said(
    httpx_mock: HTTPXMock, key_file: Path, body: dict[str, str] | None, expected: str
) -> None:
    status = 400 if body and body["error"] == "invalid_scope" else 401
    httpx_mock.add_response(method="POST", url=TOKEN_URL, status_code=status, json=body)
    async with open_fhir_client(_settings(key_file, smart_token_url=TOKEN_URL)) as fhir:
        with pytest.raises(FhirAuthRefused, match=expected.replace("(", r"\(").replace(")", r"\)")):
            await fhir.read("Patient", "p1")


async def test_a_token_answer_without_access_token_is_a_configuration_error(
    httpx_mock: HTTPXMock, key_file: Path
) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json={"token_type": "bearer"})
    async with open_fhir_client(_settings(key_file, smart_token_url=TOKEN_URL)) as fhir:
        with pytest.raises(FhirMisconfigured, match="without an access_token"):
            await fhir.read("Patient", "p1")


async def test_an_unavailable_token_endpoint_is_retried_then_fhir_unavailable(
    httpx_mock: HTTPXMock, key_file: Path
) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, status_code=503)
    httpx_mock.add_exception(httpx.ConnectError("refused"), method="POST", url=TOKEN_URL)
    httpx_mock.add_response(method="POST", url=TOKEN_URL, json=_token("tok-1"))
    httpx_mock.add_response(method="GET", url=f"{BASE}/Patient/p1", json=PATIENT)
    async with open_fhir_client(_settings(key_file, smart_token_url=TOKEN_URL)) as fhir:
        assert await fhir.read("Patient", "p1") == PATIENT  # the FHIR client's retry loop covers the token too
        assert fhir.stats["retries"] == 2

    httpx_mock.reset()
    httpx_mock.add_response(method="POST", url=TOKEN_URL, status_code=502, is_reusable=True)
    async with open_fhir_client(_settings(key_file, smart_token_url=TOKEN_URL)) as fhir:
        with pytest.raises(FhirUnavailable, match="TokenEndpointUnavailable"):
            await fhir.read("Patient", "p1")
    assert len(_token_requests(httpx_mock)) == 3


async def test_without_smart_the_static_bearer_token_is_sent(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="GET", url=f"{BASE}/Patient/p1", json=PATIENT)
    async with open_fhir_client(Settings(FHIR_BASE_URL=BASE, fhir_bearer_token="static-1")) as fhir:
        assert not isinstance(fhir.http.auth, SmartBackendAuth)
        await fhir.read("Patient", "p1")
    assert httpx_mock.get_requests()[0].headers["Authorization"] == "Bearer static-1"
