"""Monitoring episodes in a session's readings: a hypertensive surge, a desaturation, hypotension, over-sedation.

Each comes with an adverse event of the session (`tables.EventShape.episode`) and shows from the event's onset,
when the nurse takes an unscheduled set of readings (prompted by the symptom or the monitor's alarm):
- hypertensive surge: the blood pressure rise peaks at 186-212 systolic at the onset (`monitoring._bp_rise`), and
  every reading at or above 180/110 is measured again 5 minutes later (`monitoring.vital_signs`);
- desaturation: SpO2 84-89% with slowed breathing at the onset, then supplemental oxygen for 20 minutes (SpO2
  93-97% on oxygen) before room air again;
- hypotension: a vasovagal episode, systolic 70-79 with a heart rate of 44-52 at the onset, recovering over the
  next 15 minutes;
- over-sedation: MOAA/S 1-2 at the onset with slowed breathing, 3 for the next 15 minutes (`sedation`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from service.demo import tables as t
from service.demo.plan import Plan

PROMPTED = (t.HYPERTENSIVE_SURGE, t.DESATURATION, t.HYPOTENSION, t.OVER_SEDATION)
"""Episodes whose onset brings an unscheduled set of readings."""
OXYGEN_MINUTES = 20
RECOVERY_MINUTES = 15


@dataclass
class Vitals:
    """One set of readings as drawn, before rounding."""

    systolic: float
    diastolic: float
    heart_rate: float
    resp_rate: float
    spo2: float
    on_oxygen: bool = False


def prompted_times(plan: Plan) -> list[float]:
    """The onset of each episode of the session that brings readings of its own."""
    return sorted({event.onset for name in PROMPTED if (event := plan.episode(name)) is not None})


def apply(rng: random.Random, plan: Plan, minute: float, vitals: Vitals) -> None:
    """What the session's episodes do to the readings taken at `minute`."""
    desaturation = plan.episode(t.DESATURATION)
    if desaturation is not None:
        since = minute - desaturation.onset
        if since == 0:
            vitals.spo2 = rng.uniform(84, 89.4)
            vitals.resp_rate -= rng.uniform(3, 5)
        elif 0 < since <= OXYGEN_MINUTES:
            vitals.spo2 = rng.uniform(93, 97)
            vitals.on_oxygen = True
    hypotension = plan.episode(t.HYPOTENSION)
    if hypotension is not None:
        since = minute - hypotension.onset
        if since == 0:
            vitals.systolic = rng.uniform(70, 79.4)
            vitals.diastolic = vitals.systolic * rng.uniform(0.55, 0.65)
            vitals.heart_rate = rng.uniform(44, 52)
        elif 0 < since <= RECOVERY_MINUTES:
            vitals.systolic -= rng.uniform(15, 25) * (1 - since / RECOVERY_MINUTES) + 5
            vitals.diastolic -= 8
    sedation = plan.episode(t.OVER_SEDATION)
    if sedation is not None:
        since = minute - sedation.onset
        if since == 0:
            vitals.resp_rate -= rng.uniform(3, 5)
            vitals.spo2 -= rng.uniform(1, 3)
        elif 0 < since <= RECOVERY_MINUTES:
            vitals.resp_rate -= 2


def sedation(rng: random.Random, plan: Plan, minute: float) -> int | None:
    """The MOAA/S of an over-sedated patient at `minute`, or None where the episode does not decide it."""
    event = plan.episode(t.OVER_SEDATION)
    if event is None:
        return None
    since = minute - event.onset
    if since == 0:
        return rng.choice((1, 2))
    if 0 < since <= RECOVERY_MINUTES:
        return 3
    return None
