"""Per-reading interpretation: one value, its phase and the protocol; never another reading.

For each measure and phase the protocol's rules reduce to at most four limits (`Limits`): tier 1 (H / L, or A)
and tier 2 (HH / LL, or AA) in each direction. `pre_infusion` in a rule stands for the session's last
pre-infusion score, which one reading alone cannot know: per reading it is taken at the scale's most
sensitive end (MOAA/S "below the pre-infusion score" becomes below 5), so a reading is never judged less
abnormal than the full rule would judge it; the session summary compares the real score. With the phase
unknown (no session found) each limit is the most sensitive one of any phase.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from service.monitoring.condition import HIGH, LOW, Comparison
from service.monitoring.model import (
    MEASURES,
    ORDINAL_LEVELS,
    PHASES,
    READINGS,
    VITAL_LEVELS,
    Measure,
    Protocol,
    ProtocolError,
    Rule,
)

NORMAL = "N"
RESOLUTION = 1.0


@dataclass(frozen=True)
class Tier:
    """One limit of a measure in a phase, and the rule it comes from."""

    comparison: Comparison
    rule: Rule
    pre_infusion: bool
    """The rule also compares with the pre-infusion score, which only the session summary knows."""
    assumed: bool
    """This limit is the scale's end standing for the pre-infusion score (see the module)."""

    @property
    def bound(self) -> float:
        """The limit as an inclusive reference-range bound (R4 ranges include their ends): `> 140` is high 140,
        `>= 180` high 179, `<= 2` low 3. Every judged measure is recorded in whole units (mmHg, /min, %, score
        points); a range's text states the exact rule."""
        comparison = self.comparison
        assert comparison.limit is not None
        if not comparison.inclusive:
            return comparison.limit
        return comparison.limit - RESOLUTION if comparison.direction == HIGH else comparison.limit + RESOLUTION


@dataclass(frozen=True)
class Limits:
    """The limits one measure is judged against in one phase (None: unknown, the strictest of any phase)."""

    measure: Measure
    phase: str | None
    high: Tier | None = None
    critical_high: Tier | None = None
    low: Tier | None = None
    critical_low: Tier | None = None
    _checks: tuple[tuple[Callable[[float, float], bool], float, str], ...] = field(init=False, repr=False)
    _otherwise: str | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """The checks in the order `judge` makes them: critical before plain, high before low."""
        ordinal = self.measure.ordinal
        named = (
            (self.critical_high, "AA" if ordinal else "HH"),
            (self.high, "A" if ordinal else "H"),
            (self.critical_low, "AA" if ordinal else "LL"),
            (self.low, "A" if ordinal else "L"),
        )
        checks = tuple(
            (_OPERATORS[tier.comparison.op], float(tier.comparison.limit), level)
            for tier, level in named
            if tier is not None and tier.comparison.limit is not None
        )
        object.__setattr__(self, "_checks", checks)
        object.__setattr__(self, "_otherwise", NORMAL if self.complete else None)

    @property
    def complete(self) -> bool:
        """Whether a limit checks every way the measure can be abnormal (only then is `N` said)."""
        checked = {HIGH: self.high or self.critical_high, LOW: self.low or self.critical_low}
        return all(checked[direction] is not None for direction in self.measure.directions)

    def judge(self, value: float) -> str | None:
        """The level of `value`: HH / H / LL / L (A / AA for a scale), the most severe met; `N` when every
        direction was checked and none is met, else None (no interpretation)."""
        for compare, limit, level in self._checks:
            if compare(value, limit):
                return level
        return self._otherwise


_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def _numeric(comparison: Comparison, measure: Measure) -> Comparison:
    """`pre_infusion` replaced by the scale's most sensitive end: its top for a low limit, its bottom for a high one."""
    if comparison.limit is not None:
        return comparison
    assert measure.scale is not None  # the loader allows pre_infusion only on scales
    low, high = measure.scale
    return Comparison(comparison.measure, comparison.op, float(high if comparison.direction == LOW else low))


def _tier(rule: Rule, measure: Measure) -> Tier | None:
    """The rule's limit on `measure`: of `or`-ed comparisons the most sensitive, of `and`-ed ones the least."""
    own = [part for part in rule.condition.parts if part.measure == measure.name]
    if not own:
        return None
    numeric = [_numeric(part, measure) for part in own]
    if rule.condition.join == "or":
        index = next(i for i, c in enumerate(numeric) if all(c.covers(other) for other in numeric))
    else:
        index = next(i for i, c in enumerate(numeric) if all(other.covers(c) for other in numeric))
    return Tier(numeric[index], rule, any(part.limit is None for part in own), own[index].limit is None)


def _slot(level: str, tier: Tier) -> str:
    """Which of the four limits a level's tier fills."""
    if level in VITAL_LEVELS:
        direction, rank = VITAL_LEVELS[level]
    else:
        direction, rank = tier.comparison.direction, ORDINAL_LEVELS[level]
    return ("critical_" if rank == 2 else "") + direction


def _levels(measure: Measure) -> tuple[str, ...]:
    return tuple(ORDINAL_LEVELS) if measure.ordinal else tuple(VITAL_LEVELS)


def _phase_tiers(protocol: Protocol, measure: Measure, phase: str) -> dict[str, Tier]:
    slots: dict[str, Tier] = {}
    for level in _levels(measure):
        rule = protocol.rules.get((measure.reading, phase, level))
        tier = None if rule is None else _tier(rule, measure)
        if tier is not None:
            slots[_slot(level, tier)] = tier
    return slots


def _strictest(protocol: Protocol, measure: Measure) -> dict[str, Tier]:
    """Each limit as the most sensitive of any phase (the first phase's on a tie)."""
    slots: dict[str, Tier] = {}
    for phase in PHASES:
        for slot, tier in _phase_tiers(protocol, measure, phase).items():
            held = slots.get(slot)
            if held is None or not held.comparison.covers(tier.comparison):
                slots[slot] = tier
    return slots


def _check(limits: Limits) -> Limits:
    """Refuse limits that contradict each other: a tier 2 inside its tier 1, or a value both high and low."""
    for plain, critical in ((limits.high, limits.critical_high), (limits.low, limits.critical_low)):
        if plain is not None and critical is not None and not plain.comparison.covers(critical.comparison):
            raise ProtocolError(
                critical.rule.field + ".when",
                f"{critical.comparison.text()} flags values that {plain.rule.level} "
                f"({plain.comparison.text()}) does not: a critical limit must lie at or beyond its plain one",
            )
    high = limits.high or limits.critical_high
    low = limits.low or limits.critical_low
    if high is not None and low is not None:
        h, lo = high.comparison, low.comparison
        assert h.limit is not None and lo.limit is not None
        if lo.limit > h.limit or (lo.limit == h.limit and h.inclusive and lo.inclusive):
            raise ProtocolError(
                low.rule.field + ".when",
                f"{lo.text()} overlaps {h.text()} ({high.rule.field}): no value may be both high and low",
            )
    return limits


@lru_cache(maxsize=512)
def limits(protocol: Protocol, measure: str, phase: str | None) -> Limits | None:
    """The limits of `measure` in `phase` (None: unknown), or None when no rule judges it there."""
    spec = MEASURES[measure]
    slots = _strictest(protocol, spec) if phase is None else _phase_tiers(protocol, spec, phase)
    if not slots:
        return None
    return _check(Limits(spec, phase, **slots))


def check(protocol: Protocol) -> None:
    """Build every measure's limits in every phase once: a contradiction raises ProtocolError at start."""
    for measures in READINGS.values():
        for measure in measures:
            for phase in (*PHASES, None):
                limits(protocol, measure, phase)
