"""The summary in plain words: a confirmed rule, the discharge criteria, the conclusion a clinician reads.

Deterministic (no clock, no locale): times as the narratives write them (`2 Mar 2026 10:35 UTC-04:00`); in
the conclusion all in the offset of the infusion's start (else each in its own), so one report reads in one clock. No free text from a record (an adverse event's description, a note) and no
identifier: codes' displays, values and times only. Never says a patient may leave: the discharge criteria are
the protocol's, and a clinician's sign-off is not recorded here.
"""

from __future__ import annotations

import datetime as dt

from service.mappers import codes
from service.mappers.build import number
from service.mappers.narrative import at as said_at
from service.monitoring.discharge import DischargeResult
from service.monitoring.model import MEASURES, ConfirmedRule
from service.monitoring.readings import Reading
from service.monitoring.summary import Summary

LABELS = {
    "systolic": "systolic",
    "diastolic": "diastolic",
    "heart_rate": "heart rate",
    "respiratory_rate": "respiratory rate",
    "spo2": "SpO2",
    "moaas": "MOAA/S",
    "cadss": "CADSS",
}
SIGN_OFF = "(clinician sign-off not recorded)"
CRITICAL = "Critical episode"


def unit(measure: str) -> str:
    """The unit as a sentence writes it (`mmHg`, `/min`, `%`; nothing for a score)."""
    ucum = MEASURES[measure].unit
    return "" if ucum == codes.UNIT_SCORE else codes.UNIT_TEXT[ucum]


def rule_words(rule: ConfirmedRule) -> str:
    """`systolic at or above 180 mmHg or diastolic at or above 110 mmHg, twice 5-15 min apart`."""
    text = f" {rule.condition.join} ".join(
        f"{LABELS[p.measure]} {p.words(unit(p.measure))}" for p in rule.condition.parts
    )
    if rule.readings == 1:
        return text
    apart = (
        f"{number(rule.min_apart_minutes)}-{number(rule.max_apart_minutes)}"
        if rule.max_apart_minutes is not None
        else f"at least {number(rule.min_apart_minutes)}"
    )
    return f"{text}, on two readings {apart} min apart with none below the limits between"


def value_words(reading: Reading) -> str:
    """`212/124 mmHg`, `86 %`, `MOAA/S 2`."""
    if reading.reading == "blood_pressure":
        return f"{number(reading.values['systolic'])}/{number(reading.values['diastolic'])} mmHg"
    value = number(reading.values[reading.reading])
    measure_unit = unit(reading.reading)
    return f"{value} {measure_unit}" if measure_unit else f"{LABELS[reading.reading]} {value}"


def discharge_words(result: DischargeResult) -> str:
    """`Protocol discharge criteria all met from <time> (clinician sign-off not recorded)`, or those not met."""
    if result.met_from is not None:
        return f"Protocol discharge criteria all met from {said_at(result.met_from)} {SIGN_OFF}"
    missing = "; ".join(c.detail + (" (not confirmed)" if c.status == "not_confirmed" else "") for c in result.not_met)
    return f"Protocol discharge criteria not met {SIGN_OFF}: {missing}"


def _change(value: float | None) -> str:
    return "" if value is None else f"{'+' if value >= 0 else ''}{number(value)}"


def conclusion(summary: Summary) -> str:
    """The summary's conclusion in plain words (DiagnosticReport.conclusion, and the JSON's `conclusion`)."""
    held = summary.held
    zone = held.started_at.tzinfo if held.started_at is not None else None

    def at(value: dt.datetime) -> str:
        return said_at(value.astimezone(zone) if zone is not None else value)

    sentences = [f"{summary.protocol.title}: {len(held.readings)} readings"]
    if summary.fired:
        for found in summary.fired:
            count = len(found.readings)
            sentences.append(
                f"{CRITICAL}: {rule_words(found.rule)} ({count} reading{'s' if count > 1 else ''}, first at {at(found.first.at)})"
            )
    else:
        sentences.append("No confirmed rule fired (no critical episode)")
    stats = {s.measure: s for s in summary.statistics}
    systolic = stats.get("systolic")
    if systolic is not None:
        peak = systolic.peak
        text = f"Peak blood pressure {value_words(peak)} at {at(peak.at)}"
        base = summary.bp_before
        if base is not None:
            rise = "/".join(_change(peak.values[m] - base.values[m]) for m in ("systolic", "diastolic"))
            text += f" ({rise} from the pre-infusion {value_words(base)})"
        sentences.append(text)
    marked = [r for r in summary.rises if r.level == "marked"]
    if marked:
        sentences.append(f"Marked rise from the pre-infusion blood pressure on {len(marked)} reading(s)")
    for measure, word in (("heart_rate", "Heart rate"), ("respiratory_rate", "Respiratory rate")):
        if measure in stats:
            span = stats[measure]
            low, high = number(span.value(span.trough)), number(span.value(span.peak))
            sentences.append(f"{word} {low}-{high} /min" if low != high else f"{word} {low} /min")
    if "spo2" in stats:
        trough = stats["spo2"].trough
        sentences.append(f"Lowest SpO2 {value_words(trough)} at {at(trough.at)}")
    if summary.lowest_moaas is not None:
        sentences.append(f"Lowest MOAA/S {number(summary.lowest_moaas.values['moaas'])}")
    if summary.peak_cadss is not None:
        sentences.append(f"Peak CADSS {number(summary.peak_cadss.values['cadss'])}")
    if held.events:
        events = ", ".join(
            f"{codes.AE_EVENTS[e.event].display.lower()} ({codes.AE_OUTCOMES[e.outcome].display.lower()})"
            for e in held.events
        )
        sentences.append(f"Adverse events: {events}")
    sentences.append(discharge_words(summary.discharge))
    for weak in summary.weakened:
        sentences.append(f"Rule less sensitive than the protocol's default: {weak.describe()}")
    return ". ".join(sentences) + "."
