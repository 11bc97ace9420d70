"""Inbound OAuth 2.0: JWT access tokens checked on a fake issuer's JWKS, scopes per route, API keys unchanged.

The issuer is local: RSA and EC keys generated here, its OpenID configuration and JWKS served through
an `httpx.MockTransport` (the same transport carries the fake FHIR server). Every refused token is a
401 `invalid_token`, a token without the route's scope a 403 `insufficient_scope`, both as
OperationOutcomes; an API key still passes everywhere.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from service.access_tokens import TokenVerifier, token_scopes
from service.app import create_app
from service.auth import READ_SCOPE, WRITE_SCOPE, accepted_scopes, key_digest
from service.logs import JsonFormatter
from service.settings import Settings
from tests.unit.fake_fhir import BASE, CAPABILITY
from tests.unit.test_auth_every_route import OPERATIONS, _call

ISSUER = "http://idp.test/realms/clinic"
AUDIENCE = "infusion-fhir"
API_KEY = "the-api-key"
INVALID = 'Bearer error="invalid_token"'
SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEYS: dict[str, Any] = {
    "rsa-1": _rsa(),
    "rsa-2": _rsa(),  # the key rotated to
    "ec-256": ec.generate_private_key(ec.SECP256R1()),
    "ec-384": ec.generate_private_key(ec.SECP384R1()),
}
OTHER_RSA = _rsa()  # nobody publishes it
KID_FOR = {"RS256": "rsa-1", "RS384": "rsa-1", "RS512": "rsa-1", "PS256": "rsa-1", "ES256": "ec-256", "ES384": "ec-384"}


def public_jwk(kid: str) -> dict[str, Any]:
    public = KEYS[kid].public_key()
    algorithm = RSAAlgorithm if kid.startswith("rsa") else ECAlgorithm
    return {**algorithm.to_jwk(public, as_dict=True), "kid": kid, "use": "sig"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(exp_in: int = 300, nbf_in: int | None = None, **changes: Any) -> dict[str, Any]:
    """Keycloak-like access token claims; `exp_in`/`nbf_in` are seconds from now (at signing)."""
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": ["account", AUDIENCE],  # as Keycloak sends it with an audience mapper
        "sub": "f0c1c2a4-service-account",
        "azp": "ehr-integration",
        "typ": "Bearer",
        "iat": now,
        "exp": now + exp_in,
        "nbf": None if nbf_in is None else now + nbf_in,
        "scope": f"profile {WRITE_SCOPE} {READ_SCOPE}",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(alg: str = "RS256", kid: str | None = None, key: Any = None, **changes: Any) -> str:
    kid = kid or KID_FOR[alg]
    return jwt.encode(claims(**changes), key or KEYS[kid], algorithm=alg, headers={"kid": kid})


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())


def hs256_with_public_key() -> str:
    """The classic confusion: HMAC-SHA256 keyed with the issuer's public key (PEM), which anyone has."""
    secret = (
        KEYS["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = unsigned({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims())
    return signing_input + "." + b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def tampered_signature() -> str:
    head, payload, signature = token().split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def tampered_payload() -> str:
    head, _, signature = token(scope=READ_SCOPE).split(".")
    return f"{head}.{b64(json.dumps(claims(scope=WRITE_SCOPE)).encode())}.{signature}"


class Issuer:
    """The fake IdP: OpenID configuration and a JWKS (with an encryption key, as Keycloak publishes)."""

    def __init__(self) -> None:
        self.published = ["rsa-1", "ec-256", "ec-384"]
        self.jwks_requests = 0
        self.down = False
        self.metadata_issuer = ISSUER

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503)
        if request.url.path == "/realms/clinic/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": self.metadata_issuer, "jwks_uri": ISSUER + "/certs"})
        if request.url.path == "/realms/clinic/certs":
            self.jwks_requests += 1
            encryption = {**public_jwk("rsa-2"), "kid": "enc-1", "use": "enc", "alg": "RSA-OAEP"}
            return httpx.Response(200, json={"keys": [public_jwk(kid) for kid in self.published] + [encryption]})
        return httpx.Response(404)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def network(issuer: Issuer, fhir_calls: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "idp.test":
            return issuer.handle(request)
        fhir_calls.append(request)
        if request.url.path.endswith("/metadata"):
            return httpx.Response(200, json=CAPABILITY)
        return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})

    return httpx.MockTransport(handle)


def settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "FHIR_BASE_URL": BASE,
        "api_keys": key_digest(API_KEY),
        "retry_max_attempts": 1,
        "oauth_issuer": ISSUER,
        "oauth_audience": AUDIENCE,
        **changes,
    }
    return Settings(**values)


class Rig:
    def __init__(self, api: TestClient, issuer: Issuer, clock: Clock, fhir_calls: list[httpx.Request]) -> None:
        self.api, self.issuer, self.clock, self.fhir_calls = api, issuer, clock, fhir_calls

    def put(self, bearer: str | None) -> httpx.Response:
        """PUT with an empty body: 422 once past auth (nothing reaches the FHIR server)."""
        headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
        return self.api.put("/v1/vital-signs/v-1", json={}, headers=headers)

    def get(self, bearer: str) -> httpx.Response:
        """GET: past auth it reaches the fake FHIR server (which answers 404 to all, so a 503)."""
        return self.api.get("/v1/vital-signs/v-1", headers={"Authorization": f"Bearer {bearer}"})


@pytest.fixture
def rig() -> Iterator[Rig]:
    issuer, clock, fhir_calls = Issuer(), Clock(), []
    with TestClient(create_app(settings(), transport=network(issuer, fhir_calls))) as api:
        api.app.state.token_verifier.clock = clock
        yield Rig(api, issuer, clock, fhir_calls)


def assert_refused(response: httpx.Response, challenge: str = INVALID) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == challenge
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "login"


def assert_forbidden(response: httpx.Response, scope: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["WWW-Authenticate"] == f'Bearer error="insufficient_scope", scope="{scope}"'
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "forbidden"


# -- accepted ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", SIGNING_ALGORITHMS)
def test_a_valid_token_with_the_write_scope_gets_past_auth_on_put(rig: Rig, alg: str) -> None:
    response = rig.put(token(alg))
    assert response.status_code == 422, response.text  # the empty body, judged after auth
    assert rig.fhir_calls == []


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": AUDIENCE},  # a string audience
        {"scope": None, "scp": WRITE_SCOPE},  # Keycloak/Azure `scp`, a string
        {"scope": None, "scp": [READ_SCOPE, WRITE_SCOPE]},  # ... or a list
        {"exp_in": -10},  # expired 10 s ago: within the 30 s leeway
        {"nbf_in": 10},  # valid in 10 s: within the leeway
    ],
    ids=["aud string", "scp string", "scp list", "exp within leeway", "nbf within leeway"],
)
def test_token_variants_issuers_send_are_accepted(rig: Rig, changes: dict[str, Any]) -> None:
    assert rig.put(token(**changes)).status_code == 422


def test_keys_are_fetched_once_and_cached(rig: Rig) -> None:
    for _ in range(5):
        assert rig.put(token()).status_code == 422
    assert rig.issuer.jwks_requests == 1


# -- refused: 401 invalid_token ------------------------------------------------------------------


def rs256_header_on_an_ec_key() -> str:
    header = b64(json.dumps({"alg": "RS256", "kid": "ec-256"}).encode())
    return ".".join([header, *token(alg="ES256").split(".")[1:]])


REFUSED = {  # what is sent, and why it is refused (in the OperationOutcome's diagnostics)
    "tampered signature": (tampered_signature, "signature does not verify"),
    "tampered payload": (tampered_payload, "signature does not verify"),
    "unpublished key, published kid": (lambda: token(key=OTHER_RSA), "signature does not verify"),
    "another audience": (lambda: token(aud="another-service"), "audience not accepted"),
    "no audience": (lambda: token(aud=None), "claim (exp, iss, aud) is missing"),
    "another issuer": (lambda: token(iss="http://idp.test/realms/other"), "issuer not accepted"),
    "expired": (lambda: token(exp_in=-120), "expired"),
    "no exp": (lambda: token(exp=None), "claim (exp, iss, aud) is missing"),
    "not valid yet": (lambda: token(nbf_in=600), "not valid yet"),
    "alg none": (lambda: unsigned({"alg": "none", "kid": "rsa-1"}, claims()) + ".", "algorithm not allowed"),
    "alg none, no kid": (lambda: unsigned({"alg": "none"}, claims()) + ".", "algorithm not allowed"),
    "HS256 keyed with the public key": (hs256_with_public_key, "algorithm not allowed"),
    "ES512": (lambda: unsigned({"alg": "ES512", "kid": "ec-256"}, claims()) + ".c2ln", "algorithm not allowed"),
    "RS256 header on an EC key": (rs256_header_on_an_ec_key, "does not fit the issuer's key"),
    "ES384 under the P-256 kid": (lambda: token("ES384", kid="ec-256", key=KEYS["ec-384"]), "does not fit"),
    "no kid": (lambda: jwt.encode(claims(), KEYS["rsa-1"], algorithm="RS256"), "no key id"),
    "unknown kid": (lambda: token(kid="nobody", key=KEYS["rsa-1"]), "(kid) unknown"),
    "an ID token": (lambda: token(typ="ID"), "not an access token"),
    "not a JWT": (lambda: "not-a-jwt-and-not-a-key", "not a JWT"),
    "three dots of nothing": (lambda: "..", "not a JWT"),
}


@pytest.mark.parametrize(("make", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_token_is_refused_with_invalid_token(rig: Rig, make: Any, reason: str) -> None:
    response = rig.put(make())
    assert_refused(response)
    assert reason in response.json()["issue"][0]["diagnostics"]
    assert rig.fhir_calls == []


def test_no_credential_at_all_is_a_plain_bearer_challenge(rig: Rig) -> None:
    assert_refused(rig.put(None), challenge="Bearer")


# -- scopes --------------------------------------------------------------------------------------


def test_a_read_token_is_forbidden_to_write_and_may_read(rig: Rig) -> None:
    reader = token(scope=f"openid {READ_SCOPE}")
    assert_forbidden(rig.put(reader), WRITE_SCOPE)
    assert_forbidden(rig.api.delete("/v1/vital-signs/v-1", headers={"Authorization": f"Bearer {reader}"}), WRITE_SCOPE)
    assert rig.fhir_calls == []
    assert rig.get(reader).status_code not in (401, 403)
    assert rig.fhir_calls  # past auth, the read went to the FHIR server


def test_a_write_only_token_may_not_read(rig: Rig) -> None:
    writer = token(scope=WRITE_SCOPE)
    assert rig.put(writer).status_code == 422
    assert_forbidden(rig.get(writer), READ_SCOPE)


@pytest.mark.parametrize(
    "scopes",
    [(), (READ_SCOPE,), (WRITE_SCOPE,), (READ_SCOPE, WRITE_SCOPE)],
    ids=["no scope", "read", "write", "read and write"],
)
def test_every_v1_route_applies_its_scope(rig: Rig, scopes: tuple[str, ...]) -> None:
    """Every /v1 operation, enumerated from the app, against tokens of every scope combination."""
    bearer = token(scope=" ".join(("email", *scopes)))
    for method, path in OPERATIONS:
        if path == "/v1/$convert":
            needed: tuple[str, ...] = (READ_SCOPE, WRITE_SCOPE)
        elif path in ("/v1/patients/$phq9-trend", "/v1/patients/$outcome-trend") or method == "GET":
            needed = (READ_SCOPE,)
        else:
            assert method in ("PUT", "DELETE") or path.endswith("/$monitoring-summary"), (method, path)
            needed = (WRITE_SCOPE,)
        assert accepted_scopes(method, path) == needed
        response = _call(rig.api, method, path, f"Bearer {bearer}")
        if set(scopes) & set(needed):
            assert response.status_code not in (401, 403), (method, path, response.text)
        else:
            assert_forbidden(response, needed[0])


def test_scopes_are_read_from_scope_and_scp() -> None:
    assert token_scopes({"scope": "a  b", "scp": ["c", 7]}) == {"a", "b", "c"}
    assert token_scopes({"scope": 12}) == frozenset()


# -- API keys, and OAuth off ----------------------------------------------------------------------


def test_api_keys_keep_every_scope_beside_oauth(rig: Rig) -> None:
    assert rig.put(API_KEY).status_code == 422
    assert rig.get(API_KEY).status_code not in (401, 403) and rig.fhir_calls
    assert rig.issuer.jwks_requests == 0  # an API key never asks the issuer
    assert_refused(rig.put("not-the-api-key"))  # neither key nor token: checked as a token, refused


def test_without_oauth_settings_tokens_are_refused_exactly_as_before() -> None:
    issuer, fhir_calls = Issuer(), []
    app = create_app(settings(oauth_issuer=None, oauth_audience=None), transport=network(issuer, fhir_calls))
    with TestClient(app) as api:
        assert api.app.state.token_verifier is None
        response = api.put("/v1/vital-signs/v-1", json={}, headers={"Authorization": f"Bearer {token()}"})
        assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
        assert (
            api.put("/v1/vital-signs/v-1", json={}, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 422
        )
    assert issuer.jwks_requests == 0


def test_an_issuer_without_audience_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="OAUTH_AUDIENCE is required"):
        settings(oauth_audience=None)
    with pytest.raises(ValidationError, match="absolute http"):
        settings(oauth_issuer="idp.test/realms/clinic")
    assert settings(oauth_issuer=" ", oauth_audience="").oauth_issuer is None


# -- key rotation, refresh storms, an unreachable issuer ------------------------------------------


def test_a_rotated_key_is_fetched_once_and_accepted(rig: Rig) -> None:
    assert rig.put(token()).status_code == 422
    assert rig.issuer.jwks_requests == 1
    rig.issuer.published = ["rsa-2"]  # rotation: the new key only
    rig.clock.now += 60
    for _ in range(3):
        assert rig.put(token(kid="rsa-2")).status_code == 422
    assert rig.issuer.jwks_requests == 2  # one refresh for the new kid, then cached
    assert_refused(rig.put(token(kid="rsa-1")))  # the withdrawn key is no longer accepted
    assert rig.issuer.jwks_requests == 2  # ... and asking for it again so soon fetches nothing


def test_forged_kids_cause_at_most_one_fetch_per_interval(rig: Rig) -> None:
    assert rig.put(token()).status_code == 422
    rig.clock.now += 60
    for n in range(20):
        assert_refused(rig.put(token(kid=f"forged-{n}", key=KEYS["rsa-1"])))
    assert rig.issuer.jwks_requests == 2
    rig.clock.now += 15  # the interval (oauth_jwks_min_refresh_s) has passed: one more fetch at most
    for n in range(20):
        assert_refused(rig.put(token(kid=f"forged-again-{n}", key=KEYS["rsa-1"])))
    assert rig.issuer.jwks_requests == 3
    assert rig.put(token()).status_code == 422  # the real key still works, from the cache


def test_an_unreachable_issuer_is_503_then_recovers(rig: Rig) -> None:
    rig.issuer.down = True
    response = rig.put(token())
    assert response.status_code == 503, response.text
    assert response.json()["issue"][0]["code"] == "transient"
    assert 1 <= int(response.headers["Retry-After"]) <= 15
    assert rig.put(token()).status_code == 503  # within the interval: no new fetch
    rig.issuer.down = False
    rig.clock.now += 15
    assert rig.put(token()).status_code == 422


def test_keys_past_their_age_are_fetched_again_and_kept_if_the_issuer_is_down(rig: Rig) -> None:
    assert rig.put(token()).status_code == 422
    rig.clock.now += 3601
    rig.issuer.down = True
    assert rig.put(token()).status_code == 422  # the cached key still serves while the issuer is down
    rig.issuer.down = False
    rig.clock.now += 15
    assert rig.put(token()).status_code == 422
    assert rig.issuer.jwks_requests == 2  # the failed attempt never got a JWKS


def test_a_configuration_naming_another_issuer_is_not_trusted(rig: Rig) -> None:
    rig.issuer.metadata_issuer = "http://evil.test/realms/clinic"
    assert rig.put(token()).status_code == 503
    assert rig.issuer.jwks_requests == 0


async def test_concurrent_unknown_kids_share_one_fetch() -> None:
    issuer = Issuer()
    async with httpx.AsyncClient(transport=httpx.MockTransport(issuer.handle)) as client:
        verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, client=client)
        tokens = [token(kid=f"forged-{n}", key=KEYS["rsa-1"]) for n in range(10)] + [token()]
        results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
    assert issuer.jwks_requests == 1 and verifier.fetches == 1
    assert all(getattr(r, "bearer_error", None) == "invalid_token" for r in results[:-1])
    assert not isinstance(results[-1], BaseException) and WRITE_SCOPE in results[-1].scopes


# -- logs ----------------------------------------------------------------------------------------


def test_no_token_claim_or_key_is_logged(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="infusion_fhir")
    sent = [token(), token(scope=READ_SCOPE), token(exp_in=-120), hs256_with_public_key(), tampered_signature()]
    rig.put(sent[0])
    rig.put(sent[1])
    for bearer in sent[2:]:
        rig.put(bearer)
    secrets = [*sent, *(t.split(".")[2] for t in sent), API_KEY, "f0c1c2a4-service-account", "ehr-integration"]
    secrets += [public_jwk("rsa-1")["n"][:40]]
    text = "".join(repr(vars(r)) + r.getMessage() + JsonFormatter().format(r) for r in caplog.records)
    assert "auth.token_refused" in text and "auth.scope_missing" in text and "auth.jwks_fetched" in text
    for secret in secrets:
        assert secret not in text


def test_a_forbidden_attempt_is_audited_naming_the_caller_who_tried(tmp_path: Path) -> None:
    """A 403 is an access refused to a known caller: its AuditEvent says so, and whose token it was."""
    audit_log = tmp_path / "audit.jsonl"
    issuer, fhir_calls = Issuer(), []
    with TestClient(create_app(settings(audit_log=str(audit_log)), transport=network(issuer, fhir_calls))) as api:
        reader = token(scope=f"openid {READ_SCOPE}")
        assert_forbidden(
            api.put("/v1/vital-signs/v-1", json={}, headers={"Authorization": f"Bearer {reader}"}), WRITE_SCOPE
        )
    assert fhir_calls == []
    (event,) = [json.loads(line) for line in audit_log.read_bytes().splitlines()]
    assert (event["outcome"], event["outcomeDesc"]) == ("4", "HTTP 403")
    requestor = next(agent for agent in event["agent"] if agent["requestor"])
    assert requestor["who"]["display"] == "ehr-integration"
    assert reader not in audit_log.read_text()
