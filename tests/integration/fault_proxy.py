"""An HTTP/1.1 fault-injecting proxy for tests: 429 (with Retry-After), 503, and routes to faulty upstreams.

It listens on 127.0.0.1 (an ephemeral port) in a thread and event loop of its own, so a CLI in a
subprocess and an app in the test's own event loop can both go through it. For each request one
draw from a seeded RNG decides, at the configured rates, to:

* answer 429 with `Retry-After: N`, or 503 (without Retry-After: the client's own backoff applies);
* forward it over one of the `routes`: another upstream, such as a Toxiproxy listener whose
  toxic resets the connection or never answers (the fault itself comes from Toxiproxy; the
  proxy's seeded draw only decides which requests meet it, so every run injects the same faults
  into the same requests, in the order they arrive);
* else forward it to the main upstream (in the fault tests, a Toxiproxy listener adding latency).

Each upstream request goes on a fresh connection, closed by the proxy after the answer. When the
upstream fails (reset, closed without an answer) the proxy resets the client's connection (TCP
RST), so the client meets the fault as it would without the proxy in between; when the client
gives up first (its read timeout), the request is recorded as "abandoned".

Every request is recorded as an `Exchange` (when it arrived and was answered, method, path,
SHA-256 of its body, route, what it got), so tests can check how the client retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import h11
import httpx

# Hop-by-hop and framing headers are not forwarded as they came: bodies are sent whole, re-framed.
_NOT_FORWARDED = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"content-length",
    b"accept-encoding",
    b"content-encoding",
}
_OUTCOME = (
    b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient",'
    b'"diagnostics":"fault injected by the test proxy"}]}'
)
TEMPORARY = {"408", "429", "500", "502", "503", "504", "dropped", "abandoned"}
MAIN = "main"


@dataclass(frozen=True)
class Exchange:
    """One request as the proxy saw it, and what came of it."""

    arrived: float  # time.monotonic() when the whole request had been read
    answered: float  # time.monotonic() when the answer was written, the client reset, or the client gone
    method: str
    path: str
    body_sha256: str
    route: str  # "429" / "503" (made up here), MAIN, or the name of a route
    answer: str  # the status sent ("429", "200", ...), "dropped" (upstream failed, client reset)
    #              or "abandoned" (the client closed the connection before an answer came)
    retry_after: int | None = None
    error: str | None = None  # the upstream error behind a "dropped"

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies a request and its retries: method, path and body."""
        return (self.method, self.path, self.body_sha256)

    @property
    def failed(self) -> bool:
        """An answer a client should retry (a temporary status, or none at all)."""
        return self.answer in TEMPORARY

    @property
    def injected(self) -> bool:
        return self.route in ("429", "503")


class FaultProxy:
    """`with FaultProxy(upstream, rate_429=.3, rate_503=.1, routes={...}) as proxy:` then use `proxy.url`."""

    def __init__(
        self,
        upstream: str,
        *,
        rate_429: float = 0.0,
        rate_503: float = 0.0,
        retry_after_s: int = 1,
        routes: Mapping[str, tuple[float, str]] | None = None,
        seed: int = 0,
        upstream_timeout_s: float = 120.0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.rate_429 = rate_429
        self.rate_503 = rate_503
        self.retry_after_s = retry_after_s
        self.routes = {name: (rate, url.rstrip("/")) for name, (rate, url) in (routes or {}).items()}
        self.upstream_timeout_s = upstream_timeout_s
        self.rng = random.Random(seed)
        self.port = 0
        self._lock = threading.Condition()
        self._log: list[Exchange] = []
        self._in_flight = 0
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._http: httpx.AsyncClient | None = None

    # -- control (from the test's thread) -----------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10) or self._error:
            raise RuntimeError(f"fault proxy did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop and self._stop and self._thread and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=15)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no request is in flight (each one recorded); fail after `timeout` seconds."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._in_flight == 0, timeout=timeout):
                raise AssertionError(f"fault proxy still has {self._in_flight} request(s) in flight after {timeout} s")

    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._log)

    # -- the server (in its own thread and event loop) ----------------------------------------

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start(); a test must never hang on it
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        connections: set[asyncio.Task[None]] = set()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await self._serve(reader, writer)
            finally:
                connections.discard(task)

        limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
        timeout = httpx.Timeout(self.upstream_timeout_s, connect=10)
        async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as self._http:
            server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            async with server:
                await self._stop.wait()
                server.close()
                for task in list(connections):
                    task.cancel()
                await asyncio.gather(*connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await _read_request(conn, reader)
                if request is None:
                    return
                with self._lock:
                    self._in_flight += 1
                try:
                    if not await self._exchange(conn, reader, writer, *request):
                        return
                finally:
                    with self._lock:
                        self._in_flight -= 1
                        self._lock.notify_all()
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            return
        finally:
            writer.close()

    async def _exchange(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        head: h11.Request,
        body: bytes,
    ) -> bool:
        """Answer one request; False when the connection is finished (reset, or the client gone)."""
        arrived = time.monotonic()
        seen = dict(
            arrived=arrived,
            method=head.method.decode(),
            path=head.target.decode(),
            body_sha256=hashlib.sha256(body).hexdigest(),
        )
        route, upstream = self._draw()
        if upstream is None:
            status = int(route)
            headers = [(b"retry-after", str(self.retry_after_s).encode())] if status == 429 else []
            try:
                await _respond(conn, writer, status, [*headers, (b"content-type", b"application/fhir+json")], _OUTCOME)
            finally:
                self._record(
                    Exchange(
                        answered=time.monotonic(),
                        route=route,
                        answer=route,
                        retry_after=self.retry_after_s if status == 429 else None,
                        **seen,
                    )
                )
            return True

        forward = asyncio.ensure_future(self._forward(upstream, head, body))
        client_gone = asyncio.ensure_future(reader.read(65536))  # HTTP/1.1 clients send nothing until answered
        try:
            await asyncio.wait({forward, client_gone}, return_when=asyncio.FIRST_COMPLETED)
            if not forward.done():
                data = _client_data(client_gone)
                if not data:  # EOF: the client gave up waiting (e.g. its read timeout)
                    forward.cancel()
                    self._record(Exchange(answered=time.monotonic(), route=route, answer="abandoned", **seen))
                    return False
                conn.receive_data(data)  # a pipelined request: kept for the next cycle
                await asyncio.wait({forward})
            elif client_gone.done():
                conn.receive_data(_client_data(client_gone))  # more data, or EOF (b"") that ends the connection
        finally:
            client_gone.cancel()
            await asyncio.wait({client_gone})  # one reader at a time: the next read must not meet this one
        try:
            response = forward.result()
        except (httpx.HTTPError, OSError) as exc:
            _reset(writer)
            self._record(
                Exchange(answered=time.monotonic(), route=route, answer="dropped", error=type(exc).__name__, **seen)
            )
            return False
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _NOT_FORWARDED]
        try:
            await _respond(conn, writer, response.status_code, headers, response.content)
        finally:  # recorded even if the client is gone by now
            self._record(Exchange(answered=time.monotonic(), route=route, answer=str(response.status_code), **seen))
        return True

    def _draw(self) -> tuple[str, str | None]:
        """(route, upstream URL); upstream None for an answer made up here ("429"/"503")."""
        with self._lock:
            roll = self.rng.random()
            edge = self.rate_429
            if roll < edge:
                return "429", None
            edge += self.rate_503
            if roll < edge:
                return "503", None
            for name, (rate, url) in self.routes.items():
                edge += rate
                if roll < edge:
                    return name, url
            return MAIN, self.upstream

    async def _forward(self, upstream: str, head: h11.Request, body: bytes) -> httpx.Response:
        headers = [(k, v) for k, v in head.headers if k.lower() not in _NOT_FORWARDED]
        # No "Connection: close": the server must not close first, or Toxiproxy's timeout toxic (which
        # drops the answer and waits for either side to close) would end at once instead of hanging.
        headers.append((b"accept-encoding", b"identity"))
        return await self._http.request(
            head.method.decode(), upstream + head.target.decode(), headers=headers, content=body
        )

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self._log.append(exchange)


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> tuple[h11.Request, bytes] | None:
    """The next whole request on a connection, or None when the client closed it between requests."""
    head: h11.Request | None = None
    chunks: list[bytes] = []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, b"".join(chunks)
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _respond(
    conn: h11.Connection, writer: asyncio.StreamWriter, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    if status in (204, 304):  # no body, no length
        body = b""
    else:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    data = conn.send(h11.Response(status_code=status, headers=headers))
    if body:
        data += conn.send(h11.Data(data=body))
    data += conn.send(h11.EndOfMessage())
    writer.write(data)
    await writer.drain()


def _client_data(read: asyncio.Future[bytes]) -> bytes:
    """What a finished read from the client gave; b"" when the client closed or reset the connection."""
    try:
        return read.result()
    except OSError:
        return b""


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close the client's connection with a TCP RST (SO_LINGER 0), as a failing server would."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# -- reading the log ------------------------------------------------------------------------------


def fault_kinds(exchanges: Iterable[Exchange]) -> Counter[str]:
    """Requests seen, and the faults among them by kind: "429", "503" (made up by the proxy),
    "<route> (<what came of it>)" for requests sent over a faulty route, "upstream <status>" for
    temporary failures of the main upstream itself."""
    out: Counter[str] = Counter(requests=0)
    for x in exchanges:
        out["requests"] += 1
        if x.injected:
            out[x.answer] += 1
        elif x.route != MAIN:
            out[f"{x.route} ({x.answer})"] += 1
        elif x.failed:
            out[f"upstream {x.answer}"] += 1
    return out


def retries_seen(exchanges: Iterable[Exchange]) -> tuple[int, list[Exchange]]:
    """(requests that repeat a failed one: same method, path and body; failed requests never repeated)."""
    by_arrival = sorted(exchanges, key=lambda x: x.arrived)
    retried, unanswered = 0, []
    for i, x in enumerate(by_arrival):
        if x.failed:
            if any(y.key == x.key for y in by_arrival[i + 1 :]):
                retried += 1
            else:
                unanswered.append(x)
    return retried, unanswered
