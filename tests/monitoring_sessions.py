"""Infusion sessions for the monitoring-summary tests, as records: a hypertensive one with every kind of reading.

The session runs 09:30-10:10 at UTC-04:00; readings are given in minutes from its start, each in an offset of
its own (instants are what count). `HYPERTENSIVE` has one reading of 212/124 (the single-reading rule) and two
of >= 180/110 ten minutes apart (the repeat), SpO2 on room air, MOAA/S and CADSS before, during and after,
and an adverse event resolved; the discharge criteria are all met at 100 minutes (60 after the end).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

ZONE = dt.timezone(dt.timedelta(hours=-4))
START = dt.datetime(2026, 3, 2, 9, 30, tzinfo=ZONE)
END = START + dt.timedelta(minutes=40)
OFFSETS = (dt.UTC, dt.timezone(dt.timedelta(hours=1)), ZONE, dt.timezone(dt.timedelta(hours=5, minutes=30)))


def at(minutes: float, n: int = 0) -> str:
    """The time `minutes` after the start, written in one of several offsets (by `n`)."""
    return (START + dt.timedelta(minutes=minutes)).astimezone(OFFSETS[n % len(OFFSETS)]).isoformat()


def session(key: str, mrn: str, **changes: Any) -> dict[str, Any]:
    return {
        "kind": "infusion_session",
        "key": key,
        "patient": {"mrn": mrn},
        "status": "completed",
        "started_at": START.isoformat(),
        "ended_at": END.isoformat(),
        "drug": "ketamine",
        "dose": {"total_mg": 35, "mg_per_kg": 0.5, "weight_kg": 70},
        "indications": ["trd"],
        **changes,
    }


def _n(key: str) -> int:
    """Which offset a reading's time is written in: by its key without the prefix, so that two sessions
    built by one function with two prefixes write the same times."""
    return sum(map(ord, key.split("-", 1)[-1]))


def bp(key: str, minutes: float, systolic: float, diastolic: float) -> dict[str, Any]:
    return {
        "key": key,
        "measured_at": at(minutes, _n(key)),
        "type": "blood_pressure",
        "systolic": systolic,
        "diastolic": diastolic,
    }


def vital(key: str, minutes: float, kind: str, value: float, **extra: Any) -> dict[str, Any]:
    return {"key": key, "measured_at": at(minutes, _n(key)), "type": kind, "value": value, **extra}


def score(key: str, minutes: float, instrument: str, value: int) -> dict[str, Any]:
    return {"key": key, "measured_at": at(minutes, _n(key)), "instrument": instrument, "score": value}


def hypertensive(prefix: str) -> dict[str, list[dict[str, Any]]]:
    """The children of the hypertensive session, keys prefixed (so that sessions of one test never share one)."""
    p = prefix
    vitals = [
        bp(f"{p}-bp0", -10, 150, 90),
        bp(f"{p}-bp1", 10, 175, 100),
        bp(f"{p}-bp2", 20, 212, 124),
        bp(f"{p}-bp3", 30, 190, 112),
        bp(f"{p}-bp4", 40, 185, 108),
        bp(f"{p}-bp5", 55, 160, 95),
        bp(f"{p}-bp6", 70, 145, 88),
        bp(f"{p}-bp7", 85, 138, 85),
        bp(f"{p}-bp8", 100, 135, 84),
        vital(f"{p}-hr0", -10, "heart_rate", 80),
        vital(f"{p}-hr1", 20, "heart_rate", 112),
        vital(f"{p}-hr2", 40, "heart_rate", 96),
        vital(f"{p}-hr3", 100, "heart_rate", 78),
        vital(f"{p}-o0", -10, "spo2", 98, supplemental_o2=False),
        vital(f"{p}-o1", 20, "spo2", 95),
        vital(f"{p}-o2", 85, "spo2", 97, supplemental_o2=False),
        vital(f"{p}-o3", 100, "spo2", 97, supplemental_o2=False),
        vital(f"{p}-rr1", 20, "respiratory_rate", 14),
        vital(f"{p}-t0", -10, "temperature", 36.8, unit="Cel"),
    ]
    scores = [
        score(f"{p}-m0", -10, "moaas", 5),
        score(f"{p}-m1", 20, "moaas", 4),
        score(f"{p}-m2", 100, "moaas", 5),
        score(f"{p}-c0", -10, "cadss", 0),
        score(f"{p}-c1", 20, "cadss", 14),
        score(f"{p}-c2", 100, "cadss", 2),
    ]
    events = [
        {
            "key": f"{p}-ae1",
            "onset_at": at(20),
            "recorded_at": at(25),
            "event": "elevated_blood_pressure",
            "severity": "moderate",
            "serious": False,
            "outcome": "resolved",
            "action_taken": "infusion_slowed",
        }
    ]
    return {"vital_signs": vitals, "monitoring_scores": scores, "adverse_events": events}


def separate(children: dict[str, list[dict[str, Any]]], session_key: str, mrn: str) -> list[dict[str, Any]]:
    """The children as records of their own, naming the session."""
    kinds = {"vital_signs": "vital_sign", "monitoring_scores": "monitoring_score", "adverse_events": "adverse_event"}
    return [
        {**child, "kind": kinds[field], "patient": {"mrn": mrn}, "session_key": session_key}
        for field, found in children.items()
        for child in found
    ]
