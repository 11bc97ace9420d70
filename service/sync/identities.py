"""Patient-first: new Patients and EHR visits created in small transactions of their own, before the records' one.

A record's transaction then references them literally and holds no conditional entry. Servers limit such
transactions: Medplum runs one holding a conditional create under serializable isolation and then takes at most
8 entries (docs/compatibility.md, row 1), so a PHQ-9 for a new patient could never be written in one. Here each
identity transaction holds at most `PER_TRANSACTION` conditional creates (with their Provenances, when those are
on: one per patient, so at most 8 entries in all).

A conditional create still decides, on the server, whether the Patient (or visit) exists: an existing one,
perhaps created by the EHR with demographics we do not hold, is matched and never written over. Two first syncs
of one MRN at once race on HAPI's unique match-URL index: the loser's transaction is refused (409/412), nothing
of it written, and the caller reads the Patients again (`SyncEngine.upsert`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas import InfusionSession, Record
from service.mappers import MappingConfig
from service.mappers.bundle import conditional_entries
from service.mappers.ids import patient_urn, visit_urn
from service.provenance import Transactions
from service.sync.outcomes import WrittenResource, written_resources

PER_TRANSACTION = 4
"""Conditional creates in one identity transaction: with a Provenance for each Patient, 8 entries, Medplum's limit."""


@dataclass
class Identities:
    """The records' Patients and EHR visits, all on the server: MRN -> `Patient/id`, visit id -> `Encounter/id`,
    and what the identity transactions wrote (created, or matched: `unchanged`)."""

    patient_ids: dict[str, str]
    visit_ids: dict[str, str]
    written: list[WrittenResource] = field(default_factory=list)
    transactions: int = 0
    resolved: dict[str, str] = field(default_factory=dict)
    """MRN -> `Patient/id` of the Patients the identity transactions created or matched."""


async def resolve_identities(
    transactions: Transactions,
    config: MappingConfig,
    records: Sequence[Record],
    patient_ids: Mapping[str, str],
    visit_ids: Mapping[str, str],
) -> Identities:
    """Create (conditionally) the Patients not in `patient_ids` and the visits not in `visit_ids`; Conflict when a
    concurrent writer won a race for one (nothing of that transaction written)."""
    found = Identities(dict(patient_ids), dict(visit_ids))
    patients = {r.patient.mrn: r.patient for r in records if r.patient.mrn not in patient_ids}
    visits = {
        r.visit_id: r
        for r in records
        if isinstance(r, InfusionSession) and r.visit_id is not None and r.visit_id not in visit_ids
    }
    if not patients and not visits:
        return found
    if len(patients) + len(visits) <= PER_TRANSACTION:  # the usual case: one transaction, visits naming urns
        await _send(transactions, config, records, patients, visits, found)
        return found
    for group in _groups(patients):
        await _send(transactions, config, records, group, {}, found)
    for group in _groups(visits):  # their Patients are all known now
        await _send(transactions, config, records, {}, group, found)
    return found


def _groups(items: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """`items` in consecutive groups of at most PER_TRANSACTION."""
    keys = list(items)
    for start in range(0, len(keys), PER_TRANSACTION):
        yield {key: items[key] for key in keys[start : start + PER_TRANSACTION]}


async def _send(
    transactions: Transactions,
    config: MappingConfig,
    records: Sequence[Record],
    patients: Mapping[str, Any],
    visits: Mapping[str, InfusionSession],
    found: Identities,
) -> None:
    """One identity transaction; what it resolved goes into `found`."""
    replacements = {patient_urn(mrn, config): ref for mrn, ref in found.patient_ids.items()}
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": conditional_entries(patients, visits, config, replacements=replacements),
    }
    sources = [r for r in records if r.patient.mrn in patients or getattr(r, "visit_id", None) in visits]
    # named by what it creates, so a request sent again without it numbers its other Bundles alike
    name = "identities:" + ",".join(sorted(e["fullUrl"] for e in bundle["entry"]))
    response = await transactions.send(bundle, sources, name=name)
    written = written_resources(bundle, response)
    urns = {patient_urn(mrn, config): ("patient", mrn) for mrn in patients}
    urns.update({visit_urn(v, config): ("visit", v) for v in visits})
    for sent, resource in zip(bundle["entry"], written, strict=True):
        kind, key = urns[sent["fullUrl"]]
        ref = f"{resource.resource_type}/{resource.id}"
        if kind == "patient":
            found.patient_ids[key] = found.resolved[key] = ref
        else:
            found.visit_ids[key] = ref
    found.written.extend(written)
    found.transactions += 1
