"""Real-world access against a real authorization server: Keycloak plus a token-protected HAPI.

The test bed (`make smart-up`, tools/smart/smartctl) is started once per run when not already up,
and stopped at the end if this run started it. Outbound: the service reaches the protected HAPI
with SMART Backend Services (client assertion signed with its own key). Inbound: EHR callers
present Keycloak access tokens to the service's API.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import key_digest
from service.settings import Settings
from tests.integration.test_api_sync import session_body

ROOT = Path(__file__).resolve().parents[2]
SMARTCTL = ROOT / "tools" / "smart" / "smartctl"
CLIENT_ENV = ROOT / "tools" / "smart" / ".run" / "client.env"
SMART_HAPI_LOG = ROOT / "tools" / "hapi-server" / ".run-smart" / "hapi.log"
CLI = str(Path(sys.executable).parent / "infusion-fhir")
API_KEY = "smart-test-key"
REALM_FILE = ROOT / "tools" / "keycloak" / "realm-infusion.json"


def _read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            out[name.strip()] = shlex.split(value)[0] if value.strip() else ""
    return out


@pytest.fixture(scope="session")
def smart_env() -> Iterator[dict[str, str]]:
    """client.env of a running test bed; started here if needed (a failure, not a skip, under CI)."""
    started = False
    if subprocess.run([str(SMARTCTL), "status"], capture_output=True).returncode != 0:
        result = subprocess.run([str(SMARTCTL), "up"], capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            message = f"the SMART test bed did not start: {result.stdout[-1500:]} {result.stderr[-1500:]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        started = True
    try:
        yield _read_env(CLIENT_ENV)
    finally:
        if started:
            subprocess.run([str(SMARTCTL), "down"], capture_output=True, timeout=120)


def _token_lifetime_s(client_id: str) -> float:
    """The access-token lifespan the realm file gives a client."""
    realm = json.loads(REALM_FILE.read_text())
    client = next(c for c in realm["clients"] if c["clientId"] == client_id)
    return float(client["attributes"]["access.token.lifespan"])


def _settings(env: dict[str, str], run_id: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "FHIR_BASE_URL": env["FHIR_BASE_URL"],
        "smart_client_id": env["INFUSION_FHIR_SMART_CLIENT_ID"],
        "smart_private_key_file": env["INFUSION_FHIR_SMART_PRIVATE_KEY_FILE"],
        "smart_key_id": env["INFUSION_FHIR_SMART_KEY_ID"],
        "smart_scopes": env["INFUSION_FHIR_SMART_SCOPES"],
        "oauth_issuer": env["INFUSION_FHIR_OAUTH_ISSUER"],
        "oauth_audience": env["INFUSION_FHIR_OAUTH_AUDIENCE"],
        "api_keys": key_digest(API_KEY),
        "identifier_system_base": f"https://test.infusion-fhir.example/{run_id}/sid",
        "mrn_system": f"https://test.infusion-fhir.example/{run_id}/mrn",
    }
    return Settings(**{**values, **overrides})


def _ehr_token(
    env: dict[str, str], client: str = "EHR_TEST", scope: str | None = "infusion-fhir.read infusion-fhir.write"
) -> str:
    """A Keycloak access token of an EHR stand-in (client credentials); the scopes are optional ones
    of the client, asked for as an EHR would (ehr-readonly asks for none: it has read by default)."""
    data = {
        "grant_type": "client_credentials",
        "client_id": env[f"{client}_CLIENT_ID"],
        "client_secret": env[f"{client}_CLIENT_SECRET"],
    }
    if scope:
        data["scope"] = scope
    response = httpx.post(env["OAUTH_TOKEN_URL"], data=data, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _vital(mrn: str) -> dict:
    return {"patient": {"mrn": mrn}, "measured_at": "2026-03-02T09:30:00-05:00", "type": "heart_rate", "value": 80}


# -- outbound: SMART Backend Services to the protected HAPI ------------------------------------


def test_the_protected_hapi_refuses_requests_without_a_token(smart_env) -> None:
    base = smart_env["FHIR_BASE_URL"]
    assert httpx.post(f"{base}/Patient/_search", data={}, timeout=30).status_code == 401
    config = httpx.get(f"{base}/.well-known/smart-configuration", timeout=30).json()
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]


def test_api_put_and_get_through_the_protected_hapi_with_smart(smart_env, run_id) -> None:
    settings = _settings(smart_env, run_id)
    body = session_body(f"s-{run_id}", f"SMART-{run_id}")
    with TestClient(create_app(settings)) as api:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        put = api.put(f"/v1/infusion-sessions/{body['key']}", json=body, headers=auth)
        assert put.status_code == 201, put.text
        got = api.get(f"/v1/infusion-sessions/{body['key']}", headers=auth)
        assert got.status_code == 200, got.text
        assert got.json()["key"] == body["key"]
        assert api.get("/readyz").status_code == 200
    # The server's audit: the protected HAPI logs the client id of every authenticated request.
    assert settings.smart_client_id in SMART_HAPI_LOG.read_text(errors="replace")


def test_batch_sync_through_the_protected_hapi_refreshes_tokens_with_no_failed_request(
    smart_env, run_id, tmp_path, capsys
) -> None:
    """The service's tokens live 6 s (realm file): the sync outlives several and fetches new ones
    before they expire, with no request refused.

    Two lines a transaction, one at a time, so the load spans several token lifetimes however fast the
    server is warm (CI once finished 380 lines at five a Bundle inside one token's life, proving nothing);
    a run that still ends inside one lifetime fails here rather than passing without a refresh."""
    path = tmp_path / "demo.ndjson"
    env = {**os.environ, **smart_env}
    env.update(
        INFUSION_FHIR_IDENTIFIER_SYSTEM_BASE=f"https://test.infusion-fhir.example/{run_id}/sid",
        INFUSION_FHIR_MRN_SYSTEM=f"https://test.infusion-fhir.example/{run_id}/mrn",
    )
    made = subprocess.run(
        [CLI, "demo-data", "--patients", "4", "--seed", "3", "-o", str(path)], env=env, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    report = tmp_path / "report.json"
    result = subprocess.run(
        [CLI, "sync", str(path), "--rejects", str(tmp_path / "r.ndjson"), "--report", str(report), "--batch-size", "2", "--concurrency", "1"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    summary = json.loads(report.read_text())
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary["rejected"] == 0 and summary["synced"] == summary["lines"]
    lifetime_s = _token_lifetime_s(smart_env["INFUSION_FHIR_SMART_CLIENT_ID"])
    lifetimes = int(summary["duration_s"] // lifetime_s)
    assert lifetimes >= 1, f"the sync took {summary['duration_s']} s, inside one token lifetime: make the load larger"
    events = [orjson.loads(line).get("event") for line in result.stderr.splitlines() if line.startswith("{")]
    assert "smart.token_refused" not in events  # every new token came before the old one expired
    assert events.count("smart.token") == summary["token_fetches"]
    # No request was refused, so every lifetime the run spanned had a token of its own.
    assert summary["token_fetches"] >= lifetimes + 1
    with capsys.disabled():
        print(f"\nSMART batch sync: {summary['lines']} lines, {summary['token_fetches']} token fetch(es), "
          f"{summary['retries']} retries, {summary['duration_s']} s")  # fmt: skip


def test_a_key_the_authorization_server_does_not_know_stops_sync_and_is_502_at_the_api(
    smart_env, run_id, tmp_path
) -> None:
    stray = tmp_path / "keys"
    made = subprocess.run([CLI, "smart-keygen", "--alg", "ES384", "-o", str(stray)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    key_file = next(p for p in stray.iterdir() if p.suffix == ".pem")
    env = {**os.environ, **smart_env, "INFUSION_FHIR_SMART_PRIVATE_KEY_FILE": str(key_file)}
    env.pop("INFUSION_FHIR_SMART_KEY_ID", None)
    path = tmp_path / "one.ndjson"
    path.write_text(orjson.dumps({"kind": "vital_sign", "key": f"v-{run_id}", **_vital(f"K-{run_id}")}).decode() + "\n")
    report = tmp_path / "report.json"
    result = subprocess.run([CLI, "sync", str(path), "--report", str(report), "--rejects", str(tmp_path / "r.ndjson")],
                            env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    summary = json.loads(report.read_text())
    assert result.returncode == 2 and summary["rejected"] == 0
    assert "credentials" in summary["stopped_reason"] and "invalid_client" in summary["stopped_reason"]

    settings = _settings(smart_env, run_id, smart_private_key_file=str(key_file), smart_key_id=None)
    with TestClient(create_app(settings)) as api:
        response = api.put(
            f"/v1/vital-signs/v-{run_id}", json=_vital(f"K-{run_id}"), headers={"Authorization": f"Bearer {API_KEY}"}
        )
    assert response.status_code == 502
    assert "credentials" in response.json()["issue"][0]["diagnostics"]


# -- inbound: EHR callers with Keycloak tokens -------------------------------------------------


@pytest.fixture
def api(smart_env, run_id) -> Iterator[TestClient]:
    """The API accepting the realm's EHR tokens; no clock-skew leeway, so an expired token is one."""
    with TestClient(create_app(_settings(smart_env, run_id, oauth_leeway_s=0))) as client:
        yield client


def test_a_keycloak_token_of_the_ehr_is_accepted(api, smart_env, run_id) -> None:
    token = _ehr_token(smart_env)
    response = api.put(
        f"/v1/vital-signs/v-{run_id}", json=_vital(f"E-{run_id}"), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.text


def test_tampered_foreign_unsigned_and_expired_tokens_are_401(api, smart_env, run_id) -> None:
    token = _ehr_token(smart_env)
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}{'AAAA' if not signature.endswith('AAAA') else 'BBBB'}"
    unsigned_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    unsigned = f"{unsigned_header}.{payload}."
    # A token of the same issuer for another audience: the service's own token for the FHIR server.
    foreign = _service_token(smart_env)
    assert _claims(foreign)["aud"] != smart_env["INFUSION_FHIR_OAUTH_AUDIENCE"]
    for bad in (tampered, unsigned, foreign, _expired_token(smart_env)):
        response = api.get(f"/v1/vital-signs/v-{run_id}", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401, response.text
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_token_without_the_write_scope_is_403_on_put_and_200_on_get(api, smart_env, run_id) -> None:
    writer = _ehr_token(smart_env)
    assert (
        api.put(
            f"/v1/vital-signs/v-{run_id}", json=_vital(f"R-{run_id}"), headers={"Authorization": f"Bearer {writer}"}
        ).status_code
        == 201
    )
    reader = _ehr_token(smart_env, "EHR_READONLY", scope=None)
    put = api.put(
        f"/v1/vital-signs/v-{run_id}", json=_vital(f"R-{run_id}"), headers={"Authorization": f"Bearer {reader}"}
    )
    assert put.status_code == 403
    assert 'error="insufficient_scope"' in put.headers["WWW-Authenticate"]
    assert api.get(f"/v1/vital-signs/v-{run_id}", headers={"Authorization": f"Bearer {reader}"}).status_code == 200


def _service_token(env: dict[str, str]) -> str:
    """An access token for the service's own client (audience: the protected FHIR server)."""
    import asyncio

    from service.smart import SmartBackendAuth, load_signing_key

    async def fetch() -> str:
        async with httpx.AsyncClient(timeout=30) as http:
            auth = SmartBackendAuth(
                load_signing_key(env["INFUSION_FHIR_SMART_PRIVATE_KEY_FILE"], env["INFUSION_FHIR_SMART_KEY_ID"]),
                client_id=env["INFUSION_FHIR_SMART_CLIENT_ID"],
                scopes=env["INFUSION_FHIR_SMART_SCOPES"],
                fhir_base_url=env["FHIR_BASE_URL"],
                token_url=None,
                http=http,
            )
            return await auth.access_token()

    return asyncio.run(fetch())


def _expired_token(env: dict[str, str]) -> str:
    """A real Keycloak token of the short-lived EHR client (2 s lifespan), once it has expired."""
    token = _ehr_token(env, "EHR_SHORTLIVED")
    expires = _claims(token)["exp"]
    while time.time() < expires + 1:  # waiting on the clock, bounded by the client's 2 s lifespan
        time.sleep(0.2)
    return token
