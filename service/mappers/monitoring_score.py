"""monitoring_score <-> Observation coded in the local monitoring-scale code system (valueInteger)."""

from __future__ import annotations

from typing import Any

from schemas import kinds
from schemas.monitoring_score import MonitoringScore
from service.mappers import codes, interpretation, narrative
from service.mappers.build import (
    Json,
    Parts,
    concept,
    encounter_reference,
    linked_session_key,
    observation_links,
    pick,
    resource_head,
    reverse_mapper,
    session_link,
    subject,
    when,
)
from service.mappers.config import MappingConfig
from service.mappers.context import SessionContext, context_for

KIND = kinds.MONITORING_SCORE
PART = "observation"


def to_fhir_json(record: MonitoringScore, config: MappingConfig, session: SessionContext | None = None) -> list[Json]:
    """One survey Observation in the session's visit, `partOf` its Procedure when scored during the infusion;
    MOAA/S and CADSS interpreted (A / AA) against the monitoring protocol in the score's phase."""
    scale = codes.MONITORING_SCALES[record.instrument]
    ctx = context_for(record.session_key, session, config)
    part_of, status = observation_links(record.measured_at, ctx, config)
    phase = None if ctx is None else ctx.phase(record.measured_at)
    judged = interpretation.judged(config.protocol, record.instrument, phase, record.score)
    said = None if judged is None or judged[1] is None else interpretation.words([("", judged[1])])
    text = narrative.monitoring_score(record, bool(part_of), status == codes.ENTERED_IN_ERROR, said)
    out = resource_head(KIND, record.key, PART, config, extension=session_link(ctx, config), text=text)
    if part_of:
        out["partOf"] = part_of
    out.update(
        status=status,
        category=[concept((codes.CATEGORY_SURVEY,), config)],
        code=concept((scale,), config, codes.MONITORING_TEXT[record.instrument]),
        subject=subject(record.patient.mrn, config),
        encounter=encounter_reference(ctx),
        effectiveDateTime=when(record.measured_at),
        valueInteger=record.score,
    )
    if judged is not None:
        out.update(judged[0])
    return [out]


def record_fields(parts: Parts, key: str, config: MappingConfig) -> dict[str, Any]:
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
    session_key = linked_session_key(observation, config)
    if session_key is not None:
        fields["session_key"] = session_key
    return fields


from_fhir = reverse_mapper(KIND, record_fields)
