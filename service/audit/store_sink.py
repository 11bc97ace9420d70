"""The FHIR audit store sink: AuditEvents spooled on the request path, posted in transaction Bundles off it by a
background task, with the service's retry policy; the spool is sent at start and drained at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from service.audit.spool import Spool
from service.errors import FhirRejected, InfusionFhirError
from service.fhir_client import FhirClient

log = logging.getLogger("infusion_fhir.audit")


def store_bundle(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A transaction writing each event at its own id (PUT): sending a bundle again writes nothing twice."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": event, "request": {"method": "PUT", "url": f"AuditEvent/{event['id']}"}} for event in events
        ],
    }


class AuditStore:
    """Sends what the spool holds to the audit store; `record` only spools (a local file write)."""

    def __init__(self, spool: Spool, fhir: FhirClient, *, batch_size: int = 100, idle_s: float = 1.0) -> None:
        self.spool = spool
        self.fhir = fhir
        self.batch_size = batch_size
        self.idle_s = idle_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._closing = False

    def record(self, event: dict[str, Any]) -> None:
        """Spool the event (OSError when it could not be) and wake the sender."""
        self.spool.put(event)
        self._wake.set()

    def start(self) -> None:
        """Start the sender: it first sends what an earlier run left in the spool."""
        self._task = asyncio.create_task(self._run(), name="audit-store")

    async def send_once(self) -> int:
        """Send one batch from the spool; the number sent (0 when it was empty). Raises when the store failed."""
        paths = self.spool.oldest(self.batch_size)
        events = self.spool.read(paths)
        if not events:
            return 0
        try:
            await self.fhir.transaction(store_bundle([e for _, e in events]), idempotent=True)
        except FhirRejected:
            log.error("audit.store_rejected", extra={"events": len(events)})
            self.spool.set_aside([p for p, _ in events])
            return 0
        self.spool.done([p for p, _ in events])
        return len(events)

    async def drain(self) -> None:
        """Send batches until the spool is empty (raises when the store fails)."""
        while await self.send_once() or self.spool.oldest(1):
            pass

    async def _run(self) -> None:
        while not self._closing:
            self._wake.clear()
            try:
                await self.drain()
                self._failures = 0
                wait = self.idle_s * 30
            except (InfusionFhirError, OSError) as exc:
                self._failures += 1
                log.warning(
                    "audit.store_unavailable",
                    extra={"error": type(exc).__name__, "pending": self.spool.pending(), "failures": self._failures},
                )
                wait = self.fhir.retry.backoff(min(self._failures, 8)) + self.idle_s
            with contextlib.suppress(TimeoutError):  # a new event, or the close, wakes it at once
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def close(self, drain_s: float) -> None:
        """Let the sender finish the Bundle it is sending (never two sends of one event at once), then try, for
        at most `drain_s` in all, to send what is left; the rest stays spooled for the next start."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=drain_s)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.drain(), timeout=max(deadline - loop.time(), 0.001))
        except (TimeoutError, InfusionFhirError, OSError) as exc:
            log.warning(
                "audit.store_left_spooled", extra={"pending": self.spool.pending(), "error": type(exc).__name__}
            )
