"""The protocol's discharge criteria over a session's readings: from when all were met, or which are not.

Pure: the readings (with their phases), the infusion's end, the session's adverse events and
`Protocol.discharge`. What it reports is documentation of the protocol's criteria, never that a patient may
leave: a clinician's sign-off is not recorded here.

- Each criterion is judged at each reading's time from the latest readings taken **after the infusion's end**
  up to that time; a reading before the end never stands for the patient's state after it.
- Missing data is **not met**: no end time, no reading of a kind after the end, fewer blood pressures than
  "not rising" needs, no pre-infusion blood pressure for the 20% test (then only <= 140/90 passes).
- SpO2 must be at the limit without supplemental oxygen: a reading that does not say whether the patient was
  on oxygen leaves the criterion **not confirmed** (also not met).
- "Not rising over the last n readings": no rise (systolic or diastolic higher than the reading before) in
  the last n; more readings make it harder to meet, as the protocol's weakening check assumes.
- All from the same time on: `met_from` is the earliest reading time from which every criterion is met at
  every later reading time too; judged only at reading times, so the answer never runs ahead of the data.
  Its times are written in the offset of the infusion's end (readings of one instant may carry several).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from service.monitoring.model import Discharge
from service.monitoring.readings import Reading, in_order, minutes_between

MET, NOT_MET, NOT_CONFIRMED = "met", "not_met", "not_confirmed"
JUDGED = ("blood_pressure", "spo2", "moaas", "cadss")
"""The readings whose times the criteria are judged at."""
SETTLED = ("resolved", "resolved_with_sequelae")
"""Adverse-event outcomes that are no longer ongoing."""


@dataclass(frozen=True)
class Event:
    """An adverse event of the session: its record key (if ours) and its outcome in the record's words."""

    key: str | None
    outcome: str | None


@dataclass(frozen=True)
class Criterion:
    """One criterion as judged at the last reading time: met, not met or not confirmed, and why."""

    name: str
    status: str
    detail: str
    since: dt.datetime | None = None
    """The earliest reading time from which it is met at every later one (None when not met at the last)."""


@dataclass(frozen=True)
class DischargeResult:
    met_from: dt.datetime | None
    """The earliest reading time from which every criterion is met; None while any is not."""
    criteria: tuple[Criterion, ...]

    @property
    def not_met(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if c.status != MET)


@dataclass(frozen=True)
class _State:
    """What the criteria look at, at one time."""

    at: dt.datetime
    after: dict[str, list[Reading]]
    """Readings of each judged kind taken after the infusion's end, up to `at`, in order."""


def judge(
    readings: Iterable[Reading],
    ended_at: dt.datetime | None,
    events: Sequence[Event],
    rules: Discharge,
) -> DischargeResult:
    """The discharge criteria of `rules` over the session's `readings` (see the module)."""
    ordered = in_order(readings)
    before = {kind: [r for r in ordered if r.reading == kind and r.phase == "before"] for kind in JUDGED}
    pre = {kind: (found[-1] if found else None) for kind, found in before.items()}
    after = [r for r in ordered if r.reading in JUDGED and ended_at is not None and r.at > ended_at]
    zone = ended_at.tzinfo if ended_at is not None else None
    times = list(dict.fromkeys(r.at.astimezone(zone) for r in after))  # in order, in the offset of the end
    if not times:
        last = _State(ended_at or dt.datetime.min.replace(tzinfo=dt.UTC), {kind: [] for kind in JUDGED})
        nothing = _all(last, ended_at, pre, events, rules)
        return DischargeResult(None, tuple(Criterion(name, status, detail) for name, status, detail in nothing))
    history = [_all(_state(after, at), ended_at, pre, events, rules) for at in times]
    criteria: list[Criterion] = []
    for index, (name, status, detail) in enumerate(history[-1]):
        since = None
        if status == MET:
            run = len(times) - 1
            while run > 0 and history[run - 1][index][1] == MET:
                run -= 1
            since = times[run]
        criteria.append(Criterion(name, status, detail, since))
    all_met = all(c.status == MET for c in criteria)
    met_from = max(c.since for c in criteria if c.since is not None) if all_met else None
    return DischargeResult(met_from, tuple(criteria))


def _state(after: list[Reading], at: dt.datetime) -> _State:
    return _State(at, {kind: [r for r in after if r.reading == kind and r.at <= at] for kind in JUDGED})


def _all(
    state: _State,
    ended_at: dt.datetime | None,
    pre: dict[str, Reading | None],
    events: Sequence[Event],
    rules: Discharge,
) -> list[tuple[str, str, str]]:
    out = [("minutes_after_end", *_minutes(state, ended_at, rules))]
    out.append(("blood_pressure", *_blood_pressure(state.after["blood_pressure"], pre["blood_pressure"], rules)))
    out.append(("spo2", *_spo2(state.after["spo2"], rules)))
    if rules.moaas_back_to_pre_infusion:
        out.append(("moaas", *_moaas(state.after["moaas"], pre["moaas"], rules)))
    out.append(("cadss", *_cadss(state.after["cadss"], pre["cadss"], rules)))
    if rules.no_ongoing_adverse_event:
        out.append(("adverse_events", *_events(events)))
    return out


def _minutes(state: _State, ended_at: dt.datetime | None, rules: Discharge) -> tuple[str, str]:
    wanted = _number(rules.minutes_after_end)
    if ended_at is None:
        return NOT_MET, "the infusion's end is not recorded"
    if minutes_between(ended_at, state.at) < rules.minutes_after_end:
        return NOT_MET, f"no reading at least {wanted} min after the infusion ended"
    return MET, f"at least {wanted} min after the infusion ended"


def _blood_pressure(after: list[Reading], pre: Reading | None, rules: Discharge) -> tuple[str, str]:
    needed = max(1, rules.blood_pressure_not_rising_over_readings)
    if not after:
        return NOT_MET, "no blood pressure after the infusion"
    last = after[-1].values
    systolic, diastolic = last.get("systolic"), last.get("diastolic")
    if systolic is None or diastolic is None:
        return NOT_MET, "the last blood pressure has no systolic or diastolic value"
    if systolic >= rules.blood_pressure_systolic_below or diastolic >= rules.blood_pressure_diastolic_below:
        limits = f"{_number(rules.blood_pressure_systolic_below)}/{_number(rules.blood_pressure_diastolic_below)}"
        return NOT_MET, f"the last blood pressure is at or above {limits} mmHg"
    at_most = (
        systolic <= rules.blood_pressure_or_systolic_at_most and diastolic <= rules.blood_pressure_or_diastolic_at_most
    )
    if not at_most and not _within(last, pre, rules.blood_pressure_within_fraction_of_pre_infusion):
        limits = (
            f"{_number(rules.blood_pressure_or_systolic_at_most)}/{_number(rules.blood_pressure_or_diastolic_at_most)}"
        )
        fraction = f"{_number(100 * rules.blood_pressure_within_fraction_of_pre_infusion)}%"
        baseline = "the pre-infusion reading" if pre is not None else "a pre-infusion reading (none recorded)"
        return NOT_MET, f"the last blood pressure is above {limits} mmHg and not within {fraction} of {baseline}"
    if len(after) < needed:
        return NOT_MET, f"fewer than {needed} blood pressures after the infusion to show it is not rising"
    recent = after[-needed:]
    for earlier, later in zip(recent, recent[1:], strict=False):
        if any(later.values.get(m, 0) > earlier.values.get(m, 0) for m in ("systolic", "diastolic")):
            return NOT_MET, f"blood pressure rising over the last {needed} readings"
    return MET, "blood pressure below the critical limits, back near the pre-infusion reading or normal, not rising"


def _within(last: Mapping[str, float], pre: Reading | None, fraction: float) -> bool:
    if pre is None:
        return False
    for measure in ("systolic", "diastolic"):
        base, now = pre.values.get(measure), last.get(measure)
        if base is None or now is None or abs(now - base) > fraction * base:
            return False
    return True


def _spo2(after: list[Reading], rules: Discharge) -> tuple[str, str]:
    if not after:
        return NOT_MET, "no SpO2 after the infusion"
    last = after[-1]
    value = last.values.get("spo2")
    limit = _number(rules.spo2_at_least)
    if value is None or value < rules.spo2_at_least:
        return NOT_MET, f"the last SpO2 is below {limit}%"
    if rules.spo2_without_supplemental_o2:
        if last.supplemental_o2 is None:
            return (
                NOT_CONFIRMED,
                f"the last SpO2 is at least {limit}%, but whether on supplemental oxygen is not recorded",
            )
        if last.supplemental_o2:
            return NOT_MET, "the last SpO2 was taken on supplemental oxygen"
    return MET, f"SpO2 at least {limit}%" + (
        " without supplemental oxygen" if rules.spo2_without_supplemental_o2 else ""
    )


def _moaas(after: list[Reading], pre: Reading | None, rules: Discharge) -> tuple[str, str]:
    baseline = pre.values.get("moaas") if pre is not None else None
    wanted = baseline if baseline is not None else float(rules.moaas_pre_infusion_when_none)
    said = (
        "its pre-infusion score"
        if baseline is not None
        else f"{rules.moaas_pre_infusion_when_none} (no pre-infusion score)"
    )
    if not after:
        return NOT_MET, "no MOAA/S after the infusion"
    value = after[-1].values.get("moaas")
    if value is None or value < wanted:
        return NOT_MET, f"the last MOAA/S is below {said}"
    return MET, f"MOAA/S back to {said}"


def _cadss(after: list[Reading], pre: Reading | None, rules: Discharge) -> tuple[str, str]:
    baseline = pre.values.get("cadss") if pre is not None else None
    limit = rules.cadss_at_most
    if rules.cadss_or_pre_infusion_if_higher and baseline is not None:
        limit = max(limit, baseline)
    if not after:
        return NOT_MET, "no CADSS after the infusion"
    value = after[-1].values.get("cadss")
    if value is None or value > limit:
        return NOT_MET, f"the last CADSS is above {_number(limit)}"
    return MET, f"CADSS at most {_number(limit)}"


def _events(events: Sequence[Event]) -> tuple[str, str]:
    open_ = [e for e in events if e.outcome not in SETTLED]
    if not open_:
        return MET, "no adverse event ongoing" if events else "no adverse event recorded"
    unknown = [e for e in open_ if e.outcome in (None, "unknown")]
    named = ", ".join(sorted(e.key or "(not ours)" for e in open_))
    if len(unknown) == len(open_):
        return NOT_CONFIRMED, f"adverse event outcome unknown: {named}"
    return NOT_MET, f"adverse event not resolved: {named}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
