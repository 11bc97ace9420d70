"""Transaction Bundle builder: the resources of a set of records, Patients first, in dependency order.

Entries:
* Patient (one per MRN in the bundle, demographics of its first record): `POST Patient` with
  `fullUrl` = the patient's `urn:uuid:` and `ifNoneExist` = `identifier=<escaped system|mrn>`
  (conditional create; the server rewrites the urn references to the real Patient id). For MRNs
  in `patient_ids` there is no Patient entry and references become the given literal `Patient/id`.
* Everything else: `PUT Type/id` (deterministic ids), `fullUrl` = the relative `Type/id`, ordered
  Procedure, MedicationAdministration, Observation, AdverseEvent; within a type, in record order.
  A resource produced twice (the same record twice) appears once, with its last content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemas.common import PatientInfo
from service.mappers.config import MappingConfig
from service.mappers.ids import patient_urn
from service.mappers.patient import patient_if_none_exist, patient_json
from service.mappers.registry import mapper_for

TYPE_ORDER = ("Procedure", "MedicationAdministration", "Observation", "AdverseEvent")


def _replace_references(value: Any, replacements: Mapping[str, str]) -> Any:
    """A copy of JSON `value` with every `reference` found in `replacements` rewritten."""
    if isinstance(value, dict):
        return {
            k: replacements.get(v, v)
            if k == "reference" and isinstance(v, str)
            else _replace_references(v, replacements)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_replace_references(item, replacements) for item in value]
    return value


def _patient_literal(value: str) -> str:
    return value if value.startswith("Patient/") else f"Patient/{value}"


def transaction_bundle(
    records: Iterable[Any],
    config: MappingConfig,
    patient_ids: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A JSON-ready FHIR transaction Bundle for `records`; same records, identical JSON.

    `patient_ids` maps an MRN to an already-known `Patient/<id>` (or bare id): such patients get
    no entry and are referenced literally.
    """
    known = {mrn: _patient_literal(ref) for mrn, ref in (patient_ids or {}).items()}
    patients: dict[str, PatientInfo] = {}
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        patients.setdefault(record.patient.mrn, record.patient)
        for resource in mapper_for(record.kind).to_fhir_json(record, config):
            resources[(resource["resourceType"], resource["id"])] = resource

    replacements = {patient_urn(mrn, config): ref for mrn, ref in known.items() if mrn in patients}
    entries: list[dict[str, Any]] = []
    for mrn, patient in patients.items():
        if mrn in known:
            continue
        entries.append(
            {
                "fullUrl": patient_urn(mrn, config),
                "resource": patient_json(patient, config),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": patient_if_none_exist(mrn, config),
                },
            }
        )
    for resource_type in TYPE_ORDER:
        for (rtype, rid), resource in resources.items():
            if rtype != resource_type:
                continue
            if replacements:
                resource = _replace_references(resource, replacements)
            url = f"{rtype}/{rid}"
            entries.append({"fullUrl": url, "resource": resource, "request": {"method": "PUT", "url": url}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
