"""One infusion session as records: the session itself, then its children in time order."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date
from typing import Any

from service.demo import tables as t
from service.demo.course import Patient, clinic_time, weighted
from service.demo.monitoring import (
    EVENT_ORDER,
    VITAL_ORDER,
    Timed,
    monitoring_scores,
    vital_signs,
)
from service.demo.phq9 import phq9_answers
from service.demo.plan import Event, Plan, plan_session, planned_mg_per_kg

_SEVERITIES = ("mild", "moderate", "severe")


def session_records(
    rng: random.Random,
    patient: Patient,
    index: int,
    day: date,
    *,
    infusions_before: int,
    not_done: bool = False,
    scales: Callable[[Plan], list[Timed]] = lambda plan: [],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The session record (without children) and its child records, children in time order; `scales` makes
    the visit's rating scales beside the PHQ-9 (service.demo.measures) once the session's plan is known."""
    key = f"{patient.key}.s{index:02d}"
    start = clinic_time(day, rng.randrange(8 * 60, 15 * 60 + 1, 15) + rng.randint(0, 12))
    session: dict[str, Any] = {"kind": "infusion_session", "key": key, "patient": patient.identity}
    if not_done:
        plan = Plan(
            key,
            index,
            start,
            planned_mg_per_kg(patient, index),
            patient.duration_min,
            0,
            0,
            infused=patient.duration_min,
        )
        session, children = _not_done(rng, patient, session, plan, infusions_before)
        return session, _in_time_order([*children, *scales(plan)])

    plan = plan_session(rng, patient, key, index, start)
    children = [_phq9(rng, patient, plan, infusions_before), *scales(plan)]
    vitals = vital_signs(rng, patient, plan)
    children += vitals
    times = [minute for minute, _, v in vitals if v["type"] == "blood_pressure"]
    children += monitoring_scores(rng, patient, plan, times)
    children += [_adverse_event(rng, plan, n, event) for n, event in enumerate(plan.events, 1)]

    session.update(
        status="stopped" if plan.stopped else "completed",
        started_at=plan.at(0),
        ended_at=plan.at(plan.end),
        drug="ketamine",
        dose=_dose(patient, plan),
        indications=patient.indications,
        clinician=patient.clinician,
    )
    if plan.stopped:
        session["stop_reason"] = plan.stop_reason
    note = _session_note(rng, patient, plan)
    if note:
        session["note"] = note
    return session, _in_time_order(children)


def _not_done(
    rng: random.Random, patient: Patient, session: dict[str, Any], plan: Plan, infusions_before: int
) -> tuple[dict[str, Any], list[Timed]]:
    reason = rng.choice(t.NOT_DONE_REASONS)
    session.update(
        status="not_done",
        started_at=plan.at(0),
        drug="ketamine",
        indications=patient.indications,
        stop_reason=reason,
        clinician=patient.clinician,
    )
    if rng.random() < 0.5:
        session["dose"] = _dose(patient, plan)  # the contract allows the intended dose here
    children = [_phq9(rng, patient, plan, infusions_before)]
    if "blood pressure" in reason:
        for n, minute in enumerate((-10, -2), 1):
            systolic = rng.randint(162, 178)
            children.append(
                (
                    minute,
                    VITAL_ORDER + n,
                    {
                        "kind": "vital_sign",
                        "key": f"{plan.key}.vs{n:02d}",
                        "session_key": plan.key,
                        "measured_at": plan.at(minute),
                        "type": "blood_pressure",
                        "systolic": systolic,
                        "diastolic": rng.randint(100, 108),
                        "unit": "mm[Hg]",
                    },
                )
            )
    return session, children


def _phq9(rng: random.Random, patient: Patient, plan: Plan, infusions_before: int) -> Timed:
    minute = -rng.randint(20, 40)
    record = {
        "kind": "phq9_assessment",
        "key": f"{plan.key}.phq9",
        "session_key": plan.key,
        "completed_at": plan.at(minute),
        **phq9_answers(rng, patient, infusions_before),
    }
    return (minute, 0, record)


def _dose(patient: Patient, plan: Plan) -> dict[str, Any]:
    """What was given: a stopped infusion delivered only its share of the planned mg/kg."""
    given = plan.mg_per_kg * (plan.infused / plan.duration if plan.stopped else 1)
    mg_per_kg = round(given, 3)
    total = round(mg_per_kg * patient.weight_kg, 1)
    planned_total = plan.mg_per_kg * patient.weight_kg
    if patient.rate_unit == "mg/kg/h":
        rate = round(plan.mg_per_kg * 60 / plan.duration, 3)
    elif patient.rate_unit == "mg/min":
        rate = round(planned_total / plan.duration, 2)
    else:  # the dose diluted in a 100 mL bag of normal saline
        rate = round(100 * 60 / plan.duration, 1)
    return {
        "total_mg": total,
        "mg_per_kg": mg_per_kg,
        "weight_kg": patient.weight_kg,
        "rate": {"value": rate, "unit": patient.rate_unit},
    }


def _adverse_event(rng: random.Random, plan: Plan, number: int, event: Event) -> Timed:
    shape = event.shape
    severity = weighted(rng, tuple(zip(_SEVERITIES, shape.severity, strict=True)))
    if event.action == "infusion_stopped" and severity == "mild":
        severity = "moderate"
    record = {
        "kind": "adverse_event",
        "key": f"{plan.key}.ae{number:02d}",
        "session_key": plan.key,
        "onset_at": plan.at(event.onset),
        "recorded_at": plan.at(min(event.onset + rng.randint(2, 15), plan.discharge + 10)),
        "event": shape.event,
        "severity": severity,
        "serious": severity == "severe" and rng.random() < t.SERIOUS_SHARE_OF_SEVERE,
        "outcome": weighted(rng, t.OUTCOMES),
        "causality": weighted(rng, t.CAUSALITY),
        "action_taken": event.action,
    }
    if shape.description:
        record["description"] = rng.choice(shape.description)
    if event.action == "medication_given" and shape.medication:
        record["note"] = shape.medication
    return (event.onset, EVENT_ORDER + number, record)


def _session_note(rng: random.Random, patient: Patient, plan: Plan) -> str:
    parts = []
    if plan.index > 1 and plan.mg_per_kg > planned_mg_per_kg(patient, plan.index - 1):
        parts.append(f"Dose increased to {plan.mg_per_kg:g} mg/kg")
    for event in plan.events:
        if event.delay:
            verb = "paused" if event.action == "infusion_paused" else "slowed"
            parts.append(f"Infusion {verb} {event.delay} min ({event.shape.event.replace('_', ' ')})")
    if not parts and not plan.events and not plan.stopped and rng.random() < 0.25:
        parts.append(rng.choice(("Tolerated well", "Discharged with escort", "Calm throughout")))
    return "; ".join(parts)


def _in_time_order(children: list[Timed]) -> list[dict[str, Any]]:
    return [record for _, _, record in sorted(children, key=lambda c: (c[0], c[1]))]
