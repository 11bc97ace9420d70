"""Transaction Bundle builder: the resources of a set of records, Patients first, in dependency order.

Entries:
* Patient (one per MRN in the bundle, demographics of its first record): `POST Patient` with
  `fullUrl` = the patient's `urn:uuid:` and `ifNoneExist` = `identifier=<escaped system|mrn>`, or the MRN's
  match key when it needs escaping (`ids.match_identifier`) (conditional create; the server rewrites the urn
  references to the real Patient id). For MRNs in `patient_ids` there is no Patient entry and references
  become the given literal `Patient/id`.
* The EHR's visit of a session that names a `visit_id`: `POST Encounter` conditional on the visit
  identifier, exactly like the Patient (matched, never written over); `visit_ids` skips it likewise.
* Everything else: `PUT Type/id` (deterministic ids), `fullUrl` = the absolute URL under
  `config.fhir_base_url` (R4 wants absolute fullUrls), ordered Encounter, Procedure,
  MedicationAdministration, QuestionnaireResponse, Observation, AdverseEvent, Flag; within a type, in record order.
  A resource produced twice (the same record twice) appears once, with its last content.
  Refs in `skip` get no entry (the engine's way of never writing over a clinician's Flag), nor do
  those `unchanged` says the server already holds (the engine's diff).

Children take their session's context from the session record when it is among the records, else
from `sessions` (the engine reads it from the FHIR server), else `context.default_context`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from schemas.common import PatientInfo
from schemas.kinds import SESSION, embedded_children
from service.mappers.config import MappingConfig
from service.mappers.context import SessionContext
from service.mappers.ids import match_param, patient_urn, resource_ref, visit_urn
from service.mappers.patient import patient_if_none_exist, patient_json
from service.mappers.registry import mapper_for
from service.mappers.session import session_context, visit_encounter

TYPE_ORDER = (
    "Encounter",
    "Procedure",
    "MedicationAdministration",
    "QuestionnaireResponse",
    "Observation",
    "AdverseEvent",
    "Flag",
)


def rewrite_references(encoded: bytes, replacements: Mapping[str, str]) -> bytes:
    """orjson-encoded JSON with every `reference` found in `replacements` rewritten.

    `"reference":"<urn>"` can only be that key with that value, since a quote inside any JSON
    string is escaped: on the encoded JSON this costs a fifth of walking the dict.
    """
    for old, new in replacements.items():
        encoded = encoded.replace(b'"reference":' + orjson.dumps(old), b'"reference":' + orjson.dumps(new))
    return encoded


def _replace_references(value: dict[str, Any], replacements: Mapping[str, str]) -> dict[str, Any]:
    """A copy of JSON `value` with every `reference` found in `replacements` rewritten."""
    encoded = orjson.dumps(value)
    changed = rewrite_references(encoded, replacements)
    return value if changed == encoded else orjson.loads(changed)


def _literal(resource_type: str, value: str) -> str:
    return value if value.startswith(f"{resource_type}/") else f"{resource_type}/{value}"


def _conditional_create(urn: str, resource: dict[str, Any], if_none_exist: str) -> dict[str, Any]:
    request = {"method": "POST", "url": resource["resourceType"], "ifNoneExist": if_none_exist}
    return {"fullUrl": urn, "resource": resource, "request": request}


def bundle_resources(
    records: Iterable[Any], config: MappingConfig, sessions: Mapping[str, SessionContext] | None = None
) -> tuple[dict[str, PatientInfo], dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
    """(patients by MRN, sessions naming a visit by visit id, resources by (type, id)) of `records`."""
    records = list(records)
    sessions = {
        **(sessions or {}),
        **{r.key: session_context(r, config) for r in records if r.kind == SESSION},
    }
    patients: dict[str, PatientInfo] = {}
    visits: dict[str, Any] = {}
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        patients.setdefault(record.patient.mrn, record.patient)
        if record.kind == SESSION and record.visit_id is not None:
            visits.setdefault(record.visit_id, record)
        context = sessions.get(getattr(record, "session_key", None) or "")
        for resource in mapper_for(record.kind).to_fhir_json(record, config, context):
            resources[(resource["resourceType"], resource["id"])] = resource
    return patients, visits, resources


def transaction_bundle(
    records: Iterable[Any],
    config: MappingConfig,
    patient_ids: Mapping[str, str] | None = None,
    *,
    sessions: Mapping[str, SessionContext] | None = None,
    visit_ids: Mapping[str, str] | None = None,
    skip: Collection[str] = (),
    unchanged: Callable[[str, dict[str, Any], Mapping[str, str]], bool] | None = None,
    delete_stale: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """A JSON-ready FHIR transaction Bundle for `records`; same records, identical JSON.

    `patient_ids` maps an MRN to an already-known `Patient/<id>` (or bare id), `visit_ids` a visit
    id to `Encounter/<id>`: such resources get no entry and are referenced literally. A PUT for
    which `unchanged(url, resource, rewrites)` is true is left out; it is asked before the
    resource's references are rewritten (`rewrite_references` with `rewrites`), so a resource left
    out is never rewritten.

    With `delete_stale`, a part a record no longer has (`KindMapper.stale_parts`: a re-planned
    session's administration, an unasked C-SSRS item) gets a DELETE when `delete_stale(url)` is true
    (always, or with the diff only when the server holds it). Without it, as in an offline Bundle
    (`$convert`, `map`) that knows nothing of a server, there are none.
    """
    records = list(records)
    patients, visits, resources = bundle_resources(records, config, sessions)
    known_patients = {mrn: _literal("Patient", ref) for mrn, ref in (patient_ids or {}).items()}
    known_visits = {visit: _literal("Encounter", ref) for visit, ref in (visit_ids or {}).items()}
    replacements = {patient_urn(mrn, config): ref for mrn, ref in known_patients.items() if mrn in patients}
    replacements.update({visit_urn(v, config): ref for v, ref in known_visits.items()})
    entries = conditional_entries(patients, visits, config, known_patients, known_visits, replacements)
    base = config.fhir_base_url.rstrip("/")
    for resource_type in TYPE_ORDER:
        for (rtype, rid), resource in resources.items():
            url = f"{rtype}/{rid}"
            if rtype != resource_type or url in skip:
                continue
            if unchanged is not None and unchanged(url, resource, replacements):
                continue
            if replacements:
                resource = _replace_references(resource, replacements)
            entries.append({"fullUrl": f"{base}/{url}", "resource": resource, "request": {"method": "PUT", "url": url}})
    if delete_stale is not None:
        for url in stale_refs(records, config):
            if delete_stale(url) and tuple(url.split("/", 1)) not in resources:
                entries.append({"request": {"method": "DELETE", "url": url}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def conditional_entries(
    patients: Mapping[str, PatientInfo],
    visits: Mapping[str, Any],
    config: MappingConfig,
    known_patients: Collection[str] = (),
    known_visits: Collection[str] = (),
    replacements: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The conditional creates of the Patients (by MRN) and EHR visits (by visit id, their session record) not
    known: Patients first, each visit's Encounter referencing its Patient's urn unless `replacements` rewrites it."""
    entries = [
        _conditional_create(patient_urn(mrn, config), patient_json(patient, config), patient_if_none_exist(mrn, config))
        for mrn, patient in patients.items()
        if mrn not in known_patients
    ]
    for visit_id, session in visits.items():
        if visit_id not in known_visits:
            encounter = _replace_references(visit_encounter(session, config), replacements or {})
            if_none_exist = "identifier=" + quote(match_param(config.visit_system, visit_id, config), safe="")
            entries.append(_conditional_create(visit_urn(visit_id, config), encounter, if_none_exist))
    return entries


def stale_refs(records: Iterable[Any], config: MappingConfig) -> list[str]:
    """`Type/id` of the parts `records` (and their embedded children) no longer have, in record order."""
    refs: dict[str, None] = {}
    for record in records:
        for one in (record, *embedded_children(record)):
            for part in mapper_for(one.kind).stale_parts(one):
                refs[resource_ref(one.kind, one.key, part, config)] = None
    return list(refs)
