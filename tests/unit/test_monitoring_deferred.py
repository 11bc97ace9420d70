"""Summaries refreshed right after the answer: coalesced per session, bounded, failures counted, drained at shutdown."""

from __future__ import annotations

import asyncio
import logging

import pytest

from service.errors import FhirUnavailable
from service.monitoring.deferred import Deferred


class Recorder:
    """A refresh that records each call and waits until the test lets it finish."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = asyncio.Event()
        self.running = 0
        self.most_at_once = 0
        self.changed = asyncio.Condition()

    async def until_running(self, n: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.running >= n)

    async def __call__(self, key: str) -> None:
        self.calls.append(key)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        async with self.changed:
            self.changed.notify_all()
        try:
            await self.release.wait()
        finally:
            self.running -= 1


async def test_writes_during_a_refresh_coalesce_into_one_more_refresh() -> None:
    refresh = Recorder()
    deferred = Deferred(refresh)
    deferred.schedule(["S-1"])
    await refresh.until_running(1)
    for _ in range(5):  # five more writes to the session while its refresh runs
        deferred.schedule(["S-1"])
    assert deferred.pending == ["S-1"]
    refresh.release.set()
    await deferred.settled()
    assert refresh.calls == ["S-1", "S-1"]  # the running one, then one for all five: the last write is summarised
    assert deferred.pending == []


async def test_sessions_refresh_at_most_limit_at_once_and_each_once() -> None:
    refresh = Recorder()
    deferred = Deferred(refresh, limit=2)
    deferred.schedule([f"S-{n}" for n in range(6)])
    await refresh.until_running(2)
    assert refresh.running == 2 and len(refresh.calls) == 2  # the third waits for a place
    refresh.release.set()
    await deferred.settled()
    assert sorted(refresh.calls) == [f"S-{n}" for n in range(6)] and refresh.most_at_once == 2


async def test_a_failed_refresh_is_counted_and_logged_by_key_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[str] = []

    async def refresh(key: str) -> None:
        if key == "S-bad":
            raise FhirUnavailable("the FHIR server said: 212/124 for MRN 123")  # a message that must not be logged
        if key == "S-bug":
            raise RuntimeError("bug")
        done.append(key)

    deferred = Deferred(refresh)
    with caplog.at_level(logging.WARNING, logger="infusion_fhir.monitoring"):
        deferred.schedule(["S-bad", "S-ok", "S-bug"])
        await deferred.settled()
    assert done == ["S-ok"] and deferred.failed == 2
    failed = [r for r in caplog.records if r.getMessage() == "monitoring.summary_deferred_failed"]
    assert [(r.session, r.error) for r in failed] == [("S-bad", "FhirUnavailable")]  # type: ignore[attr-defined]
    assert "212/124" not in caplog.text and "MRN" not in caplog.text


async def test_drain_waits_for_what_finishes_then_names_what_is_left(caplog: pytest.LogCaptureFixture) -> None:
    quick = Deferred(Recorder())
    quick._refresh.release.set()  # type: ignore[attr-defined]
    quick.schedule(["S-1"])
    await quick.drain(60)
    assert quick.pending == [] and quick._refresh.calls == ["S-1"]  # type: ignore[attr-defined]

    stuck = Deferred(Recorder())  # never released: the deadline passes
    stuck.schedule(["S-2", "S-3"])
    with caplog.at_level(logging.WARNING, logger="infusion_fhir.monitoring"):
        await stuck.drain(0.01)
    assert stuck.pending == []
    (left,) = [r for r in caplog.records if r.getMessage() == "monitoring.summary_not_refreshed"]
    assert left.sessions == ["S-2", "S-3"] and left.count == 2  # type: ignore[attr-defined]
