"""Patient: the MRN-identified Patient resource, its conditional-create match URL, and its reverse."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from schemas.common import PatientInfo
from service.mappers import codes, narrative
from service.mappers.build import Json, concept, configured_system, when
from service.mappers.config import MappingConfig
from service.mappers.fhir import DomainResource, Patient, as_resource
from service.mappers.ids import match_identifier, match_param, patient_urn, search_escape

__all__ = [
    "patient_from_fhir",
    "patient_if_none_exist",
    "patient_json",
    "patient_resource",
    "patient_urn",
    "search_escape",
]


def patient_json(patient: PatientInfo, config: MappingConfig) -> Json:
    """A Patient with the MRN identifier (type v2-0203 MR), its match key if any, and whatever demographics are
    given; no id."""
    mrn = {"type": concept((codes.MRN_TYPE,), config), "system": configured_system(config.mrn_system)}
    out: Json = {
        "resourceType": "Patient",
        "text": narrative.patient(patient),
        "identifier": [{**mrn, "value": patient.mrn}],
    }
    key = match_identifier(config.mrn_system, patient.mrn, config)
    if key is not None:
        out["identifier"].append(key)
    if patient.family is not None or patient.given is not None:
        name: Json = {}
        if patient.family is not None:
            name["family"] = patient.family
        if patient.given:
            name["given"] = list(patient.given)
        out["name"] = [name]
    if patient.sex is not None:
        out["gender"] = patient.sex
    if patient.birth_date is not None:
        out["birthDate"] = when(patient.birth_date)
    return out


def patient_resource(patient: PatientInfo, config: MappingConfig) -> Patient:
    """`patient_json` as a validated R4B Patient."""
    return Patient.model_validate(patient_json(patient, config))


def patient_if_none_exist(mrn: str, config: MappingConfig) -> str:
    """`ifNoneExist` of the conditional create: `identifier=` + the URL-encoded escaped `system|mrn`, or the MRN's
    match key when it needs escaping (`ids.match_identifier`)."""
    return "identifier=" + quote(match_param(config.mrn_system, mrn, config), safe="")


def patient_from_fhir(resource: DomainResource | dict[str, Any], config: MappingConfig) -> PatientInfo:
    """The patient part of a record from a Patient resource (identified by the configured MRN system)."""
    patient = as_resource(resource)
    if not isinstance(patient, Patient):
        raise ValueError("expected a Patient resource")
    mrn = next((i.value for i in patient.identifier or [] if i.system == config.mrn_system and i.value), None)
    if mrn is None:
        raise ValueError("the Patient has no identifier in the configured MRN system")
    fields: dict[str, Any] = {"mrn": mrn}
    if patient.name:
        name = patient.name[0]
        if name.family is not None:
            fields["family"] = name.family
        if name.given:
            fields["given"] = list(name.given)
    if patient.birthDate is not None:
        fields["birth_date"] = patient.birthDate
    if patient.gender is not None:
        fields["sex"] = patient.gender
    return PatientInfo.model_validate(fields)
