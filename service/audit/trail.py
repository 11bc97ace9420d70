"""The audit trail: every sink the settings name, the rule for when none can record, and how it is opened."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx

from service.audit.event import AuditSystems
from service.audit.file_sink import AuditFile
from service.audit.spool import Spool
from service.audit.store_sink import AuditStore
from service.fhir_client import open_audit_store_client
from service.settings import Settings

log = logging.getLogger("infusion_fhir.audit")

REFUSE = "refuse"
SERVE = "serve"


class FailureCounter(Protocol):
    def audit_sink_failed(self, sink: str) -> None: ...


class _NoCounter:
    def audit_sink_failed(self, sink: str) -> None:
        pass


class AuditTrail:
    """Records each event in every sink; says whether any recorded it."""

    def __init__(
        self,
        systems: AuditSystems,
        *,
        file: AuditFile | None = None,
        store: AuditStore | None = None,
        failure: str = REFUSE,
        server_name: str = "infusion-fhir",
        counter: FailureCounter | None = None,
    ) -> None:
        self.systems = systems
        self.file = file
        self.store = store
        self.failure = failure
        self.server_name = server_name
        self.counter = counter or _NoCounter()

    @property
    def enabled(self) -> bool:
        return self.file is not None or self.store is not None

    @property
    def refuses(self) -> bool:
        """True: an answer whose event no sink recorded becomes a 503 (`INFUSION_FHIR_AUDIT_FAILURE=refuse`)."""
        return self.failure == REFUSE

    async def record(self, event: dict[str, Any]) -> bool:
        """Record the event in every sink before returning; True when at least one has it. A sink that failed is
        logged (`audit.sink_failed`: the sink and the error class, the request id; nothing of the event) and
        counted."""
        recorded = False
        for name, write in self._sinks():
            try:
                await write(event)
                recorded = True
            except OSError as exc:
                self.counter.audit_sink_failed(name)
                log.error("audit.sink_failed", extra={"sink": name, "error": type(exc).__name__})
        return recorded or not self.enabled

    def _sinks(self) -> list[tuple[str, Any]]:
        sinks: list[tuple[str, Any]] = []
        if self.file is not None:
            file = self.file
            if file.fsync:  # an fsync waits for the disk: off the event loop
                sinks.append(("file", lambda e: asyncio.to_thread(file.append, e)))
            else:
                sinks.append(("file", _now(file.append)))
        if self.store is not None:
            sinks.append(("store", _now(self.store.record)))
        return sinks


def _now(write: Any) -> Any:
    async def call(event: dict[str, Any]) -> None:
        write(event)

    return call


def audit_systems(settings: Settings) -> AuditSystems:
    return AuditSystems(
        mrn=settings.mrn_system,
        base=settings.identifier_system_base.rstrip("/"),
        claim_profiles=settings.audit_balp_profiles,
    )


@asynccontextmanager
async def open_audit_trail(
    settings: Settings, *, counter: FailureCounter | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[AuditTrail]:
    """The audit trail the settings describe; the store's sender runs inside the block and drains at its end."""
    async with AsyncExitStack() as stack:
        file = None
        if settings.audit_log:
            file = AuditFile(
                Path(settings.audit_log),
                max_bytes=settings.audit_log_max_bytes,
                keep=settings.audit_log_keep,
                fsync=settings.audit_log_fsync,
            )
            stack.callback(file.close)
        store = None
        if settings.audit_fhir_url:
            client = await stack.enter_async_context(open_audit_store_client(settings, transport=transport))
            store = AuditStore(Spool(Path(settings.audit_spool_dir)), client, batch_size=settings.audit_batch_size)
            store.start()
            stack.push_async_callback(store.close, settings.audit_drain_seconds)
        yield AuditTrail(
            audit_systems(settings), file=file, store=store, failure=settings.audit_failure, counter=counter
        )
