"""The one place FHIR models are imported: fhir.resources.R4B (R4-compatible), never the R5 package root."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fhir.resources.R4B.adverseevent import (
    AdverseEvent,
    AdverseEventSuspectEntity,
    AdverseEventSuspectEntityCausality,
)
from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.medicationadministration import (
    MedicationAdministration,
    MedicationAdministrationDosage,
    MedicationAdministrationPerformer,
)
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.narrative import Narrative
from fhir.resources.R4B.observation import Observation, ObservationComponent
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.procedure import Procedure, ProcedurePerformer
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir.resources.R4B.reference import Reference
from fhir_core.fhirabstractmodel import FHIRAbstractModel

RESOURCE_CLASSES: dict[str, type[DomainResource]] = {
    "AdverseEvent": AdverseEvent,
    "DiagnosticReport": DiagnosticReport,
    "Encounter": Encounter,
    "Flag": Flag,
    "MedicationAdministration": MedicationAdministration,
    "Observation": Observation,
    "Patient": Patient,
    "Procedure": Procedure,
    "QuestionnaireResponse": QuestionnaireResponse,
}


def as_resource(value: DomainResource | dict[str, Any]) -> DomainResource:
    """A resource model from a model or from parsed JSON (as read back from a server)."""
    if isinstance(value, DomainResource):
        return value
    resource_type = value.get("resourceType")
    if resource_type not in RESOURCE_CLASSES:
        raise ValueError("unsupported resourceType")
    return RESOURCE_CLASSES[resource_type].model_validate(value)


def validated(resources: Iterable[dict[str, Any]]) -> list[DomainResource]:
    """R4B models of mapped JSON resources: the validated path (fhir.resources checks every element)."""
    return [as_resource(resource) for resource in resources]


def to_json(resource: FHIRAbstractModel) -> dict[str, Any]:
    """The JSON-ready dict of a resource or element (FHIR JSON: aliases, no empty elements)."""
    return resource.model_dump(mode="json")


__all__ = [
    "RESOURCE_CLASSES",
    "AdverseEvent",
    "AdverseEventSuspectEntity",
    "AdverseEventSuspectEntityCausality",
    "Annotation",
    "CodeableConcept",
    "Coding",
    "DomainResource",
    "Encounter",
    "Extension",
    "Flag",
    "HumanName",
    "Identifier",
    "MedicationAdministration",
    "MedicationAdministrationDosage",
    "MedicationAdministrationPerformer",
    "Meta",
    "Narrative",
    "Observation",
    "ObservationComponent",
    "Patient",
    "Period",
    "Procedure",
    "ProcedurePerformer",
    "Quantity",
    "Questionnaire",
    "QuestionnaireResponse",
    "Reference",
    "as_resource",
    "to_json",
    "validated",
]
