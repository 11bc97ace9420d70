"""How write transactions reach the FHIR server: as built (`Transactions`), or with their Provenance (`ProvenanceWriter`).

The sync engine and the monitoring summaries send every write through one of these; the API and the batch pick
which from `INFUSION_FHIR_PROVENANCE`. The writer adds, to the Bundle it sends (never to the caller's):
- one Provenance per patient and activity (`build.provenances`), its id derived from the request id (API) or the
  job id (batch) and the Bundle's sequence in it, with the time the Bundle was first sent: the same Bundle sent
  again (a retry) carries the very same Provenances, so it writes each once;
- for each resource a DELETE entry removes: the Provenances naming it, rewritten without it (deleted when it was
  their only target; HAPI keeps their history), since HAPI refuses to delete what a reference names.
The response handed back has the caller's entries only, so what it reports as written is unchanged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from service.errors import FhirRejected
from service.fhir_client import FhirClient
from service.mappers import MappingConfig
from service.provenance.agents import AgentsOnce, Clinic
from service.provenance.build import PROVENANCE, Agents, Deleted, Stamp, entry, provenances
from service.provenance.sources import sources_of
from service.request_context import current_caller, current_request_id

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger("infusion_fhir.provenance")
_bundles: ContextVar[tuple[str, Iterator[int]] | None] = ContextVar("infusion_fhir_provenance_bundles", default=None)
"""The request id and the count of the Bundles sent for it so far (an API request's tasks share it)."""
Json = dict[str, Any]
WILDCARD, PROVENANCE_TARGETS = "*", "Provenance:target"
REMEMBERED = 32
"""Bundles whose additions are kept, so a Bundle sent again gets the same ones (a retry sends it at once)."""


class Transactions:
    """Sends a transaction Bundle as built, adding nothing (Provenance off)."""

    def __init__(self, fhir: FhirClient) -> None:
        self.fhir = fhir
        self.provenances = 0
        """Provenances this object created (none here)."""

    async def send(self, bundle: Json, sources: Sequence[Any] = (), *, name: str | None = None) -> Json:
        """POST the transaction (idempotent: every entry is a PUT, DELETE or conditional create); its response.
        `name`: the Bundle's name in its request, in place of its sequence number (`ProvenanceWriter._scope`)."""
        return await self.fhir.transaction(bundle, idempotent=True)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class ProvenanceWriter(Transactions):
    """Sends each Bundle with its Provenances (see the module). `sequenced`: a batch job, whose one request id
    covers many Bundles, so each new Bundle's Provenances also derive from its sequence number."""

    def __init__(
        self,
        fhir: FhirClient,
        config: MappingConfig,
        agents: AgentsOnce,
        *,
        caller_system: str,
        sequenced: bool = False,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        super().__init__(fhir)
        self.config = config
        self.agents = agents
        self.caller_system = caller_system
        self.sequenced = sequenced
        self.clock = clock
        self._run = uuid.uuid4().hex  # the scope when no request id is set
        self._sequence = itertools.count(1)
        self._built: OrderedDict[int, tuple[Json, list[Json], int]] = OrderedDict()
        self._written: OrderedDict[str, None] = OrderedDict()
        """Ids of the Provenances written lately (`_created`)."""
        self._revinclude = WILDCARD
        """How a DELETE's referrers are found: every one (`*`), or on a server refusing that its Provenances."""

    async def send(self, bundle: Json, sources: Sequence[Any] = (), *, name: str | None = None) -> Json:
        added, new = await self._additions(bundle, sources, name)
        if not added:
            return await self.fhir.transaction(bundle, idempotent=True)
        mine = len(bundle["entry"])
        sent = {**bundle, "entry": [*bundle["entry"], *added]}
        response = await self.fhir.transaction(sent, idempotent=True)
        answers = response.get("entry", [])
        self.provenances += self._created(added[len(added) - new :], answers[len(answers) - new :])
        log.debug("provenance.sent", extra={"provenances": new, "rewritten": len(added) - new})
        return {**response, "entry": answers[:mine]}

    def _created(self, provenances: Sequence[Json], answers: Sequence[Json]) -> int:
        """How many of the Provenances sent were created: a 201; on a server that answers 200 to a create too
        (Medplum's engine), a 2xx for one this writer has not had written before (a Bundle sent again carries the
        very same ones)."""
        created = 0
        for provenance, answer in zip(provenances, answers, strict=False):
            status = str(answer.get("response", {}).get("status"))[:3]
            first = provenance["resource"]["id"] not in self._written
            self._written[provenance["resource"]["id"]] = None
            created += status == "201" or (status == "200" and first and not self.fhir.tells_creates)
        while len(self._written) > REMEMBERED * 64:
            self._written.popitem(last=False)
        return created

    async def _additions(self, bundle: Json, sources: Sequence[Any], name: str | None) -> tuple[list[Json], int]:
        """(entries to add, how many of them, at the end, are new Provenances): built once per Bundle."""
        held = self._built.get(id(bundle))
        if held is not None and held[0] is bundle:
            return held[1], held[2]
        entries = bundle.get("entry", [])
        deleted, rewrites = await self._deletes(entries)
        written = [e for e in entries if "resource" in e]
        if not written and not deleted:
            return [], 0
        await self.agents.ensure()
        agents = Agents(self.agents.device_ref, self.agents.organization_ref, self.caller_system, _caller_name())
        stamp = Stamp(self.clock(), self._scope(name))
        base = self.config.fhir_base_url
        ours = provenances(written, sources_of(sources, self.config), agents, stamp, base, deleted)
        added = rewrites + [entry(p, base) for p in ours]
        self._built[id(bundle)] = (bundle, added, len(ours))
        while len(self._built) > REMEMBERED:
            self._built.popitem(last=False)
        return added, len(ours)

    def _scope(self, name: str | None = None) -> str:
        """The request (or job) id and the Bundle's sequence number in it: for a job, this writer's count; for an
        API request, a count kept in the request's context, so the same request sent again (same `X-Request-Id`)
        numbers its Bundles alike. A Bundle sent only sometimes (a new Patient's, before the records': see
        `service.sync.identities`) is `name`d instead, so it takes no number from the others. With no request id,
        a scope of this Bundle alone."""
        request_id = current_request_id()
        if request_id is None:
            return f"{self._run}-{uuid.uuid4().hex}"
        if name is not None:
            return f"{request_id}#{name}"
        if self.sequenced:
            return f"{request_id}#{next(self._sequence)}"
        held = _bundles.get()
        if held is None or held[0] != request_id:
            held = (request_id, itertools.count(1))
            _bundles.set(held)
        return f"{request_id}#{next(held[1])}"

    async def _deletes(self, entries: Sequence[Json]) -> tuple[list[Deleted], list[Json]]:
        """What the DELETE entries remove (as the server holds it), and the rewrites of the Provenances naming it.

        No rewrite when anything else still names a resource being deleted (a resource this Bundle neither
        writes nor deletes): HAPI then refuses the DELETE (409), as it would without Provenance. Rewriting the
        Provenances anyway would let that DELETE through, since HAPI checks only the first reference it finds to
        a deleted resource and drops that conflict when its source is written in the same transaction."""
        by_type: dict[str, list[str]] = {}
        for e in entries:
            url = e.get("request", {}).get("url", "")
            if e.get("request", {}).get("method") == "DELETE" and "?" not in url:
                resource_type, _, resource_id = url.partition("/")
                by_type.setdefault(resource_type, []).append(resource_id)
        if not by_type:
            return [], []
        found = await self._with_referrers(by_type)
        deleted = [_deleted(r) for matches, _ in found for r in matches]
        referrers = [r for _, included in found for r in included]
        written = {e.get("request", {}).get("url") for e in entries}
        others = [
            r for r in referrers if r["resourceType"] != PROVENANCE and f"{r['resourceType']}/{r['id']}" not in written
        ]
        if others:
            log.info("provenance.delete_referenced", extra={"deleting": len(deleted), "referrers": len(others)})
            return deleted, []
        gone = {f"{d.resource_type}/{d.id}" for d in deleted}
        naming = {p["id"]: p for p in referrers if p["resourceType"] == PROVENANCE}
        return deleted, [_without(p, gone, self.config.fhir_base_url) for _, p in sorted(naming.items())]

    async def _with_referrers(self, by_type: dict[str, list[str]]) -> list[tuple[list[Json], list[Json]]]:
        """Per type, (the resources of `by_type`, every resource naming them): `_revinclude=*`; on a server that
        refuses the wildcard (Medplum's engine: 400), the Provenances naming them (`Provenance:target`) from then on.
        Such a server keeps no referential integrity, so there is no refusal for others to cause; a dose an adverse
        event suspects is kept by the engine's own check (`service.sync.deletes`)."""

        async def search(revinclude: str) -> list[tuple[list[Json], list[Json]]]:
            return await asyncio.gather(
                *(
                    self.fhir.search_with_includes(t, {"_id": ",".join(ids), "_revinclude": revinclude})
                    for t, ids in by_type.items()
                )
            )

        if self._revinclude == WILDCARD:
            try:
                return await search(WILDCARD)
            except FhirRejected:
                log.info("provenance.revinclude_wildcard_refused")
                self._revinclude = PROVENANCE_TARGETS
        return await search(self._revinclude)


def transactions_for(settings: Settings, fhir: FhirClient, *, sequenced: bool = False) -> Transactions:
    """What the settings ask for: a `ProvenanceWriter` (`INFUSION_FHIR_PROVENANCE`, `sequenced` for a batch job),
    else `Transactions`."""
    if not settings.provenance:
        return Transactions(fhir)
    config = settings.mapping_config()
    clinic = Clinic(settings.provenance_clinic_name, settings.provenance_clinic_identifier)
    agents = AgentsOnce(fhir, clinic, config.fhir_base_url)
    caller_system = f"{config.identifier_system_base.rstrip('/')}/caller"
    return ProvenanceWriter(fhir, config, agents, caller_system=caller_system, sequenced=sequenced)


def _caller_name() -> str | None:
    caller = current_caller()
    return caller.name if caller is not None else None


def _deleted(resource: Json) -> Deleted:
    subject = (resource.get("subject") or {}).get("reference")
    version = (resource.get("meta") or {}).get("versionId")
    return Deleted(resource["resourceType"], resource["id"], version, subject)


def _without(provenance: Json, gone: set[str], base_url: str) -> Json:
    """The Provenance rewritten without the targets in `gone` (a DELETE when none is left)."""
    url = f"{PROVENANCE}/{provenance['id']}"
    kept = [t for t in provenance.get("target", []) if _plain(t.get("reference")) not in gone]
    if not kept:
        return {"request": {"method": "DELETE", "url": url}}
    rewritten = {k: v for k, v in provenance.items() if k != "meta"}
    rewritten["target"] = kept
    return entry(rewritten, base_url)


def _plain(reference: str | None) -> str | None:
    """`Type/id` of a relative or absolute, versioned or not, reference."""
    if not reference:
        return None
    parts = reference.split("/_history/", 1)[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else reference
