"""Inbound OAuth 2.0 access tokens: JWTs from the organisation's identity provider, checked on its JWKS.

`TokenVerifier.verify(token)` accepts a token only when all of these hold, and otherwise raises
`Unauthorized` with the RFC 6750 error `invalid_token` (the reason is coarse and never a claim value):

- its header names an allowed algorithm (`ALLOWED_ALGORITHMS`: RS256/RS384/RS512/PS256/ES256/ES384;
  never `none` and never HS*: an HMAC checked with the issuer's *public* key is the classic algorithm
  confusion) and a `kid` of a signing key the issuer publishes, whose type (and curve, and `alg` if
  the key names one) fits that algorithm;
- the signature verifies with that key, `iss` is the configured issuer exactly, `aud` (a string or a
  list, as Keycloak sends it) contains the configured audience, `exp` is present and not past and
  `nbf` (if any) not ahead, both with `leeway_s` of clock skew;
- it is not a Keycloak ID or refresh token (`typ` claim).

Keys come from the `jwks_uri` of `{issuer}/.well-known/openid-configuration` (whose `issuer` must be
the configured one), fetched on first use over one shared `httpx.AsyncClient`, and cached. An unknown
`kid` fetches the key set again (so a rotated key is accepted), but at most once per `min_refresh_s`,
whatever the tokens say: forged `kid`s cause no storm of fetches. Keys older than `max_age_s` are
fetched again (a key the issuer withdrew stops being accepted); when that fetch fails the cached keys
stay in use. When keys are needed and none can be had, the caller gets `IssuerUnavailable` (503).

Nothing here logs a token, a claim value or a key: only events and counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from service.errors import IssuerUnavailable, Unauthorized
from service.settings import Settings

log = logging.getLogger("infusion_fhir.auth")

ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384"})
_EC_CURVE = {"ES256": "P-256", "ES384": "P-384"}
_NOT_ACCESS_TOKENS = frozenset({"id", "refresh", "offline", "logout"})  # Keycloak's `typ` of other tokens
WELL_KNOWN = "/.well-known/openid-configuration"
INVALID_TOKEN = "invalid_token"


@dataclass(frozen=True)
class AccessToken:
    """What the service uses of an accepted token: its scopes (`scope` and `scp` claims) and who it was issued to
    (`client_id`, else `azp`, else `sub`; recorded as the caller's name)."""

    scopes: frozenset[str]
    client: str = "unknown"


@dataclass(frozen=True)
class SigningKey:
    """One public key of the issuer's JWKS."""

    kty: str
    crv: str | None
    alg: str | None
    key: Any  # a cryptography public key object

    def fits(self, alg: str) -> bool:
        """True when a token signed with `alg` may be checked with this key."""
        if self.alg is not None and self.alg != alg:
            return False
        if alg in _EC_CURVE:
            return self.kty == "EC" and self.crv == _EC_CURVE[alg]
        return self.kty == "RSA"


def refuse(reason: str) -> Unauthorized:
    """The error for a presented token that is not accepted (401 `invalid_token`)."""
    return Unauthorized(f"bearer token not accepted: {reason}", bearer_error=INVALID_TOKEN)


class TokenVerifier:
    """Checks JWT access tokens of one issuer and audience; the JWKS is fetched lazily and cached."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        client: httpx.AsyncClient,
        leeway_s: float = 30.0,
        min_refresh_s: float = 15.0,
        max_age_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.client = client
        self.leeway_s = leeway_s
        self.min_refresh_s = min_refresh_s
        self.max_age_s = max_age_s
        self.clock = clock
        self.metadata_url = issuer.rstrip("/") + WELL_KNOWN
        self.fetches = 0  # JWKS fetch attempts, for tests and diagnostics
        self._keys: dict[str, SigningKey] = {}
        self._jwks_uri: str | None = None
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last attempt, successful or not
        self._last_failed = False
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> AccessToken:
        """The token's scopes when it is accepted; `Unauthorized` (invalid_token) otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError):
            raise refuse("not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise refuse("signing algorithm not allowed")
        if not isinstance(kid, str) or not kid:
            raise refuse("no key id (kid) in the token header")
        key = await self._signing_key(kid)
        if not key.fits(alg):
            raise refuse("signing algorithm does not fit the issuer's key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise refuse("expired") from None
        except jwt.ImmatureSignatureError:
            raise refuse("not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise refuse("audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise refuse("issuer not accepted") from None
        except jwt.InvalidSignatureError:
            raise refuse("signature does not verify") from None
        except jwt.MissingRequiredClaimError:
            raise refuse("a required claim (exp, iss, aud) is missing") from None
        except (jwt.PyJWTError, ValueError):
            raise refuse("malformed") from None
        if str(claims.get("typ", "")).lower() in _NOT_ACCESS_TOKENS:
            raise refuse("not an access token")
        return AccessToken(scopes=token_scopes(claims), client=token_client(claims))

    async def _signing_key(self, kid: str) -> SigningKey:
        key = self._keys.get(kid)
        if key is not None and self._fresh():
            return key
        async with self._lock:  # one fetch at a time; waiters then see its result
            key = self._keys.get(kid)
            if key is not None and self._fresh():
                return key
            if self._attempted_at is None or self.clock() - self._attempted_at >= self.min_refresh_s:
                await self._refresh()
            key = self._keys.get(kid)
        if key is not None:  # also a stale key, when fetching them again failed
            return key
        if self._last_failed:
            raise self._unavailable()
        raise refuse("signing key (kid) unknown to the issuer")

    def _fresh(self) -> bool:
        return self._fetched_at is not None and self.clock() - self._fetched_at < self.max_age_s

    def _unavailable(self) -> IssuerUnavailable:
        error = IssuerUnavailable("the OAuth issuer's signing keys cannot be fetched; try again later")
        waited = self.clock() - (self._attempted_at or 0.0)
        error.retry_after_s = max(1.0, self.min_refresh_s - waited)
        return error

    async def _refresh(self) -> None:
        self._attempted_at = self.clock()
        self.fetches += 1
        try:
            if self._jwks_uri is None:
                self._jwks_uri = jwks_uri_of(await self._get_json(self.metadata_url), self.issuer)
            keys = signing_keys(await self._get_json(self._jwks_uri))
        except (httpx.HTTPError, ValueError) as error:
            self._jwks_uri = None  # discover again next time: the issuer may have moved it
            self._last_failed = True
            log.warning("auth.jwks_unavailable", extra={"error": type(error).__name__})
            return
        self._keys = keys
        self._fetched_at = self.clock()
        self._last_failed = False
        log.info("auth.jwks_fetched", extra={"keys": len(keys)})

    async def _get_json(self, url: str) -> Mapping[str, Any]:
        response = await self.client.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        return body


def jwks_uri_of(metadata: Mapping[str, Any], issuer: str) -> str:
    """The `jwks_uri` of the issuer's OpenID configuration, which must name the same issuer."""
    if metadata.get("issuer") != issuer:
        raise ValueError("the OpenID configuration names another issuer")
    uri = metadata.get("jwks_uri")
    if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
        raise ValueError("the OpenID configuration has no http(s) jwks_uri")
    return uri


def signing_keys(jwks: Mapping[str, Any]) -> dict[str, SigningKey]:
    """The RSA and EC signature keys of a JWKS by `kid`; encryption keys and others are left out."""
    keys: dict[str, SigningKey] = {}
    entries = jwks.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC"):
            continue
        kid, alg = entry.get("kid"), entry.get("alg")
        if not isinstance(kid, str) or (alg is not None and alg not in ALLOWED_ALGORITHMS):
            continue
        try:
            public = jwt.PyJWK(entry).key
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        keys[kid] = SigningKey(kty=entry["kty"], crv=entry.get("crv"), alg=alg, key=public)
    if not keys:
        raise ValueError("the JWKS has no usable signing key")
    return keys


def token_client(claims: Mapping[str, Any]) -> str:
    """Whom a token was issued to: `client_id` (RFC 9068), else `azp` (OpenID), else `sub`; at most 64 characters."""
    for claim in ("client_id", "azp", "sub"):
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()[:64]
    return "unknown"


def token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes of a token: `scope` (space-separated) and `scp` (Keycloak/Azure: string or list)."""
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(v for v in value if isinstance(v, str))
    return frozenset(scopes)


@asynccontextmanager
async def open_token_verifier(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[TokenVerifier | None]:
    """The verifier and its one HTTP client for the issuer, or None when OAuth is not configured."""
    if not settings.oauth_issuer or not settings.oauth_audience:
        yield None
        return
    timeout = httpx.Timeout(10.0, connect=settings.connect_timeout_s)
    async with httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False) as client:
        yield TokenVerifier(
            issuer=settings.oauth_issuer,
            audience=settings.oauth_audience,
            client=client,
            leeway_s=settings.oauth_leeway_s,
            min_refresh_s=settings.oauth_jwks_min_refresh_s,
            max_age_s=settings.oauth_jwks_max_age_s,
        )
