"""A reading's phase (before / during / after the infusion) across UTC offsets, and the same interpretation
whichever way the reading arrives: embedded in its session, beside it in one request, or alone with its
session read from the FHIR server. A reading is judged alone: changing or reordering the session's other
readings never changes it.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
from typing import Any

import pytest

from schemas import parse_record
from service.mappers import MappingConfig, mapper_for, transaction_bundle
from service.mappers.context import SessionContext, context_from_procedure
from service.mappers.ids import resource_ref
from tests.corpus import monitored_session

CONFIG = MappingConfig()
PATIENT = {"mrn": "MRN-PH"}
# 09:00-09:40 at UTC-05:00 is 14:00-14:40 UTC.
SESSION = monitored_session(PATIENT, kind="infusion_session", key="S-PH")
# (time, phase): each time in an offset other than the session's; as text, several sort the wrong way.
TIMES = [
    ("2026-03-02T15:59:00+02:00", "before"),  # 13:59Z, one minute before the start
    ("2026-03-02T14:00:00Z", "during"),  # the start itself (inclusive)
    ("2026-03-02T20:10:00+05:30", "during"),  # 14:40Z, the end itself (inclusive)
    ("2026-03-02T09:41:00-05:00", "after"),  # 14:41Z
    ("2026-03-03T00:11:00+09:30", "after"),  # 14:41Z, the next calendar day
]


def _start() -> dt.datetime:
    return dt.datetime.fromisoformat(SESSION["started_at"])


@pytest.mark.parametrize(("when", "phase"), TIMES)
def test_the_phase_compares_instants_across_utc_offsets(when: str, phase: str) -> None:
    ctx = SessionContext(
        key="S-PH",
        encounter="Encounter/e",
        status="completed",
        started_at=_start(),
        ended_at=dt.datetime.fromisoformat(SESSION["ended_at"]),
    )
    assert ctx.phase(dt.datetime.fromisoformat(when)) == phase


def _readings() -> list[dict[str, Any]]:
    """A MOAA/S of 1 and a blood pressure of 150/95 at every time: AA only during and after (none before)."""
    out: list[dict[str, Any]] = []
    for n, (when, _) in enumerate(TIMES):
        out.append({"key": f"M-{n}", "measured_at": when, "instrument": "moaas", "score": 1})
        out.append({"key": f"B-{n}", "measured_at": when, "type": "blood_pressure", "systolic": 150, "diastolic": 95})
    return out


def _split(readings: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {
        "monitoring_scores": [r for r in readings if "instrument" in r],
        "vital_signs": [r for r in readings if "type" in r],
    }


def _judged(resources: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """reading key -> what the interpretation says (codes, ranges, partOf, narrative)."""
    out = {}
    for r in resources:
        if r["resourceType"] != "Observation" or r["identifier"][0]["system"].endswith("infusion-session"):
            continue
        parts = r.get("component", [r])
        out[r["identifier"][0]["value"]] = (
            [p.get("interpretation") for p in parts],
            [p.get("referenceRange") for p in parts],
            "partOf" in r,
            r["text"]["div"],
        )
    return out


def _embedded(readings: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    record = parse_record({**SESSION, **_split(readings)})
    return _judged(mapper_for(record.kind).to_fhir_json(record, CONFIG))


def _separate(readings: list[dict[str, Any]]) -> list[Any]:
    kinds = {"instrument": "monitoring_score", "type": "vital_sign"}
    return [
        parse_record(
            {**r, "kind": next(k for f, k in kinds.items() if f in r), "patient": PATIENT, "session_key": "S-PH"}
        )
        for r in readings
    ]


def test_the_same_reading_is_interpreted_the_same_however_it_arrives() -> None:
    readings = _readings()
    embedded = _embedded(readings)
    assert len(embedded) == 10
    # beside its session in one request (or batch), in shuffled order
    shuffled = _separate(readings)
    random.Random(7).shuffle(shuffled)
    bundle = transaction_bundle([*shuffled, parse_record(SESSION)], CONFIG)
    same_request = _judged([e["resource"] for e in bundle["entry"]])
    # alone, its session read from the FHIR server (the Procedure as written, times in the session's offset)
    session = parse_record(SESSION)
    procedure = next(
        r for r in mapper_for(session.kind).to_fhir_json(session, CONFIG) if r["resourceType"] == "Procedure"
    )
    server = context_from_procedure("S-PH", procedure, "MRN-PH", CONFIG)
    alone = _judged([res for r in _separate(readings) for res in mapper_for(r.kind).to_fhir_json(r, CONFIG, server)])
    for key, said in embedded.items():
        assert same_request[key] == said == alone[key], key
    for n, (_, phase) in enumerate(TIMES):
        moaas_levels, _, part_of, _ = embedded[f"M-{n}"]
        expected = None if phase == "before" else [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "AA", "display": "Critical abnormal"}]}]  # fmt: skip
        assert moaas_levels == [expected], (n, phase)
        assert part_of == (phase == "during")
        texts = [r["text"] for r in embedded[f"B-{n}"][1][0]]
        assert all(f"version 1, {phase} the infusion:" in t for t in texts), texts


def test_a_reading_never_changes_with_the_sessions_other_readings() -> None:
    """Pure per reading: raising one reading to critical, dropping others, or reordering them leaves the rest."""
    readings = _readings()
    before = _embedded(readings)
    changed = copy.deepcopy(readings)
    changed[1].update(systolic=230, diastolic=130)  # B-0 becomes critical
    reordered = list(reversed([r for i, r in enumerate(changed) if i not in (2, 3)]))  # M-1, B-1 gone
    after = _embedded(reordered)
    assert after["B-0"] != before["B-0"]
    for key in before.keys() - {"B-0", "M-1", "B-1"}:
        assert after[key] == before[key], key


def test_a_reading_alone_offline_is_judged_by_the_strictest_limits_and_names_no_phase() -> None:
    (record,) = _separate(_readings()[:1])  # the MOAA/S of 1 a minute before the start: before, if known
    (resource,) = mapper_for(record.kind).to_fhir_json(record, CONFIG)
    assert resource["interpretation"][0]["coding"][0]["code"] == "AA"
    assert all("phase unknown" in r["text"] for r in resource["referenceRange"])
    assert (
        resource_ref("infusion_session", "S-PH", "procedure", CONFIG)
        == resource["extension"][0]["valueReference"]["reference"]
    )
