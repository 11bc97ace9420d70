"""A session's children as the FHIR server holds them: found by the mappers' searches, and kept only when
they are of the session's own patient and name the session (`session.child_searches`, `is_child_of`)."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from service.fhir_client import FhirClient
from service.mappers import MappingConfig
from service.mappers.session import child_searches, is_child_of

Json = dict[str, Any]


async def session_children(
    fhir: FhirClient,
    config: MappingConfig,
    key: str,
    procedure: Json,
    *,
    known: Container[str] = (),
    types: Container[str] | None = None,
) -> list[Json]:
    """The children of the session `key` (its Procedure as read back), by `Type/id` once each, leaving out
    the refs in `known`; `types` limits the searches to those resource types."""
    children: dict[str, Json] = {}
    for resource_type, params in child_searches(key, procedure, config):
        if types is not None and resource_type not in types:
            continue
        for child in await fhir.search(resource_type, params):
            ref = f"{child['resourceType']}/{child['id']}"
            if ref not in known and is_child_of(child, key, procedure, config):
                children[ref] = child
    return list(children.values())
