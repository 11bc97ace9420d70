"""The audit hook: a pure ASGI middleware over `/v1` recording exactly one AuditEvent per request once its status is
known, before the answer leaves; when no sink can record it and the policy is `refuse`, the answer becomes a 503."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.kinds import SEGMENTS, SESSION
from service.audit import codes
from service.audit.event import Access, audit_event, outcome_of_status
from service.audit.patients import patients_scope
from service.audit.trail import AuditTrail
from service.media import FHIR_JSON
from service.outcome import single_issue
from service.request_context import Caller

PREFIX = "/v1"
RETRY_AFTER_S = 5
SUMMARY = "$monitoring-summary"


def new_event_id() -> str:
    return f"audit-{uuid.uuid4().hex}"


def now_instant() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def interaction_of(method: str, route: str | None, status: int) -> tuple[str, str]:
    """(restful-interaction, action) of a `/v1` request: a PUT answered 201 created, else updated."""
    if route is not None and route.endswith(SUMMARY):
        return (codes.OPERATION, "R") if method == "GET" else (codes.OPERATION, "C" if status == 201 else "U")
    if method == "GET":
        return codes.READ, "R"
    if method == "PUT":
        return (codes.CREATE, "C") if status == 201 else (codes.UPDATE, "U")
    if method == "DELETE":
        return codes.DELETE, "D"
    return codes.OPERATION, "E"  # $convert, the trends


def record_of(route: str | None, path_params: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, key) of the record a route names, else None."""
    key = path_params.get("key")
    if route is None or not isinstance(key, str):
        return None
    segment = route.removeprefix(PREFIX + "/").split("/", 1)[0]
    if route.endswith(SUMMARY):
        return SESSION, key
    kind = SEGMENTS.get(segment)
    return (kind, key) if kind else None


class AuditMiddleware:
    """One AuditEvent per `/v1` request (refused and failed ones too), recorded before the answer is sent."""

    def __init__(self, app: ASGIApp, *, trail: Any) -> None:
        self.app = app
        self.trail = trail
        """The AuditTrail, or a callable returning it (the app's, opened in its lifespan)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        trail = self.trail() if callable(self.trail) else self.trail
        if scope["type"] != "http" or not scope.get("path", "").startswith(PREFIX) or trail is None:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})  # inner middleware and routes write into this one dict
        answer: dict[str, Any] = {"started": False, "refused": False}

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["started"] = True
                headers = dict(message.get("headers", []))
                request_id = state.get("request_id") or _text(headers.get(b"x-request-id"))
                if not await self._record(trail, scope, message["status"], request_id, involved) and trail.refuses:
                    answer["refused"] = True
                    await _unavailable(send, request_id)
                    return
            elif answer["refused"]:
                return  # the body of the answer that became a 503
            await send(message)

        with patients_scope() as involved:
            try:
                await self.app(scope, receive, audited_send)
            except Exception:
                if not answer["started"]:  # answered 500 outside every middleware: record it here
                    await self._record(trail, scope, 500, state.get("request_id"), involved)
                raise

    async def _record(
        self, trail: AuditTrail, scope: Scope, status: int, request_id: str | None, involved: list[Any]
    ) -> bool:
        route = getattr(scope.get("route"), "path", None)
        interaction, action = interaction_of(scope.get("method", ""), route, status)
        state = scope.get("state", {})
        caller = state.get("caller")
        access = Access(
            event_id=new_event_id(),
            recorded=now_instant(),
            interaction=interaction,
            action=action,
            outcome=outcome_of_status(status),
            outcome_desc=f"HTTP {status}",
            caller=caller if isinstance(caller, Caller) else None,
            client_address=(scope.get("client") or (None,))[0],
            server_name=trail.server_name,
            server_address=(scope.get("server") or (None,))[0],
            request_id=request_id,
            record=record_of(route, scope.get("path_params") or {}),
            patients=tuple(involved),
        )
        return await trail.record(audit_event(access, trail.systems))


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value else None


async def _unavailable(send: Send, request_id: str | None) -> None:
    body = orjson.dumps(single_issue("transient", "the audit trail cannot record this request; try again later"))
    headers = [
        (b"content-type", FHIR_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
    ]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
