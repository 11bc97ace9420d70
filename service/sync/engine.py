"""The sync engine: records in, one all-or-nothing FHIR transaction out; reads and retractions.

No FastAPI here: the REST routes and the batch CLI both drive this class.

How a Patient is written (issue 4 asks us to choose by testing against HAPI; see
tests/integration/test_sync_engine.py): each transaction carries the Patient as a *conditional
create* on its MRN identifier (`ifNoneExist`), so an existing Patient, possibly created by the
EHR with demographics we do not hold, is matched and never overwritten. Concurrent first syncs of
one MRN race on HAPI's unique match-URL index: one wins, the others get 409/412. We then re-read
the Patient by identifier (POST `_search`, no MRN in any URL) and retry once with a literal
reference. A deterministic Patient id written with PUT was rejected: it would overwrite the
EHR's Patient, and an id derived from the MRN leaks it into every URL.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas import Record
from service.errors import Conflict, FhirRejected, NotFound
from service.fhir_client import FhirClient
from service.mappers import MappingConfig, mapper_for, not_retractable, resource_ids, retract, transaction_bundle
from service.mappers.ids import patient_token, resource_ref
from service.sync.outcomes import WriteOutcome, WrittenResource, written_resources
from service.sync.redact import redact_error

log = logging.getLogger("infusion_fhir.sync")

SESSION = "infusion_session"
RETRACTED = "entered-in-error"


@dataclass
class SyncResult:
    """What one transaction did: every resource written, with its version and outcome."""

    resources: list[WrittenResource] = field(default_factory=list)

    @property
    def created_any(self) -> bool:
        return any(r.outcome is WriteOutcome.created for r in self.resources)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.resources:
            out[r.outcome.value] = out.get(r.outcome.value, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"resources": [r.as_dict() for r in self.resources], "counts": self.counts()}


class MissingSessions(Conflict):
    """Records point at sessions the FHIR server does not have; nothing was written."""

    def __init__(self, session_keys: list[str]) -> None:
        self.session_keys = session_keys
        super().__init__(
            f"session not found on the FHIR server: {', '.join(session_keys)}; sync the session first"
        )


class SyncEngine:
    """Maps records with the pure mappers and writes them through the one FHIR client."""

    def __init__(self, fhir: FhirClient, config: MappingConfig) -> None:
        self.fhir = fhir
        self.config = config

    # -- writes -------------------------------------------------------------------------------

    async def upsert(self, records: Sequence[Record], *, known_sessions: Container[str] = ()) -> SyncResult:
        """Write `records` in one transaction (all or nothing); re-sending changes nothing.

        `known_sessions` are session keys the caller has just synced (the batch job), so their
        existence need not be checked again on the server.
        """
        try:
            await self.require_sessions(records, known_sessions)
            bundle = transaction_bundle(records, self.config)
            try:
                response = await self.fhir.transaction(bundle, idempotent=True)
            except Conflict:
                patient_ids = await self._resolve_patients(records)
                log.info("sync.patient_race_retry", extra={"records": [r.key for r in records][:20]})
                bundle = transaction_bundle(records, self.config, patient_ids=patient_ids)
                response = await self.fhir.transaction(bundle, idempotent=True)
        except (FhirRejected, Conflict) as exc:
            raise redact_error(exc, records) from None
        result = SyncResult(written_resources(bundle, response))
        log.debug("sync.upsert", extra={"records": len(records), "outcomes": result.counts()})
        return result

    async def require_sessions(self, records: Iterable[Record], known_sessions: Container[str] = ()) -> None:
        """Conflict naming the sessions that records point at but the server lacks."""
        missing = await self.missing_sessions(records, known_sessions)
        if missing:
            raise MissingSessions(missing)

    async def missing_sessions(self, records: Iterable[Record], known_sessions: Container[str] = ()) -> list[str]:
        """Keys of sessions that records reference, that are neither among them nor on the server."""
        records = list(records)
        own = {r.key for r in records if r.kind == SESSION}
        referenced = {k for r in records if (k := getattr(r, "session_key", None))}
        wanted = sorted(k for k in referenced - own if k not in known_sessions)
        if not wanted:
            return []
        ids = {resource_ref(SESSION, key, "procedure", self.config).split("/", 1)[1]: key for key in wanted}
        found = await self.fhir.search("Procedure", {"_id": ",".join(ids), "_elements": "id", "_count": str(len(ids))})
        return sorted(ids[i] for i in set(ids) - {r["id"] for r in found})

    async def _resolve_patients(self, records: Sequence[Record]) -> dict[str, str]:
        """MRN -> `Patient/id` for patients that exist now (after losing a conditional-create race)."""
        out: dict[str, str] = {}
        for mrn in {r.patient.mrn for r in records}:
            found = await self.fhir.search("Patient", {"identifier": patient_token(mrn, self.config)})
            if len(found) > 1:
                raise Conflict("more than one Patient on the FHIR server holds this record's MRN")
            if found:
                out[mrn] = f"Patient/{found[0]['id']}"
        return out

    # -- reads --------------------------------------------------------------------------------

    async def read(self, kind: str, key: str) -> Record:
        """The record as the FHIR server holds it (NotFound when absent or retracted)."""
        resources = await self._own_resources(kind, key)
        primary = resources[0] if resources else None
        if primary is None or _is_retracted(primary):
            raise NotFound(f"{kind} {key} not found on the FHIR server")
        if kind == SESSION:
            resources += [r for r in await self._session_children(resources) if not _is_retracted(r)]
        patient = await self._patient_of(primary)
        from service.mappers import patient_from_fhir

        return mapper_for(kind).from_fhir(resources, patient_from_fhir(patient, self.config), self.config)

    async def _own_resources(self, kind: str, key: str) -> list[dict[str, Any]]:
        """The record's own resources on the server, primary first (absent ones left out)."""
        wanted = resource_ids(kind, key, self.config)
        by_type: dict[str, list[str]] = {}
        for rid in wanted:
            by_type.setdefault(rid.resource_type, []).append(rid.id)
        found: dict[str, dict[str, Any]] = {}
        for resource_type, ids in by_type.items():
            for resource in await self.fhir.search(resource_type, {"_id": ",".join(ids)}):
                found[f"{resource_type}/{resource['id']}"] = resource
        return [found[rid.ref] for rid in wanted if rid.ref in found]

    async def _session_children(self, session_resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Observations part of the session's Procedure and AdverseEvents suspecting its administration."""
        refs = {f"{r['resourceType']}/{r['id']}" for r in session_resources}
        procedure = next(ref for ref in refs if ref.startswith("Procedure/"))
        children = await self.fhir.search("Observation", {"part-of": procedure})
        administration = next((ref for ref in refs if ref.startswith("MedicationAdministration/")), None)
        if administration:
            children += await self.fhir.search("AdverseEvent", {"substance": administration})
        return [c for c in children if f"{c['resourceType']}/{c['id']}" not in refs]

    async def _patient_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        reference = (resource.get("subject") or {}).get("reference", "")
        resource_type, _, resource_id = reference.partition("/")
        if resource_type != "Patient" or not resource_id:
            raise NotFound("the record's resources name no Patient")
        return await self.fhir.read("Patient", resource_id.split("/_history", 1)[0])

    # -- retraction ---------------------------------------------------------------------------

    async def retract(self, kind: str, key: str) -> SyncResult:
        """Mark every resource derived from the record entered-in-error (AdverseEvents: deleted).

        For a session this includes the resources of records that point at it. Repeating a
        retraction is harmless; a record the server never had is NotFound.
        """
        resources = await self._own_resources(kind, key)
        if not resources:
            if await self._was_deleted(kind, key):
                return SyncResult()
            raise NotFound(f"{kind} {key} not found on the FHIR server")
        if kind == SESSION:
            resources += await self._session_children(resources)
        entries = [
            {"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": _without_meta(r),
             "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in retract(resources)
        ]
        entries += [
            {"request": {"method": "DELETE", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in not_retractable(resources)
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        response = await self.fhir.transaction(bundle, idempotent=True)
        result = SyncResult(written_resources(bundle, response))
        log.info("sync.retract", extra={"kind": kind, "key": key, "outcomes": result.counts()})
        return result

    async def _was_deleted(self, kind: str, key: str) -> bool:
        """True when the record's primary resource existed and was deleted (410 Gone)."""
        primary = resource_ids(kind, key, self.config)[0]
        try:
            await self.fhir.read(primary.resource_type, primary.id)
        except NotFound as exc:
            return exc.status_code == 410
        return False


def _is_retracted(resource: dict[str, Any]) -> bool:
    return resource.get("status") == RETRACTED


def _without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("meta", "text")}
