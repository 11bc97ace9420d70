"""The sync engine: records in, one all-or-nothing FHIR transaction out; reads and retractions.

No FastAPI here: the REST routes and the batch CLI both drive this class.

How a Patient is written (issue 4 chose the conditional create by testing against HAPI; issue 24 moved it
first): a Patient the server lacks is created *conditionally* on its MRN identifier (`ifNoneExist`) in a small
transaction of its own (`identities.py`), so an existing Patient, possibly created by the EHR with demographics we
do not hold, is matched and never overwritten, and the records' transaction references it literally and holds no
conditional entry (servers limit those: docs/compatibility.md). Concurrent first syncs of one MRN race on HAPI's
unique match-URL index: one wins, the others get 409/412. We then re-read the Patient by identifier (POST
`_search`, no MRN in any URL) and go on with it. The EHR's visit (a session's `visit_id`) is an Encounter handled
the same way.

Before anything is written (clinical safety, docs/clinical-safety.md):
* every record naming a `session_key` must be of that session's patient: checked against the
  session in the same request, the batch's memory, or the session's Procedure and Patient on the
  server; a visit id already on the server must be the same patient's;
* a patient has at most one active suicide-risk Flag, and a Flag a clinician changed is never
  written over (`service.safety`: which Flag a positive answer joins or opens, what a retraction leaves).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from schemas import InfusionSession, Record
from schemas.kinds import PHQ9, SESSION
from service.errors import Conflict, FhirDataUnreadable, FhirRejected, NotFound
from service.fhir_client import FhirClient
from service.mappers import (
    MappingConfig,
    mapper_for,
    not_retractable,
    patient_from_fhir,
    record_refs,
    resource_ids,
    retract,
    transaction_bundle,
)
from service.mappers.build import parts_of
from service.mappers.bundle import rewrite_references
from service.mappers.codes import ENTERED_IN_ERROR
from service.mappers.context import SessionContext, child_link, context_from_procedure
from service.mappers.ids import ids_by_type, mrn_of, resource_ref, visit_of, visit_tokens
from service.provenance import SourceRecord, Transactions
from service.safety.sync import PatientLocks, flag_writers, is_own_flag, one_flag_per_patient, withdrawn_flag_entries
from service.sync.deletes import stale_deletes
from service.sync.identities import Identities, patients_by_mrn, resolve_identities
from service.sync.instruments_kept import instruments_kept, kept_refs
from service.sync.limits import send_fitting
from service.sync.outcomes import (
    HeldBefore,
    WriteOutcome,
    WrittenResource,
    shows_storage_codes,
    states_creates,
    written_resources,
)
from service.sync.redact import redact_error
from service.sync.session_read import session_children

log = logging.getLogger("infusion_fhir.sync")

RETRACTED = ENTERED_IN_ERROR


@dataclass
class SyncResult:
    """What one transaction did: every resource written, with its version and outcome."""

    resources: list[WrittenResource] = field(default_factory=list)
    transactions: int = 1
    """Write transactions sent: 0 when the server already held exactly what the records map to."""
    patients: dict[str, str] = field(default_factory=dict)
    """MRN -> `Patient/id` of the Patients this write created or matched first (`identities.py`)."""
    parts: int = 1
    """Transactions the records' resources took: more than one only for a record the server could not take in one
    (`limits.py`), which was then not written all or nothing."""

    @property
    def created_any(self) -> bool:
        return any(r.outcome is WriteOutcome.created for r in self.resources)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.resources:
            out[r.outcome.value] = out.get(r.outcome.value, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"resources": [r.as_dict() for r in self.resources], "counts": self.counts()}
        if self.parts > 1:
            out["split_into_transactions"] = self.parts  # the FHIR server takes fewer updates in one
        return out


@dataclass(frozen=True)
class ReadAhead:
    """What the batch job read for several Bundles at once, before any of them was sent (`read_ahead`).

    `patient_ids`: MRN -> `Patient/id` of the looked-up MRNs (`mrns`) the server held. `copies`:
    the server's current version of each ref in `read` it held (a ref read and absent is not held).
    """

    mrns: frozenset[str]
    patient_ids: Mapping[str, str]
    read: frozenset[str]
    copies: Mapping[str, dict[str, Any]]

    def only(self, records: Iterable[Record], config: MappingConfig) -> ReadAhead:
        """The same lookups, with the copies a Bundle of `records` may use only (`_ahead_refs`)."""
        read = self.read & frozenset(ref for r in records for ref in _ahead_refs(r, config))
        return ReadAhead(self.mrns, self.patient_ids, read, {r: self.copies[r] for r in read if r in self.copies})


class SessionRefused(Conflict):
    """Records name sessions the server lacks, or sessions/visits of another patient; nothing was written.

    Messages name fields and record keys only, never an MRN or anything of the other patient.
    """

    def __init__(
        self, missing: Sequence[str] = (), other_patient: Sequence[str] = (), visits: Sequence[str] = ()
    ) -> None:
        self.missing = sorted(missing)
        self.other_patient = sorted(other_patient)
        self.visits = sorted(visits)
        """Keys of sessions whose visit_id is already another patient's visit."""
        parts = []
        if self.missing:
            parts.append(f"session not found on the FHIR server: {', '.join(self.missing)}; sync the session first")
        if self.other_patient:
            parts.append(
                f"session_key names a session of a different patient than patient.mrn "
                f"({', '.join(self.other_patient)}); nothing was written"
            )
        if self.visits:
            parts.append(
                f"visit_id names a visit of a different patient than patient.mrn "
                f"(sessions {', '.join(self.visits)}); nothing was written"
            )
        self.expression = (
            ["session_key", "patient.mrn"]
            if self.other_patient
            else ["visit_id", "patient.mrn"]
            if self.visits
            else ["session_key"]
        )
        super().__init__("; ".join(parts))

    def refuses(self, record: Any) -> str | None:
        """Why `record` is refused (for the batch's rejects file), or None when it is not."""
        session_key = getattr(record, "session_key", None)
        if session_key in self.missing:
            return f"session {session_key} not found on the FHIR server"
        if session_key in self.other_patient:
            return f"session_key: session {session_key} is of a different patient than patient.mrn"
        if record.kind == SESSION and record.key in self.visits:
            return "visit_id: the visit is of a different patient than patient.mrn"
        return None


class SyncEngine:
    """Maps records with the pure mappers and writes them through the one FHIR client."""

    def __init__(self, fhir: FhirClient, config: MappingConfig, transactions: Transactions | None = None) -> None:
        self.fhir = fhir
        self.transactions = transactions or Transactions(fhir)
        """How writes are sent: as built, or with their Provenance (`service.provenance`)."""
        self.flag_locks = PatientLocks()
        self.config = config

    # -- writes -------------------------------------------------------------------------------

    async def upsert(
        self,
        records: Sequence[Record],
        *,
        known_sessions: Mapping[str, SessionContext] | None = None,
        diff: bool = False,
        new_patients: Container[str] = (),
        read_ahead: ReadAhead | None = None,
        run_patients: Mapping[str, str] | None = None,
    ) -> SyncResult:
        """Write `records` in one transaction (all or nothing); re-sending changes nothing.

        `known_sessions` are sessions the caller has just synced (the batch job), so they need not
        be read from the server again. With `diff`, resources the server already holds exactly as we
        would write them are left out of the transaction, and none is sent when nothing changed
        (see `_Unchanged` for why that is safe with other writers). Only the records of
        Patients the server held before are read for that: a Patient it lacks, or one in
        `new_patients` (`Patient/id`s the caller's run created), has nothing older to compare with,
        and its records are written unread, as without `diff`. A `read_ahead` (the batch job's, for
        several Bundles at once) stands in for the Patient search when it looked up every MRN here,
        and for the reads of the refs it read. `run_patients` (MRN -> `Patient/id`, the batch job's
        `SyncResult.patients` so far) stand in for Patients the lookup did not find because this run
        created them after it: they are not created again.
        """
        unchanged: list[WrittenResource] = []
        try:
            # Independent reads, sent at once; what the caller must act on is raised in a fixed order.
            sessions, visit_ids, patient_ids, _ = _first_failure_raised(
                await asyncio.gather(
                    self.session_contexts(records, known_sessions or {}),
                    self._existing_visits(records),
                    self._patients_on_server(records, read_ahead),
                    instruments_kept(records, lambda refs: self._server_copies(refs, read_ahead), self.config),
                    return_exceptions=True,
                )
            )
            patient_ids = {**(run_patients or {}), **patient_ids}
            is_unchanged = before = held_now = None
            if diff or not self.fhir.tells_creates:  # a server that may answer 200 to a create: read (outcomes.py)
                held = {mrn for mrn, ref in patient_ids.items() if ref not in new_patients}
                every = not self.fhir.tells_creates
                to_read = [
                    ref for r in records if every or r.patient.mrn in held for ref in record_refs(r, self.config)
                ]
                copies = await self._server_copies(to_read, read_ahead)
                before = HeldBefore.of(to_read, copies)
                is_unchanged = _Unchanged(copies) if diff else None
                held_now = copies.__contains__  # a stale part is among `to_read` whenever its record is
            delete_stale = await stale_deletes(self.fhir, self.config, records, held_now, self._current)
            identities = await self._identities(records, patient_ids, visit_ids)
            bundle = self._map(records, identities, sessions, delete_stale, is_unchanged)
            if is_unchanged is not None:
                unchanged = is_unchanged.left_out
            # one writer at a time per patient whose suicide-risk Flag this write raises, joins or withdraws (H-36)
            async with self.flag_locks.hold(flag_writers(records, bundle, self.config, unchanged)):
                bundle, kept = await one_flag_per_patient(self.fhir, self.config, records, bundle)
                if is_unchanged is not None and not bundle["entry"]:
                    log.debug("sync.upsert", extra={"records": len(records), "transactions": 0})
                    return SyncResult(
                        identities.written + unchanged + kept,
                        transactions=identities.transactions,
                        patients=identities.resolved,
                    )
                try:
                    response, parts = await send_fitting(self.transactions, self.fhir, bundle, records)
                except Conflict:
                    # A Flag changed since it was read (or a Patient or visit meanwhile deleted): read again, once.
                    log.info("sync.conflict_retry", extra={"records": [r.key for r in records][:20]})
                    again = await self._identities(
                        records, await self._patients_on_server(records), await self._existing_visits(records)
                    )
                    identities = Identities(
                        again.patient_ids,
                        again.visit_ids,
                        identities.written + again.written,
                        identities.transactions + again.transactions + 1,
                        {**identities.resolved, **again.resolved},
                    )
                    delete_stale = await stale_deletes(self.fhir, self.config, records, None, self._current)
                    bundle = self._map(records, identities, sessions, delete_stale)
                    bundle, kept = await one_flag_per_patient(self.fhir, self.config, records, bundle)
                    response, parts = await send_fitting(self.transactions, self.fhir, bundle, records)
        except (FhirRejected, Conflict) as exc:
            if isinstance(exc, SessionRefused):
                raise
            raise redact_error(exc, records, self.config) from None
        self.fhir.tells_creates = self.fhir.tells_creates or states_creates(bundle, response)
        self.fhir.quiet_deletes = self.fhir.quiet_deletes or shows_storage_codes(response)
        written = identities.written + written_resources(bundle, response, before) + unchanged + kept
        result = SyncResult(
            written, transactions=identities.transactions + parts, patients=identities.resolved, parts=parts
        )
        log.debug("sync.upsert", extra={"records": len(records), "outcomes": result.counts()})
        return result

    async def _identities(
        self, records: Sequence[Record], patient_ids: Mapping[str, str], visit_ids: Mapping[str, str]
    ) -> Identities:
        """The records' Patients and visits, those the server lacks created first (`identities`); when a concurrent
        first sync won the race for one, the Patients and visits read again and the rest created, once."""
        try:
            return await resolve_identities(self.transactions, self.config, records, patient_ids, visit_ids)
        except Conflict:
            log.info("sync.patient_race_retry", extra={"records": [r.key for r in records][:20]})
            patient_ids = await self._patients_on_server(records)
            visit_ids = await self._existing_visits(records)
            found = await resolve_identities(self.transactions, self.config, records, patient_ids, visit_ids)
            found.transactions += 1
            return found

    def _map(
        self,
        records: Sequence[Record],
        identities: Identities,
        sessions: Mapping[str, SessionContext],
        delete_stale: Callable[[str], bool],
        unchanged: _Unchanged | None = None,
    ) -> dict[str, Any]:
        """The transaction for `records`, its Patients and visits referenced literally (no conditional entry), each
        positive answer with its own Flag still: `one_flag_per_patient` turns those into the patient-level Flag."""
        return transaction_bundle(
            records,
            self.config,
            identities.patient_ids,
            sessions=sessions,
            visit_ids=identities.visit_ids,
            unchanged=unchanged,
            delete_stale=delete_stale,
        )

    async def session_contexts(
        self, records: Iterable[Record], known: Mapping[str, SessionContext] | None = None
    ) -> dict[str, SessionContext]:
        """The contexts of sessions that records name but do not carry; SessionRefused when one is
        missing or of another patient than the record naming it."""
        records = list(records)
        known = known or {}
        own = {r.key: r for r in records if r.kind == SESSION}
        naming = [(r, k) for r in records if (k := _session_key(r))]  # (record, the session it names)
        contexts: dict[str, SessionContext] = {}
        wanted = sorted({k for _, k in naming if k not in own and k not in known})
        missing: list[str] = []
        if wanted:
            found, missing = await self._sessions_on_server(wanted)
            contexts.update(found)
        contexts.update({k: known[k] for _, k in naming if k in known and k not in own})
        other: set[str] = set()
        for record, session_key in naming:
            mrn = (
                own[session_key].patient.mrn
                if session_key in own
                else contexts[session_key].mrn
                if session_key in contexts
                else None
            )
            if session_key not in missing and mrn != record.patient.mrn:
                other.add(session_key)
        if missing or other:
            log.info("sync.session_refused", extra={"missing": len(missing), "other_patient": len(other)})
            raise SessionRefused(missing=missing, other_patient=sorted(other))
        return contexts

    async def _sessions_on_server(self, keys: Sequence[str]) -> tuple[dict[str, SessionContext], list[str]]:
        """(contexts of the sessions found, keys not found), from their Procedures and Patients."""
        ids = {resource_ref(SESSION, key, "procedure", self.config).split("/", 1)[1]: key for key in keys}
        procedures, mrns = await self._with_subject_mrns(
            "Procedure", {"_id": ",".join(ids), "_include": "Procedure:subject", "_count": str(len(ids))}
        )
        found = {}
        for procedure in procedures:
            key = ids[procedure["id"]]
            mrn = mrns.get((procedure.get("subject") or {}).get("reference", ""))
            found[key] = context_from_procedure(key, procedure, mrn, self.config)
        return found, sorted(set(keys) - set(found))

    async def _with_subject_mrns(
        self, resource_type: str, params: Mapping[str, str]
    ) -> tuple[list[dict[str, Any]], dict[str, str | None]]:
        """(matches, `Patient/id` -> MRN of the Patients `_include`d with them) of one search."""
        matches, included = await self.fhir.search_with_includes(resource_type, params)
        return matches, {
            f"Patient/{p['id']}": mrn_of(p, self.config) for p in included if p.get("resourceType") == "Patient"
        }

    async def _existing_visits(self, records: Sequence[Record]) -> dict[str, str]:
        """visit id -> `Encounter/id` of the EHR visits already on the server; SessionRefused when a
        visit is another patient's."""
        visits = {r.visit_id: r for r in records if isinstance(r, InfusionSession) and r.visit_id is not None}
        if not visits:
            return {}
        encounters, mrns = await self._with_subject_mrns(
            "Encounter", {"identifier": visit_tokens(visits, self.config), "_include": "Encounter:subject"}
        )
        out: dict[str, str] = {}
        other: list[str] = []
        for encounter in encounters:
            visit_id = visit_of(encounter, self.config)
            if visit_id not in visits:
                continue
            session = visits[visit_id]
            if visit_id in out:
                raise Conflict("more than one Encounter on the FHIR server holds this record's visit_id")
            if mrns.get((encounter.get("subject") or {}).get("reference", "")) != session.patient.mrn:
                other.append(session.key)
            out[visit_id] = f"Encounter/{encounter['id']}"
        if other:
            raise SessionRefused(visits=other)
        return out

    async def read_ahead(
        self, records: Sequence[Record], readable: Iterable[Record], *, new_patients: Container[str] = ()
    ) -> ReadAhead:
        """The Patient lookup of `records` and the server's copies of the resources of `readable` (some of
        them), in one go for several Bundles: one search per type per ~500 ids instead of per Bundle.

        As in `upsert`, only records of Patients the server held (and this run did not create) are read,
        and for every record what the instrument check reads (`_ahead_refs`).
        The caller hands each Bundle only the copies of records no earlier unfinished Bundle carries,
        so no copy can predate a write of this run (`ReadAhead.only`).
        """
        patient_ids = await self._patients_on_server(records)
        held = {mrn for mrn, ref in patient_ids.items() if ref not in new_patients}
        refs = list(dict.fromkeys(ref for r in readable for ref in _ahead_refs(r, self.config, held)))
        copies = await self._current(refs)
        mrns = frozenset(r.patient.mrn for r in records)
        return ReadAhead(mrns, patient_ids, frozenset(refs), copies)

    async def _patients_on_server(
        self, records: Sequence[Record], read_ahead: ReadAhead | None = None
    ) -> dict[str, str]:
        """MRN -> `Patient/id` of the records' patients the server has, in one search (form body, no MRN
        in a URL), or from `read_ahead` when it looked them all up; Conflict when two Patients hold one MRN."""
        mrns = sorted({r.patient.mrn for r in records})
        if read_ahead is not None and read_ahead.mrns.issuperset(mrns):
            return {mrn: read_ahead.patient_ids[mrn] for mrn in mrns if mrn in read_ahead.patient_ids}
        out: dict[str, str] = {}
        for mrn, patients in (await patients_by_mrn(self.fhir, self.config, mrns)).items():
            if len(patients) > 1:
                raise Conflict("more than one Patient on the FHIR server holds this record's MRN")
            out[mrn] = f"Patient/{patients[0]['id']}"
        return out

    async def _by_ref(self, refs: Iterable[str], *, one_page: bool = True, **params: str) -> dict[str, dict[str, Any]]:
        """The resources of `Type/id` refs the server holds, by ref: one `_id` search per type (asking
        for one page of them all unless `one_page` is off; later pages are read either way)."""
        found: dict[str, dict[str, Any]] = {}
        for resource_type, ids in ids_by_type(refs).items():
            search = {"_id": ",".join(ids), **({"_count": str(len(ids))} if one_page else {}), **params}
            for resource in await self.fhir.search(resource_type, search):
                found[f"{resource_type}/{resource['id']}"] = resource
        return found

    async def _current(self, refs: Iterable[str]) -> dict[str, dict[str, Any]]:
        """`Type/id` -> the server's current version, of the refs it holds (`FhirClient.current`, all types at once)."""
        answers = await asyncio.gather(*(self.fhir.current(t, ids) for t, ids in ids_by_type(refs).items()))
        return {f"{r['resourceType']}/{r['id']}": r for found in answers for r in found}

    async def _server_copies(self, refs: Sequence[str], read_ahead: ReadAhead | None) -> dict[str, dict[str, Any]]:
        """`Type/id` -> the server's current version, of `refs` it holds: from the `read_ahead` where it
        read them, else read now."""
        already = read_ahead.read if read_ahead is not None else frozenset()
        copies = await self._current(ref for ref in dict.fromkeys(refs) if ref not in already)
        if read_ahead is not None:
            copies.update({ref: copy for ref in refs if (copy := read_ahead.copies.get(ref)) is not None})
        return copies

    # -- reads --------------------------------------------------------------------------------

    async def read(self, kind: str, key: str) -> Record:
        """The record as the FHIR server holds it (NotFound when absent or retracted)."""
        resources = await self._own_resources(kind, key)
        primary = resources[0] if resources else None
        if primary is None or _is_retracted(primary):
            raise NotFound(f"{kind} {key} not found on the FHIR server")
        if kind == SESSION:
            resources += [r for r in await self._session_children(key, resources) if not _is_retracted(r)]
            visit = await self._visit_of(key, primary)
            if visit is not None:
                resources.append(visit)
        patient = await self._patient_of(primary)
        try:
            return mapper_for(kind).from_fhir(resources, patient_from_fhir(patient, self.config), self.config)
        except (ValueError, ValidationError) as exc:  # RecordInvalid is a ValueError too
            # Not the caller's input: what the server holds does not map back to a record.
            log.warning("sync.unreadable", extra={"kind": kind, "key": key, "error": type(exc).__name__})
            raise FhirDataUnreadable(f"the FHIR server holds data this service cannot read for {kind} {key}") from None

    async def _own_resources(self, kind: str, key: str) -> list[dict[str, Any]]:
        """The record's own resources on the server, primary first (absent ones left out)."""
        wanted = resource_ids(kind, key, self.config)
        found = await self._by_ref((rid.ref for rid in wanted), one_page=False)
        return [found[rid.ref] for rid in wanted if rid.ref in found]

    async def _session_children(self, key: str, session_resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Observations and AdverseEvents of the session's patient that name this session (how they
        are found and recognised is the mappers' knowledge: `session.child_searches`, `is_child_of`)."""
        procedure = next(r for r in session_resources if r["resourceType"] == "Procedure")
        own = {f"{r['resourceType']}/{r['id']}" for r in session_resources}
        return await session_children(self.fhir, self.config, key, procedure, known=own)

    async def _visit_of(self, key: str, procedure: dict[str, Any]) -> dict[str, Any] | None:
        """The EHR visit Encounter the session's Procedure references (None for the service's own)."""
        reference = (procedure.get("encounter") or {}).get("reference", "")
        if not reference.startswith("Encounter/") or reference == resource_ref(SESSION, key, "encounter", self.config):
            return None
        return await self.fhir.read_or_none("Encounter", reference.split("/", 1)[1].split("/_history", 1)[0])

    async def _patient_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        reference = (resource.get("subject") or {}).get("reference", "")
        resource_type, _, resource_id = reference.partition("/")
        if resource_type != "Patient" or not resource_id:
            raise NotFound("the record's resources name no Patient")
        return await self.fhir.read("Patient", resource_id.split("/_history", 1)[0])

    # -- retraction ---------------------------------------------------------------------------

    async def retract(self, kind: str, key: str) -> SyncResult:
        """Mark the record's resources entered-in-error (AdverseEvents: deleted), and nothing else.

        For a session: its own resources (the service's Encounter too, never the EHR's visit) and
        the children that came embedded in it, with the QuestionnaireResponses of its embedded PHQ-9s.
        Records sent on their own keep existing, still naming the (now retracted) session. A suicide-risk
        Flag is not marked through its id: each Flag of the patient naming a retracted panel loses it, and
        is marked only when nothing else is left (`service.safety`). Repeating a retraction is harmless; a
        record the server never had is NotFound.
        """
        resources = await self._own_resources(kind, key)
        if not resources:
            if await self._was_deleted(kind, key):
                return SyncResult()
            raise NotFound(f"{kind} {key} not found on the FHIR server")
        if kind == SESSION:
            embedded = [c for c in await self._session_children(key, resources) if child_link(c, self.config)[1]]
            resources += embedded + await self._responses_of(embedded)
        resources = [r for r in resources if not is_own_flag(r, self.config)]
        patient = str((resources[0].get("subject") or {}).get("reference", ""))
        flags = await withdrawn_flag_entries(self.fhir, self.config, patient, resources)
        entries = [
            {
                "fullUrl": self._full_url(r),
                # the server's meta goes, the narrative stays (`retract` says in it that it is withdrawn)
                "resource": {k: v for k, v in r.items() if k != "meta"},
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in retract(resources)
        ]
        entries += [
            {"request": {"method": "DELETE", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in not_retractable(resources)
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries + flags}
        response, parts = await send_fitting(self.transactions, self.fhir, bundle, [SourceRecord(kind, key)])
        result = SyncResult(written_resources(bundle, response), transactions=parts, parts=parts)
        log.info("sync.retract", extra={"kind": kind, "key": key, "outcomes": result.counts()})
        return result

    async def _responses_of(self, children: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The QuestionnaireResponses of the PHQ-9s among a session's (embedded) children (found by their
        Observations: a response names no session to search by)."""
        keys = sorted({k for (kind, k, _) in parts_of(children, self.config) if kind == PHQ9})
        return list((await self._by_ref(resource_ref(PHQ9, k, "response", self.config) for k in keys)).values())

    def _full_url(self, resource: dict[str, Any]) -> str:
        return f"{self.config.fhir_base_url.rstrip('/')}/{resource['resourceType']}/{resource['id']}"

    async def _was_deleted(self, kind: str, key: str) -> bool:
        """True when the record's primary resource existed and was deleted (410 Gone)."""
        primary = resource_ids(kind, key, self.config)[0]
        try:
            await self.fhir.read(primary.resource_type, primary.id)
        except NotFound as exc:
            return exc.status_code == 410
        return False


def _session_key(record: Record) -> str | None:
    """The key of the session a record names (None for a session, which names none)."""
    return None if isinstance(record, InfusionSession) else record.session_key


def _is_retracted(resource: dict[str, Any]) -> bool:
    return resource.get("status") == RETRACTED


class _Unchanged:
    """The diff's test of a PUT against the server's copies (`transaction_bundle(unchanged=...)`);
    what it leaves out is kept in `left_out`.

    Why skipping is safe with concurrent writers: a resource is left out only when the server's
    current version equals, element for element (meta and narrative aside), what this write would
    leave there. Had we written it, the server would have kept that same content (a no-op
    update); a writer changing it after our read is ordered after us either way, as it would be
    after our write. Nothing stale is kept: any difference, however small, is written.

    The test runs before our references are rewritten (urn -> `Patient/id`), so a resource left out
    costs no rewrite: the server's copy has the rewrite undone instead, and the two are compared as
    canonical JSON. That is the same test: the rewrite is one-to-one (else ours is rewritten and
    compared), and a copy naming one of our urns itself (no server keeps one) is never taken as
    unchanged, so undoing and redoing the rewrite gives the server's copy back.
    """

    def __init__(self, copies: Mapping[str, dict[str, Any]]) -> None:
        self.copies = copies
        self.left_out: list[WrittenResource] = []

    def __call__(self, url: str, ours: dict[str, Any], rewrites: Mapping[str, str]) -> bool:
        server = self.copies.get(url)
        if server is None or not self._held_exactly(server, ours, rewrites):
            return False
        version = (server.get("meta") or {}).get("versionId")
        self.left_out.append(WrittenResource(server["resourceType"], server["id"], version, WriteOutcome.unchanged))
        return True

    @staticmethod
    def _held_exactly(server: dict[str, Any], ours: dict[str, Any], rewrites: Mapping[str, str]) -> bool:
        held = _content(server)
        if not rewrites:
            return held == _content(ours)
        undo = {new: old for old, new in rewrites.items()}
        if len(undo) < len(rewrites):  # not one-to-one: rewrite ours instead
            return held == rewrite_references(_content(ours), rewrites)
        if rewrite_references(held, rewrites) != held:
            return False  # the server's copy names one of our urns
        return rewrite_references(held, undo) == _content(ours)


def _content(resource: dict[str, Any]) -> bytes:
    """A resource's content for comparison: everything but `meta` and `text`, as canonical JSON."""
    return orjson.dumps(_without_meta(resource), option=orjson.OPT_SORT_KEYS)


def _without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("meta", "text")}


def _ahead_refs(record: Record, config: MappingConfig, held: Container[str] | None = None) -> list[str]:
    """The refs a Bundle reads for `record`, so a read-ahead can read them for it: what the instrument
    check reads, and with the diff its own resources when its Patient is `held` (None: whichever)."""
    own = record_refs(record, config) if held is None or record.patient.mrn in held else []
    return [*own, *kept_refs(record, config)]


def _first_failure_raised(results: Sequence[Any]) -> Sequence[Any]:
    """`results` of lookups gathered with `return_exceptions`, once none failed.

    Whichever lookup answered first, the same failure is raised: the first one that is not a
    refusal, in declared order; else every refusal as one SessionRefused, so that a batch rejects
    all its refused lines at once.
    """
    failures = [r for r in results if isinstance(r, BaseException)]
    if not failures:
        return results
    other = [f for f in failures if not isinstance(f, SessionRefused)]
    if other:
        raise other[0]
    refusals = [f for f in failures if isinstance(f, SessionRefused)]
    if len(refusals) == 1:
        raise refusals[0]
    raise SessionRefused(
        missing=[k for r in refusals for k in r.missing],
        other_patient=[k for r in refusals for k in r.other_patient],
        visits=[k for r in refusals for k in r.visits],
    )
