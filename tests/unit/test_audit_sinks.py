"""The audit sinks: the 0600 JSON-lines file rotated by size, the spooled FHIR audit store that loses nothing while
the store is down or across a restart."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from service.audit.file_sink import AuditFile
from service.audit.spool import Spool
from service.audit.store_sink import AuditStore
from service.fhir_client import FhirClient
from service.retry import RetryPolicy


def event(n: int) -> dict:
    return {"resourceType": "AuditEvent", "id": f"audit-{n:04d}", "action": "R", "outcome": "0"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_each_event_is_one_line_of_fhir_json_in_a_0600_file(tmp_path: Path, permissive_umask: None) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    sink = AuditFile(path, max_bytes=1_000_000, keep=3)
    for n in range(3):
        sink.append(event(n))
        # written before append returns: a reader sees the line at once (no buffer to flush)
        assert len(path.read_bytes().splitlines()) == n + 1
    sink.close()
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == [event(0), event(1), event(2)]
    assert mode(path) == 0o600


def test_an_existing_file_is_made_0600(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    path.chmod(0o644)
    AuditFile(path, max_bytes=1_000_000, keep=3).append(event(1))
    assert mode(path) == 0o600


def test_rotation_by_size_keeps_n_files_each_0600(tmp_path: Path, permissive_umask: None) -> None:
    path = tmp_path / "audit.jsonl"
    line = len(orjson.dumps(event(0))) + 1
    sink = AuditFile(path, max_bytes=line * 2, keep=2)
    for n in range(7):  # two lines per file: 0-1, 2-3, 4-5 rotated, 6 current
        sink.append(event(n))
    sink.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]  # the oldest (0-1) dropped: keep=2
    assert [orjson.loads(x)["id"] for x in path.read_bytes().splitlines()] == ["audit-0006"]
    assert [orjson.loads(x)["id"] for x in (tmp_path / "audit.jsonl.1").read_bytes().splitlines()] == [
        "audit-0004",
        "audit-0005",
    ]
    for name in files:
        assert mode(tmp_path / name) == 0o600


def test_a_second_writer_follows_the_rotation_of_the_first(tmp_path: Path) -> None:
    """Two workers on one file: after one rotates, the other writes to the new file, not the rotated one."""
    path = tmp_path / "audit.jsonl"
    line = len(orjson.dumps(event(0))) + 1
    first, second = AuditFile(path, max_bytes=line, keep=5), AuditFile(path, max_bytes=line, keep=5)
    first.append(event(1))
    second.append(event(2))  # rotates: event 1 goes to .1
    first.append(event(3))  # rotates again: event 2 to .1, event 1 to .2
    lines = [orjson.loads(x)["id"] for p in sorted(tmp_path.iterdir()) for x in p.read_bytes().splitlines()]
    assert sorted(lines) == ["audit-0001", "audit-0002", "audit-0003"]
    assert [orjson.loads(x)["id"] for x in path.read_bytes().splitlines()] == ["audit-0003"]


def test_spool_files_are_0600(tmp_path: Path, permissive_umask: None) -> None:
    spool = Spool(tmp_path / "spool")
    spool.put(event(1))
    (only,) = spool.oldest(10)
    assert mode(only) == 0o600 and mode(tmp_path / "spool") == 0o700
    assert orjson.loads(only.read_bytes()) == event(1)


class Store:
    """A FHIR audit store behind a MockTransport that can be down (503)."""

    def __init__(self) -> None:
        self.up = True
        self.kept: dict[str, dict] = {}
        self.posts = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.posts += 1
        if not self.up:
            return httpx.Response(503)
        bundle = orjson.loads(request.content)
        assert bundle["type"] == "transaction"
        for entry in bundle["entry"]:
            assert entry["request"] == {"method": "PUT", "url": f"AuditEvent/{entry['resource']['id']}"}
            self.kept[entry["resource"]["id"]] = entry["resource"]
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": []})


def sink(store: Store, spool_dir: Path) -> tuple[AuditStore, httpx.AsyncClient]:
    async def no_sleep(_: float) -> None:
        return None

    http = httpx.AsyncClient(base_url="http://store/fhir/", transport=httpx.MockTransport(store.handle))
    fhir = FhirClient(http, RetryPolicy(max_attempts=2, sleep=no_sleep))
    return AuditStore(Spool(spool_dir), fhir, batch_size=2, idle_s=0.01), http


async def test_events_wait_in_the_spool_while_the_store_is_down_and_are_sent_after_a_restart(tmp_path: Path) -> None:
    store = Store()
    store.up = False
    first, http = sink(store, tmp_path / "spool")
    first.start()
    for n in range(5):
        first.record(event(n))
    await first.close(drain_s=0.5)  # the store is down: nothing sent, nothing lost
    await http.aclose()
    assert store.kept == {} and store.posts > 0
    assert len(list((tmp_path / "spool").glob("*.json"))) == 5

    store.up = True
    second, http = sink(store, tmp_path / "spool")  # a new process over the same spool
    second.start()
    deadline = asyncio.get_running_loop().time() + 10
    while len(store.kept) < 5 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    await second.close(drain_s=1)
    await http.aclose()
    assert sorted(store.kept) == [f"audit-{n:04d}" for n in range(5)]
    assert list((tmp_path / "spool").glob("*.json")) == []


async def test_drain_at_shutdown_sends_what_is_left(tmp_path: Path) -> None:
    store = Store()
    audit, http = sink(store, tmp_path / "spool")  # never started: only the shutdown drain sends
    for n in range(3):
        audit.record(event(n))
    await audit.close(drain_s=5)
    await http.aclose()
    assert sorted(store.kept) == ["audit-0000", "audit-0001", "audit-0002"]


async def test_a_refused_batch_is_set_aside_not_retried_forever(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"resourceType": "OperationOutcome", "issue": []})

    http = httpx.AsyncClient(base_url="http://store/fhir/", transport=httpx.MockTransport(refuse))
    audit = AuditStore(Spool(tmp_path / "spool"), FhirClient(http, RetryPolicy(max_attempts=1)))
    audit.record(event(1))
    await audit.drain()
    await http.aclose()
    assert list((tmp_path / "spool").glob("*.json")) == []
    assert len(list((tmp_path / "spool" / "rejected").glob("*.json"))) == 1


async def test_a_damaged_spool_file_is_set_aside_and_the_rest_is_sent(tmp_path: Path) -> None:
    store = Store()
    audit, http = sink(store, tmp_path / "spool")
    (tmp_path / "spool" / "00000000000000000001-damaged.json").write_bytes(b"{not json")
    audit.record(event(1))
    await audit.drain()
    await http.aclose()
    assert list(store.kept) == ["audit-0001"]
    assert [p.name for p in (tmp_path / "spool" / "rejected").iterdir()] == ["00000000000000000001-damaged.json"]


@pytest.mark.parametrize("store_token", [None, "store-secret"])
async def test_the_audit_store_gets_its_own_token_and_never_the_fhir_servers(store_token: str | None) -> None:
    from service.audit.store_sink import store_bundle
    from service.fhir_client import open_audit_store_client
    from service.settings import Settings

    seen: list[httpx.Request] = []

    def store(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": []})

    settings = Settings(
        fhir_bearer_token="server-secret", audit_fhir_url="http://store/fhir", audit_fhir_bearer_token=store_token
    )
    async with open_audit_store_client(settings, transport=httpx.MockTransport(store)) as client:
        await client.transaction(store_bundle([event(1)]), idempotent=True)

    assert [str(r.url) for r in seen] == ["http://store/fhir/"]
    assert seen[0].headers.get("Authorization") == (f"Bearer {store_token}" if store_token else None)
    assert "server-secret" not in repr(settings) and "store-secret" not in repr(settings)
