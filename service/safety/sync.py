"""The suicide-risk Flags a write or a retraction changes, read from the FHIR server and put into its transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from schemas.kinds import ASSESSMENT, PHQ9, embedded_children
from service.fhir_client import FhirClient
from service.keyed_locks import KeyedLocks
from service.mappers.codes import ENTERED_IN_ERROR, SNOMED
from service.mappers.config import MappingConfig
from service.mappers.ids import identifier_system, mrn_of, patient_tokens, resource_ref, search_escape
from service.safety.flags import FlagPlan, Raised, plan_flags, withdrawn_from
from service.sync.outcomes import WriteOutcome, WrittenResource

Json = dict[str, Any]
SUICIDAL_THOUGHTS = "6471006"  # the SNOMED code every suicide-risk Flag of ours carries (codes.FLAG_CODE)
FLAG_KINDS = (PHQ9, ASSESSMENT)


async def one_flag_per_patient(
    fhir: FhirClient, config: MappingConfig, records: Sequence[Any], bundle: Json
) -> tuple[Json, list[WrittenResource]]:
    """`bundle` with the mappers' per-record Flags replaced by the patient-level Flag writes (`flags.py`),
    and the held Flags that already name a positive sent again (reported as unchanged, not written).

    Reads the records' patients' Flags only when the bundle holds a Flag at all."""
    owners = _flag_owners(records, config)
    raised = [
        Raised(owners[e["request"]["url"]], e["resource"])
        for e in bundle["entry"]
        if e.get("resource") and e["request"]["url"] in owners
    ]
    if not raised:
        return bundle, []
    held = await _held_by_mrn(fhir, config, sorted({r.mrn for r in raised}))
    plan = plan_flags(raised, held)
    entries = [e for e in bundle["entry"] if e["request"]["url"] not in owners]
    return {**bundle, "entry": entries + plan.entries(config.fhir_base_url)}, _unchanged(plan)


async def withdrawn_flag_entries(
    fhir: FhirClient, config: MappingConfig, patient: str, retracted: Iterable[Json]
) -> list[Json]:
    """PUT entries (with `If-Match`) for the Flags of `patient` (`Patient/<id>`) that name any of the
    `retracted` resources: without them, or entered-in-error when nothing else is left."""
    refs = {f"{r['resourceType']}/{r['id']}" for r in retracted}
    held = await _search(fhir, config, {"patient": patient})
    return FlagPlan(rewritten=withdrawn_from(held, refs)).entries(config.fhir_base_url)


class PatientLocks(KeyedLocks):
    """One writer at a time per patient for the Flag step: from reading the patient's Flags to the end of
    the transaction that writes them. Without it, two transactions of one process (the batch's workers,
    concurrent API calls) could each find no active Flag and open one each. Patients are locked in
    sorted order (no deadlock); a lock no one holds or waits for is dropped. Writers in other processes
    are caught by `If-Match` on joins; two opening a first Flag at the same instant remain possible."""


def flag_writers(
    records: Sequence[Any], bundle: Json, config: MappingConfig, left_out: Iterable[WrittenResource] = ()
) -> list[str]:
    """MRNs of the patients `PatientLocks` holds for this write: those whose suicide-risk Flag the mapped `bundle`
    raises or withdraws (a positive answer, a retraction), and those whose Flag the diff left out as unchanged
    (`left_out`: a Conflict retry maps without the diff and sends it again). A Bundle without one takes no lock,
    so a patient's readings and negative scores are not held behind the Flag write of another Bundle."""
    owners = _flag_owners(records, config)
    refs = {e["request"]["url"] for e in bundle["entry"]} | {f"{w.resource_type}/{w.id}" for w in left_out}
    return sorted({owners[ref] for ref in refs if ref in owners})


def is_own_flag(resource: Json, config: MappingConfig) -> bool:
    """Whether a resource is one of our suicide-risk Flags (which retraction changes through their evidence)."""
    return resource.get("resourceType") == "Flag" and _ours(resource, config)


def _flag_owners(records: Sequence[Any], config: MappingConfig) -> dict[str, str]:
    """`Flag/<id>` a record (or an embedded child) would write -> its patient's MRN."""
    out = {}
    for record in records:
        for one in (record, *embedded_children(record)):
            if one.kind in FLAG_KINDS:
                out[resource_ref(one.kind, one.key, "flag", config)] = record.patient.mrn
    return out


async def _held_by_mrn(fhir: FhirClient, config: MappingConfig, mrns: list[str]) -> dict[str, list[Json]]:
    """MRN -> our suicide-risk Flags of that patient (every status), one search for all of them."""
    flags, patients = await fhir.search_with_includes(
        "Flag", {**_ours_param(config), "patient.identifier": patient_tokens(mrns, config), "_include": "Flag:patient"}
    )
    mrns_by_ref = {f"Patient/{p['id']}": mrn_of(p, config) for p in patients if p.get("resourceType") == "Patient"}
    out: dict[str, list[Json]] = {}
    for flag in flags:
        mrn = mrns_by_ref.get(str((flag.get("subject") or {}).get("reference")))
        if mrn is not None and _ours(flag, config):
            out.setdefault(mrn, []).append(flag)
    return out


async def _search(fhir: FhirClient, config: MappingConfig, params: dict[str, str]) -> list[Json]:
    return [f for f in await fhir.search("Flag", {**_ours_param(config), **params}) if _ours(f, config)]


def _ours_param(config: MappingConfig) -> dict[str, str]:
    """Flags with our identifier, any value (`system|` token search), every page."""
    return {"identifier": ",".join(f"{search_escape(identifier_system(k, config))}|" for k in FLAG_KINDS)}


def _ours(flag: Json, config: MappingConfig) -> bool:
    systems = {identifier_system(k, config) for k in FLAG_KINDS}
    codes = {(c.get("system"), c.get("code")) for c in (flag.get("code") or {}).get("coding", [])}
    return any(i.get("system") in systems for i in flag.get("identifier", [])) and (SNOMED, SUICIDAL_THOUGHTS) in codes


def _unchanged(plan: FlagPlan) -> list[WrittenResource]:
    return [
        WrittenResource("Flag", flag["id"], (flag.get("meta") or {}).get("versionId"), WriteOutcome.unchanged)
        for flag in plan.unchanged.values()
        if flag.get("status") != ENTERED_IN_ERROR
    ]
