"""The codes a Provenance carries, with their sources (named constants: the builder spells none inline)."""

from __future__ import annotations

from typing import Any

from service.mappers import codes as mapper_codes

DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
"""R4 Provenance.activity (extensible, ProvenanceActivityType includes v3 DataOperation)."""
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
"""R4 Provenance.agent.type (extensible, ProvenanceParticipantType)."""
US_CORE_PARTICIPANT_TYPE = "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type"
"""US Core's code system for `transmitter`, which R4's lacks (US Core Provenance, slice ProvenanceTransmitter).
Not loaded on the server: `$validate` warns that it cannot check the code, and reports no error."""
URI_SYSTEM = "urn:ietf:rfc:3986"
"""Identifier system whose value is a URI: how a deleted resource's last version is named."""
ENTERED_IN_ERROR = mapper_codes.ENTERED_IN_ERROR

CREATE = "CREATE"
UPDATE = "UPDATE"
DELETE = "DELETE"
NULLIFY = "NULLIFY"
ACTIVITIES = {
    CREATE: (DATA_OPERATION, CREATE, "create"),
    UPDATE: (DATA_OPERATION, UPDATE, "revise"),
    DELETE: (DATA_OPERATION, DELETE, "delete"),
    NULLIFY: (DATA_OPERATION, NULLIFY, "nullify"),
}
ASSEMBLER = (PARTICIPANT_TYPE, "assembler", "Assembler")
AUTHOR = (PARTICIPANT_TYPE, "author", "Author")
TRANSMITTER = (US_CORE_PARTICIPANT_TYPE, "transmitter", "Transmitter")

ROLE_SOURCE = "source"
ROLE_REMOVAL = "removal"
"""R4 provenance-entity-role: an entity removed from accessibility, usually through the DELETE operation."""


def concept(coding: tuple[str, str, str]) -> dict[str, Any]:
    """A CodeableConcept of one coding (system, code, display)."""
    system, code, display = coding
    return {"coding": [{"system": system, "code": code, "display": display}]}
