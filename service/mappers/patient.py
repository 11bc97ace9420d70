"""Patient: the MRN-identified Patient resource, its conditional-create match URL, and its reverse."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from schemas.common import PatientInfo
from service.mappers import codes
from service.mappers.build import concept
from service.mappers.config import MappingConfig
from service.mappers.fhir import DomainResource, HumanName, Identifier, Patient, as_resource
from service.mappers.ids import patient_token, patient_urn, search_escape

__all__ = [
    "patient_from_fhir",
    "patient_if_none_exist",
    "patient_resource",
    "patient_urn",
    "search_escape",
]


def patient_resource(patient: PatientInfo, config: MappingConfig) -> Patient:
    """A Patient with the MRN identifier (type v2-0203 MR) and whatever demographics are given; no id."""
    name = None
    if patient.family is not None or patient.given is not None:
        name = [HumanName(family=patient.family, given=list(patient.given) if patient.given else None)]
    return Patient(
        identifier=[
            Identifier(type=concept([codes.MRN_TYPE], config), system=config.mrn_system, value=patient.mrn)
        ],
        name=name,
        birthDate=patient.birth_date,
        gender=patient.sex,
    )


def patient_if_none_exist(mrn: str, config: MappingConfig) -> str:
    """`ifNoneExist` of the conditional create: `identifier=` + URL-encoded escaped `system|mrn`."""
    return "identifier=" + quote(patient_token(mrn, config), safe="")


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
