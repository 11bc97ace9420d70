"""The public JWK Set of the service's SMART Backend Services key (no authentication).

An EHR registers the service's key either as the `jwks.json` that `infusion-fhir smart-keygen`
wrote, or by this URL, which it may fetch again whenever it meets a new `kid`. Only the public half
is served; 404 while SMART is not configured.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.deps import SettingsDep
from service.errors import NotFound
from service.routes.responses import JWKS
from service.smart import load_signing_key

router = APIRouter(tags=["smart"])


@router.get("/.well-known/jwks.json", operation_id="smart_jwks", response_model=None, responses=JWKS)
async def jwks(settings: SettingsDep) -> Any:
    """The public key the service signs its SMART client assertions with, as a JWK Set."""
    if not (settings.smart_client_id and settings.smart_private_key_file):
        raise NotFound("SMART Backend Services is not configured: no key to publish")
    return JSONResponse(
        _public_jwks(settings.smart_private_key_file, settings.smart_key_id),
        headers={"Cache-Control": "public, max-age=300"},
    )


@lru_cache(maxsize=4)
def _public_jwks(key_file: str, key_id: str | None) -> dict[str, Any]:
    """Read once per process: the FHIR client, too, keeps the key it loaded at start-up."""
    return load_signing_key(key_file, key_id).public_jwks()
