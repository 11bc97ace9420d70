"""Vital signs and CADSS/MOAA/S/RASS scores through one session, shaped by ketamine's effects.

Blood pressure: a transient systolic rise of 10-25 mmHg (per patient) peaking 18-30 minutes into
the infusion and settling over the next half hour; diastolic and heart rate follow at a fraction.
Dissociation (CADSS) peaks mid-infusion and fades quickly; sedation (MOAA/S) stays mostly 4-5.
A few sessions have a monitoring episode (`episodes`): a hypertensive surge, a desaturation,
hypotension or over-sedation. Readings follow the schedule in `tables` (arrival, baseline, every
10-15 minutes during the infusion, every 15 minutes for an hour after it).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from typing import Any

from service.demo import episodes
from service.demo import tables as t
from service.demo.course import Patient, weighted
from service.demo.episodes import Vitals
from service.demo.plan import Event, Plan

Timed = tuple[float, int, dict[str, Any]]  # (minutes from start, tie-break order, record without patient)
VITAL_ORDER, SCORE_ORDER, EVENT_ORDER = 1000, 2000, 3000  # same minute: PHQ-9 first, events last


def vital_signs(rng: random.Random, patient: Patient, plan: Plan) -> list[Timed]:
    """Weight (first session), an occasional temperature, then BP, HR, RR and SpO2 at each observation time (no RR
    on arrival), and a recheck of a blood pressure at or above 180/110 five minutes later."""
    out: list[Timed] = []

    def add(minute: float, vital: dict[str, Any]) -> None:
        vital = {
            "kind": "vital_sign",
            "key": f"{plan.key}.vs{len(out) + 1:02d}",
            "session_key": plan.key,
            "measured_at": plan.at(minute),
            **vital,
        }
        out.append((minute, VITAL_ORDER + len(out), vital))

    if plan.index == 1:
        if patient.weight_in_lb:
            add(-20, {"type": "body_weight", "value": round(patient.weight_kg / 0.45359237, 1), "unit": "[lb_av]"})
        else:
            add(-20, {"type": "body_weight", "value": patient.weight_kg, "unit": "kg"})
    if rng.random() < t.SHARE_TEMPERATURE:
        celsius = rng.uniform(36.2, 37.3)
        if patient.weight_in_lb:  # a clinic weighing in pounds takes temperatures in Fahrenheit
            add(-15, {"type": "temperature", "value": round(celsius * 9 / 5 + 32, 1), "unit": "[degF]"})
        else:
            add(-15, {"type": "temperature", "value": round(celsius, 1), "unit": "Cel"})

    rise = _bp_rise(rng, patient, plan)
    tachy = plan.has("tachycardia")
    records_oxygen = plan.episode(t.DESATURATION) is not None or rng.random() < t.SHARE_O2_RECORDED
    arrival, *scheduled = observation_times(rng, plan)
    due = [arrival, *scheduled]
    heapq.heapify(due)
    while due:
        minute = heapq.heappop(due)
        up = rise(minute)
        vitals = Vitals(
            systolic=patient.systolic + up + rng.gauss(0, 3),
            diastolic=patient.diastolic + 0.55 * up + rng.gauss(0, 2.5),
            heart_rate=patient.heart_rate + 0.3 * up + rng.gauss(0, 3),
            resp_rate=patient.resp_rate + rng.gauss(0, 1),
            spo2=patient.spo2 + rng.gauss(0, 0.7) - (0.8 if 0 < minute <= plan.end else 0),
        )
        if minute == arrival:  # on arrival, before settling: a little higher
            vitals.systolic += rng.uniform(3, 10)
            vitals.heart_rate += rng.uniform(2, 8)
        if tachy and tachy.onset - 2 <= minute <= tachy.onset + 15:
            vitals.heart_rate += rng.uniform(28, 40)
        episodes.apply(rng, plan, minute, vitals)
        systolic = round(vitals.systolic)
        diastolic = min(round(vitals.diastolic), systolic - 25)
        add(minute, {"type": "blood_pressure", "systolic": systolic, "diastolic": diastolic, "unit": "mm[Hg]"})
        add(minute, {"type": "heart_rate", "value": round(vitals.heart_rate), "unit": "/min"})
        if minute != arrival:
            add(minute, {"type": "respiratory_rate", "value": max(6, round(vitals.resp_rate)), "unit": "/min"})
        spo2: dict[str, Any] = {"type": "spo2", "value": max(80, min(100, round(vitals.spo2))), "unit": "%"}
        if records_oxygen:
            spo2["supplemental_o2"] = vitals.on_oxygen
        add(minute, spo2)
        recheck = minute + t.RECHECK_AFTER
        high = systolic >= t.RECHECK_AT[0] or diastolic >= t.RECHECK_AT[1]
        if high and minute > 0 and not any(minute < other <= recheck for other in due):
            heapq.heappush(due, recheck)
    return out


def observation_times(rng: random.Random, plan: Plan) -> list[float]:
    """On arrival and a baseline just before the start; every 10, 12 or 15 minutes during the infusion, with one
    at 40 minutes and one at its end; every 15 minutes after it until discharge; and one more at the onset of each
    episode (`episodes.prompted_times`). Arrival first."""
    interval = int(weighted(rng, t.INTERVALS))
    arrival, baseline = -rng.randint(*t.ARRIVAL_MINUTES), -rng.randint(*t.BASELINE_MINUTES)
    during: list[float] = []
    if plan.end >= t.NEAR_40:  # evenly up to 40 minutes, none further apart than the interval
        count = math.ceil(t.NEAR_40 / interval)
        during = [float(round(t.NEAR_40 * n / count)) for n in range(1, count + 1)]
    while (during[-1] if during else 0) + interval < plan.end:
        during.append((during[-1] if during else 0) + interval)
    if during and plan.end - during[-1] < 3 and plan.end - (during[-2] if len(during) > 1 else 0) <= interval:
        during.pop()  # the reading at the end stands for it
    during = [m for m in during if m < plan.end] + [float(plan.end)]
    after = [float(m) for m in range(plan.end + t.AFTER_INTERVAL, plan.discharge + 1, t.AFTER_INTERVAL)]
    return [arrival, *sorted({baseline, *during, *after, *episodes.prompted_times(plan)})]


def _bp_rise(rng: random.Random, patient: Patient, plan: Plan) -> Callable[[float], float]:
    """Systolic rise (mmHg) as a function of minutes since the infusion start."""
    amplitude = patient.bp_rise * rng.uniform(0.8, 1.2)
    peak = rng.uniform(18, 30)
    settle = rng.uniform(15, 25)
    high_bp = plan.episode(t.RAISED_BP)
    if high_bp:
        target = 183 if high_bp.action == "infusion_stopped" else 162
        amplitude = max(amplitude, target - patient.systolic + rng.uniform(0, 10))
        peak = high_bp.onset
    surge = plan.episode(t.HYPERTENSIVE_SURGE)
    if surge:
        amplitude = max(amplitude, rng.uniform(186, 212) - patient.systolic)
        peak, settle = surge.onset, rng.uniform(25, 40)
    peak = max(5.0, min(peak, plan.end))

    def rise(minute: float) -> float:
        if minute <= 0:
            return 0.0
        if minute <= peak:
            return amplitude * math.sin(math.pi / 2 * minute / peak)
        return amplitude * math.exp(-(minute - peak) / settle)

    return rise


def monitoring_scores(rng: random.Random, patient: Patient, plan: Plan, times: list[float]) -> list[Timed]:
    """CADSS at the baseline, mid-infusion, at the end and at discharge; MOAA/S (and RASS) at the baseline, every
    other check after it, at each episode's onset and at discharge."""
    out: list[Timed] = []

    def add(minute: float, instrument: str, score: int) -> None:
        score_record = {
            "kind": "monitoring_score",
            "key": f"{plan.key}.ms{len(out) + 1:02d}",
            "session_key": plan.key,
            "measured_at": plan.at(minute),
            "instrument": instrument,
            "score": score,
        }
        out.append((minute, SCORE_ORDER + len(out), score_record))

    peak = patient.dissociation * (1 - 0.06 * (plan.index - 1)) * (plan.mg_per_kg / 0.5) ** 0.8
    peak *= rng.uniform(0.8, 1.2)
    if plan.has("dissociation", "hallucinations", "emergence_reaction"):
        peak = max(peak, rng.uniform(40, 62))
    mid = max(1, round(plan.end / 2))
    restless = plan.has("agitation", "emergence_reaction", "anxiety")
    baseline = max(m for m in times if m <= 0)  # the last pre-infusion check, not the one on arrival
    checks = sorted({baseline, *[m for m in times if m > 0][::2], times[-1], *episodes.prompted_times(plan)})
    cadss = {
        baseline: rng.randint(0, 3),
        mid: peak,
        plan.end: peak * rng.uniform(0.55, 0.8),
        plan.discharge: peak * rng.uniform(0.0, 0.12) + rng.randint(0, 2),
    }
    for minute in sorted({*checks, *cadss}):
        if minute in cadss:
            add(minute, "cadss", max(0, min(92, round(cadss[minute]))))
        if minute not in checks:
            continue
        sedated = episodes.sedation(rng, plan, minute)
        if minute <= 0:
            moaas, rass = 5, 0
        elif sedated is not None:
            moaas, rass = sedated, -4 if sedated <= 2 else -3
        elif minute <= plan.end:
            moaas = int(weighted(rng, (("5", 0.35), ("4", 0.5), ("3", 0.15))))
            rass = int(weighted(rng, (("0", 0.45), ("-1", 0.4), ("-2", 0.1), ("1", 0.05))))
        else:
            moaas, rass = (rng.choice((4, 5)), rng.choice((-1, 0))) if minute - plan.end < 15 else (5, 0)
        if _near(restless, minute):
            rass = rng.choice((1, 2))
        add(minute, "moaas", moaas)
        if patient.uses_rass:
            add(minute, "rass", rass)
    return out


def _near(event: Event | None, minute: float) -> bool:
    return event is not None and event.onset - 5 <= minute <= event.onset + 15
