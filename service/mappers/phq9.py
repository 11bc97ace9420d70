"""phq9_assessment <-> panel Observation 44249-1 with 9 item, difficulty and total member Observations.

The total carries valueQuantity {score}, a severity interpretation and, when item 9 > 0, a second
interpretation and a note flagging suicide risk. With a `session_key` every Observation is
`partOf` the session's Procedure (a PHQ-9 taken at the infusion visit is part of that care).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas.phq9 import Phq9Assessment
from service.mappers import codes
from service.mappers.build import (
    Json,
    concept,
    from_decimal,
    has_code,
    parts_of,
    pick,
    quantity,
    referenced_session_key,
    resource_head,
    reverse_mapper,
    session_reference,
    subject,
    when,
)
from service.mappers.config import MappingConfig
from service.mappers.fhir import DomainResource

KIND = "phq9_assessment"
ITEM_PARTS = tuple(f"item-{n}" for n in range(1, 10))


def _observation_maker(record: Phq9Assessment, config: MappingConfig) -> Callable[..., Json]:
    """A maker of this assessment's Observations: (part, code, **elements after effectiveDateTime)."""
    part_of = None
    if record.session_key is not None:
        part_of = [session_reference(record.session_key, "procedure", config)]
    common = {
        "status": codes.OBSERVATION_FINAL,
        "category": [concept((codes.CATEGORY_SURVEY,), config)],
    }
    patient = subject(record.patient.mrn, config)
    effective = when(record.completed_at)

    def observation(part: str, code: Json, **elements: Any) -> Json:
        out = resource_head(KIND, record.key, part, config)
        if part_of:
            out["partOf"] = part_of
        out.update(common, code=code, subject=patient, effectiveDateTime=effective, **elements)
        return out

    return observation


def _total(record: Phq9Assessment, config: MappingConfig, observation: Callable[..., Json]) -> Json:
    severity = codes.phq9_severity(record.total)
    interpretation = [concept((severity,), config, severity.display)]
    extra: Json = {}
    if record.items[8] > 0:
        item9 = codes.PHQ9_ITEM9_POSITIVE
        interpretation.append(concept((item9,), config, item9.display))
        extra["note"] = [{"text": codes.PHQ9_ITEM9_NOTE}]
    return observation(
        "total",
        concept((codes.PHQ9_TOTAL,), config, codes.PHQ9_TOTAL_TEXT),
        valueQuantity=quantity(record.total, codes.UNIT_SCORE),
        interpretation=interpretation,
        **extra,
    )


def to_fhir_json(record: Phq9Assessment, config: MappingConfig) -> list[Json]:
    """Members first (items 1-9, difficulty when given, total), then the panel that lists them."""
    observation = _observation_maker(record, config)
    answers = [codes.PHQ9_ANSWERS[score] for score in record.items]
    members = [
        observation(part, concept((item,), config), valueCodeableConcept=concept((a,), config, a.display))
        for part, item, a in zip(ITEM_PARTS, codes.PHQ9_ITEMS, answers, strict=True)
    ]
    if record.difficulty is not None:
        answer = codes.PHQ9_DIFFICULTY_ANSWERS[record.difficulty]
        members.append(
            observation(
                "difficulty",
                concept((codes.PHQ9_DIFFICULTY,), config),
                valueCodeableConcept=concept((answer,), config, answer.display),
            )
        )
    members.append(_total(record, config, observation))
    panel = observation(
        "panel",
        concept((codes.PHQ9_PANEL,), config, codes.PHQ9_PANEL_TEXT),
        hasMember=[{"reference": f"Observation/{member['id']}"} for member in members],
    )
    return [*members, panel]


def record_fields(parts: dict, key: str, config: MappingConfig) -> dict[str, Any]:
    """Record fields of the PHQ-9 `key` among indexed resources (see `build.parts_of`)."""
    panel = parts[(KIND, key, "panel")]
    if not has_code(panel.code, codes.PHQ9_PANEL, config):
        raise ValueError("the Observation is not a PHQ-9 panel this service writes")
    items = []
    for part in ITEM_PARTS:
        item = parts.get((KIND, key, part))
        if item is None:
            raise ValueError(f"PHQ-9 {part} Observation missing")
        items.append(pick(item.valueCodeableConcept, dict(enumerate(codes.PHQ9_ANSWERS)), config))
    fields: dict[str, Any] = {"key": key, "completed_at": panel.effectiveDateTime, "items": items}
    difficulty = parts.get((KIND, key, "difficulty"))
    if difficulty is not None:
        fields["difficulty"] = pick(difficulty.valueCodeableConcept, codes.PHQ9_DIFFICULTY_ANSWERS, config)
    total = parts.get((KIND, key, "total"))
    if total is not None and total.valueQuantity is not None:
        fields["total"] = int(from_decimal(total.valueQuantity.value))
    session_key = referenced_session_key(panel.partOf, config)
    if session_key is not None:
        fields["session_key"] = session_key
    return fields


from_fhir = reverse_mapper(KIND, record_fields)
