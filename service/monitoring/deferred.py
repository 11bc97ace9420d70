"""Session summaries refreshed right after the API answers: one refresh per session at a time, coalesced.

A write that cannot raise a Flag (`urgency.py`) is answered as soon as its own records are on the server, and
its session's summary is refreshed here, in the same process, right after. A session asked for again while its
refresh runs is refreshed once more when that one ends (so the last write is always summarised, and a burst of
readings costs one or two refreshes, not one each); at most `limit` sessions refresh at once. A refresh that
fails is logged by session key (never by content) and counted; the next write, `POST .../$monitoring-summary`
or a batch `sync` of the session redoes it, as each computes the summary from what the server holds.

At shutdown `drain` waits for what is pending up to a deadline, then names the sessions left (by key).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from service.errors import InfusionFhirError

log = logging.getLogger("infusion_fhir.monitoring")


class Deferred:
    """Runs `refresh(key)` for sessions in the background (see the module)."""

    def __init__(self, refresh: Callable[[str], Awaitable[Any]], limit: int = 2) -> None:
        self._refresh = refresh
        self._gate = asyncio.Semaphore(limit)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self.failed = 0
        """Refreshes that ended in an error since start."""

    @property
    def pending(self) -> list[str]:
        """Keys of the sessions refreshing or waiting to."""
        return sorted(self._running)

    def schedule(self, keys: Iterable[str]) -> None:
        for key in keys:
            if key in self._running:
                self._again.add(key)  # refreshed once more when the running one ends
            else:
                self._running[key] = asyncio.create_task(self._run(key), name=f"summary {key}")

    async def _run(self, key: str) -> None:
        try:
            while True:
                self._again.discard(key)
                await self._once(key)
                if key not in self._again:
                    return
        finally:
            self._running.pop(key, None)

    async def _once(self, key: str) -> None:
        try:
            async with self._gate:
                await self._refresh(key)
        except InfusionFhirError as exc:  # its message may quote the server: only its type is logged
            self.failed += 1
            log.warning("monitoring.summary_deferred_failed", extra={"session": key, "error": type(exc).__name__})
        except Exception:  # a bug must not end the others' refreshes, nor vanish
            self.failed += 1
            log.exception("monitoring.summary_deferred_crashed", extra={"session": key})

    async def settled(self) -> None:
        """Return once nothing is pending (refreshes scheduled meanwhile included)."""
        while self._running:
            await asyncio.wait(list(self._running.values()))  # (`wait`, unlike `gather`, cancels none of them)

    async def drain(self, seconds: float) -> None:
        """At shutdown: wait up to `seconds` for what is pending, then cancel the rest and name it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._running and loop.time() < deadline:
            await asyncio.wait(list(self._running.values()), timeout=deadline - loop.time())
        if not self._running:
            return
        left = self.pending
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        log.warning(
            "monitoring.summary_not_refreshed",
            extra={"sessions": left[:50], "count": len(left), "hint": "POST .../$monitoring-summary, or sync"},
        )
