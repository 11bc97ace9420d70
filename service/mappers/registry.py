"""Registry: record kind -> its mapper functions, so callers look mappers up by kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import BaseModel

from schemas.records import MODELS, Record
from service.mappers import adverse_event, assessment, monitoring_score, phq9, session, vital_sign
from service.mappers.config import MappingConfig
from service.mappers.fhir import DomainResource, validated
from service.mappers.ids import ResourceId
from service.mappers.ids import resource_ids as _resource_ids


@dataclass(frozen=True)
class KindMapper:
    """The mapping functions of one record kind."""

    kind: str
    model: type[BaseModel]
    to_fhir_json: Callable[..., list[dict[str, Any]]]
    """(record, config, session context=None) -> FHIR JSON resources (deterministic, dependency order):
    the fast path, no model per record."""
    to_fhir: Callable[..., list[DomainResource]]
    """record -> the same resources as validated R4B models (fhir.resources checks each element)."""
    from_fhir: Callable[..., Record]
    """(resources, patient, config, key=None) -> the record; resources are models or JSON as read back,
    and may include other records' resources when `key` names the one wanted."""
    resource_ids: Callable[[str, MappingConfig], list[ResourceId]]
    """(key, config) -> every (resourceType, id) a record of this kind can produce."""
    stale_parts: Callable[[Any], tuple[str, ...]]
    """record -> the parts an earlier version of it may have written and it does not: a transaction
    writing it deletes them, so the server never holds a part the record no longer has."""


def _nothing_stale(record: Any) -> tuple[str, ...]:
    return ()


def _validated(
    to_fhir_json: Callable[..., list[dict[str, Any]]], record: Any, config: MappingConfig, session: Any = None
) -> list[DomainResource]:
    """The validated path: the fast path's JSON, each resource validated into its R4B model."""
    return validated(to_fhir_json(record, config, session))


REGISTRY: dict[str, KindMapper] = {
    module.KIND: KindMapper(
        kind=module.KIND,
        model=MODELS[module.KIND],
        to_fhir_json=module.to_fhir_json,
        to_fhir=partial(_validated, module.to_fhir_json),
        from_fhir=module.from_fhir,
        resource_ids=partial(_resource_ids, module.KIND),
        stale_parts=getattr(module, "stale_parts", _nothing_stale),
    )
    for module in (session, vital_sign, monitoring_score, adverse_event, phq9, assessment)
}


def mapper_for(kind: str) -> KindMapper:
    """The mapper of a record kind (ValueError for an unknown kind)."""
    try:
        return REGISTRY[kind]
    except KeyError:
        raise ValueError(f"unknown record kind {kind!r}") from None
