"""The `adverse_event` record: an adverse event around a ketamine infusion."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from schemas.common import (
    KIND_NOTE,
    PHI,
    Key,
    PatientInfo,
    RecordBase,
    Text,
    Timestamp,
    required,
    rule,
)
from schemas.stated import JsonSchema, one_of, present, schema_rules, when

Event = Literal[
    "nausea",
    "vomiting",
    "headache",
    "dizziness",
    "elevated_blood_pressure",
    "tachycardia",
    "hallucinations",
    "dissociation",
    "emergence_reaction",
    "anxiety",
    "agitation",
    "excessive_sedation",
    "blurred_vision",
    "diplopia",
    "other",
]
Severity = Literal["mild", "moderate", "severe"]
Outcome = Literal["resolved", "recovering", "ongoing", "resolved_with_sequelae", "fatal", "unknown"]
Causality = Literal["certain", "probable", "possible", "unlikely", "unassessable"]
Action = Literal["none", "infusion_paused", "infusion_slowed", "infusion_stopped", "medication_given"]
DESCRIBED_EVENTS = ("other",)  # events that need the clinician's description
SERIOUS_OUTCOMES = ("fatal",)  # outcomes that make an event serious


def _stated_rules(model: type[Any]) -> list[JsonSchema]:
    """The validators' rules in JSON Schema: `other` needs a description, a fatal outcome is serious, and
    (outside a session) causality needs session_key. Not stated: recorded_at not before onset_at."""
    rules = [
        when(one_of("event", DESCRIBED_EVENTS), present("description")),
        when(one_of("outcome", SERIOUS_OUTCOMES), one_of("serious", [True])),
    ]
    if not model.embedded:  # an embedded event's session is the one it is in
        rules.append(when(present("causality"), present("session_key")))
    return rules


class AdverseEvent(RecordBase):
    """An adverse event; linked to the infusion (suspect entity) when `session_key` is given."""

    model_config = ConfigDict(json_schema_extra=schema_rules(_stated_rules))
    kind: Literal["adverse_event"] = Field("adverse_event", description=KIND_NOTE)
    session_key: Key | None = Field(None, description="Key of the infusion session suspected of causing it.")
    onset_at: Timestamp
    recorded_at: Timestamp = Field(description="When the event was recorded; not before onset_at.")
    event: Event
    description: Text | None = Field(
        None,
        json_schema_extra=PHI,
        validate_default=True,
        description="Clinician's wording; required when event is other.",
    )
    severity: Severity
    serious: StrictBool
    outcome: Outcome
    causality: Causality | None = Field(
        None, validate_default=True, description="Causality of the infusion; needs the session it refers to."
    )
    action_taken: Action | None = None
    note: Text | None = Field(None, description="Clinician's note.", json_schema_extra=PHI)

    @field_validator("recorded_at")
    @classmethod
    def _recorded_after_onset(cls, recorded_at: dt.datetime, info: ValidationInfo) -> dt.datetime:
        onset_at = info.data.get("onset_at")
        if onset_at is not None and recorded_at < onset_at:
            raise rule("must not be before onset_at")
        return recorded_at

    @field_validator("description")
    @classmethod
    def _description_for_other(cls, description: str | None, info: ValidationInfo) -> str | None:
        event = info.data.get("event")
        if description is None and event in DESCRIBED_EVENTS:
            raise required(f"Field required when event is {event}")
        return description

    @field_validator("outcome")
    @classmethod
    def _fatal_is_serious(cls, outcome: str, info: ValidationInfo) -> str:
        if outcome in SERIOUS_OUTCOMES and info.data.get("serious") is False:
            raise rule(f"a {outcome} outcome must be marked serious")
        return outcome

    @field_validator("causality")
    @classmethod
    def _causality_needs_session(cls, causality: str | None, info: ValidationInfo) -> str | None:
        unlinked = "session_key" in info.data and info.data["session_key"] is None
        if causality is not None and not cls.embedded and unlinked:
            raise rule("causality needs session_key (the infusion it is assessed against)")
        return causality


class EmbeddedAdverseEvent(AdverseEvent):
    """An adverse event inside an infusion session: `patient` and `session_key` come from the session."""

    embedded: ClassVar[bool] = True
    # Wider than the base field on purpose: optional on input; the session's validator (`_adopt`) always
    # fills it in, so a validated session never holds an embedded record with None here.
    patient: PatientInfo | None = Field(None, description="Omit, or give the session's patient (same mrn).")  # type: ignore[assignment]
