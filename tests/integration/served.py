"""The service in a process of its own on a free 127.0.0.1 port, for tests that need real HTTP."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

READY_WITHIN_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(command: Callable[[int], list[str]], env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Run `command(port)` (uvicorn or `infusion-fhir serve`), wait for /healthz, yield its base URL, stop it.

    Readiness is polled, not slept for; a process that exits first fails the test with its log.
    """
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(command(port), env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, process, log_path)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    with httpx.Client(timeout=5) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"the service exited ({process.returncode}):\n{log}")
            try:
                if http.get(f"{url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # poll interval
    pytest.fail(f"the service did not answer /healthz within {READY_WITHIN_S} s")
