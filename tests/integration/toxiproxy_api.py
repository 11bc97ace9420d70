"""Toxiproxy for the fault tests: its server (tools/faults/toxiproxyctl) and its HTTP API, over httpx.

Toxiproxy is a TCP proxy: each proxy listens on a port and forwards to an upstream; toxics
(latency, reset_peer, timeout, ...) act on a stream ("upstream" = client to server, "downstream"
= server to client) of a fraction (`toxicity`) of the connections.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOXIPROXYCTL = ROOT / "tools" / "faults" / "toxiproxyctl"
TOXIPROXY_BIN = ROOT / "tools" / "faults" / ".bin" / "toxiproxy-server"
TOXIPROXY_PORT = int(os.environ.get("TOXIPROXY_PORT", "8474"))


@dataclass(frozen=True)
class Proxy:
    name: str
    listen: str  # host:port it listens on
    upstream: str


class Toxiproxy:
    """The Toxiproxy HTTP API (https://github.com/Shopify/toxiproxy#http-api)."""

    def __init__(self, api_url: str) -> None:
        self.http = httpx.Client(base_url=api_url, timeout=10, trust_env=False)

    def answers(self) -> bool:
        try:
            return self.http.get("/version").status_code == 200
        except httpx.HTTPError:
            return False

    def create(self, name: str, upstream: str, listen: str = "127.0.0.1:0") -> Proxy:
        """A proxy listening on `listen` (port 0: one the OS picks) and forwarding to `upstream`."""
        response = self.http.post(
            "/proxies", json={"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return Proxy(body["name"], body["listen"], body["upstream"])

    def delete(self, name: str) -> None:
        response = self.http.delete(f"/proxies/{name}")
        assert response.status_code in (204, 404), response.text

    def add_toxic(
        self, proxy: str, name: str, kind: str, *, stream: str = "downstream", toxicity: float = 1.0, **attributes: Any
    ) -> dict[str, Any]:
        response = self.http.post(
            f"/proxies/{proxy}/toxics",
            json={"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def remove_toxic(self, proxy: str, name: str) -> None:
        response = self.http.delete(f"/proxies/{proxy}/toxics/{name}")
        assert response.status_code in (204, 404), response.text

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return self.http.get(f"/proxies/{proxy}/toxics").json()

    def close(self) -> None:
        self.http.close()


def toxiproxy_session() -> Iterator[Toxiproxy]:
    """Body of the session fixture: use the Toxiproxy that answers, else start ours (and stop it after).

    A missing binary is a skip locally (build it: `make test`, or `tools/faults/toxiproxyctl build`)
    and a failure under CI, as a missing FHIR server is.
    """
    api = Toxiproxy(f"http://127.0.0.1:{TOXIPROXY_PORT}")
    started = False
    if not api.answers():
        problem = None
        if not TOXIPROXY_BIN.exists():
            problem = f"Toxiproxy is not built ({TOXIPROXY_BIN}); run `tools/faults/toxiproxyctl build` or `make test`"
        else:
            up = subprocess.run([str(TOXIPROXYCTL), "up"], capture_output=True, text=True, timeout=60)
            if up.returncode != 0 or not api.answers():
                problem = f"Toxiproxy did not start: {up.stdout[-500:]} {up.stderr[-1000:]}"
            started = up.returncode == 0
        if problem:
            api.close()
            if os.environ.get("CI"):
                pytest.fail(problem)
            pytest.skip(problem)
    try:
        yield api
    finally:
        api.close()
        if started:
            subprocess.run([str(TOXIPROXYCTL), "down"], capture_output=True, timeout=60)
