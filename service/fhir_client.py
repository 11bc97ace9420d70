"""The one FHIR client: every request to the FHIR server goes over the wire here.

One long-lived `httpx.AsyncClient`, FHIR JSON headers, the single retry policy, and the
translation of HTTP answers into `service.errors`. Nothing here knows about clinic records.
Identifier searches go by POST `_search` with a form body, so MRNs never appear in URLs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import orjson

from service.errors import (
    Conflict,
    FhirAuthRefused,
    FhirLacksCapability,
    FhirMisconfigured,
    FhirRejected,
    FhirUnavailable,
    InfusionFhirError,
    NotFound,
)
from service.media import FHIR_JSON
from service.request_context import HAPI_KEEPS, REQUEST_ID_HEADER, current_request_id
from service.retry import RetryPolicy, is_temporary, parse_retry_after
from service.smart import SmartBackendAuth, load_signing_key

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger("infusion_fhir.fhir")
CURRENT_CHUNK = 500
"""Ids per `_id` search of the diff's read, asked for with `Cache-Control: no-store, max-results=N`.
HAPI answers that many up to its maximum page size (`hapi.paging.max-page-size`, 500 in ours; 100
when max-results is not given); a search costs it more than the resources in it (bench/NOTES.md).
A server that answers fewer says so in `total`, and the client then asks in chunks that size."""
CURRENT_IN_FLIGHT = 4
"""`current` searches in flight at once per client: more only queue in the connection pool, whose
bookkeeping then costs the client CPU for nothing (measured: bench/NOTES.md)."""


def build_http_client(
    base_url: str,
    *,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 60.0,
    max_connections: int = 32,
    bearer_token: str | None = None,
    auth: httpx.Auth | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The shared AsyncClient: FHIR JSON headers, timeouts, connection limits, optional auth
    (a static bearer token, or an `httpx.Auth` such as SMART Backend Services)."""
    headers = {"Accept": FHIR_JSON, "User-Agent": "infusion-fhir"}
    if bearer_token:
        headers["Authorization"] = f"Bearer {bearer_token}"
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/") + "/",
        headers=headers,
        timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        auth=auth,
        transport=transport,
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy the settings describe."""
    return RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        max_total_s=settings.retry_max_total_s,
        backoff_base_s=settings.retry_backoff_base_s,
        backoff_cap_s=settings.retry_backoff_cap_s,
        retry_after_cap_s=settings.retry_after_cap_s,
    )


@asynccontextmanager
async def open_fhir_client(
    settings: Settings,
    *,
    max_connections: int | None = None,
    observer: CallObserver | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[FhirClient]:
    """The one way to get a FHIR client: from the settings (base URL, timeouts, credentials, retries).

    The app's lifespan, `sync`, `validate` and anything later open it here, so every caller sends
    the same credentials and follows the same retry policy. With `smart_client_id` set, the
    credentials are SMART Backend Services access tokens (`service.smart`), fetched over a small
    client of their own (no FHIR headers) through the same transport.
    """
    token = settings.fhir_bearer_token.get_secret_value() if settings.fhir_bearer_token else None
    timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
    async with AsyncExitStack() as stack:
        auth: httpx.Auth | None = None
        if settings.smart_client_id and settings.smart_private_key_file:
            token_http = await stack.enter_async_context(
                httpx.AsyncClient(headers={"User-Agent": "infusion-fhir"}, timeout=timeout, transport=transport)
            )
            auth = SmartBackendAuth(
                load_signing_key(settings.smart_private_key_file, settings.smart_key_id),
                client_id=settings.smart_client_id,
                scopes=settings.smart_scopes,
                fhir_base_url=settings.fhir_base_url,
                token_url=settings.smart_token_url,
                http=token_http,
            )
            token = None
        http = await stack.enter_async_context(
            build_http_client(
                settings.fhir_base_url,
                connect_timeout_s=settings.connect_timeout_s,
                read_timeout_s=settings.read_timeout_s,
                max_connections=max_connections or settings.max_connections,
                bearer_token=token,
                auth=auth,
                transport=transport,
            )
        )
        client = FhirClient(http, retry_policy(settings), observer=observer)
        client.max_updates = settings.transaction_max_updates
        yield client


@asynccontextmanager
async def open_audit_store_client(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[FhirClient]:
    """A client of the FHIR audit store (`INFUSION_FHIR_AUDIT_FHIR_URL`, docs/security.md): the same timeouts and
    retry policy as the FHIR server's, its own bearer token and none of the FHIR server's credentials."""
    if not settings.audit_fhir_url:
        raise ValueError("INFUSION_FHIR_AUDIT_FHIR_URL is not set")
    token = settings.audit_fhir_bearer_token
    async with build_http_client(
        settings.audit_fhir_url,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        max_connections=4,
        bearer_token=token.get_secret_value() if token else None,
        transport=transport,
    ) as http:
        yield FhirClient(http, retry_policy(settings))


def capability_problem(capability: dict[str, Any]) -> str | None:
    """Why a CapabilityStatement rules a server out for us, or None when it is fit."""
    if capability.get("resourceType") != "CapabilityStatement":
        return "the FHIR base URL's /metadata did not return a CapabilityStatement: not a FHIR server"
    version = str(capability.get("fhirVersion", ""))
    if not version.startswith("4.0."):
        return f"the FHIR server speaks FHIR {version or 'unknown'}; infusion-fhir needs R4 (4.0.x)"
    interactions = {i.get("code") for rest in capability.get("rest", []) for i in rest.get("interaction", [])}
    if "transaction" not in interactions:
        return "the FHIR server does not support transaction Bundles"
    return None


OPTIONAL_CAPABILITIES = {
    "validate": "`infusion-fhir validate` (the server's check of every mapped resource) stops with exit 2; "
    "writes and reads are not affected",
}
"""Operations the service uses where the server has them, by name, with what their absence costs."""


def missing_capabilities(capability: dict[str, Any]) -> list[dict[str, str]]:
    """The optional operations a fit server's CapabilityStatement does not declare (at system or any resource level),
    each with what its absence costs (docs/compatibility.md: Medplum's engine declares none, and has no $validate)."""
    declared = {
        op.get("name")
        for rest in capability.get("rest", [])
        for holder in (rest, *rest.get("resource", []))
        for op in holder.get("operation", [])
    }
    return [
        {"capability": f"${name}", "consequence": consequence}
        for name, consequence in OPTIONAL_CAPABILITIES.items()
        if name not in declared
    ]


def with_source(bundle: Mapping[str, Any], source: str) -> dict[str, Any]:
    """`bundle` with `meta.source` = `source` on every entry's resource that has none (a copy; entries without a
    resource, DELETEs, as they are)."""
    entries = []
    for entry in bundle.get("entry", []):
        resource = entry.get("resource")
        if isinstance(resource, Mapping) and not (resource.get("meta") or {}).get("source"):
            entry = {**entry, "resource": {**resource, "meta": {**(resource.get("meta") or {}), "source": source}}}
        entries.append(entry)
    return {**bundle, "entry": entries}


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
        self._current_slots = asyncio.Semaphore(CURRENT_IN_FLIGHT)
        self.current_chunk = CURRENT_CHUNK
        """Ids per `current` search: CURRENT_CHUNK, or the most this server was seen to answer in one."""
        self.tells_creates = False
        """Whether this server was seen to tell a create-by-PUT from an update in its transaction answers (a
        201, or HAPI's storage codes): until then, a writer reads what it holds first (`service.sync.outcomes`)."""
        self.max_updates: int | None = None
        """The most updates (PUTs) the server takes in one transaction, when set (`service.sync.limits`)."""
        self.updates_refused_at: int | None = None
        """The fewest of our PUTs in a transaction this server refused for holding too many, when it did."""
        self.quiet_deletes = False
        """Whether this server was seen to answer with HAPI's storage codes, and so to take a DELETE of what it does
        not hold (`SUCCESSFUL_DELETE_NOT_FOUND`): until then, a stale part is read before it is deleted
        (`service.sync.deletes`)."""

    # -- operations ---------------------------------------------------------------------------

    async def capabilities(self, *, retry: bool = True) -> dict[str, Any]:
        """The server's CapabilityStatement (`GET /metadata`); probes pass `retry=False`."""
        return await self._json("GET", "metadata", idempotent=retry)

    async def require_r4(self, *, retry: bool = True) -> dict[str, Any]:
        """The CapabilityStatement of a usable FHIR R4 server with transactions; FhirMisconfigured
        (or FhirAuthRefused / FhirUnavailable) when the configured server is not one."""
        capability = await self.capabilities(retry=retry)
        problem = capability_problem(capability)
        if problem:
            raise FhirMisconfigured(problem)
        return capability

    async def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """One resource by id; raises NotFound when absent or deleted."""
        return await self._json("GET", f"{resource_type}/{resource_id}", idempotent=True)

    async def read_or_none(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """One resource by id, or None when absent or deleted."""
        try:
            return await self.read(resource_type, resource_id)
        except NotFound:
            return None

    async def transaction(self, bundle: Mapping[str, Any] | bytes, *, idempotent: bool) -> dict[str, Any]:
        """POST a transaction Bundle; retried only when the caller says every entry is idempotent.

        Each resource written carries the request id in `meta.source` (`#` + its first `HAPI_KEEPS` characters), as
        HAPI records it from the `X-Request-Id` header; a server that ignores the header (Medplum's engine,
        docs/compatibility.md row 7) then keeps it too. A resource that names a source of its own keeps it."""
        request_id = current_request_id()
        if request_id is not None and isinstance(bundle, Mapping):
            bundle = with_source(bundle, f"#{request_id[:HAPI_KEEPS]}")
        return await self._json("POST", "", body=bundle, idempotent=idempotent)

    async def search(self, resource_type: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """All matching resources (following `next` pages), by POST `_search` with a form body."""
        matches, _ = await self.search_with_includes(resource_type, params)
        return matches

    async def search_with_includes(
        self, resource_type: str, params: Mapping[str, str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(matches, `_include`d resources) over every page of a search (POST `_search`, form body).

        A server that answers fewer matches than its `total` and gives no `next` link (Medplum's engine with
        `_count`: docs/compatibility.md, row 8) is asked for the rest with `_offset`; FhirLacksCapability if it
        still does not give them. A search never returns part of its matches as if they were all."""
        bundle = await self._json("POST", f"{resource_type}/_search", form=dict(params), idempotent=True)
        total, paged = bundle.get("total"), _next_link(bundle) is not None
        matches: list[dict[str, Any]] = []
        included: list[dict[str, Any]] = []
        while True:
            for entry in bundle.get("entry", []):
                (matches if _is_match(entry) else included).append(entry["resource"])
            next_url = _next_link(bundle)
            if next_url:
                bundle = await self._json("GET", next_url, idempotent=True)
                continue
            if paged or not isinstance(total, int) or len(matches) >= total:
                return matches, included
            before = len(matches)
            form = {**params, "_offset": str(before)}
            bundle = await self._json("POST", f"{resource_type}/_search", form=form, idempotent=True)
            held = {(m.get("resourceType"), m.get("id")) for m in matches}
            fresh = [
                e
                for e in bundle.get("entry", [])
                if not _is_match(e) or (e["resource"].get("resourceType"), e["resource"].get("id")) not in held
            ]
            if not any(_is_match(e) for e in fresh):
                raise FhirLacksCapability(
                    f"POST {resource_type}/_search: the FHIR server answered {before} of {total} matches, with no "
                    "next page, and _offset gave no more"
                )
            bundle = {**bundle, "entry": fresh}

    async def current(self, resource_type: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Of these ids, the resources the server holds now, for a diff: `_id` searches of at most
        `current_chunk` ids each, CURRENT_IN_FLIGHT at a time, uncached (`Cache-Control: no-store`).

        no-store asks the server not to keep a result set (HAPI then answers from the database at
        once, and its per-search cost halves here, BENCHMARKS.md section 5), and max-results asks
        for the whole chunk in that one answer. A server that pages anyway is followed. One that
        answers fewer than it matched with no next page (a capped answer, told by `total`, which
        `_total=accurate` asks for) has the rest asked again, and later searches ask no more ids
        than it answered. An id left unanswered otherwise reads as "not held": the caller writes
        it, so a short answer costs a write, never a skip.
        """
        found: list[dict[str, Any]] = []
        pending = list(ids)
        while pending:  # each round answers at least one id per chunk, or ends
            size = self.current_chunk
            chunks = [pending[i : i + size] for i in range(0, len(pending), size)]
            pending = []
            for chunk, (matches, total) in zip(
                chunks, await asyncio.gather(*(self._current_chunk(resource_type, c) for c in chunks)), strict=True
            ):
                found += matches
                if matches and total is not None and len(matches) < min(total, len(chunk)):  # capped
                    self._capped_at(len(matches))
                    answered = {m.get("id") for m in matches}
                    pending += [i for i in chunk if i not in answered]
        return found

    async def _current_chunk(self, resource_type: str, ids: Sequence[str]) -> tuple[list[dict[str, Any]], int | None]:
        """One `current` search: (matches over every page, the server's `total` if it gave one)."""
        form = {"_id": ",".join(ids), "_count": str(len(ids)), "_total": "accurate"}
        async with self._current_slots:
            response = await self._send(
                "POST",
                f"{resource_type}/_search",
                form=form,
                idempotent=True,
                headers={"Cache-Control": f"no-store, max-results={len(ids)}"},
            )
        bundle = _decode(response)
        total = bundle.get("total")
        matches: list[dict[str, Any]] = []
        while True:
            matches += [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") != "include"]
            next_url = _next_link(bundle)
            if not next_url:
                return matches, total if isinstance(total, int) else None
            bundle = await self._json("GET", next_url, idempotent=True)

    def _capped_at(self, answered: int) -> None:
        if answered < self.current_chunk:
            self.current_chunk = answered
            log.warning("fhir.search_capped", extra={"operation": "current", "ids_per_search": answered})

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
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        content: bytes | None = None
        headers = dict(headers or {})
        if (request_id := current_request_id()) is not None:  # HAPI keeps it in the resources' `meta.source`
            headers[REQUEST_ID_HEADER] = request_id
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
                log.debug(
                    "fhir.response", extra={"operation": operation, "status": response.status_code, "attempt": attempt}
                )
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
    error_class: type[InfusionFhirError]
    if status in (401, 403):
        error_class, text = FhirAuthRefused, f"the FHIR server refused the service's credentials ({status})"
    elif status == 501 or (status in (404, 405) and "/$" in operation):
        error_class, text = FhirLacksCapability, _lacking(operation, status)
    elif status == 404 and _addresses_the_server(operation):
        error_class, text = FhirMisconfigured, "the FHIR base URL answered 404: it is not the base of a FHIR server"
    elif status in (404, 410):
        error_class, text = NotFound, f"not found on the FHIR server ({status})"
    elif status in (409, 412):
        error_class, text = Conflict, f"conflict on the FHIR server ({status})"
    elif 400 <= status < 500 and status not in (408, 429):
        error_class, text = FhirRejected, f"the FHIR server rejected the request ({status})"
    else:
        error_class, text = FhirUnavailable, f"FHIR server answered {status} after {attempts} attempt(s)"
    error = error_class(f"{operation}: {text}", status_code=status, operation_outcome=_outcome_or_none(response))
    if isinstance(error, FhirUnavailable):
        error.retry_after_s = parse_retry_after(response.headers.get("Retry-After"))
    return error


def _lacking(operation: str, status: int) -> str:
    """What a server that answered `status` to an operation (`$name`) or interaction lacks, by name."""
    name = operation.rpartition("/")[2]
    if name.startswith("$"):
        return f"the FHIR server has no {name} operation (it answered {status})"
    return f"the FHIR server does not implement this interaction (it answered {status})"


def _addresses_the_server(operation: str) -> bool:
    """A 404 to these means the base URL is wrong, not that a resource is missing."""
    method, _, path = operation.partition(" ")
    return path in ("/", "metadata") or path.endswith("/_search")


def _decode(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise FhirMisconfigured(
            f"the FHIR base URL answered {response.status_code} with a body that is not JSON: not a FHIR server",
            status_code=response.status_code,
        ) from exc
    if not isinstance(body, dict):
        raise FhirMisconfigured("the FHIR base URL answered JSON that is not a FHIR resource: not a FHIR server")
    return body


def _outcome_or_none(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" else None


def _is_match(entry: Mapping[str, Any]) -> bool:
    """Whether a searchset entry is a match (its `search.mode`, `match` when absent), not an `_include`d resource."""
    return bool(entry.get("search", {}).get("mode", "match") == "match")


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link", []):
        if link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None
