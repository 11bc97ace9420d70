"""The batch sync job: stream lines, group them into transaction Bundles, send several at once.

With the diff (the default), the server's copies are read ahead for several Bundles at once (about
READ_AHEAD_RECORDS records, two Bundles at least: one search per type per ~500 ids, not per
Bundle), one group ahead of the Bundles being sent; a Bundle uses only the copies of records no
earlier unfinished Bundle carries, and reads the rest itself.

Ordering: a Bundle waits for any earlier in-flight Bundle that carries a session its records point
at, so a session always lands before its children, and for any that carries one of its own records
(the same kind and key further down the file, a correction), so the later line's content is what
stays; assessments and PHQ-9s count as one kind here, since a key keeps its instrument across both
(`_carried`). A Bundle the server rejects for its data is split in halves
until the bad records are found, so good neighbours still land. Anything that is not the data's
fault (server still unavailable after the client's retries, our credentials refused, a base URL
that is not a FHIR server, a bug) stops the job (exit 2) without rejecting a line; re-running it
finishes the job without duplicates, since every resource goes to a deterministic id.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.kinds import ASSESSMENT, PHQ9, SESSION, embedded_children
from service.batch.cuts import session_cut
from service.batch.report import Report, Ticker
from service.batch.source import Line
from service.errors import (
    Conflict,
    FhirAuthRefused,
    FhirLacksCapability,
    FhirMisconfigured,
    FhirRejected,
    FhirUnavailable,
    InfusionFhirError,
)
from service.mappers import record_refs
from service.mappers.context import SessionContext
from service.mappers.session import session_context
from service.monitoring.write import summary_sessions
from service.provenance import source_lines
from service.sync import SyncEngine, SyncResult, WriteOutcome
from service.sync.engine import ReadAhead, SessionRefused

log = logging.getLogger("infusion_fhir.batch")
FORM = "rating-scale"
"""The `carries` prefix shared by assessments and PHQ-9s (`_carried`)."""

READ_AHEAD_RECORDS = 1000
"""Records whose server copies are read at once for the diff (~1,700 resources): a search costs HAPI
more than the resources in it, so few full searches (`FhirClient.current`, 500 ids each) beat many
(bench/NOTES.md). At most three groups' copies are held at once: one being sent, one queued, one read."""


class KnownSessions(Mapping[str, SessionContext]):
    """A bounded memory of the sessions this run has synced, as their children see them (oldest
    forgotten first). A forgotten session is read from the FHIR server again when needed."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._sessions: OrderedDict[str, SessionContext] = OrderedDict()

    def add(self, context: SessionContext) -> None:
        self._sessions[context.key] = context
        self._sessions.move_to_end(context.key)
        if len(self._sessions) > self.capacity:
            self._sessions.popitem(last=False)

    def __getitem__(self, key: str) -> SessionContext:
        return self._sessions[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sessions)

    def __len__(self) -> int:
        return len(self._sessions)


class BoundedSet(Container[str]):
    """A bounded memory of strings (oldest forgotten first): what it forgets is only read again."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, None] = OrderedDict()

    def add(self, item: str) -> None:
        self._items[item] = None
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Batch:
    lines: list[Line]
    waits_for: list[asyncio.Event] = field(default_factory=list)
    carries: set[str] = field(default_factory=set)
    """`kind/key` of every record it writes, embedded children included."""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    first: list[Line] = field(default_factory=list)
    """Its lines carrying nothing an earlier unfinished Bundle carries: only their copies may be read ahead."""
    read_ahead: asyncio.Task[ReadAhead] | None = None


class BatchSync:
    """One run of `infusion-fhir sync` over an iterable of parsed lines."""

    def __init__(
        self, engine: SyncEngine, report: Report, *, batch_size: int = 50, concurrency: int = 4, diff: bool = False
    ) -> None:
        self.engine = engine
        self.diff = diff
        """Send only what the server does not already hold (the CLI's default; `--always-write` turns it off)."""
        self.report = report
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.known = KnownSessions()
        self.new_patients = BoundedSet()
        """`Patient/id`s this run created: their records had nothing on the server to compare with."""
        self.run_patients: dict[str, str] = {}
        """MRN -> `Patient/id` of the Patients this run created or matched first: a read-ahead made before then
        does not see them, and they are not sent again (a round trip each)."""
        self.in_flight: dict[str, asyncio.Event] = {}
        self.stop = asyncio.Event()
        self.touched: set[str] = set()
        """Keys of the sessions whose readings, scores, adverse events or times this run wrote (their monitoring
        summaries are written at the end of the run: `service.batch.command`)."""

    async def run(self, lines: Iterable[Line], progress: Ticker | None = None) -> Report:
        queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=self.concurrency)
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.concurrency)]
        ticker = asyncio.create_task(self._tick(progress)) if progress else None
        try:
            await self._produce(lines, queue)
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
            if ticker:
                ticker.cancel()
            if progress:
                progress.finish()
        return self.report

    def interrupt(self, reason: str) -> None:
        """Stop taking new work; Bundles already sent finish; the job exits 2."""
        if not self.report.stopped_reason:
            self.report.stopped_reason = reason
        self.stop.set()

    async def _produce(self, lines: Iterable[Line], queue: asyncio.Queue[Batch | None]) -> None:
        # Never fewer than two Bundles a read-ahead; and the group planned last (`staged`) has its
        # read-ahead under way while the one before it is queued and sent.
        group_size = max(2, READ_AHEAD_RECORDS // self.batch_size) if self.diff else 1
        group: list[list[Line]] = [[]]
        staged: list[Batch] = []
        for line in lines:
            if self.stop.is_set():
                _cancel_read_ahead(staged)  # planned, never sent: their lines stay unprocessed
                return
            self.report.lines_read += line.record is not None or bool(line.issues)
            if line.record is None:
                if line.issues:
                    self.report.record_rejected(line, "invalid record", line.issues)
                continue
            if line.record.kind == SESSION and session_cut(
                line.record, [held.record for held in group[-1]], self.batch_size
            ):
                group, staged = await self._close(group, group_size, staged, queue)
            group[-1].append(line)
            if len(group[-1]) >= self.batch_size:
                group, staged = await self._close(group, group_size, staged, queue)
            await asyncio.sleep(0)  # let workers and the progress ticker run between lines
        if self.stop.is_set():
            _cancel_read_ahead(staged)
        else:
            await self._put(staged, queue)
            await self._put(self._start([b for b in group if b]), queue)

    async def _close(
        self, group: list[list[Line]], group_size: int, staged: list[Batch], queue: asyncio.Queue[Batch | None]
    ) -> tuple[list[list[Line]], list[Batch]]:
        """End the batch being filled; once the group has `group_size` of them, plan it (its read-ahead starts) and
        queue the group planned before it. The groups and staged batches to go on with."""
        if len(group) >= group_size:
            staged, ready = self._start(group), staged
            await self._put(ready, queue)
            group = []
        group.append([])
        return group, staged

    def _start(self, group: list[list[Line]]) -> list[Batch]:
        """Plan a group of batches in file order and start their read-ahead (with more than one)."""
        batches = [self._plan(lines) for lines in group]
        if len(batches) > 1:
            task = asyncio.create_task(
                self.engine.read_ahead(
                    [line.record for b in batches for line in b.lines],
                    [line.record for b in batches for line in b.first],
                    new_patients=self.new_patients,
                )
            )
            task.add_done_callback(_retrieved)  # its failure reaches the batches that await it, if any still do
            for batch in batches:
                batch.read_ahead = task
        return batches

    async def _put(self, batches: list[Batch], queue: asyncio.Queue[Batch | None]) -> None:
        for batch in batches:
            await queue.put(batch)

    def _plan(self, lines: list[Line]) -> Batch:
        """Note which in-flight Bundles the batch must wait for (those carrying a session it names or a
        record it carries too), which records it carries, and which of its lines carry nothing an
        earlier unfinished Bundle carries."""
        batch = Batch(lines)
        for line in lines:
            record = line.record
            carried = {_carried(r) for r in (record, *embedded_children(record))}
            if not any(k in self.in_flight or k in batch.carries for k in carried):
                batch.first.append(line)
            batch.carries |= carried
        named = {f"{SESSION}/{k}" for line in lines if (k := getattr(line.record, "session_key", None))}
        batch.waits_for = list({id(e): e for k in named | batch.carries if (e := self.in_flight.get(k))}.values())
        for key in batch.carries:
            self.in_flight[key] = batch.done
        return batch

    async def _worker(self, queue: asyncio.Queue[Batch | None]) -> None:
        while (batch := await queue.get()) is not None:
            try:
                for event in batch.waits_for:
                    await event.wait()
                if not self.stop.is_set():
                    await self._sync(batch.lines, await self._read_ahead_of(batch))
            except InfusionFhirError as exc:
                # Not the data's fault (server unavailable, our credentials refused, not a FHIR
                # server): stop, reject nothing; the re-run finishes the job.
                log.error("batch.stopped", extra={"reason": exc.message, "error": type(exc).__name__})
                self.interrupt(stop_reason(exc))
            except Exception as exc:  # a bug: stop rather than reject good records for it
                log.exception("batch.unexpected", extra={"error": type(exc).__name__})
                self.interrupt(f"internal error ({type(exc).__name__}); see the log")
            finally:
                batch.done.set()
                for key in batch.carries:
                    if self.in_flight.get(key) is batch.done:
                        del self.in_flight[key]

    async def _read_ahead_of(self, batch: Batch) -> ReadAhead | None:
        """The batch's share of its group's read-ahead; None (the batch reads for itself) when it failed."""
        if batch.read_ahead is None:
            return None
        try:
            read_ahead = await batch.read_ahead
        except (FhirRejected, Conflict):
            return None  # e.g. two Patients with one MRN: each batch's own lookup rejects just its lines
        return read_ahead.only([line.record for line in batch.first], self.engine.config)

    async def _sync(self, lines: list[Line], read_ahead: ReadAhead | None = None) -> None:
        """Sync lines as one Bundle; on rejection, split to find the bad ones.

        After an interrupt nothing new is sent, halves of a rejected bundle included: those lines
        stay unprocessed (the report counts them) and the re-run finishes them. A rejected Bundle
        wrote nothing, so its halves use the same read-ahead.
        """
        if not lines or self.stop.is_set():
            return
        records = [line.record for line in lines]
        try:
            with source_lines(lines):  # their Provenance names each record's file and line
                result = await self._upsert(records, read_ahead)
        except SessionRefused as refused:
            # Missing sessions, or sessions and visits of another patient: those lines are rejected
            # (naming fields and keys only), the rest of the bundle is sent again without them.
            reasons = {id(line): refused.refuses(line.record) for line in lines}
            if not any(reasons.values()):  # cannot happen; never loop on it
                reasons = {id(line): refused.message for line in lines}
            for line in lines:
                reason = reasons[id(line)]
                if reason:
                    self.report.record_rejected(line, reason)
            await self._sync([line for line in lines if not reasons[id(line)]], read_ahead)
            return
        except (FhirRejected, Conflict) as exc:
            # A data error: the server refused something in this bundle. Halve to find the line.
            if len(lines) == 1:
                self.report.record_rejected(lines[0], _reason(exc))
                return
            self.report.splits += 1
            middle = len(lines) // 2
            await self._sync(lines[:middle], read_ahead)
            await self._sync(lines[middle:], read_ahead)
            return
        self.report.bundles += 1
        self.report.transactions += result.transactions
        self._account(lines, result)

    async def _upsert(self, records: list[Any], read_ahead: ReadAhead | None) -> SyncResult:
        if self.diff:
            return await self.engine.upsert(
                records,
                known_sessions=self.known,
                diff=True,
                new_patients=self.new_patients,
                read_ahead=read_ahead,
                run_patients=self.run_patients,
            )
        return await self.engine.upsert(records, known_sessions=self.known, run_patients=self.run_patients)

    def _account(self, lines: list[Line], result: SyncResult) -> None:
        self.run_patients.update(result.patients)
        if result.parts > 1:  # one record (a Bundle of several is halved instead): not written all or nothing
            self.report.split_records += [f"{line.kind}/{line.record.key}" for line in lines]
        outcomes = {f"{r.resource_type}/{r.id}": r.outcome.value for r in result.resources}
        for written in result.resources:
            self.report.resources[written.outcome.value] += 1
            if written.resource_type == "Patient" and written.outcome is WriteOutcome.created:
                self.new_patients.add(f"Patient/{written.id}")
        config = self.engine.config
        for line in lines:
            record = line.record
            refs = record_refs(record, config)
            for child in embedded_children(record):
                self.report.embedded[child.kind] += 1
            seen = {outcomes[ref] for ref in refs if ref in outcomes}
            outcome = "created" if "created" in seen else "updated" if "updated" in seen else "unchanged"
            self.report.record_synced(line, outcome)
            self.touched |= summary_sessions((record,))
            if record.kind == SESSION and record.visit_id is None:
                # (A session with the EHR's visit is read from the server by its children's
                # bundles: only the server knows its Encounter's id.)
                self.known.add(session_context(record, config))

    async def _tick(self, progress: Ticker) -> None:
        while True:
            await asyncio.sleep(progress.interval_s)
            progress.tick()


def _carried(record: Any) -> str:
    """What a record occupies while its Bundle is in flight: its kind and key; an assessment's or a PHQ-9's
    key whatever the kind, since a key keeps its instrument across both (the later line waits, then the
    instrument check sees the earlier one's write and refuses it with a 409)."""
    kind = FORM if record.kind in (ASSESSMENT, PHQ9) else record.kind
    return f"{kind}/{record.key}"


def _cancel_read_ahead(batches: list[Batch]) -> None:
    for task in {id(b.read_ahead): b.read_ahead for b in batches if b.read_ahead is not None}.values():
        task.cancel()


def _retrieved(task: asyncio.Task[ReadAhead]) -> None:
    if not task.cancelled():
        task.exception()


def stop_reason(exc: InfusionFhirError) -> str:
    """Why a job stopped, as the report says it (no record is at fault)."""
    if isinstance(exc, FhirAuthRefused):
        return f"the FHIR server refused the service's credentials: {exc.message}"
    if isinstance(exc, FhirLacksCapability):
        return exc.message  # e.g. "POST Patient/$validate: the FHIR server has no $validate operation (...)"
    if isinstance(exc, FhirMisconfigured):
        return f"the FHIR server is misconfigured: {exc.message}"
    if isinstance(exc, FhirUnavailable):
        return f"FHIR server unavailable: {exc.message}"
    return exc.message


def _reason(exc: FhirRejected | Conflict) -> str:
    diagnostics = "; ".join(exc.diagnostics())
    return f"{exc.message}: {diagnostics}" if diagnostics else exc.message
