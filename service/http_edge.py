"""The API's edge: errors become FHIR OperationOutcome answers once, here; request id; size limit; metrics.

| error                       | status | OperationOutcome issue code |
|-----------------------------|--------|-----------------------------|
| schemas.RecordInvalid       | 422    | invalid (one issue per field, with its path); business-rule first, one per positive safety answer the refused record holds |
| Unauthorized                | 401    | login (`WWW-Authenticate: Bearer`, + `error="invalid_token"` for a refused token) |
| Forbidden                   | 403    | forbidden (`WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`) |
| NotFound                    | 404    | not-found                   |
| Conflict                    | 409    | conflict                    |
| PayloadTooLarge             | 413    | too-long                    |
| FhirRejected                | 502    | processing (+ the server's issues) |
| FhirAuthRefused             | 502    | security (the FHIR server refused the service's credentials) |
| FhirDataUnreadable          | 502    | processing (the FHIR server holds data this service cannot read) |
| FhirMisconfigured           | 503    | not-supported (the base URL is not a FHIR R4 server) |
| FhirUnavailable             | 503    | transient                   |
| IssuerUnavailable           | 503    | transient (the OAuth issuer's keys cannot be fetched) |
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas import RecordInvalid
from service.errors import (
    Conflict,
    FhirAuthRefused,
    FhirDataUnreadable,
    FhirMisconfigured,
    FhirRejected,
    FhirUnavailable,
    Forbidden,
    InfusionFhirError,
    IssuerUnavailable,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from service.media import FHIR_JSON
from service.metrics import Metrics
from service.outcome import operation_outcome, single_issue
from service.request_context import accepted_request_id, request_scope
from service.routes.methods import allow_header

log = logging.getLogger("infusion_fhir.api")

SAFETY_CODE = "business-rule"
"""Issue code of "this refused record holds a positive safety answer" (issue 21; H-39), first in the answer."""


_STATUS: list[tuple[type[InfusionFhirError], int, str]] = [
    (Unauthorized, 401, "login"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "conflict"),
    (PayloadTooLarge, 413, "too-long"),
    (FhirRejected, 502, "processing"),
    (FhirAuthRefused, 502, "security"),
    (FhirDataUnreadable, 502, "processing"),
    (FhirMisconfigured, 503, "not-supported"),
    (FhirUnavailable, 503, "transient"),
    (IssuerUnavailable, 503, "transient"),
]


def outcome_response(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the one translation of every error into an OperationOutcome answer."""

    @app.exception_handler(RecordInvalid)
    async def _invalid(request: Request, exc: RecordInvalid) -> JSONResponse:
        issues = [(SAFETY_CODE if i.safety else "invalid", i.message, i.path or None) for i in exc.issues]
        extra = {"route": _route(request), "fields": [i.path for i in exc.issues], "safety_answer": _holds(exc)}
        log.info("api.record_invalid", extra=extra)
        return outcome_response(operation_outcome(*issues), 422)

    @app.exception_handler(InfusionFhirError)
    async def _engine(request: Request, exc: InfusionFhirError) -> JSONResponse:
        status, code = next(((s, c) for cls, s, c in _STATUS if isinstance(exc, cls)), (500, "exception"))
        safety = [(SAFETY_CODE, i.message, i.path or None) for i in exc.safety]
        outcome = operation_outcome(*safety, (code, exc.message, getattr(exc, "expression", None)))
        if isinstance(exc, (FhirRejected, Conflict)) and exc.operation_outcome:
            outcome["issue"].extend(
                {**issue, "severity": issue.get("severity", "error")}
                for issue in exc.operation_outcome.get("issue", [])
            )
        headers = {"WWW-Authenticate": bearer_challenge(exc)} if status in (401, 403) else None
        if status == 503:  # tell the caller when to try again (what the FHIR server asked, else a default)
            headers = {"Retry-After": str(retry_after_s(exc))}
        extra = {"route": _route(request), "status": status, "error": type(exc).__name__, "safety_answer": _holds(exc)}
        log.info("api.error", extra=extra)
        return outcome_response(outcome, status, headers)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [
            ("invalid", str(err.get("msg", "invalid")), ".".join(str(p) for p in err.get("loc", ())[1:]) or None)
            for err in exc.errors()
        ]
        return outcome_response(operation_outcome(*issues), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette's Allow names one route's methods; the path may have more
            headers = {**(headers or {}), "Allow": allow_header(request.app, request.scope)}
        return outcome_response(single_issue(code, str(exc.detail)), exc.status_code, headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette answers this one outside every middleware, so the request id is added here
        request_id = getattr(request.state, "request_id", None)
        log.error(
            "api.unexpected", extra={"route": _route(request), "error": type(exc).__name__, "request_id": request_id}
        )
        headers = {"X-Request-Id": request_id} if request_id else None
        return outcome_response(single_issue("exception", "internal error; see the service log"), 500, headers)


def _holds(exc: RecordInvalid | InfusionFhirError) -> bool:
    """Whether the refused record holds a positive safety answer (logged: a flag, never the answer)."""
    return any(i.safety for i in exc.issues) if isinstance(exc, RecordInvalid) else bool(exc.safety)


def bearer_challenge(exc: InfusionFhirError) -> str:
    """`WWW-Authenticate` of a 401 or 403 (RFC 6750): the error code only when a token was refused."""
    if isinstance(exc, Forbidden):
        return f'Bearer error="insufficient_scope", scope="{exc.scope}"'
    error = getattr(exc, "bearer_error", None)
    return f'Bearer error="{error}"' if error else "Bearer"


RETRY_AFTER_DEFAULT_S = 5


def retry_after_s(exc: InfusionFhirError) -> int:
    """Seconds a caller should wait after a 503: the FHIR server's own Retry-After when it gave one."""
    asked = getattr(exc, "retry_after_s", None)
    return max(1, math.ceil(asked)) if asked is not None else RETRY_AFTER_DEFAULT_S


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")


class EdgeMiddleware:
    """Pure ASGI middleware: the request id (`X-Request-Id`, accepted or made, returned on every answer), oversized
    bodies refused (413), request metrics."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = {"status": 500}
        request_id = accepted_request_id(_header(scope, b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id

        async def answering_send(message: Message) -> None:  # every answer names its request, errors included
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            await send(message)

        with request_scope(request_id):
            await self._answer(scope, receive, answering_send, status_holder, started)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, status_holder: dict[str, int], started: float
    ) -> None:
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            self._observe(scope, 413, started)
            return

        received = 0
        limit = self.max_body_bytes

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"request body over {limit} bytes")
            return message

        try:
            await self.app(scope, counting_receive, send)
        finally:
            self._observe(scope, status_holder["status"], started)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = outcome_response(single_issue("too-long", f"request body over {self.max_body_bytes} bytes"), 413)
        await response(scope, receive, send)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        method = scope.get("method", "")
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.request_seconds.labels(method, route).observe(time.perf_counter() - started)


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (lower-case `name`), or None."""
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
