"""The monitoring chart of one infusion session: what it shows (`ChartInput`), which readings it marks, as PNG or PDF.

Blood pressure, heart rate and SpO2 over time, the infusion shaded, the protocol's limits of each phase drawn over
that phase, every out-of-limit reading marked and the time the protocol's discharge criteria were met (when the
caller knows it). Pure: the same input gives the same bytes (no clock, no file metadata that varies). The figure
is drawn by `chart_draw` with matplotlib's Agg renderer; no display is needed. No name or MRN is drawn: the
session key names the session.

A reading is marked when its interpretation says so or when its value lies beyond a limit drawn for its phase,
whichever is more severe, so the chart never shows a reading past a drawn line unmarked and never hides an
interpretation made under other limits (docs/clinical-safety.md, H-53).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass

from service.monitoring import rules
from service.monitoring.condition import Comparison
from service.monitoring.model import PHASES, Protocol

PNG = "image/png"
PDF = "application/pdf"
MEDIA_TYPES = (PNG, PDF)
CHARTED = ("systolic", "diastolic", "heart_rate", "spo2")
"""The measures drawn, in the order of `ChartInput`'s series."""
CRITICAL_LEVELS = frozenset({"HH", "LL", "AA"})
PLAIN_LEVELS = frozenset({"H", "L", "A"})
LEVEL_TIERS: dict[str, int] = {"H": 1, "L": 1, "A": 1, "HH": 2, "LL": 2, "AA": 2}
"""Interpretation code -> tier: 1 is outside the `normal` range, 2 outside the `treatment` range (critical)."""


@dataclass(frozen=True)
class Point:
    """One reading of one measure: when (aware), its value, and its interpretation code (`N`, `H`, `HH`, `L`, `LL`;
    None when it has none)."""

    at: dt.datetime
    value: float
    level: str | None = None


@dataclass(frozen=True)
class Limit:
    """One limit the protocol judges a measure by in one phase: `comparison` holds for an out-of-limit value."""

    measure: str
    phase: str
    level: str
    """`H`, `HH`, `L` or `LL`."""
    comparison: Comparison

    @property
    def value(self) -> float:
        assert self.comparison.limit is not None  # vital signs' limits are numbers (pre_infusion is for scales)
        return self.comparison.limit

    @property
    def tier(self) -> int:
        return LEVEL_TIERS[self.level]


def protocol_limits(protocol: Protocol) -> tuple[Limit, ...]:
    """Every limit of the charted measures in each phase, as the per-reading interpretation uses them
    (`rules.limits`: of an "x/y" rule, each measure's own part)."""
    out = []
    for measure in CHARTED:
        for phase in PHASES:
            found = rules.limits(protocol, measure, phase)
            if found is None:
                continue
            tiers = (
                ("HH", found.critical_high),
                ("H", found.high),
                ("L", found.low),
                ("LL", found.critical_low),
            )
            for level, tier in tiers:
                if tier is not None and tier.comparison.limit is not None:
                    out.append(Limit(measure, phase, level, tier.comparison))
    return tuple(out)


@dataclass(frozen=True)
class ChartInput:
    """Everything the chart draws. Times are aware (any UTC offsets); the clock times shown are in the offset of
    `started_at`."""

    session_key: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    """None while the infusion is in progress (it is shaded to the chart's right edge)."""
    limits: tuple[Limit, ...]
    """`protocol_limits(protocol)`."""
    protocol_title: str
    """`Protocol.title`: `<name>, version <version>`."""
    systolic: tuple[Point, ...] = ()
    diastolic: tuple[Point, ...] = ()
    heart_rate: tuple[Point, ...] = ()
    spo2: tuple[Point, ...] = ()
    discharge_met_at: dt.datetime | None = None
    """From when all the protocol's discharge criteria were met; None when not met or not known."""
    infused: bool = True
    """False for a session whose infusion was not given (not done): nothing shaded, every reading `before`."""

    def __post_init__(self) -> None:
        instants = [self.started_at, self.ended_at, self.discharge_met_at]
        instants += [point.at for _, points in self.series() for point in points]
        if any(when is not None and when.utcoffset() is None for when in instants):
            raise ValueError("chart times must carry a UTC offset: instants are compared across offsets")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("the infusion cannot end before it starts")
        for _, points in self.series():
            for point in points:
                if point.level is not None and point.level not in LEVEL_TIERS and point.level != "N":
                    raise ValueError(f"unknown interpretation code {point.level!r}")

    def series(self) -> Iterator[tuple[str, tuple[Point, ...]]]:
        """(measure, its readings) in `CHARTED` order."""
        for measure in CHARTED:
            yield measure, getattr(self, measure)

    def phase(self, when: dt.datetime) -> str:
        """`before`, `during` (start and end inclusive; open while in progress) or `after`, by instants, as
        `SessionContext.phase` places a reading."""
        if not self.infused or when < self.started_at:
            return "before"
        return "during" if self.ended_at is None or when <= self.ended_at else "after"

    def minutes(self, when: dt.datetime) -> float:
        """Minutes from the infusion start (the chart's x axis)."""
        return (when - self.started_at).total_seconds() / 60


@dataclass(frozen=True)
class Marked:
    """A reading the chart marks as out of limit, and how severe: tier 2 is critical (HH / LL)."""

    measure: str
    point: Point
    tier: int
    level: str


def _drawn_level(chart: ChartInput, measure: str, point: Point) -> tuple[int, str] | None:
    """The most severe limit drawn for the reading's phase that its value is beyond, as (tier, level)."""
    phase = chart.phase(point.at)
    met = [
        (limit.tier, limit.level)
        for limit in chart.limits
        if limit.measure == measure and limit.phase == phase and limit.comparison.holds(point.value)
    ]
    return max(met) if met else None


def marked(chart: ChartInput) -> tuple[Marked, ...]:
    """Every reading the chart marks: its interpretation is abnormal, or its value is beyond a limit drawn for its
    phase; the more severe of the two decides how it is marked."""
    out = []
    for measure, points in chart.series():
        for point in points:
            found = []
            if point.level in LEVEL_TIERS:
                found.append((LEVEL_TIERS[point.level], point.level))
            drawn = _drawn_level(chart, measure, point)
            if drawn is not None:
                found.append(drawn)
            if found:
                tier, level = max(found)
                out.append(Marked(measure, point, tier, level))
    return tuple(out)


def render(chart: ChartInput, media_type: str) -> bytes:
    """The chart as `image/png` or `application/pdf` bytes, identical for the same input."""
    if media_type not in MEDIA_TYPES:
        raise ValueError(f"the chart is drawn as {' or '.join(MEDIA_TYPES)}, not {media_type}")
    from service.monitoring import chart_draw  # matplotlib is imported on the first chart only

    out = io.BytesIO()
    with chart_draw.drawn(chart) as figure:
        chart_draw.save(figure, out, "png" if media_type == PNG else "pdf")
    return out.getvalue()
