"""The demo sessions' monitoring: the schedule published series describe, a baseline before every infusion, and
among the normal sessions a few with a hypertensive surge, a desaturation, hypotension and over-sedation.

The critical episodes are found here with the sheet's confirmed rules (../shared/monitoring-protocol.md section 2),
written out in this file, not taken from the generator, so a demo that stops showing one fails.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from functools import cache
from typing import Any

from service.demo import generate_records
from service.demo.stream import EMBEDDED_LISTS

PATIENTS, SEED = 150, 1
GIVEN = ("completed", "stopped")


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@cache
def _sessions() -> list[tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]]:
    """Every infusion given, with its children by kind (`vital_sign:blood_pressure`, `monitoring_score:moaas`,
    `adverse_event`), each list in time order."""
    sessions: dict[str, dict[str, Any]] = {}
    children: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))

    def child(kind: str, record: dict[str, Any]) -> None:
        sub = record.get("type") or record.get("instrument")
        children[record["session_key"]][f"{kind}:{sub}" if sub else kind].append(record)

    for record in generate_records(PATIENTS, SEED):
        if record["kind"] == "infusion_session":
            sessions[record["key"]] = record
            for kind, name in EMBEDDED_LISTS.items():
                for embedded in record.get(name, []):
                    child(kind, embedded)
        elif "session_key" in record:
            child(record["kind"], record)
    return [(s, children[key]) for key, s in sessions.items() if s["status"] in GIVEN]


def _minutes(session: dict[str, Any], record: dict[str, Any]) -> float:
    when = record.get("measured_at") or record["onset_at"]
    return (_at(when) - _at(session["started_at"])).total_seconds() / 60


def _high(bp: dict[str, Any], systolic: int, diastolic: int) -> bool:
    return bp["systolic"] >= systolic or bp["diastolic"] >= diastolic


def _confirmed(session: dict[str, Any], kids: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """The sheet's confirmed rules the session's readings meet: rule -> minute of the reading that confirms it."""
    out: dict[str, float] = {}
    bps = kids["vital_sign:blood_pressure"]
    for i, first in enumerate(bps):
        if first["systolic"] < 80:
            out.setdefault("hypotension", _minutes(session, first))
        if _high(first, 200, 120):
            out.setdefault("hypertensive", _minutes(session, first))
        if not _high(first, 180, 110):
            continue
        for second in bps[i + 1 :]:  # a repeat 5-15 min later, none below the limits in between
            apart = _minutes(session, second) - _minutes(session, first)
            if apart > 15 or not _high(second, 180, 110):
                break
            if apart >= 5:
                out.setdefault("hypertensive", _minutes(session, second))
                break
    for spo2 in kids["vital_sign:spo2"]:
        if spo2["value"] < 90:
            out.setdefault("desaturation", _minutes(session, spo2))
    for moaas in kids["monitoring_score:moaas"]:
        if moaas["score"] <= 2:
            out.setdefault("over_sedation", _minutes(session, moaas))
    heart = kids["vital_sign:heart_rate"]
    for a, b in zip(heart, heart[1:], strict=False):  # two consecutive readings, at least 5 min apart
        if a["value"] > 120 and b["value"] > 120 and _minutes(session, b) - _minutes(session, a) >= 5:
            out.setdefault("tachycardia", _minutes(session, b))
    for rate in heart:
        if rate["value"] < 40:
            out.setdefault("bradycardia", _minutes(session, rate))
    return out


def test_every_infusion_has_a_baseline_just_before_its_start() -> None:
    """Blood pressure, heart rate, SpO2, respiratory rate, MOAA/S and CADSS before the start (the summary's
    baseline is the last of them), the blood pressure also on arrival."""
    for session, kids in _sessions():
        for kind in ("vital_sign:blood_pressure", "vital_sign:heart_rate", "vital_sign:spo2"):
            before = [_minutes(session, r) for r in kids[kind] if _minutes(session, r) < 0]
            assert len(before) == 2 and before[0] <= -20 and -8 <= before[1] <= -3, (session["key"], kind)
        for kind in ("vital_sign:respiratory_rate", "monitoring_score:moaas", "monitoring_score:cadss"):
            before = [_minutes(session, r) for r in kids[kind] if _minutes(session, r) < 0]
            assert len(before) == 1 and -8 <= before[0] <= -3, (session["key"], kind)


def test_readings_every_10_to_15_minutes_during_one_near_40_and_every_15_for_an_hour_after() -> None:
    for session, kids in _sessions():
        end = (_at(session["ended_at"]) - _at(session["started_at"])).total_seconds() / 60
        times = [_minutes(session, r) for r in kids["vital_sign:blood_pressure"]]
        during = [m for m in times if 0 < m <= end]
        after = [m for m in times if m > end]
        gaps = [b - a for a, b in zip([0.0, *during], during, strict=False)]
        assert during and max(gaps) <= 15 and during[-1] == end, session["key"]
        if end >= 42:
            assert any(abs(m - 40) <= 2 for m in during), session["key"]
        assert max(b - a for a, b in zip([end, *after], after, strict=False)) <= 15, session["key"]
        assert after[-1] - end >= 60, session["key"]


def test_a_few_sessions_among_the_normal_ones_have_each_critical_episode() -> None:
    found: dict[str, int] = defaultdict(int)
    sessions = _sessions()
    critical = 0
    for session, kids in sessions:
        rules = _confirmed(session, kids)
        critical += bool(rules)
        for rule in rules:
            found[rule] += 1
    for episode in ("hypertensive", "desaturation", "hypotension", "over_sedation"):
        assert found[episode] >= 3, (episode, dict(found))
    assert critical / len(sessions) <= 0.1  # most sessions are normal
    assert found["hypertensive"] / len(sessions) <= 0.03  # severe hypertension: about 1% (Yale, 0.98%)


def test_each_critical_episode_comes_with_its_adverse_event() -> None:
    """The episode is why the clinic recorded an adverse event, and it began within 15 minutes of the reading."""
    expected = {
        "hypertensive": lambda ae: ae["event"] == "elevated_blood_pressure",
        "desaturation": lambda ae: ae["event"] == "other" and "oxygen" in ae["description"].lower(),
        "hypotension": lambda ae: ae["event"] == "other" and "low blood pressure" in ae["description"],
        "over_sedation": lambda ae: ae["event"] == "excessive_sedation",
        "tachycardia": lambda ae: ae["event"] == "tachycardia",
    }
    for session, kids in _sessions():
        for rule, minute in _confirmed(session, kids).items():
            events = [ae for ae in kids["adverse_event"] if expected[rule](ae)]
            assert any(abs(_minutes(session, ae) - minute) <= 15 for ae in events), (session["key"], rule)


def test_a_desaturated_patient_is_given_oxygen_then_is_on_room_air_again_before_discharge() -> None:
    seen = 0
    for session, kids in _sessions():
        spo2 = kids["vital_sign:spo2"]
        low = next((i for i, r in enumerate(spo2) if r["value"] < 90), None)
        if low is None:
            continue
        seen += 1
        later = spo2[low + 1 :]
        assert later[0]["supplemental_o2"] is True and later[0]["value"] >= 90, session["key"]
        assert later[-1]["supplemental_o2"] is False and later[-1]["value"] >= 94, session["key"]
    assert seen >= 3


def test_a_blood_pressure_at_or_above_180_110_is_measured_again_within_5_minutes() -> None:
    """The protocol's action for HH during and after the infusion is "recheck now"."""
    rechecked = 0
    for session, kids in _sessions():
        times = [(_minutes(session, r), r) for r in kids["vital_sign:blood_pressure"]]
        for (minute, bp), (following, _) in zip(times, [*times[1:], (float("inf"), None)], strict=True):
            if minute > 0 and _high(bp, 180, 110):
                assert following - minute <= 5, (session["key"], minute)
                rechecked += 1
    assert rechecked >= 5
