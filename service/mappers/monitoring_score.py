"""monitoring_score <-> Observation coded in the local monitoring-scale code system (valueInteger)."""

from __future__ import annotations

from typing import Any

from schemas.monitoring_score import MonitoringScore
from service.mappers import codes
from service.mappers.build import (
    Json,
    concept,
    parts_of,
    pick,
    referenced_session_key,
    resource_head,
    reverse_mapper,
    session_reference,
    subject,
    when,
)
from service.mappers.config import MappingConfig
from service.mappers.fhir import DomainResource

KIND = "monitoring_score"
PART = "observation"


def to_fhir_json(record: MonitoringScore, config: MappingConfig) -> list[Json]:
    """One survey Observation, `partOf` the session's Procedure."""
    scale = codes.MONITORING_SCALES[record.instrument]
    return [
        {
            **resource_head(KIND, record.key, PART, config),
            "partOf": [session_reference(record.session_key, "procedure", config)],
            "status": codes.OBSERVATION_FINAL,
            "category": [concept((codes.CATEGORY_SURVEY,), config)],
            "code": concept((scale,), config, codes.MONITORING_TEXT[record.instrument]),
            "subject": subject(record.patient.mrn, config),
            "effectiveDateTime": when(record.measured_at),
            "valueInteger": record.score,
        }
    ]


def record_fields(parts: dict, key: str, config: MappingConfig) -> dict[str, Any]:
    """Record fields of the monitoring score `key` among indexed resources (see `build.parts_of`)."""
    observation = parts[(KIND, key, PART)]
    instrument = pick(observation.code, codes.MONITORING_SCALES, config)
    if instrument is None:
        raise ValueError("the Observation is not a monitoring score this service writes")
    fields: dict[str, Any] = {
        "key": key,
        "measured_at": observation.effectiveDateTime,
        "instrument": instrument,
        "score": observation.valueInteger,
    }
    session_key = referenced_session_key(observation.partOf, config)
    if session_key is not None:
        fields["session_key"] = session_key
    return fields


from_fhir = reverse_mapper(KIND, record_fields)
