"""The `assessment` record: any scored rating scale, its answers checked by the instrument's definition.

One owner of the rules (issue 21): the answers are checked by `service.instruments.validate` and the
total computed by `service.instruments.score`; this model only places their errors at `items[i]`,
`total` and `difficulty`, never echoing a value. The JSON Schema states what it can per instrument
(item count, each answer's type and range, the C-SSRS skip rules, which fields an instrument has) from
the same definitions.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator

from schemas.common import KIND_NOTE, Integer, Key, PatientInfo, RecordBase, Timestamp, nested, rule
from schemas.phq9 import Difficulty
from schemas.stated import JsonSchema, absent, bounded, one_of, schema_rules, when
from service.instruments import DEFINITIONS, Definition, rule_range, score, validate
from service.instruments.model import Choice, IntegerRange, Item, YesNo

Instrument = Literal["phq9", "gad7", "pcl5", "cssrs_screen", "cssrs_screen_slc", "qids_sr16", "madrs", "ybocs"]
INSTRUMENTS: tuple[str, ...] = get_args(Instrument)
"""The instruments the `assessment` kind accepts. A PHQ-9 sent as `assessment` is the same record as one
sent as `phq9_assessment` with the same key: parsing makes it one (`schemas.phq9_kinds`), so it gets the
same resource ids and resources (issue 21; H-33)."""


def _answer_value(value: Any) -> int | bool | None:
    """An answer's JSON type: an integer (a number with a zero fraction is one), true/false, or null.

    Its range and whether it may be null are the instrument's to say (`_answers_fit_the_instrument`).
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise rule("must be an integer, true, false or null")


AnswerValue = Annotated[Any, BeforeValidator(_answer_value), WithJsonSchema({"type": ["integer", "boolean", "null"]})]
DIFFICULTY_ORDER: tuple[str, ...] = ("not_difficult", "somewhat", "very", "extremely")
"""The `difficulty` values in the order of the difficulty item's answer scores (0-3)."""


def _answer_schema(item: Item) -> JsonSchema:
    """What one answer may be in JSON Schema: its type and range; `null` too when a skip rule applies."""
    answer = item.answer
    if isinstance(answer, YesNo):
        out: JsonSchema = {"type": "boolean"}
    elif isinstance(answer, Choice):
        out = {"type": "integer", "enum": sorted(option.score for option in answer.options)}
    elif isinstance(answer, IntegerRange):
        out = {"type": "integer", "minimum": answer.low, "maximum": answer.high}
    if item.enable_when:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _at(definition: Definition, schemas: dict[int, JsonSchema]) -> JsonSchema:
    """`items` holding, at each given position, an answer satisfying its schema (others unconstrained)."""
    last = max(schemas)
    return {"properties": {"items": {"prefixItems": [schemas.get(i, {}) for i in range(last + 1)]}}}


def _skip_rules(definition: Definition) -> list[JsonSchema]:
    """Each skip rule: the item answered (true/false) when its controlling answers hold, else null."""
    out = []
    for position, item in enumerate(definition.items):
        if not item.enable_when:
            continue
        condition = _at(definition, {definition.index(c.link_id): {"const": c.answer} for c in item.enable_when})
        out.append(
            {
                "if": condition,
                "then": _at(definition, {position: {"not": {"type": "null"}}}),
                "else": _at(definition, {position: {"type": "null"}}),
            }
        )
    return out


def _instrument_rules(definition: Definition) -> JsonSchema:
    count = len(definition.items)
    items = {
        "minItems": count,
        "maxItems": count,
        "prefixItems": [_answer_schema(item) for item in definition.items],
        "items": False,
    }
    consequence: JsonSchema = {"properties": {"items": items}}
    if definition.total is None:
        consequence["properties"].update(absent("total")["properties"])
    else:
        consequence["properties"].update(bounded("total", *rule_range(definition, definition.total))["properties"])
    if definition.difficulty is None:
        consequence["properties"].update(absent("difficulty")["properties"])
    skips = _skip_rules(definition)
    if skips:
        consequence["allOf"] = skips
    return consequence


def _stated(model: type[Any]) -> list[JsonSchema]:
    return [when(one_of("instrument", [key]), _instrument_rules(DEFINITIONS[key])) for key in INSTRUMENTS]


class Assessment(RecordBase):
    """A completed rating scale: answers in questionnaire order, scored by the instrument's definition."""

    model_config = ConfigDict(json_schema_extra=schema_rules(_stated))

    kind: Literal["assessment"] = Field("assessment", description=KIND_NOTE)
    session_key: Key | None = Field(None, description="Key of the infusion session it belongs to.")
    instrument: Instrument = Field(description="The rating scale; a key keeps its instrument.")
    completed_at: Timestamp
    items: list[AnswerValue] = Field(
        description=(
            "The answers in questionnaire order: integers in each item's range; C-SSRS true/false in the "
            "order S1, S2, S3, S4, S5, S6, S6b (no S6b since last contact), null exactly where the skip "
            "rules leave a question unasked."
        )
    )
    difficulty: Difficulty | None = Field(
        None, description="PHQ-9 and GAD-7 only: how difficult the problems made things."
    )
    total: Integer | None = Field(
        None,
        validate_default=True,
        description="Optional; must equal the instrument's score of the items when given. C-SSRS has none.",
    )

    @field_validator("items")
    @classmethod
    def _answers_fit_the_instrument(cls, items: list[int | bool | None], info: ValidationInfo) -> list[Any]:
        instrument = info.data.get("instrument")
        if instrument is None:
            return items
        errors = validate(DEFINITIONS[instrument], items)
        whole = [error.message for error in errors if error.index is None]
        if whole:
            raise rule(whole[0])
        if errors:
            raise nested(
                [
                    ((e.index,), f"{e.link_id}: {e.message}" if e.link_id else e.message)
                    for e in errors
                    if e.index is not None
                ]
            )
        return items

    @field_validator("difficulty")
    @classmethod
    def _difficulty_only_where_asked(cls, difficulty: str | None, info: ValidationInfo) -> str | None:
        instrument = info.data.get("instrument")
        if difficulty is not None and instrument is not None and DEFINITIONS[instrument].difficulty is None:
            raise rule("only PHQ-9 and GAD-7 have a difficulty item")
        return difficulty

    @field_validator("total")
    @classmethod
    def _total_is_the_score(cls, total: int | None, info: ValidationInfo) -> int | None:
        instrument, items = info.data.get("instrument"), info.data.get("items")
        if instrument is None:
            return total
        definition = DEFINITIONS[instrument]
        if definition.total is None:
            if total is not None:
                raise rule("the C-SSRS screener has no total: its result is a triage category")
            return None
        if items is None:
            return total
        computed = score(definition, items).total
        if total is None:
            return computed
        if total != computed:
            raise rule(f"must equal the {definition.title} total computed from the items")
        return total


EmbeddedInstrument = Literal["gad7", "pcl5", "cssrs_screen", "cssrs_screen_slc", "qids_sr16", "madrs", "ybocs"]
"""The instruments a session embeds as `assessments`: every one but PHQ-9, which goes in `phq9_assessments`."""
PHQ9_IN_A_SESSION = (
    "a PHQ-9 in a session goes in phq9_assessments: it is one record under both kinds, and only that list "
    "gives it the PHQ-9's resource ids"
)


class EmbeddedAssessment(Assessment):
    """An assessment inside an infusion session: `patient` and `session_key` come from the session.

    Not a PHQ-9: a top-level PHQ-9 `assessment` is parsed into the `phq9_assessment` it is
    (`schemas.phq9_kinds`); one embedded here would be mapped under the `assessment` kind's ids, the same
    form landing twice (H-33). The session's `phq9_assessments` takes it.
    """

    embedded: ClassVar[bool] = True
    # Wider than the base field on purpose, as EmbeddedPhq9Assessment's: optional on input; the session's
    # validator (`_adopt`) always fills it in, so a validated session never holds None here.
    patient: PatientInfo | None = Field(None, description="Omit, or give the session's patient (same mrn).")  # type: ignore[assignment]
    instrument: EmbeddedInstrument = Field(
        description="The rating scale (a PHQ-9 goes in the session's phq9_assessments); a key keeps its instrument."
    )

    @field_validator("instrument", mode="before")
    @classmethod
    def _phq9_goes_in_phq9_assessments(cls, instrument: Any) -> Any:
        if instrument == "phq9":
            raise rule(PHQ9_IN_A_SESSION)
        return instrument
