"""Writes a session's monitoring summary (DiagnosticReport, statistics Observations) and critical-episode Flag.

`MonitoringSummaries.refresh(key)` reads the session as its GET does, with what the server holds of its summary,
recomputes it (`summary.py`, the pure mappers) and sends one transaction with what changed, nothing when
nothing did. Called by `POST .../$monitoring-summary`, after every API write or retraction that touches a
session's readings, scores, adverse events or times (before the answer when the write may raise the Flag or is
a retraction, else right after it: `urgency.py`, `deferred.py`), and by batch `sync` for each session the run
touched. The report presents the session's chart (`summary_chart.py`), drawn only when what it shows changed.

- Status: `preliminary` while the infusion has not ended, then `final`; a summary that changes after it was
  final is `amended`. A session retracted since: the report and statistics are entered in error.
- A statistics Observation no longer produced (every reading of that vital retracted) is entered in error.
- The Flag follows `flag_plan` (a clinician's change is never written over).
- Every held resource is written with `If-Match` on the version read; a conflict (another writer in between) is
  read and computed once more. Within a process one refresh per session runs at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.kinds import ADVERSE_EVENT, MONITORING_SCORE, SESSION, VITAL_SIGN
from service.errors import Conflict, FhirRejected, InfusionFhirError, NotFound
from service.fhir_client import FhirClient
from service.keyed_locks import KeyedLocks
from service.mappers import MappingConfig, codes
from service.mappers.context import child_link
from service.mappers.critical_flag import FLAG, critical_flag
from service.mappers.ids import MONITORING_SUMMARY, SLOTS, resource_id, resource_ids, resource_type
from service.mappers.monitoring_report import REPORT, presented_form, presenting, report, statistics
from service.mappers.retract import retract
from service.monitoring import summary_chart
from service.monitoring.chart import PNG
from service.monitoring.deferred import Deferred
from service.monitoring.flag_plan import plan_session_flag
from service.monitoring.store import CHILD_TYPES, readable
from service.monitoring.summary import Summary, summarise
from service.monitoring.summary_chart import Drawn, chart_input
from service.monitoring.urgency import urgent
from service.provenance import SourceRecord, Transactions
from service.sync.outcomes import HeldBefore, WriteOutcome, WrittenResource, written_resources
from service.sync.session_read import session_children

log = logging.getLogger("infusion_fhir.monitoring")
Json = dict[str, Any]
READINGS_KINDS = (VITAL_SIGN, MONITORING_SCORE, ADVERSE_EVENT)
"""Record kinds whose write or retraction changes their session's summary (besides the session itself)."""
ENDED_STATUSES = ("final", "amended", "corrected")


@dataclass(frozen=True)
class AfterWrite:
    """What a write did to its sessions' summaries: refreshed before the answer (`written`), or after (`deferred`)."""

    written: list[WrittenResource] = field(default_factory=list)
    deferred: tuple[str, ...] = ()

    def as_dict(self) -> Json | None:
        """The answer's `monitoring_summary`: None when the write touched no session's summary."""
        if not self.written and not self.deferred:
            return None
        out: Json = {"resources": [w.as_dict() for w in self.written], "counts": counts(self.written)}
        if self.deferred:
            out["deferred"] = list(self.deferred)
        return out


def summary_sessions(records: Iterable[Any]) -> set[str]:
    """Keys of the sessions whose summary records change: a session's own, and the one a reading, score or
    adverse event names."""
    out = set()
    for record in records:
        if record.kind == SESSION:
            out.add(record.key)
        elif record.kind in READINGS_KINDS and record.session_key is not None:
            out.add(record.session_key)
    return out


class MonitoringSummaries:
    """Recomputes and writes session summaries through the one FHIR client (see the module)."""

    def __init__(
        self,
        fhir: FhirClient,
        config: MappingConfig,
        *,
        automatic: bool = True,
        charts: bool = True,
        transactions: Transactions | None = None,
    ) -> None:
        self.fhir = fhir
        self.transactions = transactions or Transactions(fhir)
        """How writes are sent: as built, or with their Provenance (source: the session record)."""
        self.config = config
        self.automatic = automatic
        """Refresh after writes and retractions (`after_write`, `after_retract`); off: only when asked (`refresh`)."""
        self.charts = charts
        """The report presents the session's chart (`presentedForm`, PNG); off: no chart."""
        self.locks = KeyedLocks()  # one refresh per session at a time
        self.deferred = Deferred(self.refresh)
        self.drawn = Drawn()

    async def after_write(self, records: Sequence[Any], written: Sequence[WrittenResource]) -> AfterWrite:
        """Refresh the summaries of the sessions `records` (just written, `written` what it did) touch: before
        answering when the write may raise a Flag (`urgency.py`), else right after (`deferred.py`)."""
        sessions = summary_sessions(records) if self.automatic else set()
        if not sessions:
            return AfterWrite()
        if urgent(records, written, self.config.protocol):
            return AfterWrite(await self._after(sessions))
        self.deferred.schedule(sorted(sessions))
        return AfterWrite(deferred=tuple(sorted(sessions)))

    async def close(self, seconds: float) -> None:
        """At shutdown: the deferred refreshes finish, up to `seconds` (then they are named in the log); then the
        chart worker stops."""
        await self.deferred.drain(seconds)
        summary_chart.shutdown()

    async def before_retract(self, kind: str, key: str) -> str | None:
        """The session whose summary retracting this record changes (read first: an adverse event is deleted)."""
        return await self.session_of(kind, key) if self.automatic else None

    async def after_retract(self, session: str | None) -> list[WrittenResource]:
        return await self._after({session} if session is not None else set())

    async def _after(self, sessions: set[str]) -> list[WrittenResource]:
        """The records are written by now: a failure here says so, and that sending them again redoes it."""
        if not self.automatic or not sessions:
            return []
        try:
            return await self.refresh_all(sessions)
        except InfusionFhirError as exc:
            log.warning(
                "monitoring.summary_failed", extra={"sessions": sorted(sessions)[:20], "error": type(exc).__name__}
            )
            exc.message = (
                f"written, but the monitoring summary of session {', '.join(sorted(sessions))} was not: {exc.message}; "
                "send the same request again"
            )
            exc.args = (exc.message,)
            raise

    async def session_of(self, kind: str, key: str) -> str | None:
        """The session a record of `kind` belongs to, as the server holds it (read before it is retracted)."""
        if kind == SESSION:
            return key
        if kind not in READINGS_KINDS:
            return None
        primary = resource_ids(kind, key, self.config)[0]
        resource = await self.fhir.read_or_none(primary.resource_type, primary.id)
        return None if resource is None else child_link(resource, self.config)[0]

    async def refresh_all(self, keys: Iterable[str], concurrency: int = 4) -> list[WrittenResource]:
        """`refresh` each session (of unknown ones, nothing), `concurrency` at a time."""
        gate = asyncio.Semaphore(concurrency)

        async def one(key: str) -> list[WrittenResource]:
            async with gate:
                return await self.refresh(key)

        found = await asyncio.gather(*(one(key) for key in sorted(set(keys))))
        return [written for each in found for written in each]

    async def refresh(self, key: str, *, required: bool = False) -> list[WrittenResource]:
        """Recompute the session's summary and write what changed; NotFound for an unknown (or retracted) session
        when `required`, else nothing is done for one."""
        async with self.locks.hold([key]):
            try:
                return await self._refresh(key, required)
            except Conflict:  # another writer between our read and our write: read and compute again, once
                log.info("monitoring.summary_retry", extra={"session": key})
                return await self._refresh(key, required)

    async def _refresh(self, key: str, required: bool) -> list[WrittenResource]:
        procedure_id = resource_id(SESSION, key, "procedure", self.config)
        procedure, held = await asyncio.gather(self.fhir.read_or_none("Procedure", procedure_id), self._held(key))
        retracted = procedure is not None and procedure.get("status") == codes.ENTERED_IN_ERROR
        if procedure is None or (retracted and required):
            if required:
                raise NotFound(f"{SESSION} {key} not found on the FHIR server")
            return []
        children = await session_children(self.fhir, self.config, key, procedure, types=CHILD_TYPES)
        summary = summarise(readable(key, [procedure, *children], self.config), self.config.protocol)
        report_ref = self._ref(key, REPORT)
        if not summary.held.readings and not summary.held.events and report_ref not in held:
            return []  # nothing to summarise, and no summary to update
        if retracted:
            writes = self._retracted(held)
        else:
            own = {self._ref(key, slot.part) for slot in SLOTS[MONITORING_SUMMARY]}
            writes = await self._writes(summary, held, corrected(held.get(report_ref), children, summary, own))
        flag_ref = self._ref(key, FLAG)
        flags = plan_session_flag(
            critical_flag(summary, self.config), bool(summary.fired) and not retracted, held.get(flag_ref)
        )
        writes += flags.opened + flags.rewritten
        kept = [ref for ref in held if ref not in {f"{w['resourceType']}/{w['id']}" for w in writes}]
        unchanged = [self._unchanged(held[ref]) for ref in kept if held[ref].get("status") != codes.ENTERED_IN_ERROR]
        if not writes:
            return unchanged
        entries = [self._entry(w, held.get(self._ref_of(w))) for w in writes]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        try:
            response = await self.transactions.send(bundle, [SourceRecord(SESSION, key)])
        except FhirRejected as exc:  # its diagnostics may quote the summary (values): not passed on, nor logged
            log.warning("monitoring.summary_refused", extra={"session": key, "status": exc.status_code})
            raise FhirRejected(
                f"the FHIR server refused the monitoring summary of session {key}", status_code=exc.status_code
            ) from None
        read = {self._ref(key, slot.part) for slot in SLOTS[MONITORING_SUMMARY]}  # what `_held` read
        written = written_resources(bundle, response, HeldBefore.of(read, held))
        log.info("monitoring.summary", extra={"session": key, "written": len(written), "fired": len(summary.fired)})
        return written + unchanged

    async def _writes(self, summary: Summary, held: dict[str, Json], was_corrected: bool) -> list[Json]:
        """The report and statistics that differ from the server's copies, each with its status (see `_status`);
        statistics no longer produced, entered in error."""
        ended = not summary.in_progress
        stats = statistics(summary, "final", self.config)
        ours = [*stats, await self._report(summary, stats, held, was_corrected)]
        produced = {self._ref_of(r) for r in ours}
        stale = [
            r
            for ref, r in held.items()
            if ref not in produced and ref.startswith("Observation/") and r.get("status") != codes.ENTERED_IN_ERROR
        ]
        changed = {
            self._ref_of(r)
            for r in ours
            if _content(r, status=False) != _content(held.get(self._ref_of(r)), status=False)
        }
        any_change = bool(changed or stale)
        for resource in ours:
            ref = self._ref_of(resource)
            whole = any_change if resource["resourceType"] == "DiagnosticReport" else ref in changed
            resource["status"] = _status(ended, held.get(ref), whole and was_corrected)
        writes = [r for r in ours if _content(r) != _content(held.get(self._ref_of(r)))]
        return writes + retract(stale)

    async def _report(self, summary: Summary, stats: list[Json], held: dict[str, Json], was_corrected: bool) -> Json:
        """The report, with its chart. The chart (about a quarter of a second of CPU) is drawn only when what it
        shows may have changed: the report's own content changed (readings added or gone, the infusion's times,
        the discharge time and the protocol named in the conclusion), or a reading was corrected since the report
        (`corrected`) and this process did not draw this very chart before (`Drawn`), or the server's copy has
        none. Otherwise the server's chart is kept as it is."""
        ours = report(summary, "final", self.config, stats)
        chart = chart_input(summary) if self.charts else None
        if chart is None:
            return ours
        before = held.get(self._ref_of(ours)) or {}
        kept = before.get("presentedForm")
        if kept and (
            self.drawn.presents(chart, kept[0].get("data", ""))
            or (not was_corrected and _content(ours, status=False) == _content(_without_chart(before), status=False))
        ):
            return presenting(ours, kept)
        png = await summary_chart.draw(chart, PNG)  # in the chart worker: the event loop keeps serving
        presented = presented_form(PNG, png)
        self.drawn.remember(chart, presented[0]["data"])
        return presenting(ours, presented)

    def _retracted(self, held: dict[str, Json]) -> list[Json]:
        """The held report and statistics of a retracted session, entered in error."""
        return retract(
            r for ref, r in held.items() if not ref.startswith("Flag/") and r.get("status") != codes.ENTERED_IN_ERROR
        )

    async def _held(self, key: str) -> dict[str, Json]:
        """`Type/id` -> the server's current copy of the session's summary resources it holds."""
        by_type: dict[str, list[str]] = {}
        for slot in SLOTS[MONITORING_SUMMARY]:
            by_type.setdefault(slot.resource_type, []).append(
                resource_id(MONITORING_SUMMARY, key, slot.part, self.config)
            )
        answers = await asyncio.gather(*(self.fhir.current(t, ids) for t, ids in by_type.items()))
        return {f"{r['resourceType']}/{r['id']}": r for found in answers for r in found}

    def _ref(self, key: str, part: str) -> str:
        return f"{resource_type(MONITORING_SUMMARY, part)}/{resource_id(MONITORING_SUMMARY, key, part, self.config)}"

    @staticmethod
    def _ref_of(resource: Json) -> str:
        return f"{resource['resourceType']}/{resource['id']}"

    def _entry(self, resource: Json, held: Json | None) -> Json:
        """A PUT; `If-Match` on the version read when the server held it."""
        url = self._ref_of(resource)
        version = (resource.get("meta") or (held or {}).get("meta") or {}).get("versionId")
        entry: Json = {
            "fullUrl": f"{self.config.fhir_base_url.rstrip('/')}/{url}",
            "resource": {k: v for k, v in resource.items() if k != "meta"},
            "request": {"method": "PUT", "url": url},
        }
        if version is not None:
            entry["request"]["ifMatch"] = f'W/"{version}"'
        return entry

    @staticmethod
    def _unchanged(resource: Json) -> WrittenResource:
        version = (resource.get("meta") or {}).get("versionId")
        return WrittenResource(resource["resourceType"], resource["id"], version, WriteOutcome.unchanged)


def _status(ended: bool, held: Json | None, amended: bool) -> str:
    """`preliminary` while the infusion has not ended; then `final`; a copy already final stays so (readings
    added after it only complete it), and becomes `amended` when it changed because of a correction."""
    if not ended:
        return "preliminary"
    before = None if held is None else held.get("status")
    if before in ENDED_STATUSES:
        return "amended" if amended else str(before)
    return "final"


def corrected(report: Json | None, children: Sequence[Json], summary: Summary, own: set[str]) -> bool:
    """Whether the session changed by a correction since its report was written: a reading the report named is
    no longer live (retracted), or a reading, score or adverse event was rewritten after the report (a version
    past the first, updated later than the report; where versions are opaque, not numbers, one the report named,
    updated later). Readings only added since complete a report, they do not amend it; so a session's readings
    sent one by one after it ended give the status the embedded session gives.
    An adverse event deleted (retracted) since cannot be told from the server: the report is updated, not
    marked amended (docs/clinical-safety.md, residual risks)."""
    if report is None:
        return False
    live = {r.ref for r in summary.held.readings}
    named = [r.get("reference") for r in report.get("result", [])]
    if any(ref not in live for ref in named if ref and ref not in own):  # (`own`: the summary's own statistics)
        return True
    since = _instant((report.get("meta") or {}).get("lastUpdated"))
    for child in children:
        meta = child.get("meta") or {}
        version = str(meta.get("versionId", "1"))
        if version == "1":
            continue
        # an opaque version (Medplum's UUIDs) does not tell a first write: only what the report named predates it (row 4)
        if not version.isdigit() and f"{child.get('resourceType')}/{child.get('id')}" not in named:
            continue
        updated = _instant(meta.get("lastUpdated"))
        if since is None or updated is None or updated > since:
            return True
    return False


def _instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _without_chart(resource: Json) -> Json:
    return {k: v for k, v in resource.items() if k != "presentedForm"}


def _content(resource: Json | None, *, status: bool = True) -> bytes | None:
    """A resource's content for comparison: everything but meta and the narrative (and `status` unless asked)."""
    if resource is None:
        return None
    dropped = ("meta", "text") if status else ("meta", "text", "status")
    return orjson.dumps({k: v for k, v in resource.items() if k not in dropped}, option=orjson.OPT_SORT_KEYS)


def counts(written: Sequence[WrittenResource]) -> dict[str, int]:
    out: dict[str, int] = {}
    for w in written:
        out[w.outcome.value] = out.get(w.outcome.value, 0) + 1
    return out
