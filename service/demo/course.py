"""One synthetic patient: who they are, their physiology, and the dates of their infusion course."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from service.demo import tables as t

_EST = timezone(timedelta(hours=-5))
_EDT = timezone(timedelta(hours=-4))


def clinic_time(day: date, minute_of_day: int) -> datetime:
    """A wall-clock time at the (US Eastern) clinic as an aware datetime with its UTC offset.

    Daylight saving runs from the second Sunday of March to the first Sunday of November; the
    clinic is open 07:00-19:00, so the 02:00 switch never makes a wall time ambiguous.
    """
    dst_start = _first_sunday_on_or_after(date(day.year, 3, 8))
    dst_end = _first_sunday_on_or_after(date(day.year, 11, 1))
    offset = _EDT if dst_start <= day < dst_end else _EST
    return datetime.combine(day, time(), offset) + timedelta(minutes=minute_of_day)


def _first_sunday_on_or_after(day: date) -> date:
    return day + timedelta(days=(6 - day.weekday()) % 7)


def weighted(rng: random.Random, pairs: tuple[tuple[str, float], ...]) -> str:
    """One value from (value, weight) pairs."""
    return rng.choices([v for v, _ in pairs], weights=[w for _, w in pairs])[0]


@dataclass(frozen=True)
class Patient:
    """A synthetic patient and everything that stays fixed across their course."""

    number: int
    key: str  # prefix of every record key, e.g. "p000123"
    identity: dict[str, Any]  # the record's `patient` block
    weight_kg: float
    weight_in_lb: bool
    systolic: float
    diastolic: float
    heart_rate: float
    resp_rate: float
    spo2: float
    bp_rise: float  # mmHg of transient systolic rise under ketamine
    dissociation: float  # CADSS mid-infusion peak at the first session
    uses_rass: bool
    rate_unit: str
    escalation_step: float  # mg/kg added per session after the second (0: stays at 0.5)
    duration_min: int
    indications: list[str]
    response: str
    response_fall: float  # fraction of the PHQ-9 total gone by session 6
    response_tau: float  # sessions to reach most of the response
    phq9_baseline: int
    phq9_item9: int
    clinician: dict[str, Any]
    course_start: date
    sessions: int  # infusions actually given (6 unless the course stopped early)


def make_patient(rng: random.Random, number: int) -> Patient:
    """Draw patient `number` (1-based) from `rng`."""
    anchor = date(*t.ANCHOR_DATE)
    start = _next_weekday(anchor - timedelta(days=rng.randint(*t.COURSE_START_WINDOW_DAYS)))
    sex = weighted(rng, (("female", 0.58), ("male", 0.39), ("other", 0.02), ("unknown", 0.01)))
    given = {"female": t.GIVEN_FEMALE, "male": t.GIVEN_MALE}.get(sex, t.GIVEN_ANY)
    identity: dict[str, Any] = {"mrn": _mrn(rng, number), "family": rng.choice(t.FAMILY_NAMES)}
    if rng.random() < 0.97:
        identity["given"] = rng.sample(given, 2 if rng.random() < 0.15 else 1)  # list, as in FHIR
    if rng.random() < 0.97:
        identity["birth_date"] = _birth_date(rng, start).isoformat()
    identity["sex"] = sex

    response, _, fall_range = rng.choices(t.RESPONSE_TYPES, weights=[share for _, share, _ in t.RESPONSE_TYPES])[0]
    baseline = round(rng.triangular(15, 24, 19)) if rng.random() < 0.85 else rng.choice((11, 12, 13, 14, 25, 26, 27))
    item9 = int(weighted(rng, (("0", 0.7), ("1", 0.2), ("2", 0.08), ("3", 0.02))))
    indications = ["trd" if rng.random() < 0.7 else "mdd"]
    indications += [name for name, share in t.COMORBID_INDICATIONS if rng.random() < share]
    if item9 > 0 and rng.random() < 0.6:
        indications.append("suicidal_ideation")

    male = sex == "male"
    systolic = rng.uniform(110, 138) if male else rng.uniform(104, 134)
    return Patient(
        number=number,
        key=f"p{number:06d}",
        identity=identity,
        weight_kg=round(rng.uniform(62, 115) if male else rng.uniform(48, 100), 1),
        weight_in_lb=rng.random() < t.SHARE_WEIGHT_IN_LB,
        systolic=systolic,
        diastolic=systolic * rng.uniform(0.58, 0.68),
        heart_rate=rng.uniform(60, 88),
        resp_rate=rng.uniform(12, 17),
        spo2=rng.uniform(96.5, 99.5),
        bp_rise=rng.uniform(10, 25),
        dissociation=rng.uniform(8, 36),
        uses_rass=rng.random() < t.SHARE_RASS_PATIENTS,
        rate_unit=weighted(rng, (("mg/kg/h", 0.78), ("mg/min", 0.12), ("mL/h", 0.1))),
        escalation_step=0.0 if rng.random() < 0.7 else rng.choice((0.05, 0.1, 0.1, 0.125)),
        duration_min=40 if rng.random() < 0.85 else rng.choice((45, 50, 60)),
        indications=indications,
        response=response,
        response_fall=rng.uniform(*fall_range),
        response_tau=rng.uniform(1.0, 2.5),
        phq9_baseline=baseline,
        phq9_item9=min(item9, baseline),
        clinician=dict(zip(("id", "name"), rng.choice(t.CLINICIANS), strict=True)),
        course_start=start,
        sessions=t.SESSIONS_PER_COURSE
        if rng.random() >= t.SHARE_NO_SHOW_DROPOUT
        else rng.randint(2, t.SESSIONS_PER_COURSE - 1),
    )


def next_session_day(rng: random.Random, day: date) -> date:
    """The next clinic weekday two to four days on: six infusions take two to three weeks."""
    return _next_weekday(day + timedelta(days=rng.choice((2, 2, 3, 3, 4))))


def follow_up_day(rng: random.Random, last_session: date) -> date:
    """A weekday about two weeks after the last infusion."""
    return _next_weekday(last_session + timedelta(days=rng.randint(11, 17)))


def _next_weekday(day: date) -> date:
    return day + timedelta(days=7 - day.weekday() if day.weekday() >= 5 else 0)


def _mrn(rng: random.Random, number: int) -> str:
    """`SYN-000123`; about 5% use a FHIR-search-special separator instead: `SYN|000123`."""
    separator = "-"
    if rng.random() < t.MRN_ODD_SHARE:
        separator = rng.choice(t.MRN_ODD_SEPARATORS)
    return f"{t.MRN_PREFIX}{separator}{number:06d}"


def _birth_date(rng: random.Random, course_start: date) -> date:
    """Aged 18-72 at the course start (so no older than 75 by the end of 2026)."""
    day = min(course_start.day, 28) if course_start.month == 2 else course_start.day
    anniversary = course_start.replace(year=course_start.year - rng.randint(18, 72), day=day)
    return anniversary - timedelta(days=rng.randint(0, 364))
