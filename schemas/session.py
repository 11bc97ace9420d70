"""The `infusion_session` record: one ketamine infusion, optionally with its embedded child records."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from schemas.adverse_event import EmbeddedAdverseEvent
from schemas.assessment import EmbeddedAssessment
from schemas.common import (
    KIND_NOTE,
    PHI,
    Clinician,
    ExternalId,
    Number,
    RecordBase,
    StrictModel,
    Text,
    Timestamp,
    nested,
    required,
    rule,
)
from schemas.kinds import CHILD_LISTS, SESSION_ENTERED_IN_ERROR
from schemas.monitoring_score import EmbeddedMonitoringScore
from schemas.phq9 import EmbeddedPhq9Assessment
from schemas.stated import JsonSchema, absent, bounded, one_of, present, schema_rules, when
from schemas.vital_sign import EmbeddedVitalSign

Status = Literal["planned", "in_progress", "completed", "stopped", "not_done", "entered_in_error"]
Indication = Literal["mdd", "trd", "gad", "ptsd", "ocd", "suicidal_ideation"]
RateUnit = Literal["mg/kg/h", "mg/min", "mL/h"]

MAX_DURATION = dt.timedelta(hours=24)
RATE_LIMITS: dict[str, float] = {"mg/kg/h": 10, "mg/min": 50, "mL/h": 2000}
ENDED_REQUIRED = ("completed", "stopped")
ENDED_ABSENT = ("in_progress",)
DOSE_REQUIRED = ("in_progress", "completed", "stopped")
DOSE_ABSENT = ("planned",)  # nothing has been administered
STOP_REASON_REQUIRED = ("stopped",)
STOP_REASON_ALLOWED = ("stopped", "not_done")
# Rounding of weight and dose in practice stays well inside this; a decimal-point slip (x10) does not.
DOSE_TOLERANCE_FRACTION = 0.10
DOSE_TOLERANCE_MG = 1.0


def _rate_rules(model: type[Any]) -> list[JsonSchema]:
    """`Rate._plausible` in JSON Schema: each unit's upper limit."""
    return [when(one_of("unit", [unit]), bounded("value", high=limit)) for unit, limit in RATE_LIMITS.items()]


def _session_rules(model: type[Any]) -> list[JsonSchema]:
    """The session validators' rules that JSON Schema can state: which statuses require, or forbid, ended_at,
    dose and stop_reason; distinct indications (`uniqueItems` on the field); no adverse events in an
    entered_in_error session. Not stated: ended_at after started_at and within 24 h, total_mg agreeing with
    mg_per_kg x weight_kg, embedded records' keys distinct and their patient and session the session's."""
    others = [status for status in get_args(Status) if status not in STOP_REASON_ALLOWED]
    return [
        when(one_of("status", ENDED_REQUIRED), present("ended_at")),
        when(one_of("status", ENDED_ABSENT), absent("ended_at")),
        when(one_of("status", DOSE_REQUIRED), present("dose")),
        when(one_of("status", DOSE_ABSENT), absent("dose")),
        when(one_of("status", STOP_REASON_REQUIRED), present("stop_reason")),
        when(one_of("status", others), absent("stop_reason")),
        when(one_of("status", [SESSION_ENTERED_IN_ERROR]), {"properties": {"adverse_events": {"maxItems": 0}}}),
    ]


Child = TypeVar(
    "Child",
    EmbeddedVitalSign,
    EmbeddedMonitoringScore,
    EmbeddedAdverseEvent,
    EmbeddedPhq9Assessment,
    EmbeddedAssessment,
)


class Rate(StrictModel):
    """Infusion rate."""

    model_config = ConfigDict(json_schema_extra=schema_rules(_rate_rules))
    unit: RateUnit = Field(description="mg/kg/h, mg/min or mL/h (UCUM).")
    value: Number = Field(gt=0, description="Rate in `unit`; mg/kg/h up to 10, mg/min up to 50, mL/h up to 2000.")

    @field_validator("value")
    @classmethod
    def _plausible(cls, value: float, info: ValidationInfo) -> float:
        unit = info.data.get("unit")
        if unit is not None and value > RATE_LIMITS[unit]:
            raise rule(f"rate in {unit} must not exceed {RATE_LIMITS[unit]:g}")
        return value


class Dose(StrictModel):
    """Ketamine given (or, for not_done, intended)."""

    total_mg: Number = Field(
        ge=0,
        le=1000,
        description=(
            "Total ketamine in mg, 0-1000. With mg_per_kg and weight_kg it must equal mg_per_kg x weight_kg "
            "within 10% or 1 mg, whichever is larger."
        ),
    )
    mg_per_kg: Number | None = Field(None, ge=0, le=5, description="Weight-based dose, mg/kg, 0-5.")
    weight_kg: Number | None = Field(None, ge=2, le=400, description="Dosing weight, kg, 2-400.")
    rate: Rate | None = None

    @model_validator(mode="after")
    def _total_agrees(self) -> Dose:
        """A tenfold (or any gross) slip between total and weight-based dose is refused, not stored."""
        if self.mg_per_kg is None or self.weight_kg is None:
            return self
        expected = self.mg_per_kg * self.weight_kg
        if abs(self.total_mg - expected) > dose_tolerance_mg(expected):
            raise nested([(("total_mg",), "must equal mg_per_kg x weight_kg within 10% or 1 mg, whichever is larger")])
        return self


def dose_tolerance_mg(expected_mg: float) -> float:
    """How far total_mg may be from mg_per_kg x weight_kg: 10% of it or 1 mg, whichever is larger."""
    return max(DOSE_TOLERANCE_FRACTION * expected_mg, DOSE_TOLERANCE_MG)


class InfusionSession(RecordBase):
    """A ketamine infusion session: Procedure + MedicationAdministration in FHIR."""

    model_config = ConfigDict(json_schema_extra=schema_rules(_session_rules))
    kind: Literal["infusion_session"] = Field("infusion_session", description=KIND_NOTE)
    status: Status
    started_at: Timestamp = Field(description="Start (or scheduled start) of the infusion.")
    ended_at: Timestamp | None = Field(
        None,
        validate_default=True,
        description="Required when completed or stopped; absent while in progress.",
    )
    drug: Literal["ketamine"]
    visit_id: ExternalId | None = Field(
        None,
        json_schema_extra=PHI,
        description=(
            "The EHR's identifier of the visit (encounter) this infusion is part of. The service then "
            "references the EHR's Encounter with this identifier (creating it only if the FHIR server has "
            "none, never writing over it); without it the service writes an Encounter of its own."
        ),
    )
    dose: Dose | None = Field(
        None,
        validate_default=True,
        description="Required when in_progress, completed or stopped; absent when planned.",
    )
    indications: list[Indication] = Field(
        min_length=1,
        max_length=6,
        description="Why the infusion is given. `trd` states major depressive disorder already: with it, `mdd` is dropped.",
        json_schema_extra={"uniqueItems": True},
    )
    stop_reason: Text | None = Field(
        None, json_schema_extra=PHI, validate_default=True, description="Required when stopped; allowed when not_done."
    )
    note: Text | None = Field(None, description="Clinician's note on the session.", json_schema_extra=PHI)
    clinician: Clinician | None = None
    vital_signs: list[EmbeddedVitalSign] = Field(default_factory=list)
    monitoring_scores: list[EmbeddedMonitoringScore] = Field(default_factory=list)
    adverse_events: list[EmbeddedAdverseEvent] = Field(default_factory=list)
    phq9_assessments: list[EmbeddedPhq9Assessment] = Field(default_factory=list)
    assessments: list[EmbeddedAssessment] = Field(
        default_factory=list,
        description="Rating scales other than PHQ-9 (GAD-7, PCL-5, C-SSRS, ...) completed at this visit.",
    )

    @field_validator("ended_at")
    @classmethod
    def _ended(cls, ended_at: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        status = info.data.get("status")
        started_at = info.data.get("started_at")
        if ended_at is None:
            if status in ENDED_REQUIRED:
                raise required(f"Field required when status is {status}")
            return None
        if status in ENDED_ABSENT:
            raise rule("must be absent while the infusion is in progress")
        if started_at is not None:
            if ended_at <= started_at:
                raise rule("must be after started_at")
            if ended_at - started_at > MAX_DURATION:
                raise rule("an infusion longer than 24 hours is implausible")
        return ended_at

    @field_validator("dose")
    @classmethod
    def _dose(cls, dose: Dose | None, info: ValidationInfo) -> Dose | None:
        status = info.data.get("status")
        if dose is None and status in DOSE_REQUIRED:
            raise required(f"Field required when status is {status}")
        if dose is not None and status in DOSE_ABSENT:
            raise rule("must be absent for a planned session (nothing has been administered)")
        return dose

    @field_validator("indications")
    @classmethod
    def _unique(cls, indications: list[str]) -> list[str]:
        issues = [((i,), "duplicate indication") for i, x in enumerate(indications) if x in indications[:i]]
        if issues:
            raise nested(issues)
        if "trd" in indications:  # treatment-resistant MDD is MDD: one reason, not the same code twice
            return [x for x in indications if x != "mdd"]
        return indications

    @field_validator("stop_reason")
    @classmethod
    def _stop_reason(cls, stop_reason: str | None, info: ValidationInfo) -> str | None:
        status = info.data.get("status")
        if stop_reason is None and status in STOP_REASON_REQUIRED:
            raise required(f"Field required when status is {status}")
        if stop_reason is not None and status is not None and status not in STOP_REASON_ALLOWED:
            raise rule("only allowed when status is stopped or not_done")
        return stop_reason

    @field_validator(*CHILD_LISTS)
    @classmethod
    def _children(cls, children: list[Child], info: ValidationInfo) -> list[Child]:
        if info.field_name == "adverse_events" and children and info.data.get("status") == SESSION_ENTERED_IN_ERROR:
            # Embedded children of an entered_in_error session are marked entered-in-error too; R4
            # AdverseEvent has no status to mark, and a PUT never deletes: retract them on their own.
            raise rule(
                "must be empty when status is entered_in_error: R4 AdverseEvent cannot be marked "
                "entered-in-error; retract each one with DELETE /v1/adverse-events/{key}"
            )
        return _adopt(children, info)


def _child_time(child: BaseModel) -> dt.datetime:
    for name in ("measured_at", "onset_at", "completed_at"):
        if name in type(child).model_fields:
            value: dt.datetime = getattr(child, name)  # each of these fields is a Timestamp
            return value
    raise TypeError(type(child).__name__)


def _adopt(children: list[Child], info: ValidationInfo) -> list[Child]:
    """Check children against the session, then give them its patient and key, sorted by (time, key)."""
    patient, key = info.data.get("patient"), info.data.get("key")
    issues: list[tuple[tuple[str | int, ...], str]] = []
    seen: set[str] = set()
    for i, child in enumerate(children):
        if child.key in seen:
            issues.append(((i, "key"), "duplicate key within this list"))
        seen.add(child.key)
        if child.patient is not None and patient is not None and child.patient.mrn != patient.mrn:
            issues.append(((i, "patient", "mrn"), "must be the session's patient (same mrn) or be omitted"))
        if child.session_key is not None and key is not None and child.session_key != key:
            issues.append(((i, "session_key"), "must be the session's key or be omitted"))
    if issues:
        raise nested(issues)
    if patient is None or key is None:
        return children
    adopted = [child.model_copy(update={"patient": patient, "session_key": key}) for child in children]
    return sorted(adopted, key=lambda child: (_child_time(child), child.key))
