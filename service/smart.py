"""SMART Backend Services: the service's own credentials for a SMART-protected FHIR server.

The service authenticates with a signed JWT (RFC 7523 client assertion, as the SMART App Launch
"Backend Services" profile asks) and gets short-lived access tokens by the `client_credentials`
grant. The parts, each usable on its own:

* `load_signing_key` reads an RS384 or ES384 private key from a PEM or a JWK (JSON) file;
  `generate_signing_key` / `write_key_pair` make a new one (`infusion-fhir smart-keygen`).
* `SigningKey.client_assertion` signs the assertion with PyJWT (no hand-written JOSE).
* `SmartBackendAuth` is an `httpx.Auth`: it finds the token endpoint (setting or
  `{FHIR base}/.well-known/smart-configuration`), caches the token until shortly before it
  expires, lets concurrent requests share one token fetch, and answers a 401 from the FHIR server
  with exactly one refresh and one retry of that request.

Nothing secret leaves this module: the private key, the assertion and the access token never
appear in an error message or a log line. The token endpoint's OAuth `error` and
`error_description` do (an echoed JWT is cut out of them).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from service.errors import FhirAuthRefused, FhirMisconfigured
from service.retry import TEMPORARY_STATUS

log = logging.getLogger("infusion_fhir.smart")

# The SMART v2 system scopes the service needs, derived from what it does on the FHIR server
# (c = create, r = read, u = update, d = delete, s = search):
#   Patient                   conditional create (POST ifNoneExist), read, search by identifier;
#                             never updated or deleted                                   -> .crs
#   Encounter                 the EHR visit by conditional create; the session's own Encounter by
#                             PUT (update-as-create) and retracted by PUT; read, search    -> .crus
#   Procedure, MedicationAdministration, QuestionnaireResponse, Observation, Flag
#                             PUT with deterministic ids (update-as-create), retracted by PUT
#                             (entered-in-error), read, search by _id                      -> .crus
#   AdverseEvent              as above, but R4 AdverseEvent has no status to retract: DELETEd -> .cruds
# `GET metadata` needs no scope. `infusion-fhir validate` POSTs `Type/$validate`, which servers
# authorize each their own way; add its scope to INFUSION_FHIR_SMART_SCOPES if yours needs one.
DEFAULT_SMART_SCOPES = (
    "system/Patient.crs system/Encounter.crus system/Procedure.crus system/MedicationAdministration.crus "
    "system/QuestionnaireResponse.crus system/Observation.crus system/AdverseEvent.cruds system/Flag.crus"
)
SmartAlg = Literal["RS384", "ES384"]
SMART_ALGS: tuple[SmartAlg, ...] = ("ES384", "RS384")
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_S = 240
"""`exp` - `iat` of the client assertion: SMART allows at most 5 minutes; a minute less leaves room for skew."""
TOKEN_EXPIRY_MARGIN_S = 60.0
"""A cached token is replaced this long before the token endpoint said it expires (at most half its life)."""
DEFAULT_TOKEN_LIFETIME_S = 300.0
"""Assumed when the token endpoint leaves `expires_in` out (SMART requires it; some servers forget)."""
RSA_KEY_BITS = 3072
MIN_RSA_KEY_BITS = 2048
PRIVATE_KEY_FILE = "private-key.pem"
JWKS_FILE = "jwks.json"
_JWT_LIKE = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


class SmartKeyError(ValueError):
    """The private key file cannot be used (unreadable, not a key, wrong type or curve): a configuration error.

    The message names the file and what is wrong with it, never the key material.
    """


class TokenEndpointUnavailable(httpx.TransportError):
    """The token endpoint (or the SMART discovery document) could not be reached or answered 408/429/5xx.

    An `httpx.TransportError`, so that `FhirClient._send`'s one retry loop treats it as it treats an
    unreachable FHIR server: retried with backoff, then `FhirUnavailable` (API 503, batch exit 2).
    """


# -- keys ------------------------------------------------------------------------------------

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class SigningKey:
    """A private key, the JWS algorithm it signs with, and the `kid` the EHR knows it by."""

    private_key: PrivateKey
    alg: SmartAlg
    kid: str

    def __repr__(self) -> str:  # the dataclass default would print the key object; nothing secret, but no need
        return f"SigningKey(alg={self.alg!r}, kid={self.kid!r})"

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK with `kid`, `alg` and `use: sig` (what the EHR registers)."""
        return public_jwk(self.private_key, self.alg, self.kid)

    def public_jwks(self) -> dict[str, Any]:
        """`{"keys": [public_jwk]}`: the JWK Set served at `/.well-known/jwks.json` and written by keygen."""
        return {"keys": [self.public_jwk()]}

    def client_assertion(self, client_id: str, token_url: str, *, now: float | None = None) -> str:
        """A signed RFC 7523 client assertion for `token_url` (SMART Backend Services).

        `iss` = `sub` = the client id, `aud` = the token URL, a fresh random `jti`, `iat` now and
        `exp` ASSERTION_LIFETIME_S later; the header names `alg`, `kid` and `typ: JWT`.
        """
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "jti": secrets.token_urlsafe(32),
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME_S,
        }
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"})


def public_jwk(key: PrivateKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey, alg: str, kid: str) -> dict[str, Any]:
    """The public half of `key` as a JWK: only the public members, plus `kid`, `alg`, `use: sig`."""
    members: tuple[str, ...]
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        full = RSAAlgorithm.to_jwk(_public(key), as_dict=True)
        members = ("kty", "n", "e")
    else:
        full = ECAlgorithm.to_jwk(_public(key), as_dict=True)
        members = ("kty", "crv", "x", "y")
    return {**{m: full[m] for m in members}, "kid": kid, "alg": alg, "use": "sig"}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public RSA or EC JWK (base64url, no padding): the default `kid`."""
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _public(key: Any) -> Any:
    return key.public_key() if hasattr(key, "private_numbers") else key


def _alg_of(key: Any, where: str) -> SmartAlg:
    """RS384 for an RSA key of at least 2048 bits, ES384 for a P-384 key; SmartKeyError otherwise."""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_KEY_BITS:
            raise SmartKeyError(f"{where}: an RSA key of {key.key_size} bits; RS384 needs at least {MIN_RSA_KEY_BITS}")
        return "RS384"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP384R1):
            raise SmartKeyError(f"{where}: an EC key on {key.curve.name}; ES384 needs P-384 (secp384r1)")
        return "ES384"
    raise SmartKeyError(f"{where}: not an RSA or EC private key (SMART Backend Services signs with RS384 or ES384)")


def load_signing_key(path: str | os.PathLike[str], key_id: str | None = None) -> SigningKey:
    """The signing key in `path`: a PEM private key (PKCS#8 or traditional, unencrypted), a private JWK,
    or a JWK Set holding one private key (or several, then `key_id` picks one).

    The algorithm follows from the key (RSA -> RS384, P-384 -> ES384). The `kid` is `key_id` when
    given, else the JWK's `kid`, else the RFC 7638 thumbprint of the public key (what keygen uses).
    """
    where = f"SMART private key file {os.fspath(path)}"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SmartKeyError(f"{where}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    text = data.lstrip()
    if text.startswith(b"{"):
        key, jwk_kid, jwk_alg = _key_from_jwk(data, key_id, where)
    elif text.startswith(b"-----BEGIN"):
        key, jwk_kid, jwk_alg = _key_from_pem(data, where), None, None
    else:
        raise SmartKeyError(f"{where}: neither a PEM private key nor a JWK (JSON)")
    alg = _alg_of(key, where)
    if jwk_alg is not None and jwk_alg != alg:
        raise SmartKeyError(f"{where}: the JWK says alg {jwk_alg!r} but the key signs with {alg}")
    kid = key_id or jwk_kid or jwk_thumbprint(public_jwk(key, alg, ""))
    return SigningKey(key, alg, kid)


def _key_from_pem(data: bytes, where: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying the key needs a password
        raise SmartKeyError(f"{where}: the PEM key is encrypted; store it unencrypted with mode 0600") from None
    except Exception:  # ValueError, UnsupportedAlgorithm: say only that it failed
        raise SmartKeyError(f"{where}: not a readable PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SmartKeyError(f"{where}: not an RSA or EC private key")
    return key


def _key_from_jwk(data: bytes, key_id: str | None, where: str) -> tuple[PrivateKey, str | None, str | None]:
    try:
        document = json.loads(data)
    except ValueError:
        raise SmartKeyError(f"{where}: not valid JSON") from None
    if not isinstance(document, dict):
        raise SmartKeyError(f"{where}: not a JWK or a JWK Set")
    candidates = document.get("keys") if "keys" in document else [document]
    if not isinstance(candidates, list):
        raise SmartKeyError(f"{where}: `keys` is not a list")
    private = [k for k in candidates if isinstance(k, dict) and "d" in k]
    if key_id is not None and len(private) > 1:
        private = [k for k in private if k.get("kid") == key_id]
    if len(private) != 1:
        found = "no private key" if not private else f"{len(private)} private keys"
        raise SmartKeyError(f"{where}: {found} in it; it must hold exactly one (or set INFUSION_FHIR_SMART_KEY_ID)")
    jwk_data = private[0]
    kty = jwk_data.get("kty")
    if kty not in ("RSA", "EC"):
        raise SmartKeyError(f"{where}: JWK kty {kty!r} is not RSA or EC")
    try:
        key = RSAAlgorithm.from_jwk(jwk_data) if kty == "RSA" else ECAlgorithm.from_jwk(jwk_data)
    except Exception:  # PyJWT's and cryptography's errors may quote key members: say only that it failed
        raise SmartKeyError(f"{where}: the {kty} JWK is not a valid private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SmartKeyError(f"{where}: the JWK holds no private key")
    kid, alg = jwk_data.get("kid"), jwk_data.get("alg")
    return key, kid if isinstance(kid, str) and kid else None, alg if isinstance(alg, str) else None


def generate_signing_key(alg: SmartAlg) -> SigningKey:
    """A new key for `alg` (RSA 3072 bits for RS384, P-384 for ES384), its kid the JWK thumbprint."""
    key: PrivateKey
    if alg == "RS384":
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    elif alg == "ES384":
        key = ec.generate_private_key(ec.SECP384R1())
    else:
        raise ValueError(f"unsupported algorithm {alg!r}: use one of {', '.join(SMART_ALGS)}")
    return SigningKey(key, alg, jwk_thumbprint(public_jwk(key, alg, "")))


def write_key_pair(alg: SmartAlg, directory: str | os.PathLike[str]) -> tuple[SigningKey, Path, Path]:
    """A new key: `DIR/private-key.pem` (PKCS#8, mode 0600) and `DIR/jwks.json` (its public JWK Set).

    Refuses (FileExistsError) to overwrite either file: a key the EHR already trusts is not replaced by accident.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    key_path, jwks_path = out / PRIVATE_KEY_FILE, out / JWKS_FILE
    for existing in (key_path, jwks_path):
        if existing.exists():
            raise FileExistsError(f"{existing} exists; choose another directory or move it away first")
    signing = generate_signing_key(alg)
    pem = signing.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(key_path, 0o600)  # whatever the umask
    jwks_path.write_text(json.dumps(signing.public_jwks(), indent=2) + "\n", encoding="utf-8")
    return signing, key_path, jwks_path


# -- tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float
    """`clock()` time after which the token is fetched anew."""


class SmartBackendAuth(httpx.Auth):
    """`httpx.Auth` for the FHIR client: a cached SMART access token on every request.

    `http` is a client for the token endpoint and the discovery document (never sent the FHIR
    server's headers); `open_fhir_client` builds it. One `asyncio.Lock` makes concurrent requests
    that find no valid token share one fetch; a request that meets a 401 asks for a token other
    than the one refused (so many such requests still cause one fetch), retries once, and hands a
    second 401 back to the FHIR client, which raises FhirAuthRefused.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        key: SigningKey,
        *,
        client_id: str,
        scopes: str,
        fhir_base_url: str,
        http: httpx.AsyncClient,
        token_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.client_id = client_id
        self.scopes = " ".join(scopes.split())
        self.fhir_base_url = fhir_base_url.rstrip("/")
        self.http = http
        self.token_url = token_url
        self.clock = clock
        self.token_fetches = 0
        self._token: _Token | None = None
        self._lock = asyncio.Lock()

    # -- httpx.Auth ---------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("SmartBackendAuth works with httpx.AsyncClient only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            log.info("smart.token_refused", extra={"status": 401})
            request.headers["Authorization"] = f"Bearer {await self.access_token(refused=token)}"
            yield request

    # -- the token ----------------------------------------------------------------------------

    async def access_token(self, *, refused: str | None = None) -> str:
        """A valid access token: the cached one, or one fetched now (one fetch however many wait).

        `refused` is a token the FHIR server just answered 401 to: it is not handed out again.
        """
        cached = self._usable(refused)
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._usable(refused)
            if cached is not None:
                return cached
            self._token = None
            self._token = await self._fetch()
            return self._token.value

    def _usable(self, refused: str | None) -> str | None:
        token = self._token
        if token is None or token.value == refused or self.clock() >= token.refresh_at:
            return None
        return token.value

    async def _fetch(self) -> _Token:
        token_url = await self.token_endpoint()
        assertion = self.key.client_assertion(self.client_id, token_url)
        form = {
            "grant_type": "client_credentials",
            "scope": self.scopes,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion,
        }
        asked_at = self.clock()
        self.token_fetches += 1
        response = await self._call("POST", token_url, "token endpoint", data=form)
        if not response.is_success:
            raise _refused(token_url, response, assertion)
        body = _json_object(response)
        access_token = body.get("access_token") if body else None
        if not isinstance(access_token, str) or not access_token:
            raise FhirMisconfigured(
                f"the SMART token endpoint {token_url} answered {response.status_code} without an access_token: "
                "check INFUSION_FHIR_SMART_TOKEN_URL"
            )
        token_type = body.get("token_type", "bearer") if body else "bearer"
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise FhirMisconfigured(f"the SMART token endpoint {token_url} issued a {token_type!r} token, not a bearer")
        lifetime = _lifetime(body.get("expires_in") if body else None)
        log.info(
            "smart.token",
            extra={"expires_in_s": lifetime, "scope": body.get("scope") if body else None, "fetch": self.token_fetches},
        )
        return _Token(access_token, asked_at + lifetime - min(TOKEN_EXPIRY_MARGIN_S, lifetime / 2))

    async def token_endpoint(self) -> str:
        """INFUSION_FHIR_SMART_TOKEN_URL, else `token_endpoint` of `{FHIR base}/.well-known/smart-configuration`."""
        if self.token_url:
            return self.token_url
        url = f"{self.fhir_base_url}/.well-known/smart-configuration"
        response = await self._call("GET", url, "SMART configuration")
        body = _json_object(response) if response.is_success else None
        endpoint = body.get("token_endpoint") if body else None
        if not isinstance(endpoint, str) or not _is_http_url(endpoint):
            answered = f"answered {response.status_code}" + ("" if body is None else " without a token_endpoint URL")
            raise FhirMisconfigured(
                f"SMART is configured but {url} {answered}: set INFUSION_FHIR_SMART_TOKEN_URL to the token endpoint",
                status_code=response.status_code,
            )
        assert body is not None
        _warn_if_unsupported(body, self.key.alg)
        log.info("smart.discovered", extra={"token_endpoint": endpoint})
        self.token_url = endpoint
        return endpoint

    async def _call(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, url, headers={"Accept": "application/json"}, **kwargs)
        except httpx.TransportError as exc:
            raise TokenEndpointUnavailable(f"SMART {what} {url} unreachable: {type(exc).__name__}") from exc
        if response.status_code in TEMPORARY_STATUS:
            raise TokenEndpointUnavailable(f"SMART {what} {url} answered {response.status_code}")
        return response


def _lifetime(expires_in: Any) -> float:
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return float(expires_in)
    return DEFAULT_TOKEN_LIFETIME_S


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _refused(token_url: str, response: httpx.Response, assertion: str) -> FhirAuthRefused:
    """FhirAuthRefused with the endpoint's OAuth `error` and `error_description`, and nothing of ours."""
    body = _json_object(response) or {}
    error = _clean(body.get("error"), assertion, 64)
    description = _clean(body.get("error_description"), assertion, 300)
    said = f"{response.status_code}{' ' + error if error else ''}{': ' + description if description else ''}"
    return FhirAuthRefused(
        f"the SMART token endpoint {token_url} refused the service's client credentials ({said})",
        status_code=response.status_code,
    )


def _clean(value: Any, assertion: str, limit: int) -> str:
    """A server-supplied string fit for a message: one line, bounded, no JWT (our assertion echoed back)."""
    if not isinstance(value, str):
        return ""
    text = value.replace(assertion, "[client assertion]")
    text = _JWT_LIKE.sub("[JWT]", text)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:limit] + ("..." if len(text) > limit else "")


def _warn_if_unsupported(configuration: Mapping[str, Any], alg: str) -> None:
    """Log (not fail) when the discovery document says the server will not take our assertion."""
    methods = configuration.get("token_endpoint_auth_methods_supported")
    if isinstance(methods, list) and "private_key_jwt" not in methods:
        log.warning("smart.private_key_jwt_not_advertised", extra={"supported": methods})
    algs = configuration.get("token_endpoint_auth_signing_alg_values_supported")
    if isinstance(algs, list) and alg not in algs:
        log.warning("smart.alg_not_advertised", extra={"alg": alg, "supported": algs})
