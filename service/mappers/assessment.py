"""assessment <-> a QuestionnaireResponse and the Observations extracted from it (instruments.md section 4).

Per assessment: the QuestionnaireResponse (the service's versioned Questionnaire, one item per answered
question), then Observations `derivedFrom` it: one per answered item, the difficulty (PHQ-9, GAD-7),
the total and subscales (valueQuantity `{score}`, the band as interpretation on the total), the C-SSRS
triage category (with its method and a note that it is derived, not a clinician's formulation), and
the panel that lists them (`hasMember`); a positive safety answer carries v3 POS, and one that raises
the Flag (service/instruments `raises_flag`, under the thresholds in force: `MappingConfig.thresholds`) makes a suicide-risk Flag on the patient, as a PHQ-9 item
9 does. Codes, answer codes and every text come from the instrument's definition; a restricted
instrument's texts are its allow-listed neutral labels, and C-SSRS item codings carry no display.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any

from schemas import kinds
from schemas.assessment import DIFFICULTY_ORDER, Assessment
from service.instruments import DEFINITIONS, Definition, assess, definition
from service.instruments import Assessment as Result
from service.instruments.model import LOCAL_SYSTEM, Choice, Coding, Item, YesNo
from service.mappers import codes, narrative
from service.mappers.build import (
    Json,
    Parts,
    concept,
    encounter_reference,
    from_decimal,
    linked_session_key,
    observation_links,
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
from service.mappers.fhir import CodeableConcept, to_json
from service.mappers.fhir import Coding as FhirCoding
from service.mappers.ids import resource_ref
from service.mappers.questionnaire import questionnaire_canonical
from service.mappers.response import answer_coding, definition_coding, questionnaire_response

KIND = kinds.ASSESSMENT


@lru_cache(maxsize=1024)
def _concept(value: Coding, config: MappingConfig, text: str | None, system_path: str = LOCAL_SYSTEM) -> Json:
    """A CodeableConcept of one definition code with constant (definition) text."""
    return to_json(CodeableConcept(coding=[FhirCoding(**definition_coding(value, config, system_path))], text=text))


def _words(item: Item, value: int | bool) -> str:
    coding = answer_coding(item, value)
    return str(value) if coding is None or coding.display is None else coding.display


def _answered(defn: Definition, record: Assessment) -> list[tuple[Item, int | bool]]:
    return [(item, value) for item, value in zip(defn.items, record.items, strict=True) if value is not None]


def _difficulty(defn: Definition, record: Assessment) -> tuple[Item, int] | None:
    if defn.difficulty is None or record.difficulty is None:
        return None
    return defn.difficulty, DIFFICULTY_ORDER.index(record.difficulty)


def _observation_maker(record: Assessment, ctx: SessionContext | None, config: MappingConfig) -> Callable[..., Json]:
    """A maker of this assessment's Observations: (part, code, narrative, **elements after effectiveDateTime).

    `narrative` is a narrative.assessment_* function still to be given (when, during, entered in error);
    every Observation ends with `derivedFrom` the QuestionnaireResponse.
    """
    part_of, status = observation_links(record.completed_at, ctx, config)
    told = (narrative.at(record.completed_at), bool(part_of), status == codes.ENTERED_IN_ERROR)
    extension = session_link(ctx, config)
    category = [concept((codes.CATEGORY_SURVEY,), config)]
    patient = subject(record.patient.mrn, config)
    encounter = encounter_reference(ctx)
    effective = when(record.completed_at)
    derived_from = [{"reference": resource_ref(KIND, record.key, "response", config)}]

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


def _item_observation(
    item: Item, value: int | bool, positive: bool, config: MappingConfig, observation: Callable[..., Json]
) -> Json:
    coding = answer_coding(item, value)
    extra: Json = {}
    if coding is None:
        extra["valueInteger"] = value
    else:
        extra["valueCodeableConcept"] = _concept(coding, config, coding.display)
    if positive:
        extra["interpretation"] = [concept((codes.INTERPRETATION_POSITIVE,), config)]
    return observation(
        f"item-{item.link_id}",
        _concept(item.coding, config, item.text),
        partial(narrative.assessment_answer, item.text, _words(item, value), positive),
        **extra,
    )


def _scores(defn: Definition, result: Result, config: MappingConfig, observation: Callable[..., Json]) -> list[Json]:
    """The total (with its band) and the subscales; the C-SSRS triage category instead of a total."""
    out = []
    if defn.total is not None and result.total is not None:
        extra: Json = {}
        band_words = None
        if defn.bands is not None and result.band is not None:
            band = Coding(result.band.code, result.band.display, local=True)
            extra["interpretation"] = [_concept(band, config, result.band.display, defn.bands.system_path)]
            band_words = result.band.display
        out.append(
            observation(
                "total",
                _concept(defn.total.coding, config, defn.total.label),
                partial(narrative.assessment_score, defn.total.label, result.total, band_words),
                valueQuantity=quantity(result.total, codes.UNIT_SCORE),
                **extra,
            )
        )
    for rule in defn.subscales:
        value = result.subscales[rule.id]
        out.append(
            observation(
                f"score-{rule.id}",
                _concept(rule.coding, config, rule.label),
                partial(narrative.assessment_score, rule.label, value, None),
                valueQuantity=quantity(value, codes.UNIT_SCORE),
            )
        )
    if defn.triage is not None and result.triage is not None:
        triage, level = defn.triage, result.triage
        out.append(
            observation(
                "triage",
                _concept(triage.coding, config, triage.label),
                partial(narrative.assessment_triage, triage.label, level.display, triage.note),
                valueCodeableConcept=_concept(
                    Coding(level.code, level.display, local=True), config, level.display, triage.system_path
                ),
                note=[{"text": triage.note}],
                method={"text": triage.method},
            )
        )
    return out


def _flag(record: Assessment, ctx: SessionContext | None, config: MappingConfig) -> Json:
    """The suicide-risk Flag of a positive safety answer, pointing at the panel (as PHQ-9's does).

    Written active once and then left to clinicians (the sync engine never writes over it), and marked
    entered-in-error only when the assessment itself is retracted.
    """
    return suicide_risk_flag(
        KIND,
        record.key,
        record.patient.mrn,
        record.completed_at,
        ctx,
        config,
        codes.ASSESSMENT_FLAG_CODE,
        codes.ASSESSMENT_FLAG_TEXT,
        partial(narrative.assessment_flag, narrative.at(record.completed_at)),
    )


def _assess(record: Assessment, config: MappingConfig) -> Result:
    """Scores, positives and the Flag decision under the clinic's safety thresholds in force."""
    defn = definition(record.instrument)
    return assess(defn, record.items, config.thresholds.of(defn.id))


def to_fhir_json(record: Assessment, config: MappingConfig, session: SessionContext | None = None) -> list[Json]:
    """The QuestionnaireResponse, the item, difficulty and score Observations, the panel, then any Flag."""
    defn = definition(record.instrument)
    ctx = context_for(record.session_key, session, config)
    result = _assess(record, config)
    observation = _observation_maker(record, ctx, config)
    members = [
        _item_observation(item, value, item.link_id in result.positives, config, observation)
        for item, value in _answered(defn, record)
    ]
    difficulty = _difficulty(defn, record)
    if difficulty is not None:
        item, score = difficulty
        coding = answer_coding(item, score)
        assert coding is not None  # the difficulty item is a choice
        members.append(
            observation(
                "difficulty",
                _concept(item.coding, config, item.text),
                partial(narrative.assessment_answer, item.text, _words(item, score), False),
                valueCodeableConcept=_concept(coding, config, coding.display),
            )
        )
    members += _scores(defn, result, config, observation)
    panel_code = defn.panel if defn.panel is not None else Coding(defn.id, defn.title, local=True)
    panel = observation(
        "panel",
        _concept(panel_code, config, defn.title),
        partial(narrative.assessment_panel, defn.title, len(members)),
        hasMember=[{"reference": f"Observation/{member['id']}"} for member in members],
    )
    response = questionnaire_response(
        KIND,
        record.key,
        defn,
        _answered(defn, record),
        difficulty,
        record.patient.mrn,
        record.completed_at,
        ctx,
        config,
    )
    out = [response, *members, panel]
    if result.raises_flag:
        out.append(_flag(record, ctx, config))
    return out


def stale_parts(record: Assessment) -> tuple[str, ...]:
    """Parts an earlier version may have written and this one does not: the items now unasked (a C-SSRS
    screener whose S2 or S6 became no) and a withdrawn difficulty answer. A key keeps its instrument, so
    no other instrument's parts can exist for it."""
    defn = definition(record.instrument)
    stale = [f"item-{item.link_id}" for item, value in zip(defn.items, record.items, strict=True) if value is None]
    if defn.difficulty is not None and record.difficulty is None:
        stale.append("difficulty")
    return tuple(stale)


# --- Reading back ---


def _instrument_of(questionnaire: str | None, config: MappingConfig) -> Definition:
    for defn in DEFINITIONS.values():
        if questionnaire == questionnaire_canonical(config, defn.id):
            return defn
    raise ValueError("the QuestionnaireResponse names no Questionnaire of this service")


def _read_answer(item: Item, answer: Any, config: MappingConfig) -> int | bool:
    if isinstance(item.answer, Choice | YesNo):
        coding = answer.valueCoding
        if coding is None:
            raise ValueError(f"answer to {item.link_id} is not coded")
        values: tuple[int | bool, ...] = (
            (True, False) if isinstance(item.answer, YesNo) else tuple(o.score for o in item.answer.options)
        )
        for value in values:
            code = answer_coding(item, value)
            expected = definition_coding(code, config) if code is not None else {}
            if coding.system == expected.get("system") and coding.code == expected.get("code"):
                return value
        raise ValueError(f"answer to {item.link_id} has a code this service does not write")
    if answer.valueInteger is None:
        raise ValueError(f"answer to {item.link_id} is not an integer")
    return int(answer.valueInteger)


def record_fields(parts: Parts, key: str, config: MappingConfig) -> dict[str, Any]:
    """Record fields of the assessment `key` among indexed resources (see `build.parts_of`)."""
    response = parts[(KIND, key, "response")]
    defn = _instrument_of(response.questionnaire, config)
    by_link = {item.linkId: item for item in response.item or []}
    items: list[int | bool | None] = []
    for item in defn.items:
        held = by_link.get(item.link_id)
        items.append(None if held is None or not held.answer else _read_answer(item, held.answer[0], config))
    fields: dict[str, Any] = {
        "key": key,
        "instrument": defn.id,
        "completed_at": response.authored,
        "items": items,
    }
    if defn.difficulty is not None and defn.difficulty.link_id in by_link:
        held = by_link[defn.difficulty.link_id]
        fields["difficulty"] = DIFFICULTY_ORDER[int(_read_answer(defn.difficulty, held.answer[0], config))]
    total = parts.get((KIND, key, "total"))
    if total is not None and total.valueQuantity is not None:
        fields["total"] = int(from_decimal(total.valueQuantity.value))
    session_key = linked_session_key(response, config)
    if session_key is not None:
        fields["session_key"] = session_key
    return fields


from_fhir = reverse_mapper(KIND, record_fields)
