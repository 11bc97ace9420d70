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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas import InfusionSession, Record
from service.errors import Conflict, FhirRejected, NotFound
from service.fhir_client import FhirClient
from service.mappers import MappingConfig
from service.mappers.build import Json
from service.mappers.bundle import conditional_entries
from service.mappers.ids import ids_by_type, mrn_of, patient_tokens, patient_urn, visit_of, visit_urn
from service.provenance import Transactions
from service.sync.outcomes import WriteOutcome, WrittenResource, written_resources

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


async def patients_by_mrn(fhir: FhirClient, config: MappingConfig, mrns: Iterable[str]) -> dict[str, list[Json]]:
    """MRN -> the Patients the server holds with exactly that MRN, in one search (form body: no MRN in a URL).

    The search adds each MRN's match key, and a Patient is kept only under the MRN it holds: a server that does
    not honour FHIR search escaping answers other patients' Patients to some MRNs (`ids`, docs/compatibility.md
    row 17)."""
    wanted = sorted(set(mrns))
    out: dict[str, list[Json]] = {}
    if not wanted:
        return out
    for patient in await fhir.search("Patient", {"identifier": patient_tokens(wanted, config)}):
        mrn = mrn_of(patient, config)
        if mrn in wanted:
            out.setdefault(mrn, []).append(patient)
    return out


async def patients_holding(fhir: FhirClient, config: MappingConfig, mrn: str) -> list[Json]:
    """The Patients the server holds with exactly this MRN (`patients_by_mrn`); NotFound when it holds none."""
    patients = (await patients_by_mrn(fhir, config, [mrn])).get(mrn, [])
    if not patients:
        raise NotFound("no Patient with this MRN on the FHIR server")
    return patients


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
    matched: dict[str, tuple[str, str]] = {}
    for sent, resource in zip(bundle["entry"], written, strict=True):
        kind, key = urns[sent["fullUrl"]]
        ref = f"{resource.resource_type}/{resource.id}"
        if kind == "patient":
            found.patient_ids[key] = found.resolved[key] = ref
        else:
            found.visit_ids[key] = ref
        if resource.outcome is WriteOutcome.unchanged:
            matched[ref] = (kind, key)
    if matched:
        await _check_matches(transactions.fhir, config, matched, response, visits, found)
    found.written.extend(written)
    found.transactions += 1


async def _check_matches(
    fhir: FhirClient,
    config: MappingConfig,
    matched: Mapping[str, tuple[str, str]],
    response: Json,
    visits: Mapping[str, InfusionSession],
    found: Identities,
) -> None:
    """What a conditional create matched (rather than created) holds exactly its MRN or visit id, and a visit is
    of its session's Patient. A server whose search is not exact matched another patient's Patient this way
    (row 17): FhirRejected, and nothing of the records is written. A visit of another Patient: Conflict, so the
    caller reads the visits again and refuses the session (`SessionRefused`)."""
    held = {
        f"{r['resourceType']}/{r['id']}": r
        for r in (e.get("resource") for e in response.get("entry", []))
        if isinstance(r, dict) and "id" in r
    }
    unread = [ref for ref in matched if ref not in held]
    if unread:
        for resource_type, ids in ids_by_type(unread).items():
            for resource in await fhir.search(resource_type, {"_id": ",".join(ids)}):
                held[f"{resource_type}/{resource['id']}"] = resource
    for ref, (kind, key) in matched.items():
        resource = held.get(ref, {})
        if kind == "patient" and mrn_of(resource, config) != key:
            found.patient_ids.pop(key, None)
            found.resolved.pop(key, None)
            raise FhirRejected(
                f"the FHIR server matched the record's Patient to {ref}, which does not hold its MRN: nothing of "
                "the record was written (the server's identifier search is not exact: docs/compatibility.md, row 17)"
            )
        if kind == "visit":
            session = visits[key]
            subject = str((resource.get("subject") or {}).get("reference", ""))
            if visit_of(resource, config) != key or subject != found.patient_ids.get(session.patient.mrn):
                raise Conflict(f"the EHR visit of session {session.key} matched {ref}, another patient's or visit's")
