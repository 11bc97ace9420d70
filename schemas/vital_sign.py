"""The `vital_sign` record: one vital-sign measurement, blood pressure as a systolic/diastolic pair."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from schemas.common import (
    KIND_NOTE,
    Key,
    Number,
    PatientInfo,
    RecordBase,
    Timestamp,
    required,
    rule,
)
from schemas.stated import JsonSchema, absent, both, bounded, one_of, present, schema_rules, when

VitalType = Literal["blood_pressure", "heart_rate", "respiratory_rate", "spo2", "temperature", "body_weight"]
VitalUnit = Literal["mm[Hg]", "/min", "%", "Cel", "[degF]", "kg", "[lb_av]"]

# Allowed UCUM units per type (the first is the canonical default when only one is allowed) and
# the plausible range of a measurement in each unit.
UNITS: dict[str, tuple[str, ...]] = {
    "blood_pressure": ("mm[Hg]",),
    "heart_rate": ("/min",),
    "respiratory_rate": ("/min",),
    "spo2": ("%",),
    "temperature": ("Cel", "[degF]"),
    "body_weight": ("kg", "[lb_av]"),
}
RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("heart_rate", "/min"): (20, 300),
    ("respiratory_rate", "/min"): (2, 80),
    ("spo2", "%"): (0, 100),
    ("temperature", "Cel"): (25, 45),
    ("temperature", "[degF]"): (77, 113),
    ("body_weight", "kg"): (1, 500),
    ("body_weight", "[lb_av]"): (2.2, 1100),
}
SYSTOLIC_RANGE = (40, 300)
DIASTOLIC_RANGE = (20, 200)
PRESSURE = "blood_pressure"
SINGLE_VALUED = tuple(vital for vital in UNITS if vital != PRESSURE)
OXYGEN = "spo2"  # the one type that may say whether the patient was on supplemental oxygen


def _stated_rules(model: type[Any]) -> list[JsonSchema]:
    """The validators' rules in JSON Schema: each type's units, and which of value or systolic/diastolic it
    takes, within which range (a unit that is the only one allowed may be omitted, so its range applies
    by type alone); supplemental_o2 only on spo2. Not stated: diastolic below systolic (two fields compared)."""
    rules = []
    for vital, allowed in UNITS.items():
        if len(allowed) == 1:
            rules.append(when(one_of("type", [vital]), {"properties": {"unit": {"enum": [*allowed, None]}}}))
        else:
            rules.append(when(one_of("type", [vital]), one_of("unit", allowed)))
    rules.append(when(one_of("type", [PRESSURE]), both(absent("value"), present("systolic", "diastolic"))))
    rules.append(when(one_of("type", SINGLE_VALUED), both(present("value"), absent("systolic", "diastolic"))))
    for (vital, unit), bounds in RANGES.items():
        condition = one_of("type", [vital])
        if len(UNITS[vital]) > 1:
            condition = both(condition, one_of("unit", [unit]))
        rules.append(when(condition, bounded("value", *bounds)))
    rules.append(
        when(
            one_of("type", [PRESSURE]),
            both(bounded("systolic", *SYSTOLIC_RANGE), bounded("diastolic", *DIASTOLIC_RANGE)),
        )
    )
    rules.append(when(one_of("type", [v for v in UNITS if v != OXYGEN]), absent("supplemental_o2")))
    return rules


def _in_range(value: float, bounds: tuple[float, float], what: str) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise rule(f"{what} must be between {low:g} and {high:g}")


class VitalSign(RecordBase):
    """A vital sign measured for a patient, optionally during an infusion session."""

    model_config = ConfigDict(json_schema_extra=schema_rules(_stated_rules))
    kind: Literal["vital_sign"] = Field("vital_sign", description=KIND_NOTE)
    session_key: Key | None = Field(None, description="Key of the infusion session it was measured in.")
    measured_at: Timestamp
    type: VitalType
    unit: VitalUnit | None = Field(
        None,
        validate_default=True,
        description=(
            "UCUM unit. blood_pressure: mm[Hg]; heart_rate, respiratory_rate: /min; spo2: %; "
            "temperature: Cel or [degF]; body_weight: kg or [lb_av]. "
            "May be omitted where only one is allowed."
        ),
    )
    value: Number | None = Field(None, validate_default=True, description="The measurement (not for blood pressure).")
    systolic: Number | None = Field(None, validate_default=True, description="Systolic pressure, mm[Hg].")
    diastolic: Number | None = Field(None, validate_default=True, description="Diastolic pressure, mm[Hg].")
    supplemental_o2: StrictBool | None = Field(
        None,
        description="spo2 only: whether the patient was on supplemental oxygen when it was measured "
        "(omit when unknown; the protocol's discharge criterion wants SpO2 without supplemental oxygen).",
    )

    @field_validator("unit")
    @classmethod
    def _unit_fits_type(cls, unit: str | None, info: ValidationInfo) -> str | None:
        vital = info.data.get("type")
        if vital is None:
            return unit
        allowed = UNITS[vital]
        if unit is None:
            if len(allowed) > 1:
                raise required(f"Field required for {vital}: one of {', '.join(allowed)}")
            return allowed[0]
        if unit not in allowed:
            raise rule(f"unit not allowed for {vital}: use {' or '.join(allowed)}")
        return unit

    @field_validator("value")
    @classmethod
    def _value_fits_type(cls, value: float | None, info: ValidationInfo) -> float | None:
        vital = info.data.get("type")
        if vital is None:
            return value
        if vital == PRESSURE:
            if value is not None:
                raise rule("must be absent for blood_pressure; use systolic and diastolic")
            return value
        if value is None:
            raise required(f"Field required for {vital}")
        unit = info.data.get("unit")
        if unit is not None:
            _in_range(value, RANGES[(vital, unit)], f"{vital} in {unit}")
        return value

    @field_validator("supplemental_o2")
    @classmethod
    def _oxygen_only_on_spo2(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        vital = info.data.get("type")
        if value is not None and vital is not None and vital != OXYGEN:
            raise rule(f"only allowed for spo2, not {vital}")
        return value

    @field_validator("systolic")
    @classmethod
    def _systolic(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _pressure(value, info, "systolic", SYSTOLIC_RANGE)

    @field_validator("diastolic")
    @classmethod
    def _diastolic(cls, value: float | None, info: ValidationInfo) -> float | None:
        value = _pressure(value, info, "diastolic", DIASTOLIC_RANGE)
        systolic = info.data.get("systolic")
        if value is not None and systolic is not None and value >= systolic:
            raise rule("diastolic must be below systolic")
        return value


def _pressure(value: float | None, info: ValidationInfo, what: str, bounds: tuple[float, float]) -> float | None:
    vital = info.data.get("type")
    if vital is None:
        return value
    if vital != PRESSURE:
        if value is not None:
            raise rule(f"only allowed for blood_pressure; use value for {vital}")
        return value
    if value is None:
        raise required("Field required for blood_pressure")
    _in_range(value, bounds, f"{what} pressure in mm[Hg]")
    return value


class EmbeddedVitalSign(VitalSign):
    """A vital sign inside an infusion session: `patient` and `session_key` come from the session."""

    embedded: ClassVar[bool] = True
    # Wider than the base field on purpose: optional on input; the session's validator (`_adopt`) always
    # fills it in, so a validated session never holds an embedded record with None here.
    patient: PatientInfo | None = Field(None, description="Omit, or give the session's patient (same mrn).")  # type: ignore[assignment]
