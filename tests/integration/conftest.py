"""Fixtures for API tests against the real FHIR server: an app with a test key and isolated URIs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import key_digest
from service.settings import Settings
from tests.integration.beds import deselect_what_the_bed_lacks
from tests.integration.medplum_support import medplum_bed
from tests.integration.run_report import write_report

API_KEY = "test-key-for-integration"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    write_report(terminalreporter, config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect_what_the_bed_lacks(config, items)


medplum = pytest.fixture(scope="session")(medplum_bed)
"""A client on the Medplum engine bed's /fhir, started once per run when none answers (medplum_support.py)."""


@pytest.fixture
def settings(fhir_base_url: str, run_id: str) -> Settings:
    """Settings whose identifier systems are unique to this test, so tests never meet each other's data."""
    return Settings(
        FHIR_BASE_URL=fhir_base_url,
        api_keys=key_digest(API_KEY),
        identifier_system_base=f"https://test.infusion-fhir.example/{run_id}/sid",
        mrn_system=f"https://test.infusion-fhir.example/{run_id}/mrn",
    )


class TrackingApi:
    """A TestClient that records every resource the API reports writing, for cleanup."""

    def __init__(self, client: TestClient, cleanup) -> None:
        self.client = client
        self.cleanup = cleanup
        track_deferred(client.app.state.summaries, cleanup)

    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        response = self.client.request(method, url, headers=headers, **kwargs)
        track(response, self.cleanup)
        self.settle()
        return response

    def settle(self) -> None:
        """Wait for the summaries the app refreshes right after its answers, so a test reads the server settled."""
        self.client.portal.call(self.client.app.state.summaries.deferred.settled)

    def put(self, url: str, **kwargs) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def get(self, url: str, **kwargs) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def delete(self, url: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def post(self, url: str, **kwargs) -> httpx.Response:
        return self.request("POST", url, **kwargs)


def track(response: httpx.Response, cleanup) -> None:
    if response.status_code in (200, 201) and response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict):
            resources = body.get("resources", [])
            # Patients first so that, deleted newest-first, they go after what references them.
            for item in sorted(resources, key=lambda r: r["resourceType"] != "Patient"):
                cleanup.track(f"{item['resourceType']}/{item['id']}")
            # the session's monitoring summary the write refreshed references the record's resources: deleted first
            summary = body.get("monitoring_summary", {}).get("resources", [])
            cleanup.track_last(*(f"{item['resourceType']}/{item['id']}" for item in summary))


def track_deferred(summaries, cleanup) -> None:
    """Track, for cleanup, what the summaries refreshed after an answer write (they are not in the answer)."""
    refresh = summaries.deferred._refresh

    async def tracked(key: str):
        written = await refresh(key)
        cleanup.track_last(*(f"{w.resource_type}/{w.id}" for w in written))
        return written

    summaries.deferred._refresh = tracked


@pytest.fixture
def api(settings: Settings, fhir_cleanup) -> Iterator[TrackingApi]:
    with TestClient(create_app(settings)) as client:
        yield TrackingApi(client, fhir_cleanup)


@contextlib.asynccontextmanager
async def async_api(settings: Settings, cleanup=None) -> AsyncIterator[httpx.AsyncClient]:
    """The app over an in-process ASGI transport, for truly concurrent requests; with `cleanup`, what it writes
    after its answers (deferred summaries) is tracked too, and is written by the time the block ends."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        if cleanup is not None:
            track_deferred(app.state.summaries, cleanup)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH, timeout=120) as client:
            yield client
