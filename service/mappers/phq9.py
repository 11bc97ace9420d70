"""phq9_assessment <-> its QuestionnaireResponse, and the panel Observation 44249-1 with 9 item, difficulty and
total member Observations extracted from it (`derivedFrom`).

The QuestionnaireResponse answers the service's PHQ-9 Questionnaire (`service/mappers/response.py`, from
the PHQ-9 definition), as an `assessment` does: a PHQ-9 sent as either kind is one record (issue 21). The
Observations keep the resource ids and content they always had (codes.py's PHQ9_* codes, held equal to the
definition's by a unit test), so the `$phq9-trend` reads them as before. The total carries valueQuantity
{score}, a severity interpretation and, when item 9 is positive (above 0 by default; the clinic's threshold
in force, `MappingConfig.thresholds`), a second interpretation (v3 POS + local code, also on the item-9
answer) and a note flagging suicide risk; a positive item 9 also makes an R4 Flag on the patient. With a
`session_key` every resource references the session's visit (`encounter`); only a PHQ-9 taken during the
infusion is `partOf` it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from schemas import kinds
from schemas.assessment import DIFFICULTY_ORDER
from schemas.phq9 import Phq9Assessment
from service.instruments import definition, safety_positives
from service.mappers import codes, narrative, response
from service.mappers.build import (
    Json,
    Parts,
    concept,
    encounter_reference,
    from_decimal,
    has_code,
    linked_session_key,
    observation_links,
    pick,
    quantity,
    resource_head,
    reverse_mapper,
    session_link,
    subject,
    suicide_risk_flag,
    when,
)
from service.mappers.config import MappingConfig
from service.mappers.context import SessionContext, context_for
from service.mappers.ids import resource_ref

KIND = kinds.PHQ9
PHQ9 = definition("phq9")
ITEM_PARTS = tuple(f"item-{n}" for n in range(1, 10))


def _observation_maker(
    record: Phq9Assessment, ctx: SessionContext | None, config: MappingConfig
) -> Callable[..., Json]:
    """A maker of this assessment's Observations: (part, code, narrative, **elements after effectiveDateTime).

    `narrative` is a narrative.phq9_* function still to be given (when, during, entered in error);
    every Observation ends with `derivedFrom` the QuestionnaireResponse.
    """
    part_of, status = observation_links(record.completed_at, ctx, config)
    told = (narrative.at(record.completed_at), bool(part_of), status == codes.ENTERED_IN_ERROR)
    extension = session_link(ctx, config)
    category = [concept((codes.CATEGORY_SURVEY,), config)]
    patient = subject(record.patient.mrn, config)
    encounter = encounter_reference(ctx)
    effective = when(record.completed_at)
    derived_from = [{"reference": resource_ref(KIND, record.key, response.PART, config)}]

    def observation(part: str, code: Json, text: Callable[..., Json], **elements: Any) -> Json:
        out = resource_head(KIND, record.key, part, config, extension=extension, text=text(*told))
        if part_of:
            out["partOf"] = part_of
        out.update(status=status, category=category, code=code, subject=patient)
        if encounter is not None:
            out["encounter"] = encounter
        out.update(effectiveDateTime=effective, **elements)
        out["derivedFrom"] = derived_from
        return out

    return observation


def item9_positive(record: Phq9Assessment, config: MappingConfig) -> bool:
    """Whether item 9 is a positive safety answer under the threshold in force (default: above 0)."""
    return bool(safety_positives(definition("phq9"), record.items, config.thresholds.of("phq9")))


def _item9_positive(config: MappingConfig) -> Json:
    """The interpretation of a positive item 9: v3 POS beside the local code (codes.INTERPRETATION_POSITIVE)."""
    item9 = codes.PHQ9_ITEM9_POSITIVE
    return concept((codes.INTERPRETATION_POSITIVE, item9), config, item9.display)


def _total(record: Phq9Assessment, config: MappingConfig, observation: Callable[..., Json]) -> Json:
    assert record.total is not None  # the record's validator fills it in from the items
    severity = codes.phq9_severity(record.total)
    interpretation = [concept((severity,), config, severity.display)]
    extra: Json = {}
    positive = item9_positive(record, config)
    if positive:
        interpretation.append(_item9_positive(config))
        extra["note"] = [{"text": codes.PHQ9_ITEM9_NOTE}]
    return observation(
        "total",
        concept((codes.PHQ9_TOTAL,), config, codes.PHQ9_TOTAL_TEXT),
        partial(narrative.phq9_total, record.total, positive),
        valueQuantity=quantity(record.total, codes.UNIT_SCORE),
        interpretation=interpretation,
        **extra,
    )


def _item(
    number: int, item: codes.Code, score: int, positive: bool, config: MappingConfig, observation: Callable[..., Json]
) -> Json:
    answer = codes.PHQ9_ANSWERS[score]
    extra: Json = {}
    if positive:
        extra["interpretation"] = [_item9_positive(config)]
    return observation(
        ITEM_PARTS[number - 1],
        concept((item,), config),
        partial(narrative.phq9_item, number, score),
        valueCodeableConcept=concept((answer,), config, answer.display),
        **extra,
    )


def _flag(record: Phq9Assessment, ctx: SessionContext | None, config: MappingConfig) -> Json:
    """The suicide-risk Flag of a positive item 9, pointing at the PHQ-9 panel (core flag-detail extension).

    Written active once and then left to clinicians: the sync engine never writes over an existing
    Flag, and marks it entered-in-error only when the PHQ-9 itself is retracted.
    """
    return suicide_risk_flag(
        KIND,
        record.key,
        record.patient.mrn,
        record.completed_at,
        ctx,
        config,
        codes.FLAG_CODE,
        codes.FLAG_TEXT,
        partial(narrative.flag, narrative.at(record.completed_at)),
    )


def _response(record: Phq9Assessment, ctx: SessionContext | None, config: MappingConfig) -> Json:
    """The QuestionnaireResponse to the service's PHQ-9 Questionnaire: items 1-9, then the difficulty item."""
    difficulty = None
    if record.difficulty is not None and PHQ9.difficulty is not None:
        difficulty = (PHQ9.difficulty, DIFFICULTY_ORDER.index(record.difficulty))
    answered = list(zip(PHQ9.items, record.items, strict=True))
    return response.questionnaire_response(
        KIND, record.key, PHQ9, answered, difficulty, record.patient.mrn, record.completed_at, ctx, config
    )


def to_fhir_json(record: Phq9Assessment, config: MappingConfig, session: SessionContext | None = None) -> list[Json]:
    """The QuestionnaireResponse, the members (items 1-9, difficulty when given, total), the panel that lists
    them, then the Flag of a positive item 9."""
    ctx = context_for(record.session_key, session, config)
    observation = _observation_maker(record, ctx, config)
    positive = item9_positive(record, config)
    members = [
        _item(number, item, score, number == 9 and positive, config, observation)
        for number, item, score in zip(range(1, 10), codes.PHQ9_ITEMS, record.items, strict=True)
    ]
    if record.difficulty is not None:
        answer = codes.PHQ9_DIFFICULTY_ANSWERS[record.difficulty]
        members.append(
            observation(
                "difficulty",
                concept((codes.PHQ9_DIFFICULTY,), config),
                partial(narrative.phq9_difficulty, record.difficulty),
                valueCodeableConcept=concept((answer,), config, answer.display),
            )
        )
    members.append(_total(record, config, observation))
    panel = observation(
        "panel",
        concept((codes.PHQ9_PANEL,), config, codes.PHQ9_PANEL_TEXT),
        partial(narrative.phq9_panel, record.difficulty is not None),
        hasMember=[{"reference": f"Observation/{member['id']}"} for member in members],
    )
    out = [_response(record, ctx, config), *members, panel]
    if positive:
        out.append(_flag(record, ctx, config))
    return out


def stale_parts(record: Phq9Assessment) -> tuple[str, ...]:
    """Parts an earlier version may have written and this one does not: the difficulty answer, when withdrawn."""
    return () if record.difficulty is not None else ("difficulty",)


def record_fields(parts: Parts, key: str, config: MappingConfig) -> dict[str, Any]:
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
    session_key = linked_session_key(panel, config)
    if session_key is not None:
        fields["session_key"] = session_key
    return fields


from_fhir = reverse_mapper(KIND, record_fields)
