"""A stand-in HTTP server on 127.0.0.1 for the CLI's edge cases: answers what a test tells it, records requests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Stub:
    """`answer(method, path)` -> (status, content type, body); every request is kept in `seen`."""

    answer: Callable[[str, str], tuple[int, str, bytes]]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""


@contextmanager
def stub_server(answer: Callable[[str, str], tuple[int, str, bytes]]) -> Iterator[Stub]:
    stub = Stub(answer)

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            stub.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            status, content_type, body = stub.answer(self.command, self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
