"""API key check for `/v1`: `Authorization: Bearer <key>`, matched by SHA-256 digest in constant time."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from service.errors import Unauthorized


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


async def require_api_key(request: Request) -> None:
    """FastAPI dependency: refuse the request unless it carries an accepted bearer key."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer API key")
    if not key_is_accepted(token.strip(), request.app.state.settings.api_key_digests()):
        raise Unauthorized("API key not accepted")
