"""SMART Backend Services keys: loading, the client assertion, keygen, settings checks and the JWKS route."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import ValidationError
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app as cli
from service.mappers.bundle import TYPE_ORDER
from service.mappers.retract import RETRACTABLE
from service.settings import Settings
from service.smart import (
    DEFAULT_SMART_SCOPES,
    SMART_ALGS,
    SigningKey,
    SmartKeyError,
    generate_signing_key,
    jwk_thumbprint,
    load_signing_key,
)

BASE = "http://fhir.test/fhir"
TOKEN_URL = "https://auth.test/oauth2/token"
CLIENT_ID = "infusion-fhir-backend"


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {alg: generate_signing_key(alg) for alg in SMART_ALGS}


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, fmt: serialization.PrivateFormat) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def _verify(token: str, jwk: dict, alg: str) -> dict:
    """Decode and verify `token` with a published public JWK, as the EHR's token endpoint would."""
    return jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=[alg],
        audience=TOKEN_URL,
        issuer=CLIENT_ID,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )


# -- the client assertion ---------------------------------------------------------------------


@pytest.mark.parametrize("alg", SMART_ALGS)
def test_client_assertion_has_the_smart_backend_claims_and_header(keys: dict[str, SigningKey], alg: str) -> None:
    key = keys[alg]
    before = time.time()
    assertion = key.client_assertion(CLIENT_ID, TOKEN_URL)
    assert jwt.get_unverified_header(assertion) == {"alg": alg, "kid": key.kid, "typ": "JWT"}
    claims = _verify(assertion, key.public_jwk(), alg)
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == TOKEN_URL
    assert int(before) <= claims["iat"] <= time.time()
    assert 0 < claims["exp"] - claims["iat"] <= 300  # SMART: at most five minutes ahead
    assert claims["exp"] <= time.time() + 300
    other = next(a for a in SMART_ALGS if a != alg)
    with pytest.raises(jwt.InvalidAlgorithmError):  # the header's alg is the only one it verifies under
        jwt.decode(assertion, jwt.PyJWK(key.public_jwk()).key, algorithms=[other], audience=TOKEN_URL)


@pytest.mark.parametrize("alg", SMART_ALGS)
def test_every_assertion_has_a_unique_jti(keys: dict[str, SigningKey], alg: str) -> None:
    tokens = [keys[alg].client_assertion(CLIENT_ID, TOKEN_URL) for _ in range(50)]
    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}
    assert len(jtis) == 50
    assert all(len(j) >= 32 for j in jtis)


def test_an_assertion_signed_by_another_key_does_not_verify(keys: dict[str, SigningKey]) -> None:
    stranger = generate_signing_key("ES384")
    assertion = stranger.client_assertion(CLIENT_ID, TOKEN_URL)
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(assertion, keys["ES384"].public_jwk(), "ES384")


# -- keys: PEM and JWK files -----------------------------------------------------------------


@pytest.mark.parametrize("alg", SMART_ALGS)
@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_pem_keys_load_with_their_algorithm_and_thumbprint_kid(
    keys: dict[str, SigningKey], tmp_path: Path, alg: str, fmt: serialization.PrivateFormat
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(_pem(keys[alg].private_key, fmt))
    loaded = load_signing_key(path)
    assert (loaded.alg, loaded.kid) == (alg, keys[alg].kid)
    assert loaded.kid == jwk_thumbprint(loaded.public_jwk())
    assert load_signing_key(path, key_id="ehr-given-kid").kid == "ehr-given-kid"


@pytest.mark.parametrize("alg", SMART_ALGS)
def test_jwk_and_jwk_set_files_load_with_their_kid(keys: dict[str, SigningKey], tmp_path: Path, alg: str) -> None:
    key = keys[alg].private_key
    to_jwk = RSAAlgorithm.to_jwk if alg == "RS384" else ECAlgorithm.to_jwk
    private = {**to_jwk(key, as_dict=True), "kid": "k-2026", "alg": alg}
    single = tmp_path / "key.json"
    single.write_text(json.dumps(private))
    loaded = load_signing_key(single)
    assert (loaded.alg, loaded.kid) == (alg, "k-2026")
    assert loaded.public_jwk() == {**keys[alg].public_jwk(), "kid": "k-2026"}
    other = {**to_jwk(generate_signing_key(alg).private_key, as_dict=True), "kid": "k-2025"}
    both = tmp_path / "keys.json"
    both.write_text(json.dumps({"keys": [other, private, keys[alg].public_jwk()]}))
    assert load_signing_key(both, key_id="k-2026").public_jwk() == loaded.public_jwk()
    with pytest.raises(SmartKeyError, match="2 private keys"):
        load_signing_key(both)


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_unusable_keys_are_refused_with_the_reason_and_no_key_material(tmp_path: Path) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    rsa1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    es384 = generate_signing_key("ES384")
    private_jwk = {**ECAlgorithm.to_jwk(es384.private_key, as_dict=True), "alg": "ES256"}
    encrypted = es384.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass"),
    )
    cases = {
        "p256.pem": (_pem(p256, serialization.PrivateFormat.PKCS8), "P-384"),
        "rsa1024.pem": (_pem(rsa1024, serialization.PrivateFormat.PKCS8), "at least 2048"),
        "enc.pem": (encrypted, "encrypted"),
        "garbage.pem": (b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n", "not a readable PEM"),
        "text.txt": (b"hello", "neither a PEM private key nor a JWK"),
        "alg.json": (json.dumps(private_jwk), "ES256"),
        "public.json": (json.dumps(es384.public_jwks()), "no private key"),
        "broken.json": (json.dumps({**private_jwk, "alg": "ES384", "d": "AAAA"}), "not a valid private key"),
        "oct.json": (json.dumps({"kty": "oct", "k": "c2VjcmV0", "d": "x"}), "not RSA or EC"),
    }
    for name, (data, reason) in cases.items():
        with pytest.raises(SmartKeyError, match=reason) as caught:
            load_signing_key(_write(tmp_path, name, data))
        assert name in str(caught.value)
        assert private_jwk["d"] not in str(caught.value)
    with pytest.raises(SmartKeyError, match="cannot read"):
        load_signing_key(tmp_path / "missing.pem")


def test_thumbprint_matches_rfc_7638_example() -> None:
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
        "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn"
        "1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_public_jwks_carry_no_private_member(keys: dict[str, SigningKey]) -> None:
    for alg, key in keys.items():
        (jwk,) = key.public_jwks()["keys"]
        assert {"kid", "alg", "use", "kty"} <= set(jwk) and jwk["alg"] == alg and jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi", "key_ops"} & set(jwk)
        assert "private" not in repr(key).lower() and "kid=" in repr(key)


# -- keygen --------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", SMART_ALGS)
def test_keygen_round_trip(tmp_path: Path, alg: str) -> None:
    out = tmp_path / "smart"
    result = CliRunner().invoke(cli, ["smart-keygen", "--alg", alg.lower(), "-o", str(out)])
    assert result.exit_code == 0, result.output
    kid = result.stdout.strip()
    key_file, jwks_file = out / "private-key.pem", out / "jwks.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = load_signing_key(key_file)
    assert (loaded.alg, loaded.kid) == (alg, kid)
    jwks = json.loads(jwks_file.read_text())
    (jwk,) = jwks["keys"]
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == (kid, alg, "sig")
    assert "d" not in jwk
    # the registered JWK Set verifies what the loaded key file signs
    claims = _verify(loaded.client_assertion(CLIENT_ID, TOKEN_URL), jwk, alg)
    assert claims["sub"] == CLIENT_ID
    # a second run never overwrites the key the EHR already trusts
    before = key_file.read_bytes()
    again = CliRunner().invoke(cli, ["smart-keygen", "--alg", alg, "-o", str(out)])
    assert again.exit_code == 2
    assert "exists" in again.stderr
    assert key_file.read_bytes() == before


def test_keygen_refuses_other_algorithms(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["smart-keygen", "--alg", "HS256", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert not list(tmp_path.iterdir())


# -- settings --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, SigningKey]) -> Path:
    path = tmp_path_factory.mktemp("smart") / "key.pem"
    path.write_bytes(_pem(keys["ES384"].private_key, serialization.PrivateFormat.PKCS8))
    return path


def test_default_scopes_are_derived_from_what_the_service_does() -> None:
    scopes = dict(s.removeprefix("system/").split(".") for s in DEFAULT_SMART_SCOPES.split())
    assert set(scopes) == {"Patient", *TYPE_ORDER}
    assert scopes["Patient"] == "crs"  # conditional create, read, search; never updated or deleted
    for resource_type in TYPE_ORDER:
        # PUT (update-as-create) for all; retraction is a PUT, except AdverseEvent, which is DELETEd
        expected = "crus" if resource_type in RETRACTABLE else "cruds"
        assert scopes[resource_type] == expected, resource_type
    assert Settings(FHIR_BASE_URL=BASE).smart_scopes == DEFAULT_SMART_SCOPES


def test_smart_settings_that_cannot_work_are_refused_at_start(key_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="INFUSION_FHIR_SMART_PRIVATE_KEY_FILE is not"):
        Settings(FHIR_BASE_URL=BASE, smart_client_id=CLIENT_ID)
    with pytest.raises(ValidationError, match="CLIENT_ID is not"):
        Settings(FHIR_BASE_URL=BASE, smart_private_key_file=str(key_file))
    with pytest.raises(ValidationError, match="cannot read"):
        Settings(FHIR_BASE_URL=BASE, smart_client_id=CLIENT_ID, smart_private_key_file=str(tmp_path / "nope.pem"))
    with pytest.raises(ValidationError, match="either"):
        Settings(
            FHIR_BASE_URL=BASE, smart_client_id=CLIENT_ID, smart_private_key_file=str(key_file), fhir_bearer_token="t"
        )
    with pytest.raises(ValidationError, match="SMART_TOKEN_URL"):
        Settings(
            FHIR_BASE_URL=BASE, smart_client_id=CLIENT_ID, smart_private_key_file=str(key_file), smart_token_url="/t"
        )
    with pytest.raises(ValidationError, match="SCOPES is empty"):
        Settings(FHIR_BASE_URL=BASE, smart_client_id=CLIENT_ID, smart_private_key_file=str(key_file), smart_scopes=" ")
    assert Settings(FHIR_BASE_URL=BASE, smart_client_id="  ").smart_client_id is None  # blank is unset


def test_batch_cli_reports_a_smart_configuration_error_and_exits_2(tmp_path: Path) -> None:
    records = tmp_path / "r.ndjson"
    records.write_text("")
    env = {"FHIR_BASE_URL": BASE, "INFUSION_FHIR_SMART_CLIENT_ID": CLIENT_ID}
    result = CliRunner().invoke(cli, ["sync", str(records), "--rejects", str(tmp_path / "rej.ndjson")], env=env)
    assert result.exit_code == 2
    assert "configuration error" in result.stderr and "INFUSION_FHIR_SMART_PRIVATE_KEY_FILE" in result.stderr


# -- the JWKS route ---------------------------------------------------------------------------


def test_jwks_route_serves_the_public_key_without_auth(key_file: Path, keys: dict[str, SigningKey]) -> None:
    settings = Settings(
        FHIR_BASE_URL=BASE, api_keys="", smart_client_id=CLIENT_ID, smart_private_key_file=str(key_file)
    )
    response = TestClient(create_app(settings)).get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == keys["ES384"].public_jwks()
    assert '"d"' not in response.text


def test_jwks_route_is_404_when_smart_is_off() -> None:
    response = TestClient(create_app(Settings(FHIR_BASE_URL=BASE, api_keys=""))).get("/.well-known/jwks.json")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/fhir+json"
    assert response.json()["issue"][0]["code"] == "not-found"
