"""The one FHIR client: every request to the FHIR server goes over the wire here.

One long-lived `httpx.AsyncClient`, FHIR JSON headers, the single retry policy, and the
translation of HTTP answers into `service.errors`. Nothing here knows about clinic records.
Identifier searches go by POST `_search` with a form body, so MRNs never appear in URLs.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
import orjson

from service.errors import Conflict, FhirRejected, FhirUnavailable, InfusionFhirError, NotFound
from service.retry import RetryPolicy, is_temporary

log = logging.getLogger("infusion_fhir.fhir")

FHIR_JSON = "application/fhir+json"


def build_http_client(
    base_url: str,
    *,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 60.0,
    max_connections: int = 32,
    bearer_token: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The shared AsyncClient: FHIR JSON headers, timeouts, connection limits, optional auth."""
    headers = {"Accept": FHIR_JSON, "User-Agent": "infusion-fhir"}
    if bearer_token:
        headers["Authorization"] = f"Bearer {bearer_token}"
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/") + "/",
        headers=headers,
        timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        transport=transport,
    )


class CallObserver(Protocol):
    """Receives one event per FHIR request and per retry (metrics hook up here)."""

    def fhir_call(self, operation: str, outcome: str, seconds: float) -> None: ...

    def fhir_retry(self, operation: str) -> None: ...


class _NoObserver:
    def fhir_call(self, operation: str, outcome: str, seconds: float) -> None:
        pass

    def fhir_retry(self, operation: str) -> None:
        pass


class FhirClient:
    """FHIR REST operations over one AsyncClient, with retries for idempotent requests only."""

    def __init__(
        self, http: httpx.AsyncClient, retry: RetryPolicy | None = None, observer: CallObserver | None = None
    ) -> None:
        self.http = http
        self.retry = retry or RetryPolicy()
        self.observer = observer or _NoObserver()
        self.stats: Counter[str] = Counter()

    # -- operations ---------------------------------------------------------------------------

    async def capabilities(self, *, retry: bool = True) -> dict[str, Any]:
        """The server's CapabilityStatement (`GET /metadata`); probes pass `retry=False`."""
        return await self._json("GET", "metadata", idempotent=retry)

    async def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """One resource by id; raises NotFound when absent or deleted."""
        return await self._json("GET", f"{resource_type}/{resource_id}", idempotent=True)

    async def read_or_none(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """One resource by id, or None when absent or deleted."""
        try:
            return await self.read(resource_type, resource_id)
        except NotFound:
            return None

    async def update(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """PUT a resource to its own id (update-as-create); idempotent."""
        path = f"{resource['resourceType']}/{resource['id']}"
        return await self._json("PUT", path, body=resource, idempotent=True)

    async def delete(self, resource_type: str, resource_id: str) -> None:
        """Logical delete (history is kept); deleting what is gone is not an error."""
        try:
            await self._send("DELETE", f"{resource_type}/{resource_id}", idempotent=True)
        except NotFound:
            pass

    async def transaction(self, bundle: Mapping[str, Any] | bytes, *, idempotent: bool) -> dict[str, Any]:
        """POST a transaction Bundle; retried only when the caller says every entry is idempotent."""
        return await self._json("POST", "", body=bundle, idempotent=idempotent)

    async def search(self, resource_type: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """All matching resources (following `next` pages), by POST `_search` with a form body."""
        matches, _ = await self.search_with_includes(resource_type, params)
        return matches

    async def search_with_includes(
        self, resource_type: str, params: Mapping[str, str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(matches, `_include`d resources) over every page of a search (POST `_search`, form body)."""
        bundle = await self._json("POST", f"{resource_type}/_search", form=dict(params), idempotent=True)
        matches: list[dict[str, Any]] = []
        included: list[dict[str, Any]] = []
        while True:
            for entry in bundle.get("entry", []):
                mode = entry.get("search", {}).get("mode", "match")
                (matches if mode == "match" else included).append(entry["resource"])
            next_url = _next_link(bundle)
            if not next_url:
                return matches, included
            bundle = await self._json("GET", next_url, idempotent=True)

    async def validate(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """`$validate` a resource; returns the OperationOutcome whatever its verdict."""
        path = f"{resource['resourceType']}/$validate"
        response = await self._send("POST", path, body=resource, idempotent=True, accept_status={412, 422})
        return _decode(response)

    # -- the wire -----------------------------------------------------------------------------

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _decode(await self._send(method, path, **kwargs))

    async def _send(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        body: Mapping[str, Any] | bytes | None = None,
        form: dict[str, str] | None = None,
        accept_status: frozenset[int] | set[int] = frozenset(),
    ) -> httpx.Response:
        content: bytes | None = None
        headers: dict[str, str] = {}
        if body is not None:
            content = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = FHIR_JSON
        operation = _operation(method, path)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            error: Exception | None = None
            sent = time.monotonic()
            try:
                response = await self.http.request(method, path, content=content, data=form, headers=headers)
            except httpx.HTTPError as exc:
                error = exc
            outcome = str(response.status_code) if response is not None else type(error).__name__
            self.observer.fhir_call(operation, outcome, time.monotonic() - sent)
            if response is not None and (response.is_success or response.status_code in accept_status):
                self.stats[f"{operation}.ok"] += 1
                log.debug("fhir.response", extra={"operation": operation, "status": response.status_code, "attempt": attempt})
                return response
            temporary = is_temporary(response, error)
            elapsed = time.monotonic() - started
            if temporary and idempotent and attempt < self.retry.max_attempts:
                delay = self.retry.delay(attempt, response)
                if elapsed + delay <= self.retry.max_total_s:
                    self.stats["retries"] += 1
                    self.observer.fhir_retry(operation)
                    log.warning(
                        "fhir.retry",
                        extra={
                            "operation": operation,
                            "status": response.status_code if response is not None else None,
                            "error": type(error).__name__ if error else None,
                            "attempt": attempt,
                            "delay_s": round(delay, 3),
                        },
                    )
                    await self.retry.sleep(delay)
                    continue
            self.stats[f"{operation}.failed"] += 1
            raise _classify(operation, response, error, attempt)


def _operation(method: str, path: str) -> str:
    """A PHI-free name for a request: method and resource type (never ids or query values)."""
    if not path or path.startswith("http") or path.startswith("?"):
        return f"{method} /"
    head = path.split("?", 1)[0].split("/")
    return f"{method} {head[0]}{'/' + head[1] if len(head) > 1 and head[1].startswith(('$', '_')) else ''}"


def _classify(
    operation: str, response: httpx.Response | None, error: Exception | None, attempts: int
) -> InfusionFhirError:
    if response is None:
        return FhirUnavailable(
            f"FHIR server unreachable for {operation} after {attempts} attempt(s): {type(error).__name__}"
        )
    status = response.status_code
    outcome = _outcome_or_none(response)
    kwargs = {"status_code": status, "operation_outcome": outcome}
    if status in (404, 410):
        return NotFound(f"{operation}: not found on the FHIR server ({status})", **kwargs)
    if status in (409, 412):
        return Conflict(f"{operation}: conflict on the FHIR server ({status})", **kwargs)
    if status in (401, 403):
        return FhirRejected(f"{operation}: the FHIR server refused our credentials ({status})", **kwargs)
    if 400 <= status < 500 and status not in (408, 429):
        return FhirRejected(f"{operation}: the FHIR server rejected the request ({status})", **kwargs)
    return FhirUnavailable(f"{operation}: FHIR server answered {status} after {attempts} attempt(s)", **kwargs)


def _decode(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise FhirUnavailable(
            f"FHIR server sent a body that is not JSON ({response.status_code})", status_code=response.status_code
        ) from exc


def _outcome_or_none(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" else None


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link", []):
        if link.get("relation") == "next":
            return link.get("url")
    return None
