"""A deterministic corpus of valid records covering every kind, enum value and optional field."""

from __future__ import annotations

import datetime as dt
import random
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from schemas.adverse_event import Action, Causality, Event, Outcome, Severity
from schemas.assessment import INSTRUMENTS, EmbeddedInstrument
from schemas.common import Sex
from schemas.monitoring_score import SCORE_RANGES
from schemas.phq9 import Difficulty
from schemas.records import MODELS
from schemas.session import Indication, RateUnit, Status
from schemas.vital_sign import RANGES
from service.instruments import DEFINITIONS, score
from service.instruments.model import Choice, YesNo

STATUSES = typing.get_args(Status)
EMBEDDED_INSTRUMENTS = typing.get_args(EmbeddedInstrument)
INDICATIONS = typing.get_args(Indication)
RATE_UNITS = typing.get_args(RateUnit)
EVENTS = typing.get_args(Event)
SEVERITIES = typing.get_args(Severity)
OUTCOMES = typing.get_args(Outcome)
CAUSALITIES = typing.get_args(Causality)
ACTIONS = typing.get_args(Action)
DIFFICULTIES = typing.get_args(Difficulty)
SEXES = typing.get_args(Sex)
VITAL_UNITS = [("blood_pressure", "mm[Hg]"), *RANGES]
OFFSETS = ("Z", "+00:00", "-05:00", "+01:00", "+05:30", "-03:30", "+09:00")
MRN_SHAPES = ("{n:06d}", "MRN-{n}", "A,{n}", "B|{n}", "C${n}", "D\\{n}", "E {n}/x", "ü{n}|,$\\")
FAMILIES = ("Okafor", "Lindqvist", "O'Brien", "García-López", "Nguyen", "Smith")
GIVEN = (["Ada"], ["Jean", "Luc"], ["Mary", "Ann", "Lou"], ["Tomás"])
NOTES = ("Tolerated well.", "Mild dissociation at 20 min, resolved.", "Discharged with escort; stable.")
STOP_REASONS = ("Patient request after emergence reaction", "Blood pressure above 180/110", "IV access lost")


def _time(rng: random.Random, base: dt.datetime, minutes: int) -> str:
    offset = OFFSETS[rng.randrange(len(OFFSETS))]
    tz = dt.UTC if offset == "Z" else dt.datetime.strptime(offset, "%z").tzinfo
    text = (base + dt.timedelta(minutes=minutes)).astimezone(tz).isoformat()
    return text.replace("+00:00", "Z") if offset == "Z" else text


def _patient(n: int) -> dict[str, Any]:
    patient: dict[str, Any] = {"mrn": MRN_SHAPES[n % len(MRN_SHAPES)].format(n=100000 + n)}
    if n % 4:
        patient["family"] = FAMILIES[n % len(FAMILIES)]
    if n % 5:
        patient["given"] = GIVEN[n % len(GIVEN)]
    if n % 3:
        patient["birth_date"] = f"{1950 + n % 50}-{1 + n % 12:02d}-{1 + n % 28:02d}"
    if n % 6:
        patient["sex"] = SEXES[n % len(SEXES)]
    return patient


def vital_sign(rng: random.Random, i: int, key: str, base: dt.datetime) -> dict[str, Any]:
    vital, unit = VITAL_UNITS[i % len(VITAL_UNITS)]
    record: dict[str, Any] = {"kind": "vital_sign", "key": key, "measured_at": _time(rng, base, 5 + i % 40)}
    record["type"] = vital
    if vital == "blood_pressure":
        systolic = rng.randint(95, 185)
        record.update(systolic=systolic, diastolic=rng.randint(50, min(systolic - 10, 115)))
        if i // len(VITAL_UNITS) % 2:
            record["unit"] = unit
        return record
    low, high = RANGES[(vital, unit)]
    if vital in ("heart_rate", "respiratory_rate"):
        low, high = (50, 130) if vital == "heart_rate" else (8, 24)
        record["value"] = rng.randint(low, high)
    elif vital == "spo2":
        record["value"] = rng.choice((88, 94, 97, 99, 100, 96.5))
        turn = i // len(VITAL_UNITS) % 3  # supplemental oxygen: unknown (omitted), on, off
        if turn:
            record["supplemental_o2"] = turn == 1
    elif vital == "temperature":
        record["value"] = round(rng.uniform(35.8, 38.2), 1) if unit == "Cel" else round(rng.uniform(96.4, 100.8), 1)
    else:
        record["value"] = round(rng.uniform(48, 130), 1) if unit == "kg" else round(rng.uniform(105, 290), 1)
    if vital in ("temperature", "body_weight") or i % 3:
        record["unit"] = unit
    return record


def monitoring_score(rng: random.Random, i: int, key: str, base: dt.datetime) -> dict[str, Any]:
    instrument = ("cadss", "moaas", "rass")[i % 3]
    low, high = SCORE_RANGES[instrument]
    score = (low, high, rng.randint(low, high))[i // 3 % 3]
    return {
        "kind": "monitoring_score",
        "key": key,
        "measured_at": _time(rng, base, 10 + i % 30),
        "instrument": instrument,
        "score": score,
    }


def adverse_event(rng: random.Random, i: int, key: str, base: dt.datetime, with_session: bool) -> dict[str, Any]:
    event = EVENTS[i % len(EVENTS)]
    serious = i % 7 == 0
    outcome = OUTCOMES[i % len(OUTCOMES)]
    record: dict[str, Any] = {
        "kind": "adverse_event",
        "key": key,
        "onset_at": _time(rng, base, 15 + i % 20),
        "recorded_at": _time(rng, base, 40 + i % 20),
        "event": event,
        "severity": SEVERITIES[i % len(SEVERITIES)],
        "serious": serious or outcome == "fatal",
        "outcome": outcome,
    }
    if event == "other" or i % 4 == 1:
        record["description"] = rng.choice(("Metallic taste", "Transient numbness of lips", "Felt detached"))
    if with_session and i % 5:
        record["causality"] = CAUSALITIES[i // 5 % len(CAUSALITIES)]
    if i % 6:
        record["action_taken"] = ACTIONS[i % len(ACTIONS)]
    if i % 3 == 0:
        record["note"] = rng.choice(("Ondansetron 4 mg IV given.", "Observed 30 min extra.", "Family informed."))
    return record


def phq9(rng: random.Random, i: int, key: str, base: dt.datetime) -> dict[str, Any]:
    band_total = (0, 3, 7, 12, 17, 24, 27)[i % 7]
    slots = 9 if i % 2 or band_total > 24 else 8  # item 9 scored only for odd i (or a total of 27)
    items = [0] * 9
    while sum(items) < band_total:
        slot = rng.randrange(slots)
        items[slot] = min(3, items[slot] + 1)
    record: dict[str, Any] = {
        "kind": "phq9_assessment",
        "key": key,
        "completed_at": _time(rng, base, -30),
        "items": items,
    }
    if i % 5:
        record["difficulty"] = DIFFICULTIES[i % len(DIFFICULTIES)]
    if i % 2 == 0:
        record["total"] = sum(items)
    return record


def assessment(i: int, key: str, base: dt.datetime, embedded: bool = False) -> dict[str, Any]:
    """A rating scale of the instrument `i` picks (each in turn), answered by the skip rules.

    Drawn from a generator of its own, so the records drawn from the corpus' one stay as they were.
    """
    rng = random.Random(f"assessment-{i}")
    choices = EMBEDDED_INSTRUMENTS if embedded else INSTRUMENTS  # a session takes a PHQ-9 in phq9_assessments
    instrument = choices[(i // 2) % len(choices)]
    definition = DEFINITIONS[instrument]
    items: list[Any] = []
    for item in definition.items:
        if any(items[definition.index(rule.link_id)] is not rule.answer for rule in item.enable_when):
            items.append(None)  # unasked
        elif isinstance(item.answer, YesNo):
            items.append(rng.random() < 0.4)
        elif isinstance(item.answer, Choice):
            items.append(rng.choice([option.score for option in item.answer.options]))
        else:
            items.append(rng.randint(item.answer.low, item.answer.high))
    record: dict[str, Any] = {
        "kind": "assessment",
        "key": key,
        "instrument": instrument,
        "completed_at": _time(rng, base, -20),
        "items": items,
    }
    if definition.difficulty is not None and i // 14:  # (left out of the first GAD-7)
        record["difficulty"] = DIFFICULTIES[(i // 2) % len(DIFFICULTIES)]
    if definition.total is not None and i % 4 == 0:
        record["total"] = score(definition, items).total
    return record


def _session(rng: random.Random, i: int, patient: dict, base: dt.datetime) -> dict[str, Any]:
    status = STATUSES[i % len(STATUSES)]
    key = f"S{i:04d}_{'ab'[i % 2]}.x"
    record: dict[str, Any] = {
        "kind": "infusion_session",
        "key": key,
        "patient": patient,
        "status": status,
        "started_at": _time(rng, base, 0),
        "drug": "ketamine",
    }
    duration = rng.choice((40, 45, 60, 100))
    if status in ("completed", "stopped") or (status in ("not_done", "entered_in_error", "planned") and i % 2):
        record["ended_at"] = _time(rng, base, duration if status != "stopped" else duration // 2)
    if status != "planned" and (status in ("in_progress", "completed", "stopped") or i % 3):
        weight = round(rng.uniform(50, 120), 1)
        mg_per_kg = (0.5, 0.75, 1.0)[i % 3]
        dose: dict[str, Any] = {"total_mg": round(weight * mg_per_kg, 1)}  # given, or for not_done intended
        if i % 4:
            dose["mg_per_kg"] = mg_per_kg
        if i % 5:
            dose["weight_kg"] = weight
        if i % 7:
            unit = RATE_UNITS[i % len(RATE_UNITS)]
            dose["rate"] = {"unit": unit, "value": {"mg/kg/h": 0.75, "mg/min": 0.9, "mL/h": 150}[unit]}
        record["dose"] = dose
    record["indications"] = [
        INDICATIONS[i % len(INDICATIONS)],
        *([INDICATIONS[(i + 2) % 6]] if i % 3 else []),
    ]
    if status == "stopped" or (status == "not_done" and i % 2):
        record["stop_reason"] = STOP_REASONS[i % len(STOP_REASONS)]
    if i % 3 == 0:
        record["note"] = NOTES[i % len(NOTES)]
    if i % 4:
        record["clinician"] = {"id": f"CL-{i % 9}", **({"name": "Dr. R. Osei"} if i % 3 else {})}
    return record


def monitored_session(patient: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A completed 40-minute infusion, 09:00-09:40 at UTC-05:00 (14:00-14:40 UTC): the session the monitoring
    tests place readings around; `fields` adds or overrides (`kind`, `key`, `vital_signs`, ...)."""
    return {
        "patient": patient,
        "status": "completed",
        "started_at": "2026-03-02T09:00:00-05:00",
        "ended_at": "2026-03-02T09:40:00-05:00",
        "drug": "ketamine",
        "dose": {"total_mg": 35, "mg_per_kg": 0.5, "weight_kg": 70},
        "indications": ["trd"],
        **fields,
    }


def generate(seed: int = 2024, sessions: int = 90) -> Iterator[dict[str, Any]]:
    """Valid record dicts, standalone and embedded, deterministic for a seed (about 8 per session)."""
    rng = random.Random(seed)
    start = dt.datetime(2024, 3, 4, 8, 30, tzinfo=dt.UTC)
    for i in range(sessions):
        patient = _patient(i % 31)
        base = start + dt.timedelta(days=i // 4, hours=2 * (i % 4))
        session = _session(rng, i, patient, base)
        key = session["key"]
        children = {
            "vital_signs": [vital_sign(rng, i * 3 + n, f"{key}.vs{n}", base) for n in range(3)],
            "monitoring_scores": [monitoring_score(rng, i + n, f"{key}.ms{n}", base) for n in range(2)],
            "adverse_events": [adverse_event(rng, i, f"{key}.ae", base, with_session=True)],
            "phq9_assessments": [phq9(rng, i, f"{key}.phq9", base)],
            # two sessions in three; those embedding their children carry two (the next instrument too)
            "assessments": [assessment(n, f"{key}.as{n - i}", base, i % 3 == 0) for n in (i, i + 2)[: 1 + (i % 3 == 0)]]
            if i % 2 == 0 or i % 3 == 0
            else [],
        }
        if i % 5 == 2:  # the EHR names its own visit
            session["visit_id"] = f"VISIT-{i:04d}|{'ab'[i % 2]}"
        if i % 3 == 0:  # embedded, sometimes restating the patient and session key
            if session["status"] == "entered_in_error":  # refused there: AdverseEvent has no status
                del children["adverse_events"]
            for name, items in children.items():
                session[name] = [
                    {k: v for k, v in child.items() if k != "kind" or (n + i // 3) % 2}
                    | ({"patient": patient, "session_key": key} if n == 0 and i % 2 else {})
                    for n, child in enumerate(items)
                ]
            yield session
            continue
        yield session
        for name, items in children.items():
            for child in items:
                linked = name == "monitoring_scores" or i % 5 != 1
                if not linked:
                    child = {k: v for k, v in child.items() if k != "causality"}
                yield {**child, "patient": patient, **({"session_key": key} if linked else {})}
        if i % 4 == 2:  # a standalone adverse event with no session at all
            yield {
                **adverse_event(rng, i + 1, f"{key}.ae-free", base, with_session=False),
                "patient": patient,
            }


def _literals(annotation: Any) -> set[Any]:
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    return (
        set().union(*(_literals(arg) for arg in typing.get_args(annotation))) if typing.get_args(annotation) else set()
    )


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for arg in typing.get_args(annotation) if (m := _model_in(arg)) is not None), None)


def coverage_gaps(records: list[dict[str, Any]]) -> list[str]:
    """Gaps in the records: enum values never used, optional fields not both given and omitted."""
    presence: dict[str, set[bool]] = {}
    values: dict[str, set[Any]] = {}
    expected: dict[str, tuple[bool, set[Any]]] = {}

    def walk(model: type[BaseModel], obj: dict[str, Any], top: bool = False) -> None:
        name = model.__name__.removeprefix("Embedded")
        for field, info in model.model_fields.items():
            path = f"{name}.{field}"
            if top and field == "kind":  # always given at the top level (it names the kind)
                continue
            expected[path] = (info.is_required(), _literals(info.annotation))
            presence.setdefault(path, set()).add(field in obj)
            if field not in obj:
                continue
            items = obj[field] if isinstance(obj[field], list) else [obj[field]]
            sub = _model_in(info.annotation)
            for item in items:
                if sub is not None and isinstance(item, dict):
                    walk(sub, item)
                elif isinstance(item, (str, bool, int)):
                    values.setdefault(path, set()).add(item)

    for record in records:
        walk(MODELS[record["kind"]], record, top=True)
    gaps = []
    for path, (is_required, literals) in sorted(expected.items()):
        if not is_required and presence[path] != {True, False}:
            gaps.append(f"{path}: optional field not both given and omitted")
        missing = literals - values.get(path, set())
        if missing:
            gaps.append(f"{path}: values never used: {sorted(map(str, missing))}")
    return gaps
