"""Pure record <-> FHIR R4 mappers: one module per record kind, looked up by kind in `REGISTRY`."""

from service.mappers.bundle import transaction_bundle
from service.mappers.config import MappingConfig
from service.mappers.ids import (
    ResourceId,
    identifier_system,
    identifier_value,
    parse_identifier,
    patient_urn,
    record_refs,
    resource_id,
    resource_ids,
    search_escape,
)
from service.mappers.patient import patient_from_fhir, patient_if_none_exist, patient_json, patient_resource
from service.mappers.registry import REGISTRY, KindMapper, mapper_for
from service.mappers.retract import not_retractable, retract

__all__ = [
    "REGISTRY",
    "KindMapper",
    "MappingConfig",
    "ResourceId",
    "identifier_system",
    "identifier_value",
    "mapper_for",
    "not_retractable",
    "parse_identifier",
    "patient_from_fhir",
    "patient_if_none_exist",
    "patient_json",
    "patient_resource",
    "patient_urn",
    "record_refs",
    "resource_id",
    "resource_ids",
    "retract",
    "search_escape",
    "transaction_bundle",
]
