"""Vital signs and CADSS/MOAA/S/RASS scores through one session, shaped by ketamine's effects.

Blood pressure: a transient systolic rise of 10-25 mmHg (per patient) peaking 18-30 minutes into
the infusion and settling over the next half hour; diastolic and heart rate follow at a fraction.
Dissociation (CADSS) peaks mid-infusion and fades quickly; sedation (MOAA/S) stays mostly 4-5.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from service.demo import tables as t
from service.demo.course import Patient, weighted
from service.demo.plan import Event, Plan

Timed = tuple[float, int, dict[str, Any]]  # (minutes from start, tie-break order, record without patient)
VITAL_ORDER, SCORE_ORDER, EVENT_ORDER = 1000, 2000, 3000  # same minute: PHQ-9 first, events last


def vital_signs(rng: random.Random, patient: Patient, plan: Plan) -> list[Timed]:
    """Weight (first session), an occasional temperature, then BP, HR, RR and SpO2 every 10-15 min."""
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
    sedated = plan.has("excessive_sedation")
    for minute in observation_times(rng, plan):
        during = 0 < minute <= plan.end
        up = rise(minute)
        systolic = round(patient.systolic + up + rng.gauss(0, 3))
        diastolic = min(round(patient.diastolic + 0.55 * up + rng.gauss(0, 2.5)), systolic - 25)
        heart = patient.heart_rate + 0.3 * up + rng.gauss(0, 3)
        if tachy and tachy.onset - 2 <= minute <= tachy.onset + 15:
            heart += rng.uniform(28, 40)
        resp = patient.resp_rate + rng.gauss(0, 1)
        if sedated and sedated.onset - 2 <= minute <= sedated.onset + 15:
            resp -= 3
        spo2 = patient.spo2 + rng.gauss(0, 0.7) - (0.8 if during else 0)
        add(minute, {"type": "blood_pressure", "systolic": systolic, "diastolic": diastolic, "unit": "mm[Hg]"})
        add(minute, {"type": "heart_rate", "value": round(heart), "unit": "/min"})
        add(minute, {"type": "respiratory_rate", "value": max(8, round(resp)), "unit": "/min"})
        add(minute, {"type": "spo2", "value": max(92, min(100, round(spo2))), "unit": "%"})
    return out


def observation_times(rng: random.Random, plan: Plan) -> list[float]:
    """A pre-infusion baseline, then every 10, 12 or 15 minutes, and one at discharge."""
    interval = int(weighted(rng, (("10", 0.45), ("15", 0.4), ("12", 0.15))))
    times: list[float] = [-rng.randint(3, 8), *range(interval, plan.discharge + 1, interval)]
    if plan.discharge - times[-1] >= 5:
        times.append(plan.discharge)
    return times


def _bp_rise(rng: random.Random, patient: Patient, plan: Plan) -> Callable[[float], float]:
    """Systolic rise (mmHg) as a function of minutes since the infusion start."""
    amplitude = patient.bp_rise * rng.uniform(0.8, 1.2)
    peak = rng.uniform(18, 30)
    high_bp = plan.has("elevated_blood_pressure")
    if high_bp:
        target = 183 if high_bp.action == "infusion_stopped" else 162
        amplitude = max(amplitude, target - patient.systolic + rng.uniform(0, 10))
        peak = high_bp.onset
    peak = max(5.0, min(peak, plan.end))
    settle = rng.uniform(15, 25)

    def rise(minute: float) -> float:
        if minute <= 0:
            return 0.0
        if minute <= peak:
            return amplitude * math.sin(math.pi / 2 * minute / peak)
        return amplitude * math.exp(-(minute - peak) / settle)

    return rise


def monitoring_scores(rng: random.Random, patient: Patient, plan: Plan, times: list[float]) -> list[Timed]:
    """CADSS before, mid-infusion, at the end and at discharge; MOAA/S (and RASS) every other check."""
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
    sedated = plan.has("excessive_sedation")
    restless = plan.has("agitation", "emergence_reaction", "anxiety")
    checks = sorted({*times[::2], times[-1]})
    cadss = {
        times[0]: rng.randint(0, 3),
        mid: peak,
        plan.end: peak * rng.uniform(0.55, 0.8),
        plan.discharge: peak * rng.uniform(0.0, 0.12) + rng.randint(0, 2),
    }
    for minute in sorted({*checks, *cadss}):
        if minute in cadss:
            add(minute, "cadss", max(0, min(92, round(cadss[minute]))))
        if minute not in checks:
            continue
        if minute <= 0:
            moaas, rass = 5, 0
        elif _near(sedated, minute):
            moaas, rass = rng.choice((2, 3)), -3
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
