"""Shared fixtures: the real FHIR server for integration tests, and cleanup of what tests write."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest

DEFAULT_HAPI_URL = f"http://localhost:{os.environ.get('HAPI_PORT', '8080')}/fhir"
FHIR_JSON = "application/fhir+json"


def _answers(base_url: str) -> bool:
    try:
        response = httpx.get(f"{base_url}/metadata", timeout=10, headers={"Accept": FHIR_JSON})
    except httpx.HTTPError:
        return False
    return response.status_code == 200


@pytest.fixture(scope="session")
def fhir_base_url() -> str:
    """The FHIR server integration tests run against: FHIR_BASE_URL, else the local HAPI.

    Under CI (the `CI` variable set) a missing server is a failure, never a skip.
    """
    base_url = os.environ.get("FHIR_BASE_URL", DEFAULT_HAPI_URL).rstrip("/")
    if _answers(base_url):
        return base_url
    message = f"no FHIR server answers at {base_url}/metadata (run `make hapi-up`)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class FhirCleanup:
    """Remembers resources a test wrote and deletes then expunges them, newest first."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.refs: list[str] = []

    def track(self, *refs: str) -> None:
        for ref in refs:
            if ref not in self.refs:
                self.refs.append(ref)

    def track_last(self, *refs: str) -> None:
        """Track refs as the newest, also when already tracked: what references the test's latest writes (a
        session's monitoring summary, rewritten after each of its readings) is deleted before them."""
        for ref in refs:
            if ref in self.refs:
                self.refs.remove(ref)
            self.refs.append(ref)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=60, headers={"Accept": FHIR_JSON}) as http:
            # Provenances naming what the test wrote go first: HAPI refuses to delete what a reference names.
            self.refs += [ref for ref in provenances_naming(http, self.refs) if ref not in self.refs]
            for ref in reversed(self.refs):
                http.delete(f"/{ref}")
            for ref in reversed(self.refs):
                http.post(
                    f"/{ref}/$expunge",
                    json={
                        "resourceType": "Parameters",
                        "parameter": [
                            {"name": "expungeDeletedResources", "valueBoolean": True},
                            {"name": "expungePreviousVersions", "valueBoolean": True},
                        ],
                    },
                    headers={"Content-Type": FHIR_JSON},
                )
        self.refs.clear()


def provenances_naming(http: httpx.Client, refs: list[str]) -> list[str]:
    """`Provenance/id` of every Provenance whose `target` names one of `refs` (searched 40 refs at a time)."""
    found: dict[str, None] = {}
    plain = [ref for ref in refs if not ref.startswith("Provenance/")]
    for at in range(0, len(plain), 40):
        answer = http.post(
            "/Provenance/_search",
            data={"target": ",".join(plain[at : at + 40]), "_elements": "id", "_count": "500"},
        )
        while answer.status_code == 200:
            page = answer.json()
            found.update({f"Provenance/{e['resource']['id']}": None for e in page.get("entry", [])})
            next_url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
            if not next_url:
                break
            answer = http.get(next_url)
    return list(found)


@pytest.fixture
def fhir_cleanup(fhir_base_url: str) -> Iterator[FhirCleanup]:
    """Track `Type/id` refs a test writes; they are deleted and expunged after the test."""
    cleanup = FhirCleanup(fhir_base_url)
    yield cleanup
    cleanup.run()


@pytest.fixture(autouse=True)
def _audit_under_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every app a test makes keeps its audit trail (on by default) in a temporary directory of its own."""
    where = tmp_path_factory.mktemp("audit")
    monkeypatch.setenv("INFUSION_FHIR_AUDIT_LOG", str(where / "audit.jsonl"))
    monkeypatch.setenv("INFUSION_FHIR_AUDIT_SPOOL_DIR", str(where / "spool"))


@pytest.fixture
def run_id() -> str:
    """A short unique token so that data written by one test run never meets another's."""
    return uuid.uuid4().hex[:12]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration/ carries the `integration` marker."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
