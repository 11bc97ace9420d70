"""A session's readings as the summary judges them: when, what, the values of its measures, its phase.

Pure data. `service.monitoring.held` reads them from the FHIR resources the server holds; the confirmed rules
(`confirmed.py`), the discharge criteria (`discharge.py`) and the summary (`summary.py`) judge them. Readings
are always taken in one order, by instant (any UTC offset) and then by reference, so that the order in which
they arrived never changes a result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from service.monitoring.condition import Condition


@dataclass(frozen=True)
class Reading:
    """One vital sign or monitoring score of the session."""

    ref: str
    """`Observation/<id>`: what the summary's report and the session's Flag point at."""
    at: dt.datetime
    """When it was measured (offset-aware)."""
    reading: str
    """The vital-sign type (`blood_pressure`, `heart_rate`, ...) or the scale (`moaas`, `cadss`, `rass`)."""
    values: Mapping[str, float] = field(hash=False)
    """Measure -> value: `systolic` and `diastolic` for blood pressure, else the reading's own name."""
    phase: str | None
    """`before`, `during` or `after` the infusion; None when the session cannot place it."""
    key: str | None = None
    """The clinic's record key, when the service wrote it."""
    supplemental_o2: bool | None = None
    """SpO2 only: on supplemental oxygen (None: not said)."""
    levels: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Measure -> the interpretation code the reading carries on the server (`H`, `LL`, `AA`, ...)."""


def vital_values(
    kind: str, value: float | None, systolic: float | None, diastolic: float | None
) -> dict[str, float] | None:
    """Measure -> value of one vital sign (a record's fields): `systolic` and `diastolic` of a blood pressure, else
    the reading's own name; None when the values its type needs are missing."""
    if kind == "blood_pressure":
        if systolic is None or diastolic is None:
            return None
        return {"systolic": float(systolic), "diastolic": float(diastolic)}
    return None if value is None else {kind: float(value)}


def in_order(readings: Iterable[Reading]) -> list[Reading]:
    """`readings` by instant, then by reference: the one order every judgement takes them in."""
    return sorted(readings, key=lambda r: (r.at, r.ref))


def of(readings: Iterable[Reading], reading: str) -> list[Reading]:
    """The readings of one kind (`blood_pressure`, `moaas`, ...), in order."""
    return in_order(r for r in readings if r.reading == reading)


def carries(condition: Condition, reading: Reading) -> bool:
    """Whether `reading` has what `condition` judges: any of its measures (`or`), every one (`and`)."""
    present = [m in reading.values for m in condition.measures]
    return all(present) if condition.join == "and" else any(present)


def meets(condition: Condition, values: Mapping[str, float], pre_infusion: Mapping[str, float] | None = None) -> bool:
    """Whether `values` meet `condition` (`or`: any comparison whose measure is there holds; `and`: every
    comparison's measure is there and holds). A `pre_infusion` limit takes the measure's value in
    `pre_infusion`; without one that comparison does not hold."""
    results = []
    for part in condition.parts:
        value = values.get(part.measure)
        limit = part.limit if part.limit is not None else (pre_infusion or {}).get(part.measure)
        if value is None or limit is None:
            results.append(False)
            continue
        results.append(_compare(part.op, value, limit))
    return all(results) if condition.join == "and" else any(results)


def _compare(op: str, value: float, limit: float) -> bool:
    if op == ">":
        return value > limit
    if op == ">=":
        return value >= limit
    if op == "<":
        return value < limit
    return value <= limit


def minutes_between(first: dt.datetime, second: dt.datetime) -> float:
    """Minutes from `first` to `second` (instants: offsets on either side are fine)."""
    return (second - first).total_seconds() / 60
