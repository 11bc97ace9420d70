"""A session's summary inputs read from the FHIR server: its Procedure, then its readings and adverse events.

Read as the session GET reads them (`SyncEngine.read`): the Procedure by its deterministic id (NotFound when
absent or retracted), the children by the mappers' searches (`service.sync.session_read`), only the
Observations and AdverseEvents (a QuestionnaireResponse says nothing the summary uses).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from schemas.kinds import SESSION
from service.errors import FhirDataUnreadable, NotFound
from service.fhir_client import FhirClient
from service.mappers import MappingConfig, codes
from service.mappers.ids import resource_id
from service.monitoring.held import HeldSession, read_session
from service.sync.session_read import session_children

CHILD_TYPES = ("Observation", "AdverseEvent")
log = logging.getLogger("infusion_fhir.monitoring")


async def read_held(fhir: FhirClient, config: MappingConfig, key: str) -> HeldSession:
    """The session `key` as the server holds it (NotFound when it has none, or only a retracted one)."""
    procedure = await fhir.read_or_none("Procedure", resource_id(SESSION, key, "procedure", config))
    if procedure is None or procedure.get("status") == codes.ENTERED_IN_ERROR:
        raise NotFound(f"{SESSION} {key} not found on the FHIR server")
    children = await session_children(fhir, config, key, procedure, types=CHILD_TYPES)
    return readable(key, [procedure, *children], config)


def readable(key: str, resources: list[dict[str, Any]], config: MappingConfig) -> HeldSession:
    """`read_session`, or FhirDataUnreadable (502) when what the server holds does not read back as records."""
    try:
        return read_session(key, resources, config)
    except (ValueError, ValidationError) as exc:
        log.warning("monitoring.unreadable", extra={"session": key, "error": type(exc).__name__})
        raise FhirDataUnreadable(f"the FHIR server holds data this service cannot read for {SESSION} {key}") from None
