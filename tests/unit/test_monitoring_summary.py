"""The per-session monitoring summary, computed purely from the resources the server would hold for a session.

The resources are made by the real mappers, the session's children embedded or sent on their own (in shuffled
order, times in several UTC offsets): the summary must not depend on how they arrived. Expectations come from
../shared/monitoring-protocol.md (baseline = the last pre-infusion reading; confirmed rules; discharge
criteria; the session fields modelled on the esketamine REMS patient monitoring form).
"""

from __future__ import annotations

import copy
import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest

from schemas import parse_record
from service.mappers import MappingConfig, codes, mapper_for
from service.mappers.context import context_from_procedure
from service.monitoring import load_protocol
from service.monitoring.held import read_session
from service.monitoring.summary import summarise
from service.monitoring.summary_json import as_json
from tests.monitoring_sessions import END, START, bp, hypertensive, score, separate, session

CONFIG = MappingConfig()
MRN = "MRN-SUM"


def _embedded(key: str, children: dict[str, list[dict[str, Any]]], **changes: Any) -> list[dict[str, Any]]:
    record = parse_record({**session(key, MRN, **changes), **children})
    return mapper_for(record.kind).to_fhir_json(record, CONFIG)


def _separate(
    key: str, children: dict[str, list[dict[str, Any]]], seed: int = 3, **changes: Any
) -> list[dict[str, Any]]:
    record = parse_record(session(key, MRN, **changes))
    own = mapper_for(record.kind).to_fhir_json(record, CONFIG)
    procedure = next(r for r in own if r["resourceType"] == "Procedure")
    context = context_from_procedure(key, procedure, MRN, CONFIG)
    records = [parse_record(r) for r in separate(children, key, MRN)]
    random.Random(seed).shuffle(records)
    return own + [res for r in records for res in mapper_for(r.kind).to_fhir_json(r, CONFIG, context)]


def _summary(resources: list[dict[str, Any]], key: str = "S-SUM", config: MappingConfig = CONFIG) -> dict[str, Any]:
    return as_json(summarise(read_session(key, resources, config), config.protocol))


def test_embedded_or_sent_on_their_own_in_any_order_the_summary_is_the_same() -> None:
    children = hypertensive("H")
    embedded = _summary(_embedded("S-SUM", children))
    for seed in (1, 2, 3):
        assert _summary(_separate("S-SUM", children, seed)) == embedded
    assert embedded["readings"] == 25


def test_the_hypertensive_session_in_full() -> None:
    got = _summary(_embedded("S-SUM", hypertensive("H")))
    assert got["session_status"] == "completed" and got["preliminary"] is False
    assert got["protocol"] == {"name": "Ketamine infusion monitoring", "version": "1", "weakened": []}
    assert {k: v["key"] for k, v in got["baseline"].items()} == {
        "blood_pressure": "H-bp0",
        "heart_rate": "H-hr0",
        "spo2": "H-o0",
        "moaas": "H-m0",
        "cadss": "H-c0",
    }
    stats = {s["measure"]: s for s in got["statistics"]}
    assert list(stats) == ["systolic", "diastolic", "heart_rate", "respiratory_rate", "spo2"]
    assert stats["systolic"]["peak"] == {
        "value": 212,
        "at": stats["systolic"]["peak"]["at"],
        "key": "H-bp2",
        "observation": stats["systolic"]["peak"]["observation"],
        "from_baseline": 62,
    }
    assert (
        stats["systolic"]["count"],
        stats["systolic"]["trough"]["value"],
        stats["systolic"]["trough"]["from_baseline"],
    ) == (9, 135, -15)
    assert (stats["diastolic"]["peak"]["value"], stats["diastolic"]["peak"]["from_baseline"]) == (124, 34)
    assert (stats["heart_rate"]["peak"]["value"], stats["heart_rate"]["trough"]["value"]) == (112, 78)
    assert stats["respiratory_rate"]["baseline"] is None and stats["respiratory_rate"]["peak"]["from_baseline"] is None
    # rises: +40/+25 marked, +30/+20 H (from 150/90)
    assert [(r["reading"]["key"], r["level"]) for r in got["rises"]] == [
        ("H-bp2", "marked"),
        ("H-bp3", "marked"),
        ("H-bp4", "H"),
    ]
    assert {c["rule"]: [r["key"] for r in c["readings"]] for c in got["confirmed"]} == {
        "blood_pressure_repeated": ["H-bp2", "H-bp3", "H-bp4"],
        "blood_pressure_single": ["H-bp2"],
    }
    fields = got["session_fields"]
    assert fields["note"] == "Modelled on the esketamine (Spravato) REMS patient monitoring form"
    assert [fields[f"blood_pressure_{k}"]["key"] for k in ("before", "near_40_min", "at_completion")] == [
        "H-bp0",
        "H-bp4",
        "H-bp8",
    ]
    assert fields["minutes_monitored"] == 100
    assert [(e["reading"]["key"], e["level"]) for e in fields["sedation_events"]] == [("H-m1", "A")]
    assert [(e["reading"]["key"], e["level"]) for e in fields["dissociation_events"]] == [("H-c1", "A")]
    assert fields["respiratory_events"] == []
    assert fields["discharge_criteria_met_from"] == got["discharge"]["met_from"]
    assert (got["lowest_moaas"]["key"], got["peak_cadss"]["key"]) == ("H-m1", "H-c1")
    assert [(e["key"], e["event"], e["outcome"]) for e in got["adverse_events"]] == [
        ("H-ae1", "elevated_blood_pressure", "resolved")
    ]


def test_the_discharge_criteria_all_met_at_60_minutes_after_the_end_and_said_in_the_sheets_words() -> None:
    got = _summary(_embedded("S-SUM", hypertensive("H")))
    assert got["discharge"]["met_from"] is not None
    assert got["discharge"]["met_from"].endswith(("Z", "+00:00", "+01:00", "-04:00", "+05:30"))
    assert got["discharge"]["statement"].startswith("Protocol discharge criteria all met from 2 Mar 2026 ")
    assert got["discharge"]["statement"].endswith("(clinician sign-off not recorded)")
    text = str(got).lower()
    assert "ready to leave" not in text and "may leave" not in text


def test_levels_are_those_the_readings_carry_on_the_server() -> None:
    got = _summary(_embedded("S-SUM", hypertensive("H")))
    levels = {(e["reading"], e["level"]): e["keys"] for e in got["levels"]}
    assert levels[("blood_pressure", "HH")] == ["H-bp2", "H-bp3", "H-bp4"]  # 185/108: systolic >= 180
    assert levels[("blood_pressure", "H")] == ["H-bp0", "H-bp1", "H-bp5", "H-bp6"]
    assert levels[("blood_pressure", "N")] == ["H-bp7", "H-bp8"]  # systolic N, diastolic none: the more severe
    assert levels[("heart_rate", "H")] == ["H-hr1"]
    assert levels[("moaas", "A")] == ["H-m1"]  # per reading: below 5
    assert levels[("temperature", "none")] == ["H-t0"]


def test_the_baseline_is_the_last_reading_before_the_start_by_instant_not_by_text() -> None:
    """09:25 written at UTC+05:30 sorts after 09:28 written at UTC as text; the start itself is not before it."""
    india, utc = dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.UTC
    children = {
        "vital_signs": [
            {**bp("B-a", -5, 140, 85), "measured_at": (START - dt.timedelta(minutes=5)).astimezone(india).isoformat()},
            {**bp("B-b", -2, 120, 80), "measured_at": (START - dt.timedelta(minutes=2)).astimezone(utc).isoformat()},
            {**bp("B-c", 0, 100, 60), "measured_at": START.isoformat()},
            bp("B-d", 20, 160, 95),
        ]
    }
    assert children["vital_signs"][0]["measured_at"] > children["vital_signs"][1]["measured_at"]  # as text
    got = _summary(_embedded("S-SUM", children))
    assert got["baseline"]["blood_pressure"]["key"] == "B-b"
    assert got["baseline"]["blood_pressure"]["phase"] == "before"
    peak = next(s for s in got["statistics"] if s["measure"] == "systolic")["peak"]
    assert (peak["key"], peak["from_baseline"]) == ("B-d", 40)


@pytest.mark.parametrize(
    ("pre", "during", "event"), [(5, 4, "A"), (4, 4, None), (4, 3, "A"), (None, 4, "A"), (5, 2, "AA")]
)
def test_sedation_is_judged_against_the_real_pre_infusion_moaas(
    pre: int | None, during: int, event: str | None
) -> None:
    scores = [score("M-1", 20, "moaas", during)] + ([score("M-0", -10, "moaas", pre)] if pre is not None else [])
    got = _summary(_embedded("S-SUM", {"monitoring_scores": scores}))
    assert [e["level"] for e in got["session_fields"]["sedation_events"]] == ([event] if event else [])


@pytest.mark.parametrize(
    ("pre", "during", "event"), [(0, 4, None), (0, 5, "A"), (8, 6, None), (8, 9, "A"), (None, 5, "A")]
)
def test_dissociation_is_judged_against_the_real_pre_infusion_cadss(
    pre: int | None, during: int, event: str | None
) -> None:
    scores = [score("C-1", 20, "cadss", during)] + ([score("C-0", -10, "cadss", pre)] if pre is not None else [])
    got = _summary(_embedded("S-SUM", {"monitoring_scores": scores}))
    assert [e["level"] for e in got["session_fields"]["dissociation_events"]] == ([event] if event else [])


def test_a_retracted_reading_is_left_out() -> None:
    resources = _embedded("S-SUM", hypertensive("H"))
    retracted = copy.deepcopy(resources)
    for resource in retracted:
        if resource["resourceType"] == "Observation" and resource["identifier"][0]["value"] == "H-bp2":
            resource["status"] = codes.ENTERED_IN_ERROR
    got = _summary(retracted)
    assert got["readings"] == 24
    assert [c["rule"] for c in got["confirmed"]] == ["blood_pressure_repeated"]
    assert next(s for s in got["statistics"] if s["measure"] == "systolic")["peak"]["key"] == "H-bp3"


def test_a_session_in_progress_is_preliminary_and_its_criteria_not_met() -> None:
    children = {"vital_signs": [bp("P-0", -10, 120, 80), bp("P-1", 10, 130, 85)]}
    got = _summary(_embedded("S-SUM", children, status="in_progress", ended_at=None))
    assert got["preliminary"] is True
    assert got["discharge"]["met_from"] is None
    assert "the infusion's end is not recorded" in got["discharge"]["statement"]


def test_a_weakened_rule_the_summary_used_is_named(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "service/monitoring/default-protocol.toml").read_text()
    text = text.replace(
        'when = "spo2 < 90"\nreadings = 1\n',
        'when = "spo2 < 88"\nreadings = 1\nless_sensitive_than_default = { approved_by = "Dr A", approved_on = 2026-01-05, reason = "altitude" }\n',
    )
    file = tmp_path / "protocol.toml"
    file.write_text(text)
    config = MappingConfig(protocol=load_protocol(file))
    got = as_json(summarise(read_session("S-SUM", _embedded("S-SUM", hypertensive("H")), CONFIG), config.protocol))
    assert got["protocol"]["weakened"] == [
        "confirmed.desaturation: spo2 < 88, 1 reading(s), phases before during after (default spo2 < 90, 1 reading(s), "
        "phases before during after), less sensitive than the default, approved by Dr A on 2026-01-05"
    ]
    assert "approved by Dr A" in got["conclusion"]


def test_the_conclusion_says_the_episode_the_peak_the_rise_and_the_discharge_in_plain_words() -> None:
    got = _summary(_embedded("S-SUM", hypertensive("H")))
    text = got["conclusion"]
    assert text.startswith(
        "Ketamine infusion monitoring, version 1: 25 readings. Critical episode: systolic at or above 180 mmHg or diastolic at or above 110 mmHg, on two readings 5-15 min apart"
    )
    assert (
        "Critical episode: systolic at or above 200 mmHg or diastolic at or above 120 mmHg (1 reading, first at" in text
    )
    assert (
        "Peak blood pressure 212/124 mmHg at 2 Mar 2026 09:50 UTC-04:00 (+62/+34 from the pre-infusion 150/90 mmHg)"
        in text
    )
    assert "UTC+" not in text and " UTC." not in text  # every time in the infusion's own offset, whatever the readings'
    assert "Respiratory rate 14 /min" in text
    assert "Marked rise from the pre-infusion blood pressure on 2 reading(s)" in text
    assert "Adverse events: finding of increased blood pressure (resolved)" in text
    assert "Protocol discharge criteria all met from" in text
    assert START.isoformat() not in text and END.isoformat() not in text  # times in words, not ISO


def test_no_reading_at_all_gives_an_empty_summary_that_says_so() -> None:
    got = _summary(_embedded("S-SUM", {}))
    assert got["readings"] == 0 and got["statistics"] == [] and got["confirmed"] == []
    assert "No confirmed rule fired" in got["conclusion"]
    assert got["discharge"]["met_from"] is None
