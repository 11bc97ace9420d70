"""API key check for `/v1`: `Authorization: Bearer <key>`, matched by SHA-256 digest in constant time."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.errors import Unauthorized

# Only documents the scheme in the OpenAPI document (`components/securitySchemes/apiKey`, and
# `security` on every /v1 operation); `require_api_key` reads and checks the header itself.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key as `Authorization: Bearer <key>`; the service is configured with its SHA-256 digest.",
)


def key_digest(api_key: str) -> str:
    """The SHA-256 hex digest under which an API key is configured."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_is_accepted(presented: str, accepted_digests: frozenset[str]) -> bool:
    """True when the presented key's digest equals one accepted digest (every one is compared)."""
    digest = key_digest(presented)
    matched = False
    for accepted in accepted_digests:
        matched |= hmac.compare_digest(digest, accepted)
    return matched


async def require_api_key(
    request: Request, _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)] = None
) -> None:
    """FastAPI dependency: refuse the request unless it carries an accepted bearer key."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer API key")
    if not key_is_accepted(token.strip(), request.app.state.settings.api_key_digests()):
        raise Unauthorized("API key not accepted")
