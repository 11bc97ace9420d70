"""Invalid records: one case per validation rule, each asserting the field path of the issue."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from schemas import RecordInvalid, parse_record, parse_record_of_kind
from tests.unit.examples import BASE, DROP
from tests.unit.examples import mutated as _mutated

S, V, M, A, P = "infusion_session", "vital_sign", "monitoring_score", "adverse_event", "phq9_assessment"


def single(vital_type: str, **fields: Any) -> dict[str, Any]:
    """Changes that turn the blood-pressure example into a single-value vital sign of `vital_type`."""
    return {"type": vital_type, "systolic": DROP, "diastolic": DROP, **fields}


CASES: list[tuple[str, str, dict[str, Any], str]] = [
    # (rule, kind, changes, expected issue path)
    ("kind missing", V, {"kind": DROP}, "kind"),
    ("kind unknown", V, {"kind": "vital"}, "kind"),
    ("key pattern", V, {"key": "has space"}, "key"),
    ("key too long", V, {"key": "k" * 65}, "key"),
    ("key missing", M, {"key": DROP}, "key"),
    ("patient missing", V, {"patient": DROP}, "patient"),
    ("mrn missing", V, {"patient.mrn": DROP}, "patient.mrn"),
    ("mrn empty", V, {"patient.mrn": ""}, "patient.mrn"),
    ("mrn too long", V, {"patient.mrn": "9" * 65}, "patient.mrn"),
    ("mrn edge whitespace", V, {"patient.mrn": " 123"}, "patient.mrn"),
    ("mrn control character", V, {"patient.mrn": "12\x003"}, "patient.mrn"),
    ("mrn not a string", V, {"patient.mrn": 12345}, "patient.mrn"),
    ("unknown top-level field", V, {"colour": "red"}, "colour"),
    ("unknown patient field", V, {"patient.ssn": "000"}, "patient.ssn"),
    ("given empty list", V, {"patient.given": []}, "patient.given"),
    ("given blank name", V, {"patient.given": ["  "]}, "patient.given[0]"),
    ("birth date before 1900", V, {"patient.birth_date": "1899-12-31"}, "patient.birth_date"),
    ("birth date not a date", V, {"patient.birth_date": "14/07/1981"}, "patient.birth_date"),
    ("sex not allowed", V, {"patient.sex": "f"}, "patient.sex"),
    ("time without offset", V, {"measured_at": "2024-04-12T09:05:00"}, "measured_at"),
    ("time as a number", V, {"measured_at": 1712927100}, "measured_at"),
    ("time date only", M, {"measured_at": "2024-04-12"}, "measured_at"),
    ("time with a seconds offset", V, {"measured_at": "2024-04-12T09:05:00+05:30:15"}, "measured_at"),
    ("time before 1900", V, {"measured_at": "1850-04-12T09:05:00Z"}, "measured_at"),
    # infusion_session
    ("status not allowed", S, {"status": "done"}, "status"),
    ("ended_at required when completed", S, {"ended_at": DROP}, "ended_at"),
    (
        "ended_at required when stopped",
        S,
        {"status": "stopped", "stop_reason": "x", "ended_at": DROP},
        "ended_at",
    ),
    ("ended_at before start", S, {"ended_at": "2024-04-12T09:00:00-04:00"}, "ended_at"),
    ("ended_at equal to start", S, {"ended_at": "2024-04-12T13:05:00Z"}, "ended_at"),
    ("ended_at while in progress", S, {"status": "in_progress"}, "ended_at"),
    ("infusion longer than 24 h", S, {"ended_at": "2024-04-13T10:00:00-04:00"}, "ended_at"),
    ("drug not ketamine", S, {"drug": "esketamine"}, "drug"),
    ("drug missing", S, {"drug": DROP}, "drug"),
    ("dose required when completed", S, {"dose": DROP}, "dose"),
    ("dose absent when planned", S, {"status": "planned"}, "dose"),
    ("total_mg missing", S, {"dose.total_mg": DROP}, "dose.total_mg"),
    ("total_mg negative", S, {"dose.total_mg": -1}, "dose.total_mg"),
    ("total_mg implausible", S, {"dose.total_mg": 1500}, "dose.total_mg"),
    ("total_mg as a string", S, {"dose.total_mg": "35"}, "dose.total_mg"),
    ("mg_per_kg negative", S, {"dose.mg_per_kg": -0.1}, "dose.mg_per_kg"),
    ("mg_per_kg implausible", S, {"dose.mg_per_kg": 6}, "dose.mg_per_kg"),
    ("weight_kg implausible", S, {"dose.weight_kg": 1}, "dose.weight_kg"),
    ("rate unit not allowed", S, {"dose.rate.unit": "mg/h"}, "dose.rate.unit"),
    ("rate zero", S, {"dose.rate.value": 0}, "dose.rate.value"),
    ("rate implausible for unit", S, {"dose.rate.value": 12}, "dose.rate.value"),
    ("unknown dose field", S, {"dose.route": "iv"}, "dose.route"),
    ("indications empty", S, {"indications": []}, "indications"),
    ("indication not allowed", S, {"indications": ["bipolar"]}, "indications[0]"),
    ("indication duplicated", S, {"indications": ["trd", "gad", "trd"]}, "indications[2]"),
    ("stop_reason required when stopped", S, {"status": "stopped"}, "stop_reason"),
    ("stop_reason only when stopped or not done", S, {"stop_reason": "x"}, "stop_reason"),
    ("note blank", S, {"note": "   "}, "note"),
    ("note too long", S, {"note": "x" * 2001}, "note"),
    ("clinician id missing", S, {"clinician.id": DROP}, "clinician.id"),
    (
        "child patient of another mrn",
        S,
        {"vital_signs[0].patient": {"mrn": "OTHER"}},
        "vital_signs[0].patient.mrn",
    ),
    (
        "child session_key of another session",
        S,
        {"adverse_events[0].session_key": "S-2"},
        "adverse_events[0].session_key",
    ),
    ("child keys duplicated", S, {"vital_signs[1].key": "V-1"}, "vital_signs[1].key"),
    ("child field invalid", S, {"vital_signs[2].diastolic": 140}, "vital_signs[2].diastolic"),
    ("child kind wrong", S, {"vital_signs[0].kind": "adverse_event"}, "vital_signs[0].kind"),
    ("child unknown field", S, {"adverse_events[0].colour": "red"}, "adverse_events[0].colour"),
    # vital_sign
    ("vital type not allowed", V, {"type": "glucose"}, "type"),
    ("bp systolic missing", V, {"systolic": DROP}, "systolic"),
    ("bp diastolic missing", V, {"diastolic": DROP}, "diastolic"),
    ("bp diastolic not below systolic", V, {"diastolic": 130}, "diastolic"),
    ("bp systolic implausible", V, {"systolic": 350}, "systolic"),
    ("bp diastolic implausible", V, {"diastolic": 10}, "diastolic"),
    ("bp with value", V, {"value": 120}, "value"),
    ("bp unit not mm[Hg]", V, {"unit": "kg"}, "unit"),
    ("bp unit unknown", V, {"unit": "mmHg"}, "unit"),
    ("heart rate with systolic", V, {"type": "heart_rate", "value": 80, "diastolic": DROP}, "systolic"),
    ("heart rate value missing", V, single("heart_rate"), "value"),
    ("heart rate implausible", V, single("heart_rate", value=400), "value"),
    ("heart rate value a string", V, single("heart_rate", value="80"), "value"),
    ("respiratory rate implausible", V, single("respiratory_rate", value=1), "value"),
    ("spo2 above 100", V, single("spo2", value=101), "value"),
    ("spo2 negative", V, single("spo2", value=-1), "value"),
    ("spo2 not a number", V, single("spo2", value=float("nan")), "value"),
    ("temperature unit required", V, single("temperature", value=37), "unit"),
    ("temperature unit not allowed", V, single("temperature", value=37, unit="kg"), "unit"),
    ("temperature implausible", V, single("temperature", value=50, unit="Cel"), "value"),
    ("temperature in degF implausible", V, single("temperature", value=37, unit="[degF]"), "value"),
    ("weight unit g not accepted", V, single("body_weight", value=70000, unit="g"), "unit"),
    ("weight in lb implausible", V, single("body_weight", value=2000, unit="[lb_av]"), "value"),
    # monitoring_score
    ("monitoring session_key required", M, {"session_key": DROP}, "session_key"),
    ("instrument not allowed", M, {"instrument": "bprs"}, "instrument"),
    ("cadss above 92", M, {"score": 93}, "score"),
    ("cadss negative", M, {"score": -1}, "score"),
    ("moaas above 5", M, {"instrument": "moaas", "score": 6}, "score"),
    ("rass below -5", M, {"instrument": "rass", "score": -6}, "score"),
    ("rass above 4", M, {"instrument": "rass", "score": 5}, "score"),
    ("score not an integer", M, {"score": 2.5}, "score"),
    ("score a boolean", M, {"score": True}, "score"),
    # adverse_event
    ("recorded before onset", A, {"recorded_at": "2024-04-12T09:00:00-04:00"}, "recorded_at"),
    ("event not allowed", A, {"event": "rash"}, "event"),
    ("other needs description", A, {"event": "other"}, "description"),
    ("description blank", A, {"description": ""}, "description"),
    ("severity not allowed", A, {"severity": "life-threatening"}, "severity"),
    ("serious not a boolean", A, {"serious": "no"}, "serious"),
    ("serious missing", A, {"serious": DROP}, "serious"),
    ("outcome not allowed", A, {"outcome": "resolvedWithSequelae"}, "outcome"),
    ("fatal must be serious", A, {"outcome": "fatal"}, "outcome"),
    ("causality not allowed", A, {"causality": "Probably-Likely"}, "causality"),
    ("causality needs a session", A, {"session_key": DROP}, "causality"),
    ("action not allowed", A, {"action_taken": "stopped"}, "action_taken"),
    # phq9_assessment
    ("phq9 item missing (8 items)", P, {"items": [1, 1, 1, 1, 1, 1, 1, 1], "total": DROP}, "items"),
    ("phq9 ten items", P, {"items": [1] * 10, "total": DROP}, "items"),
    ("phq9 item null", P, {"items[4]": None}, "items[4]"),
    ("phq9 item above 3", P, {"items[2]": 4}, "items[2]"),
    ("phq9 item negative", P, {"items[0]": -1}, "items[0]"),
    ("phq9 item a boolean", P, {"items[0]": True}, "items[0]"),
    ("phq9 item a string", P, {"items[8]": "0"}, "items[8]"),
    ("phq9 total not the sum", P, {"total": 9}, "total"),
    ("phq9 difficulty not allowed", P, {"difficulty": "hard"}, "difficulty"),
    ("phq9 items missing", P, {"items": DROP, "total": DROP}, "items"),
]


@pytest.mark.parametrize(("kind", "changes", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_violation_is_reported_at_its_field_path(kind: str, changes: dict[str, Any], path: str) -> None:
    with pytest.raises(RecordInvalid) as caught:
        parse_record(_mutated(kind, changes))
    paths = [issue.path for issue in caught.value.issues]
    assert path in paths
    assert all(issue.message for issue in caught.value.issues)


@pytest.mark.parametrize("kind", sorted(BASE))
def test_the_base_records_are_valid(kind: str) -> None:
    assert parse_record(copy.deepcopy(BASE[kind])).kind == kind


def test_every_violation_in_a_record_is_reported_at_once() -> None:
    record = _mutated(S, {"key": "bad key", "dose.total_mg": -5, "indications": [], "vital_signs[2].diastolic": 150})
    with pytest.raises(RecordInvalid) as caught:
        parse_record(record)
    assert {i.path for i in caught.value.issues} >= {
        "key",
        "dose.total_mg",
        "indications",
        "vital_signs[2].diastolic",
    }


def test_a_record_that_is_not_an_object_is_rejected_as_a_whole() -> None:
    with pytest.raises(RecordInvalid) as caught:
        parse_record(["not", "a", "record"])
    assert [i.path for i in caught.value.issues] == [""]


def test_kind_given_by_the_caller_must_match_the_body() -> None:
    with pytest.raises(RecordInvalid) as caught:
        parse_record_of_kind(M, BASE[V])
    assert "kind" in [i.path for i in caught.value.issues]


def test_key_given_by_the_caller_must_match_the_body_and_fills_it_when_absent() -> None:
    with pytest.raises(RecordInvalid) as caught:
        parse_record_of_kind(V, BASE[V], key="V-2")
    assert [i.path for i in caught.value.issues] == ["key"]
    body = {k: v for k, v in BASE[V].items() if k not in ("key", "kind")}
    assert parse_record_of_kind(V, body, key="V-9").key == "V-9"


def test_unknown_kind_named_by_the_caller_is_rejected() -> None:
    with pytest.raises(RecordInvalid) as caught:
        parse_record_of_kind("lab_result", {})
    assert [i.path for i in caught.value.issues] == ["kind"]


SECRET = "SECRET-4711"


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        (V, {"patient.mrn": SECRET + " "}),
        (V, {"patient.mrn": SECRET * 10}),
        (V, {"patient.family": SECRET + "\x01"}),
        (V, {"patient.birth_date": SECRET}),
        (V, {"patient.sex": SECRET}),
        (V, {"measured_at": SECRET}),
        (V, {"type": SECRET}),
        (V, {SECRET: SECRET}),
        (S, {"note": SECRET + "\x07"}),
        (S, {"status": SECRET}),
        (S, {"key": SECRET + " x"}),
        (A, {"event": SECRET}),
        (A, {"serious": SECRET}),
        (P, {"items[0]": SECRET}),
        (P, {"total": SECRET}),
        (M, {"score": SECRET}),
    ],
)
def test_messages_never_echo_input_values(kind: str, changes: dict[str, Any]) -> None:
    with pytest.raises(RecordInvalid) as caught:
        parse_record(_mutated(kind, changes))
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    for issue in caught.value.issues:
        assert SECRET not in issue.message
        assert SECRET not in issue.path


def test_an_unknown_field_is_named_only_when_its_name_looks_like_a_field_name() -> None:
    with pytest.raises(RecordInvalid) as caught:
        parse_record(_mutated(V, {"patient.Jane Doe, 1981": 1, "patient.ssn": 2}))
    assert sorted(i.path for i in caught.value.issues) == ["patient.(unknown field)", "patient.ssn"]
