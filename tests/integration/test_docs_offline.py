"""`/docs` (Swagger UI) and `/redoc` render in a real browser on a network that reaches nothing but this machine.

The service runs under uvicorn on a free 127.0.0.1 port; headless Chromium (Debian's `chromium`,
installed by `tools/ensure-chromium`, driven by Playwright) opens the pages with every request to a
host other than 127.0.0.1/localhost aborted and recorded, and host names other than localhost
unresolvable. A page that tried to reach outside fails the test, as does one that lists no
operations. The one outside URL allowed to be *attempted* is ReDoc's footer logo, which the page's
Content-Security-Policy refuses inside the browser (no request leaves), see service/routes/docs.py.
Under CI (the `CI` variable set) a missing browser is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Request, Route, sync_playwright

from service.app import create_app
from service.settings import Settings

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
# Nothing but localhost and 127.0.0.1 resolves (other IP literals are caught by the route below).
HOST_RESOLVER_RULES = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"
READY_TIMEOUT_S = 20.0
# Hard-coded in redoc.standalone.js ("API docs by Redocly"); refused by the page's CSP, never fetched.
REFUSED_BY_CSP_EXPECTED = {"/redoc": {"https://cdn.redoc.ly/redoc/logo-mini.svg"}}
PAGE_TIMEOUT_MS = 30_000


def _chromium() -> str:
    """The system Chromium: $CHROMIUM, else `chromium` or `chromium-browser` on PATH."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    message = "no Chromium on PATH (run tools/ensure-chromium, or set CHROMIUM)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The service under uvicorn in a thread, on a socket bound to a free 127.0.0.1 port; ready once /healthz answers."""
    # No FHIR call is made by the docs pages; the client is pointed at a closed local port.
    app = create_app(Settings(FHIR_BASE_URL="http://127.0.0.1:9/fhir"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, thread)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait_ready(url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if not thread.is_alive():
                pytest.fail("uvicorn stopped before answering /healthz")
            try:
                if client.get(f"{url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # poll interval, not a wait for readiness
    pytest.fail(f"uvicorn did not answer {url}/healthz within {READY_TIMEOUT_S:.0f} s")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = _chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=[HOST_RESOLVER_RULES, "--no-proxy-server"]
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class OfflinePage:
    """A page whose requests outside localhost are aborted; what it tried and what went wrong is kept."""

    page: Page
    blocked: list[str] = field(default_factory=list)
    refused_by_csp: set[str] = field(default_factory=set)
    local_failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def check_stayed_local(self, path: str) -> None:
        assert self.blocked == [], f"the page tried to reach outside this machine: {self.blocked}"
        unexpected = self.refused_by_csp - REFUSED_BY_CSP_EXPECTED.get(path, set())
        assert not unexpected, f"the page tried to reach outside (refused by its CSP): {sorted(unexpected)}"
        assert self.local_failures == [], f"local requests failed: {self.local_failures}"
        assert self.errors == [], f"JavaScript errors on the page: {self.errors}"


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[OfflinePage]:
    context = browser.new_context(service_workers="block", viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    offline = OfflinePage(page)

    def only_local(route: Route, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob") or parts.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            offline.blocked.append(request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_local)
    page.on("response", lambda r: r.status >= 400 and offline.local_failures.append(f"{r.status} {r.url}"))

    def failed(request: Request) -> None:
        if request.failure == "csp":
            offline.refused_by_csp.add(request.url)
        elif urlsplit(request.url).hostname in LOCAL_HOSTS:
            offline.local_failures.append(f"{request.failure} {request.url}")

    page.on("requestfailed", failed)
    page.on("pageerror", lambda exc: offline.errors.append(str(exc)))
    try:
        yield offline
    finally:
        context.close()


def _schema_operations(base_url: str) -> set[str]:
    paths = httpx.get(f"{base_url}/openapi.json", timeout=10).json()["paths"]
    return {f"{method.upper()} {path}" for path, item in paths.items() for method in item}


def test_swagger_ui_lists_every_operation_offline(base_url: str, offline_page: OfflinePage, tmp_path: Path) -> None:
    page = offline_page.page
    page.goto(f"{base_url}/docs", wait_until="networkidle")
    offline_page.check_stayed_local("/docs")  # first: a CDN page would otherwise only time out below
    page.locator(".opblock").first.wait_for()
    listed = {
        " ".join(text.replace("\u200b", "").split())
        for text in page.locator(".opblock .opblock-summary").evaluate_all(
            """blocks => blocks.map(b => b.querySelector('.opblock-summary-method').textContent + ' '
                 + (b.querySelector('.opblock-summary-path').dataset.path
                    || b.querySelector('.opblock-summary-path').textContent))"""
        )
    }
    page.screenshot(path=tmp_path / "docs.png", full_page=True)
    print(f"screenshot: {tmp_path / 'docs.png'}")

    assert {"PUT /v1/infusion-sessions/{key}", "POST /v1/$convert"} <= listed
    assert listed == _schema_operations(base_url)
    assert page.title() == "infusion-fhir - Swagger UI"
    offline_page.check_stayed_local("/docs")


def test_redoc_lists_every_operation_offline(base_url: str, offline_page: OfflinePage, tmp_path: Path) -> None:
    page = offline_page.page
    page.goto(f"{base_url}/redoc", wait_until="networkidle")
    offline_page.check_stayed_local("/redoc")
    operations = page.locator("[data-section-id^='operation/']")
    failure = page.get_by_text("Something went wrong")  # ReDoc's panel when it cannot read the schema
    operations.first.or_(failure).wait_for()
    page.screenshot(path=tmp_path / "redoc.png")
    print(f"screenshot: {tmp_path / 'redoc.png'}")

    assert failure.count() == 0, f"ReDoc could not render the schema: {page.locator('redoc').inner_text()[:300]}"
    assert operations.count() == len(_schema_operations(base_url))
    text = page.locator("redoc").inner_text()
    assert "/v1/infusion-sessions/{key}" in text
    assert "/v1/$convert" in text
    offline_page.check_stayed_local("/redoc")


def test_docs_pages_reference_only_local_urls(base_url: str) -> None:
    """The HTML itself names no other host: no CDN script, stylesheet, font or favicon."""
    for path in ("/docs", "/redoc"):
        html = httpx.get(f"{base_url}{path}", timeout=10).text
        assert "http://" not in html and "https://" not in html, path
