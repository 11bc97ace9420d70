"""The confirmed rules of the default monitoring protocol, judged across a session's readings.

Expectations are written from ../shared/monitoring-protocol.md section 2 ("Confirmed rules"), not from the
protocol file: blood pressure >= 180/110 twice 5-15 min apart with none below between, or once >= 200/120;
heart rate > 120 on two consecutive readings at least 5 min apart; any SpO2 < 90, SBP < 80, HR < 40,
MOAA/S <= 2. Each limit at, just below and just above; both operators of every x/y; every arrival order;
any UTC offsets.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.monitoring import default_protocol
from service.monitoring.confirmed import fired, triggers
from service.monitoring.readings import Reading

PROTOCOL = default_protocol()
T0 = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def _reading(
    n: int, minutes: float, reading: str, phase: str | None = "during", at: dt.datetime | None = None, **values: float
) -> Reading:
    when = at if at is not None else T0 + dt.timedelta(minutes=minutes)
    if not values:
        raise AssertionError("a reading needs values")
    return Reading(f"Observation/r{n:02d}", when, reading, dict(values), phase)


def bp(n: int, minutes: float, systolic: float, diastolic: float, phase: str | None = "during") -> Reading:
    return _reading(n, minutes, "blood_pressure", phase, systolic=systolic, diastolic=diastolic)


def hr(n: int, minutes: float, value: float, phase: str | None = "during") -> Reading:
    return _reading(n, minutes, "heart_rate", phase, heart_rate=value)


def one(n: int, minutes: float, reading: str, value: float, phase: str | None = "during") -> Reading:
    return _reading(n, minutes, reading, phase, **{reading: value})


def _fired(readings: list[Reading]) -> dict[str, tuple[str, ...]]:
    return {f.rule.name: tuple(r.ref for r in f.readings) for f in fired(readings, PROTOCOL)}


# --- blood pressure, twice >= 180/110, 5-15 min apart ----------------------------------------------------------


@pytest.mark.parametrize(("systolic", "fires"), [(179, False), (179.9, False), (180, True), (180.1, True), (181, True)])
def test_a_repeated_systolic_fires_at_and_above_180_only(systolic: float, fires: bool) -> None:
    got = _fired([bp(1, 0, systolic, 80), bp(2, 10, systolic, 80)])
    assert ("blood_pressure_repeated" in got) is fires
    assert "blood_pressure_single" not in got


@pytest.mark.parametrize(
    ("diastolic", "fires"), [(109, False), (109.9, False), (110, True), (110.1, True), (111, True)]
)
def test_a_repeated_diastolic_fires_at_and_above_110_only(diastolic: float, fires: bool) -> None:
    got = _fired([bp(1, 0, 150, diastolic), bp(2, 10, 150, diastolic)])
    assert ("blood_pressure_repeated" in got) is fires


def test_either_operand_of_the_repeat_fires_it_on_either_reading() -> None:
    """x/y is SBP x OR DBP y: one reading high by its systolic, the other by its diastolic, is a repeat."""
    assert _fired([bp(1, 0, 185, 80), bp(2, 10, 150, 112)]) == {
        "blood_pressure_repeated": ("Observation/r01", "Observation/r02")
    }


@pytest.mark.parametrize(
    ("apart", "fires"),
    [(4, False), (4.9, False), (5, True), (5.1, True), (14.9, True), (15, True), (15.1, False), (16, False)],
)
def test_the_repeat_needs_its_two_readings_5_to_15_minutes_apart(apart: float, fires: bool) -> None:
    got = _fired([bp(1, 0, 190, 100), bp(2, apart, 190, 100)])
    assert ("blood_pressure_repeated" in got) is fires


@pytest.mark.parametrize(
    ("between", "fires"), [((150, 95), False), ((179, 109), False), ((180, 90), True), ((150, 110), True)]
)
def test_a_reading_below_the_limits_between_breaks_the_repeat(between: tuple[float, float], fires: bool) -> None:
    got = _fired([bp(1, 0, 190, 100), bp(2, 5, *between), bp(3, 10, 190, 100)])
    assert ("blood_pressure_repeated" in got) is fires


def test_a_reading_of_another_kind_between_does_not_break_the_repeat() -> None:
    got = _fired([bp(1, 0, 190, 100), hr(2, 5, 80), one(3, 6, "spo2", 97), bp(4, 10, 190, 100)])
    assert got == {"blood_pressure_repeated": ("Observation/r01", "Observation/r04")}


def test_a_broken_pair_still_fires_with_a_later_reading_in_reach() -> None:
    readings = [bp(1, 0, 190, 100), bp(2, 4, 150, 85), bp(3, 8, 185, 90), bp(4, 14, 182, 95)]
    assert _fired(readings) == {"blood_pressure_repeated": ("Observation/r03", "Observation/r04")}


# --- blood pressure once >= 200/120 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("systolic", "diastolic", "fires"),
    [
        (199, 119, False),
        (199.9, 80, False),
        (200, 80, True),
        (201, 80, True),
        (150, 119.9, False),
        (150, 120, True),
        (150, 121, True),
    ],
)
def test_one_reading_at_or_above_200_120_fires_alone(systolic: float, diastolic: float, fires: bool) -> None:
    got = _fired([bp(1, 0, systolic, diastolic)])
    assert got == ({"blood_pressure_single": ("Observation/r01",)} if fires else {})


# --- heart rate > 120 on two consecutive readings at least 5 min apart ------------------------------------------


@pytest.mark.parametrize(("value", "fires"), [(119.9, False), (120, False), (120.1, True), (121, True)])
def test_a_repeated_heart_rate_fires_above_120_only(value: float, fires: bool) -> None:
    assert ("heart_rate_repeated" in _fired([hr(1, 0, value), hr(2, 6, value)])) is fires


@pytest.mark.parametrize(("apart", "fires"), [(4, False), (4.9, False), (5, True), (5.1, True), (90, True)])
def test_the_heart_rate_repeat_needs_at_least_5_minutes_and_no_more(apart: float, fires: bool) -> None:
    assert ("heart_rate_repeated" in _fired([hr(1, 0, 130), hr(2, apart, 130)])) is fires


def test_a_normal_heart_rate_between_breaks_the_consecutive_pair() -> None:
    assert "heart_rate_repeated" not in _fired([hr(1, 0, 130), hr(2, 3, 100), hr(3, 6, 130)])


def test_a_sustained_heart_rate_read_every_two_minutes_fires() -> None:
    """Consecutive readings all above 120 over 6 minutes: read literally ("no reading between"), no two of them
    would be consecutive and 5 minutes apart; the rule must still fire (confirmed.py)."""
    readings = [hr(n, 2 * n, 130) for n in range(4)]
    assert _fired(readings) == {"heart_rate_repeated": tuple(f"Observation/r{n:02d}" for n in (0, 1, 2, 3))}
    assert _fired(readings[:3]) == {}  # 4 minutes only


# --- one reading: SpO2 < 90, SBP < 80, HR < 40, MOAA/S <= 2 ------------------------------------------------------

SINGLE_CASES: list[tuple[str, Reading, bool]] = [
    *[("desaturation", one(1, 0, "spo2", v), v < 90) for v in (89, 89.9, 90, 90.1, 91)],
    *[("hypotension", bp(1, 0, v, 50), v < 80) for v in (79, 79.9, 80, 80.1, 81)],
    *[("bradycardia", hr(1, 0, v), v < 40) for v in (39, 39.9, 40, 40.1, 41)],
    *[("over_sedation", one(1, 0, "moaas", v), v <= 2) for v in (1, 2, 3)],
]


@pytest.mark.parametrize(("rule", "reading", "fires"), SINGLE_CASES)
def test_each_single_reading_rule_at_just_below_and_just_above_its_limit(
    rule: str, reading: Reading, fires: bool
) -> None:
    assert _fired([reading]) == ({rule: ("Observation/r01",)} if fires else {})


def test_a_rise_alone_fires_nothing() -> None:
    """+60/+30 from a 110/70 baseline is a marked rise, but below every confirmed limit."""
    readings = [bp(1, -10, 110, 70, "before"), bp(2, 10, 170, 100), bp(3, 20, 172, 104), hr(4, 10, 118), hr(5, 20, 119)]
    assert _fired(readings) == {}


def test_a_phase_unknown_reading_is_judged_by_every_rule() -> None:
    assert _fired([one(1, 0, "moaas", 1, phase=None)]) == {"over_sedation": ("Observation/r01",)}


def test_triggers_lists_each_reading_once_in_time_order() -> None:
    readings = [bp(3, 10, 205, 125), bp(1, 0, 190, 100), one(2, 5, "spo2", 85)]
    got = fired(readings, PROTOCOL)
    assert {f.rule.name for f in got} == {"blood_pressure_repeated", "blood_pressure_single", "desaturation"}
    assert [r.ref for r in triggers(got)] == ["Observation/r01", "Observation/r02", "Observation/r03"]


# --- every arrival order, any UTC offsets ----------------------------------------------------------------------

SESSION = [
    bp(1, -10, 150, 90, "before"),
    bp(2, 5, 185, 100),
    bp(3, 9, 175, 100),
    bp(4, 12, 182, 111),
    bp(5, 20, 184, 100),
    hr(6, 5, 125),
    hr(7, 10, 126),
    hr(8, 12, 90),
    hr(9, 18, 130),
    hr(10, 20, 131),
    hr(11, 24, 135),
    one(12, 30, "spo2", 89, "after"),
    bp(13, 30, 78, 50, "after"),
    one(14, 15, "moaas", 2),
    one(15, 16, "cadss", 30),
]


def _at_offset(reading: Reading, minutes: int) -> Reading:
    zone = dt.timezone(dt.timedelta(minutes=minutes))
    return Reading(reading.ref, reading.at.astimezone(zone), reading.reading, reading.values, reading.phase)


def test_the_session_fires_what_the_sheet_says() -> None:
    assert _fired(SESSION) == {
        "blood_pressure_repeated": ("Observation/r04", "Observation/r05"),
        "heart_rate_repeated": (
            "Observation/r06",
            "Observation/r07",
            "Observation/r09",
            "Observation/r10",
            "Observation/r11",
        ),
        "desaturation": ("Observation/r12",),
        "hypotension": ("Observation/r13",),
        "over_sedation": ("Observation/r14",),
    }


@settings(max_examples=200, deadline=None)
@given(
    st.randoms(use_true_random=False),
    st.lists(st.integers(-14 * 60, 14 * 60), min_size=len(SESSION), max_size=len(SESSION)),
)
def test_no_arrival_order_and_no_utc_offsets_change_what_fired(shuffle: random.Random, offsets: list[int]) -> None:
    readings = [_at_offset(r, m) for r, m in zip(SESSION, offsets, strict=True)]
    shuffle.shuffle(readings)
    assert _fired(readings) == _fired(SESSION)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        # r02 (below the limits) lies between r01 and r03: no repeat, in any order
        ([bp(1, 0, 190, 100), bp(2, 5, 150, 80), bp(3, 10, 190, 100), hr(4, 7, 80)], ()),
        # r02 is at r03's instant, so not between: the repeat fires, in any order
        (
            [bp(1, 0, 190, 100), bp(2, 10, 150, 80), bp(3, 10, 190, 100), hr(4, 7, 80)],
            (("blood_pressure_repeated", ("Observation/r01", "Observation/r03")),),
        ),
    ],
)
def test_every_order_of_a_repeat_gives_one_answer(base: list[Reading], expected: tuple[Any, ...]) -> None:
    answers = {tuple(sorted(_fired(list(order)).items())) for order in itertools.permutations(base)}
    assert answers == {expected}


def test_readings_at_one_instant_never_break_a_pair_whatever_their_order() -> None:
    for order in itertools.permutations([hr(1, 0, 130), hr(2, 0, 80), hr(3, 6, 130)]):
        assert _fired(list(order)) == {"heart_rate_repeated": ("Observation/r01", "Observation/r03")}


def test_the_limits_come_from_the_protocol_a_more_sensitive_clinic_file_fires_earlier(tmp_path: Path) -> None:
    from service.monitoring import load_protocol

    text = (Path(__file__).parents[2] / "service/monitoring/default-protocol.toml").read_text()
    text = text.replace('when = "spo2 < 90"\nreadings = 1', 'when = "spo2 < 92"\nreadings = 1')
    text = text.replace(
        "min_apart_minutes = 5\nmax_apart_minutes = 15", "min_apart_minutes = 3\nmax_apart_minutes = 20"
    )
    file = tmp_path / "protocol.toml"
    file.write_text(text)
    clinic = load_protocol(file)
    readings = [one(1, 0, "spo2", 91), bp(2, 10, 185, 90), bp(3, 13, 186, 90)]
    assert _fired(readings) == {}
    assert {f.rule.name: [r.ref for r in f.readings] for f in fired(readings, clinic)} == {
        "blood_pressure_repeated": ["Observation/r02", "Observation/r03"],
        "desaturation": ["Observation/r01"],
    }
