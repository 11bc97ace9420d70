"""The demo record stream: patient after patient, each session before the records that point at it."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, BinaryIO

import orjson

from schemas.kinds import CHILD_LISTS
from service.demo import tables as t
from service.demo.course import Patient, clinic_time, follow_up_day, make_patient, next_session_day
from service.demo.measures import Measures, as_children, make_measures, visit_assessments
from service.demo.phq9 import phq9_answers
from service.demo.plan import Plan
from service.demo.session import session_records

EMBEDDED_LISTS = {kind: field for field, kind in CHILD_LISTS.items()}
"""Record kind -> the session's list field its embedded records go in."""
_NDJSON = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SORT_KEYS
_MEASURES_SALT = 0x5CA1E5  # the rating scales' generator: seeded beside the patient's, drawing nothing from it


def generate_records(patients: int, seed: int) -> Iterator[dict[str, Any]]:
    """NDJSON-ready records (each with `kind`) for `patients` synthetic patients, lazily.

    Deterministic: everything is drawn from `random.Random(seed)` (one child generator per
    patient, so patient n is the same whatever the count; the rating scales beside PHQ-9 from a
    second one seeded with it, so adding them left every other record as it was). Memory holds one
    session at a time.
    """
    if patients < 0:
        raise ValueError("patients must be >= 0")
    master = random.Random(seed)
    for number in range(1, patients + 1):
        patient_seed = master.getrandbits(64)
        yield from _patient_records(random.Random(patient_seed), random.Random(patient_seed ^ _MEASURES_SALT), number)


def write_ndjson(records: Iterable[dict[str, Any]], out: BinaryIO) -> Counter[str]:
    """Write one JSON object per line (sorted keys, so byte-identical for the same records)."""
    counts: Counter[str] = Counter()
    for record in records:
        out.write(orjson.dumps(record, option=_NDJSON))
        counts[record["kind"]] += 1
    return counts


def _patient_records(rng: random.Random, scales_rng: random.Random, number: int) -> Iterator[dict[str, Any]]:
    patient = make_patient(rng, number)
    measures = make_measures(scales_rng, patient)
    day, given, index = patient.course_start, 0, 0
    while given < patient.sessions:
        index += 1
        if index > 1:
            day = next_session_day(rng, day)
        # a cancelled session is rescheduled, so it does not count towards the course
        not_done = rng.random() < t.SHARE_NOT_DONE and index <= patient.sessions + 2
        scales = partial(_visit_scales, scales_rng, patient, measures, index, given, not not_done)
        session, children = session_records(
            rng, patient, index, day, infusions_before=given, not_done=not_done, scales=scales
        )
        given += not not_done
        yield from _session_lines(rng, patient, session, children)
    if rng.random() < t.SHARE_FOLLOW_UP_PHQ9:
        phq9 = _follow_up_phq9(rng, patient, follow_up_day(rng, day), given)
        yield phq9
        yield from _follow_up_scales(scales_rng, patient, measures, phq9, given)


def _visit_scales(
    rng: random.Random, patient: Patient, measures: Measures, visit: int, given: int, infused: bool, plan: Plan
) -> list[tuple[float, int, dict[str, Any]]]:
    return as_children(rng, plan, visit_assessments(rng, patient, measures, visit, given, infused))


def _follow_up_scales(
    rng: random.Random, patient: Patient, measures: Measures, phq9: dict[str, Any], given: int
) -> Iterator[dict[str, Any]]:
    """The C-SSRS and the patient's scales at the follow-up visit, after its PHQ-9 (no session)."""
    at = datetime.fromisoformat(phq9["completed_at"])
    faded = max(0.0, given - rng.uniform(0, 2))  # some of the response may have faded, as for the PHQ-9
    for n, record in enumerate(visit_assessments(rng, patient, measures, 0, faded, infused=False), 1):
        when = at + timedelta(minutes=5 * n)
        yield {
            **record,
            "key": f"{patient.key}.fu1.{record['instrument']}",
            "patient": patient.identity,
            "completed_at": when.isoformat(),
        }


def _session_lines(
    rng: random.Random, patient: Patient, session: dict[str, Any], children: list[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """The session then its children as lines, or (about 1 in 5) the children inside it."""
    if children and rng.random() < t.SHARE_EMBEDDED_SESSIONS:
        for child in children:
            embedded = {k: v for k, v in child.items() if k != "kind"}
            session.setdefault(EMBEDDED_LISTS[child["kind"]], []).append(embedded)
        yield session
        return
    yield session
    for child in children:
        yield {**child, "patient": patient.identity}


def _follow_up_phq9(rng: random.Random, patient: Patient, day: date, given: int) -> dict[str, Any]:
    """A PHQ-9 at a follow-up visit, tied to no session; some of the response may have faded."""
    at = clinic_time(day, rng.randrange(9 * 60, 16 * 60, 5))
    return {
        "kind": "phq9_assessment",
        "key": f"{patient.key}.fu1.phq9",
        "patient": patient.identity,
        "completed_at": at.isoformat(),
        **phq9_answers(rng, patient, max(0.0, given - rng.uniform(0, 2))),
    }
