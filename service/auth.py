"""Who may call `/v1`: `Authorization: Bearer <credential>`, an API key or (when configured) an OAuth token.

An API key is matched by SHA-256 digest in constant time and may call every operation. Any other
bearer value, when `INFUSION_FHIR_OAUTH_ISSUER` is set, is checked as a JWT access token of that
issuer (`service.access_tokens`) and must then carry a scope the operation accepts (`accepted_scopes`):

| operation                                   | scope (any one of)                         |
|---------------------------------------------|--------------------------------------------|
| PUT, DELETE `/v1/<kind>/{key}`              | `infusion-fhir.write`                      |
| GET `/v1/<kind>/{key}`, the trends, GET `$monitoring-summary` | `infusion-fhir.read`        |
| `$convert` (writes nothing)                 | `infusion-fhir.read` or `infusion-fhir.write` |
| POST `$monitoring-summary` (writes), any other | `infusion-fhir.write`                   |

No credential, or a refused one: 401 (`WWW-Authenticate: Bearer`, with `error="invalid_token"` for a
refused token); a valid token without the scope: 403 (`error="insufficient_scope", scope="..."`).
Without OAuth configured, only API keys are accepted, as before. Nothing here logs a credential.

An accepted caller is named (`service.request_context`): an API key by the name configured beside its digest, a
token by its `client_id` (else `azp`, else `sub`); that name, never the credential, is what is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.access_tokens import TokenVerifier
from service.errors import Forbidden, Unauthorized
from service.request_context import API_KEY, OAUTH, Caller, set_caller

log = logging.getLogger("infusion_fhir.auth")

READ_SCOPE = "infusion-fhir.read"
WRITE_SCOPE = "infusion-fhir.write"
API_KEY_SCHEME = "apiKey"
OAUTH_SCHEME = "oauthToken"

# Only documents the scheme in the OpenAPI document (`components/securitySchemes/apiKey`, and
# `security` on every /v1 operation); `require_caller` reads and checks the header itself. The
# OAuth alternative is added to the document by `document_security`.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name=API_KEY_SCHEME,
    description="An API key as `Authorization: Bearer <key>`; the service is configured with its SHA-256 digest.",
)
OAUTH_SECURITY_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": (
        "An OAuth 2.0 access token (a JWT) from the organisation's identity provider, as "
        "`Authorization: Bearer <token>`, when the service is configured with one (`INFUSION_FHIR_OAUTH_ISSUER`, "
        "`INFUSION_FHIR_OAUTH_AUDIENCE`). Each operation names the scope it needs: "
        f"`{WRITE_SCOPE}` for PUT and DELETE, `{READ_SCOPE}` for GET, `$phq9-trend` and `$outcome-trend`, either for "
        "`$convert`."
    ),
}


def key_digest(api_key: str) -> str:
    """The SHA-256 hex digest under which an API key is configured."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def accepted_key_name(presented: str, names: Mapping[str, str]) -> str | None:
    """The name of the accepted key (digest -> name) the presented key is, else None; every digest is compared
    in constant time, whichever matches."""
    digest = key_digest(presented)
    matched: str | None = None
    for accepted, name in names.items():
        if hmac.compare_digest(digest, accepted):
            matched = name
    return matched


TREND_PATHS = ("/v1/patients/$phq9-trend", "/v1/patients/$outcome-trend")
"""Patient views: they only read."""


def accepted_scopes(method: str, path: str) -> tuple[str, ...]:
    """The scopes any one of which lets a token call the operation, the least privileged first."""
    if path == "/v1/$convert":
        return (READ_SCOPE, WRITE_SCOPE)
    if method == "GET" or path in TREND_PATHS:
        return (READ_SCOPE,)
    return (WRITE_SCOPE,)  # PUT, DELETE, and whatever is added later until it says otherwise


def document_security(document: dict[str, Any]) -> None:
    """Name the OAuth alternative, with each operation's scopes, beside the API key in the document."""
    document.setdefault("components", {}).setdefault("securitySchemes", {})[OAUTH_SCHEME] = OAUTH_SECURITY_SCHEME
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if operation.get("security") == [{API_KEY_SCHEME: []}]:
                alternatives = [{OAUTH_SCHEME: [scope]} for scope in accepted_scopes(method.upper(), path)]
                operation["security"] = [{API_KEY_SCHEME: []}, *alternatives]


async def require_caller(
    request: Request, _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)] = None
) -> None:
    """FastAPI dependency: refuse the request unless it carries an accepted API key or access token."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthorized("missing bearer API key")
    key_name = accepted_key_name(credential, request.app.state.settings.api_key_names())
    if key_name is not None:
        _named(request, Caller(API_KEY, key_name))
        return  # an API key may call every operation
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise Unauthorized("API key not accepted")
    route = getattr(request.scope.get("route"), "path", "unmatched")
    try:
        token = await verifier.verify(credential)
    except Unauthorized:
        log.info("auth.token_refused", extra={"route": route})
        raise
    _named(request, Caller(OAUTH, token.client))
    accepted = accepted_scopes(request.method, route)
    if token.scopes.isdisjoint(accepted):
        log.info("auth.scope_missing", extra={"route": route})
        raise Forbidden(f"the access token lacks the scope {' or '.join(accepted)}", scope=accepted[0])


def _named(request: Request, caller: Caller) -> None:
    """Record who is calling: for this request's work (`current_caller`) and for its edge (`request.state.caller`)."""
    request.state.caller = caller
    set_caller(caller)
