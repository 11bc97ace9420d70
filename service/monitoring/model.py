"""The monitoring protocol as data: what can be measured, the rules by reading and phase, confirmed rules, discharge.

Pure data, read from the clinic's protocol file by `service.monitoring.loader`; nothing here knows FHIR.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from schemas.monitoring_score import SCORE_RANGES
from service.monitoring.condition import HIGH, LOW, Condition

PHASES = ("before", "during", "after")
"""Before the infusion starts; from its start to its end, both inclusive; after its end."""
ANY_PHASE = "any"


@dataclass(frozen=True)
class Measure:
    """One number a rule can judge: where it is read from, its unit, and which ways it can be abnormal."""

    name: str
    reading: str
    """The vital-sign type or monitoring-score instrument it is read from."""
    unit: str
    """UCUM code of the reading's value (and of the limits)."""
    directions: tuple[str, ...]
    """The ways a value can be abnormal. `N` is said only when a limit checks every one of them."""
    ordinal: bool = False
    """A rating scale: its levels are A / AA (abnormal, critical abnormal) rather than H/HH/L/LL."""
    scale: tuple[int, int] | None = None
    """A rating scale's range: `pre_infusion` is judged per reading as its most sensitive end."""


BOTH = (HIGH, LOW)
# Which ways each measure can be abnormal. SpO2 (pulse oximetry) tops out at 100%, the normal value; MOAA/S
# tops out at 5, fully alert; CADSS bottoms out at 0, no dissociation: those ends are not abnormal.
MEASURES: dict[str, Measure] = {
    "systolic": Measure("systolic", "blood_pressure", "mm[Hg]", BOTH),
    "diastolic": Measure("diastolic", "blood_pressure", "mm[Hg]", BOTH),
    "heart_rate": Measure("heart_rate", "heart_rate", "/min", BOTH),
    "respiratory_rate": Measure("respiratory_rate", "respiratory_rate", "/min", BOTH),
    "spo2": Measure("spo2", "spo2", "%", (LOW,)),
    "moaas": Measure("moaas", "moaas", "{score}", (LOW,), ordinal=True, scale=SCORE_RANGES["moaas"]),
    "cadss": Measure("cadss", "cadss", "{score}", (HIGH,), ordinal=True, scale=SCORE_RANGES["cadss"]),
}
READINGS: dict[str, tuple[str, ...]] = {
    reading: tuple(m.name for m in MEASURES.values() if m.reading == reading)
    for reading in dict.fromkeys(m.reading for m in MEASURES.values())
}
"""Reading (vital-sign type or instrument) -> the measures read from it (blood pressure: systolic, diastolic)."""
STATISTIC_MEASURES = ("systolic", "diastolic", "heart_rate", "respiratory_rate", "spo2")
"""The measures the session summary gives peak, trough and count of (temperature has no protocol rule, and its
readings may come in two units)."""
RISE_MEASURES = ("systolic_rise", "diastolic_rise")
"""The rise of a blood pressure from the session's last pre-infusion reading (judged by the summary only)."""

# Per-reading levels: (direction, tier). Tier 1 is the `normal` reference range's limit, tier 2 the `treatment` one.
VITAL_LEVELS: dict[str, tuple[str, int]] = {"H": (HIGH, 1), "HH": (HIGH, 2), "L": (LOW, 1), "LL": (LOW, 2)}
ORDINAL_LEVELS: dict[str, int] = {"A": 1, "AA": 2}
RISE_LEVELS = ("H", "marked")
# Discharge criteria: name -> (type, which way is safer). Safer = harder to meet = more sensitive.
DISCHARGE_FIELDS: dict[str, tuple[type, str]] = {
    "minutes_after_end": (float, "higher"),
    "blood_pressure_systolic_below": (float, "lower"),
    "blood_pressure_diastolic_below": (float, "lower"),
    "blood_pressure_within_fraction_of_pre_infusion": (float, "lower"),
    "blood_pressure_or_systolic_at_most": (float, "lower"),
    "blood_pressure_or_diastolic_at_most": (float, "lower"),
    "blood_pressure_not_rising_over_readings": (int, "higher"),
    "spo2_at_least": (float, "higher"),
    "spo2_without_supplemental_o2": (bool, "true"),
    "moaas_back_to_pre_infusion": (bool, "true"),
    "moaas_pre_infusion_when_none": (int, "higher"),
    "cadss_at_most": (float, "lower"),
    "cadss_or_pre_infusion_if_higher": (bool, "false"),
    "no_ongoing_adverse_event": (bool, "true"),
}


class ProtocolError(ValueError):
    """A protocol file that cannot be used; `field` says where (dotted, as the file writes it)."""

    def __init__(self, field: str, message: str, file: str | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.file = file

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.field}: {self.message}"


@dataclass(frozen=True)
class Acknowledgement:
    """`less_sensitive_than_default = {approved_by, approved_on, reason}` in a rule's table."""

    approved_by: str
    approved_on: dt.date
    reason: str


@dataclass(frozen=True)
class Weakening:
    """A rule the file made less sensitive than the default, with the acknowledgement it carries."""

    field: str
    """Where in the file: `readings.heart_rate.any.H`."""
    default: str
    configured: str
    approved_by: str
    approved_on: dt.date
    reason: str

    def describe(self) -> str:
        """One line for logs and summaries (no PHI: protocol text only)."""
        return (
            f"{self.field}: {self.configured} (default {self.default}), less sensitive than the default, "
            f"approved by {self.approved_by} on {self.approved_on.isoformat()}"
        )


@dataclass(frozen=True)
class Rule:
    """A per-reading (or rise) rule of one phase: the reading is at `level` when `condition` holds."""

    field: str
    reading: str
    phase: str
    level: str
    condition: Condition
    source: str
    action: str | None = None
    acknowledged: Acknowledgement | None = None
    weakened: Weakening | None = None
    """Set when the rule is less sensitive than the default's (then `acknowledged` is too)."""


@dataclass(frozen=True)
class ConfirmedRule:
    """A rule judged across a session's readings (the session summary's, and its Flag's)."""

    name: str
    condition: Condition
    readings: int
    """How many readings must meet it: 1, or 2 (a repeat)."""
    min_apart_minutes: float
    max_apart_minutes: float | None
    consecutive: bool
    """Repeat: consecutive readings (True), or none below the limits between the two (False). Judged alike
    (`service.monitoring.confirmed`): readings joined by a run of readings all meeting the rule are consecutive."""
    phases: tuple[str, ...]
    source: str
    field: str = ""
    acknowledged: Acknowledgement | None = None
    weakened: Weakening | None = None


@dataclass(frozen=True)
class Discharge:
    """The protocol's discharge criteria: all must be met from the same time on, and missing data is not met.
    The session summary reports them; nothing here says a patient may leave."""

    minutes_after_end: float
    blood_pressure_systolic_below: float
    blood_pressure_diastolic_below: float
    blood_pressure_within_fraction_of_pre_infusion: float
    blood_pressure_or_systolic_at_most: float
    blood_pressure_or_diastolic_at_most: float
    blood_pressure_not_rising_over_readings: int
    spo2_at_least: float
    spo2_without_supplemental_o2: bool
    moaas_back_to_pre_infusion: bool
    moaas_pre_infusion_when_none: int
    cadss_at_most: float
    cadss_or_pre_infusion_if_higher: bool
    no_ongoing_adverse_event: bool
    source: str
    acknowledged: Acknowledgement | None = None
    weakened: Weakening | None = None


@dataclass(frozen=True, eq=False, repr=False)
class Protocol:
    """A clinic's monitoring protocol. Equal (and hashed) by name, version and the file's content digest,
    so that a `MappingConfig` holding one stays cheap to hash."""

    name: str
    version: str
    digest: str
    """SHA-256 (hex) of the file's bytes."""
    file: str | None
    """The file it was read from; None for the shipped defaults."""
    rules: dict[tuple[str, str, str], Rule]
    """(reading, phase, level) -> the rule of that phase (`any` already spread over the three phases)."""
    rise: dict[tuple[str, str], Rule]
    """(phase, level) -> the rise rule (levels `H` and `marked`)."""
    confirmed: dict[str, ConfirmedRule]
    discharge: Discharge
    approved_by: str | None = None
    approved_on: dt.date | None = None
    weakened: tuple[Weakening, ...] = ()
    """Every rule the file made less sensitive than the default: logged at start, for summaries to show."""
    _key: tuple[str, str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", (self.name, self.version, self.digest))

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Protocol) and self._key == other._key)

    def __repr__(self) -> str:
        return f"Protocol({self.title!r}, sha256={self.digest[:16]})"

    @property
    def title(self) -> str:
        """`<name>, version <version>`: how texts name it."""
        return f"{self.name}, version {self.version}"
