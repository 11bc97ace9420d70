"""The demo record stream: patient after patient, each session before the records that point at it."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any, BinaryIO

import orjson

from service.demo import tables as t
from service.demo.course import Patient, clinic_time, follow_up_day, make_patient, next_session_day
from service.demo.phq9 import phq9_answers
from service.demo.session import session_records

EMBEDDED_LISTS = {
    "vital_sign": "vital_signs",
    "monitoring_score": "monitoring_scores",
    "adverse_event": "adverse_events",
    "phq9_assessment": "phq9_assessments",
}
_NDJSON = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SORT_KEYS


def generate_records(patients: int, seed: int) -> Iterator[dict[str, Any]]:
    """NDJSON-ready records (each with `kind`) for `patients` synthetic patients, lazily.

    Deterministic: everything is drawn from `random.Random(seed)` (one child generator per
    patient, so patient n is the same whatever the count). Memory holds one session at a time.
    """
    if patients < 0:
        raise ValueError("patients must be >= 0")
    master = random.Random(seed)
    for number in range(1, patients + 1):
        yield from _patient_records(random.Random(master.getrandbits(64)), number)


def write_ndjson(records: Iterable[dict[str, Any]], out: BinaryIO) -> Counter[str]:
    """Write one JSON object per line (sorted keys, so byte-identical for the same records)."""
    counts: Counter[str] = Counter()
    for record in records:
        out.write(orjson.dumps(record, option=_NDJSON))
        counts[record["kind"]] += 1
    return counts


def _patient_records(rng: random.Random, number: int) -> Iterator[dict[str, Any]]:
    patient = make_patient(rng, number)
    day, given, index = patient.course_start, 0, 0
    while given < patient.sessions:
        index += 1
        if index > 1:
            day = next_session_day(rng, day)
        # a cancelled session is rescheduled, so it does not count towards the course
        not_done = rng.random() < t.SHARE_NOT_DONE and index <= patient.sessions + 2
        session, children = session_records(rng, patient, index, day, infusions_before=given, not_done=not_done)
        given += not not_done
        yield from _session_lines(rng, patient, session, children)
    if rng.random() < t.SHARE_FOLLOW_UP_PHQ9:
        yield _follow_up_phq9(rng, patient, follow_up_day(rng, day), given)


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
