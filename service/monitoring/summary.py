"""The per-session monitoring summary, purely: from the session as the server holds it and the protocol.

- **Baseline**: the last reading of each kind taken before the infusion started (instants compared, so any
  UTC offsets); a reading at the start itself is during the infusion, never the baseline.
- **Statistics** of each monitored vital (systolic, diastolic, heart rate, respiratory rate, SpO2) over every
  reading of the session: peak, trough (the earliest on a tie), count, and each one's change from the baseline.
- **Rise** of each blood pressure during or after the infusion above the baseline, judged by the protocol's
  rise rules (`H`, `marked`): summarised, never a confirmed rule, never the Flag.
- **Levels** as each reading carries them on the server (its `interpretation`), the most severe of a blood
  pressure's two components.
- **Confirmed rules** that fired (`confirmed.py`) and the **discharge criteria** (`discharge.py`).
- **Session fields modelled on the esketamine (Spravato) REMS patient monitoring form**: blood pressure before
  the infusion (the baseline), nearest 40 min after its start, and at completion (the last one from the start
  on); sedation, dissociation and respiratory events; minutes monitored (from the start to the last reading);
  when the discharge criteria were met. MOAA/S and CADSS are judged here against the real pre-infusion score
  (the per-reading interpretation can only assume the scale's end); SpO2 and respiratory rate by the
  protocol's limits in their phase.
- Every weakened rule the summary used is named with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from service.monitoring import rules
from service.monitoring.confirmed import Fired, fired
from service.monitoring.discharge import DischargeResult, judge
from service.monitoring.held import HeldEvent, HeldSession
from service.monitoring.model import MEASURES, PHASES, STATISTIC_MEASURES, Protocol, Weakening
from service.monitoring.readings import Reading, meets, minutes_between, of

STATISTICS = STATISTIC_MEASURES
BASELINE = ("blood_pressure", "heart_rate", "respiratory_rate", "spo2", "moaas", "cadss")
NEAR_MINUTES = 40.0
SEVERITY = {"HH": 2, "LL": 2, "AA": 2, "H": 1, "L": 1, "A": 1, "N": 0}
NO_LEVEL = "none"
LEVEL_ORDER = ("HH", "LL", "AA", "H", "L", "A", "N", NO_LEVEL)
SEDATION_EVENTS = ("excessive_sedation",)
DISSOCIATION_EVENTS = ("dissociation", "emergence_reaction", "hallucinations")


@dataclass(frozen=True)
class Statistic:
    """Peak, trough and count of one measure over the session, with the baseline value (None: no baseline)."""

    measure: str
    readings: tuple[Reading, ...]
    peak: Reading
    trough: Reading
    baseline: float | None

    @property
    def count(self) -> int:
        return len(self.readings)

    def value(self, reading: Reading) -> float:
        return reading.values[self.measure]

    def from_baseline(self, reading: Reading) -> float | None:
        return None if self.baseline is None else self.value(reading) - self.baseline


@dataclass(frozen=True)
class Rise:
    """A blood pressure during or after the infusion, its rise above the baseline and the rise rule's level."""

    reading: Reading
    systolic: float
    diastolic: float
    level: str


@dataclass(frozen=True)
class Judged:
    """A reading or an adverse event the session fields name as an event, and its level (None: an adverse event)."""

    reading: Reading | None
    event: HeldEvent | None
    level: str | None


@dataclass(frozen=True)
class Summary:
    held: HeldSession
    protocol: Protocol
    baseline: dict[str, Reading]
    statistics: tuple[Statistic, ...]
    rises: tuple[Rise, ...]
    levels: dict[str, dict[str, tuple[Reading, ...]]]
    """Reading kind -> level (`none` without one) -> the readings."""
    fired: tuple[Fired, ...]
    bp_near_40_min: Reading | None
    bp_at_completion: Reading | None
    sedation: tuple[Judged, ...]
    dissociation: tuple[Judged, ...]
    respiratory: tuple[Judged, ...]
    minutes_monitored: float | None
    lowest_moaas: Reading | None
    peak_cadss: Reading | None
    discharge: DischargeResult
    weakened: tuple[Weakening, ...]

    @property
    def bp_before(self) -> Reading | None:
        return self.baseline.get("blood_pressure")

    @property
    def in_progress(self) -> bool:
        """The infusion has not ended (or the session cannot say): a preliminary summary."""
        return self.held.status not in ("completed", "stopped", "not_done")


def summarise(held: HeldSession, protocol: Protocol) -> Summary:
    """The summary of `held` under `protocol` (see the module)."""
    readings = list(held.readings)
    baseline = {
        kind: found[-1] for kind in BASELINE if (found := [r for r in of(readings, kind) if r.phase == "before"])
    }
    started = [r for r in readings if r.phase in ("during", "after")]
    pre_scores: dict[str, float] = {s: baseline[s].values[s] for s in ("moaas", "cadss") if s in baseline}
    pressures = of(started, "blood_pressure")
    return Summary(
        held=held,
        protocol=protocol,
        baseline=baseline,
        statistics=tuple(s for m in STATISTICS if (s := _statistic(m, readings, baseline)) is not None),
        rises=tuple(_rises(pressures, baseline.get("blood_pressure"), protocol)),
        levels=_levels(readings),
        fired=tuple(fired(readings, protocol)),
        bp_near_40_min=_nearest(pressures, held.started_at),
        bp_at_completion=pressures[-1] if pressures else None,
        sedation=(*_scored(protocol, of(started, "moaas"), pre_scores), *_events(held.events, SEDATION_EVENTS)),
        dissociation=(*_scored(protocol, of(started, "cadss"), pre_scores), *_events(held.events, DISSOCIATION_EVENTS)),
        respiratory=tuple(_respiratory(protocol, [r for r in readings if r.phase != "before"])),
        minutes_monitored=_monitored(readings, held.started_at),
        lowest_moaas=min(of(readings, "moaas"), key=lambda r: (r.values["moaas"], r.at, r.ref), default=None),
        peak_cadss=min(of(readings, "cadss"), key=lambda r: (-r.values["cadss"], r.at, r.ref), default=None),
        discharge=judge(readings, held.ended_at, [e.as_event for e in held.events], protocol.discharge),
        weakened=_weakened(protocol, {r.reading for r in readings}),
    )


def _statistic(measure: str, readings: list[Reading], baseline: dict[str, Reading]) -> Statistic | None:
    kind = MEASURES[measure].reading
    found = tuple(r for r in of(readings, kind) if measure in r.values)
    if not found:
        return None
    peak = min(found, key=lambda r: (-r.values[measure], r.at, r.ref))
    trough = min(found, key=lambda r: (r.values[measure], r.at, r.ref))
    base = baseline.get(kind)
    return Statistic(measure, found, peak, trough, None if base is None else base.values.get(measure))


def _rises(pressures: list[Reading], base: Reading | None, protocol: Protocol) -> Iterable[Rise]:
    if base is None:
        return
    for reading in pressures:
        rise = {f"{m}_rise": reading.values[m] - base.values[m] for m in ("systolic", "diastolic")}
        for level in ("marked", "H"):
            rule = protocol.rise.get((reading.phase or "", level))
            if rule is not None and meets(rule.condition, rise):
                yield Rise(reading, rise["systolic_rise"], rise["diastolic_rise"], level)
                break


def reading_level(reading: Reading) -> str:
    """The most severe interpretation a reading carries on the server (`none` without one)."""
    levels = sorted(reading.levels.values(), key=lambda level: -SEVERITY.get(level, -1))
    return levels[0] if levels else NO_LEVEL


def _levels(readings: list[Reading]) -> dict[str, dict[str, tuple[Reading, ...]]]:
    """Reading kind -> level -> readings: kinds by name, levels most severe first (`LEVEL_ORDER`)."""
    out: dict[str, dict[str, list[Reading]]] = {}
    for reading in readings:
        out.setdefault(reading.reading, {}).setdefault(reading_level(reading), []).append(reading)
    return {kind: {level: tuple(by[level]) for level in LEVEL_ORDER if level in by} for kind, by in sorted(out.items())}


def _nearest(pressures: list[Reading], started_at: dt.datetime | None) -> Reading | None:
    if started_at is None or not pressures:
        return None
    return min(pressures, key=lambda r: (abs(minutes_between(started_at, r.at) - NEAR_MINUTES), r.at, r.ref))


def _scored(protocol: Protocol, scores: list[Reading], pre: dict[str, float]) -> Iterable[Judged]:
    """MOAA/S or CADSS readings at A or AA by the protocol's rules, `pre_infusion` the real pre-infusion score
    (without one, the scale's most sensitive end, as per reading)."""
    for reading in scores:
        measure = MEASURES[reading.reading]
        assert measure.scale is not None
        low, high = measure.scale
        own = {reading.reading: pre.get(reading.reading, float(high if measure.directions == ("low",) else low))}
        phases = PHASES if reading.phase is None else (reading.phase,)
        for level in ("AA", "A"):
            found = [protocol.rules.get((reading.reading, phase, level)) for phase in phases]
            if any(rule is not None and meets(rule.condition, reading.values, own) for rule in found):
                yield Judged(reading, None, level)
                break


def _events(events: Iterable[HeldEvent], kinds: tuple[str, ...]) -> Iterable[Judged]:
    return (Judged(None, event, None) for event in events if event.event in kinds)


def _respiratory(protocol: Protocol, readings: list[Reading]) -> Iterable[Judged]:
    for reading in readings:
        if reading.reading not in ("spo2", "respiratory_rate"):
            continue
        found = rules.limits(protocol, reading.reading, reading.phase)
        level = None if found is None else found.judge(reading.values[reading.reading])
        if level not in (None, "N"):
            yield Judged(reading, None, level)


def _monitored(readings: list[Reading], started_at: dt.datetime | None) -> float | None:
    later = [r.at for r in readings if started_at is not None and r.at >= started_at]
    return None if not later or started_at is None else minutes_between(started_at, max(later))


def _weakened(protocol: Protocol, kinds: set[str]) -> tuple[Weakening, ...]:
    """The protocol's weakened rules this summary used: confirmed, rise and discharge rules always, a
    per-reading rule when the session has a reading of its kind."""
    used = ("confirmed.", "rise.", "discharge", *(f"readings.{kind}." for kind in sorted(kinds)))
    return tuple(w for w in protocol.weakened if w.field.startswith(used))
