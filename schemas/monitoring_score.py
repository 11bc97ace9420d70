"""The `monitoring_score` record: a dissociation or sedation scale scored during an infusion."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from schemas.common import (
    KIND_NOTE,
    Integer,
    Key,
    PatientInfo,
    RecordBase,
    Timestamp,
    rule,
)
from schemas.stated import JsonSchema, bounded, one_of, schema_rules, when

Instrument = Literal["cadss", "moaas", "rass"]

# Score ranges (clinical-coding.md section 2): CADSS 23-item total 0-92, MOAA/S 0-5, RASS -5..+4.
SCORE_RANGES: dict[str, tuple[int, int]] = {"cadss": (0, 92), "moaas": (0, 5), "rass": (-5, 4)}


def _stated_rules(model: type[Any]) -> list[JsonSchema]:
    """`_score_in_range` in JSON Schema: each instrument's score range."""
    return [when(one_of("instrument", [name]), bounded("score", *bounds)) for name, bounds in SCORE_RANGES.items()]


class MonitoringScore(RecordBase):
    """A CADSS, MOAA/S or RASS score taken during an infusion session."""

    model_config = ConfigDict(json_schema_extra=schema_rules(_stated_rules))
    kind: Literal["monitoring_score"] = Field("monitoring_score", description=KIND_NOTE)
    session_key: Key = Field(description="Key of the infusion session the score was taken in.")
    measured_at: Timestamp
    instrument: Instrument = Field(description="cadss (CADSS total), moaas (MOAA/S) or rass (RASS).")
    score: Integer = Field(description="CADSS 0-92, MOAA/S 0-5, RASS -5 to 4.")

    @field_validator("score")
    @classmethod
    def _score_in_range(cls, score: int, info: ValidationInfo) -> int:
        instrument = info.data.get("instrument")
        if instrument is not None:
            low, high = SCORE_RANGES[instrument]
            if not low <= score <= high:
                raise rule(f"{instrument} score must be between {low} and {high}")
        return score


class EmbeddedMonitoringScore(MonitoringScore):
    """A monitoring score inside an infusion session: `patient` and `session_key` come from the session."""

    embedded: ClassVar[bool] = True
    # Wider than the base fields on purpose: optional on input; the session's validator (`_adopt`) always
    # fills them in, so a validated session never holds an embedded record with None here.
    patient: PatientInfo | None = Field(None, description="Omit, or give the session's patient (same mrn).")  # type: ignore[assignment]
    session_key: Key | None = Field(None, description="Omit, or give the session's key.")  # type: ignore[assignment]
