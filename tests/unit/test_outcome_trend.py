"""The outcome trend's computation (service/outcomes/trend.py) from points, without a server: change,
percent, response and remission against an independent reading of instruments.md section 3 (property
test), the baseline and why, the window, safety answers judged by the thresholds in force, alerts."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import NotFound
from service.instruments import DEFINITIONS, ItemOverride, apply_overrides, defaults, definition
from service.outcomes import Point, summarise

DEFAULTS = defaults(DEFINITIONS)

# --- instruments.md section 3, written here apart from service/instruments ---
# instrument: (highest total, response rule, remission rule: the highest total in remission or None)
SHEET: dict[str, tuple[int, tuple[str, int] | None, int | None]] = {
    "phq9": (27, ("percent", 50), 4),  # response >= 50% drop; remission < 5
    "gad7": (21, ("percent", 50), 4),  # the service's rule, labelled as such
    "pcl5": (80, ("points", 10), None),  # response = drop >= 10 points; remission null
    "qids_sr16": (27, ("percent", 50), 5),  # remission <= 5 (STAR*D)
    "madrs": (60, ("percent", 50), 12),  # remission <= 12
    "ybocs": (40, ("percent", 35), 12),  # Y-BOCS criterion: >= 35% drop, remission <= 12
}
SHEET_BANDS = {  # upper bounds (inclusive) and codes
    "phq9": [(4, "minimal"), (9, "mild"), (14, "moderate"), (19, "moderately-severe"), (27, "severe")],
    "gad7": [(4, "minimal"), (9, "mild"), (14, "moderate"), (21, "severe")],
    "pcl5": [(32, "below-cut-point"), (80, "probable-ptsd")],
    "qids_sr16": [(5, "none"), (10, "mild"), (15, "moderate"), (20, "severe"), (27, "very-severe")],
    "madrs": [(6, "normal"), (19, "mild"), (34, "moderate"), (60, "severe")],
    "ybocs": [(7, "subclinical"), (15, "mild"), (23, "moderate"), (31, "severe"), (40, "extreme")],
}


def expected(instrument: str, baseline: int, total: int) -> dict[str, Any]:
    _, response_rule, remission_at_most = SHEET[instrument]
    percent = None
    if baseline:
        exact = Fraction(100 * (total - baseline), baseline)
        percent = float(
            (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(Decimal("0.1"), ROUND_HALF_EVEN)
        )
    response = None
    if response_rule is not None and baseline:
        kind, amount = response_rule
        drop = baseline - total
        response = Fraction(drop, baseline) >= Fraction(amount, 100) if kind == "percent" else drop >= amount
    return {
        "change_from_baseline": total - baseline,
        "percent_change": percent,
        "response": response,
        "remission": None if remission_at_most is None else total <= remission_at_most,
        "band": next(code for upper, code in SHEET_BANDS[instrument] if total <= upper),
    }


def day(n: int, time: str = "09:00:00Z") -> str:
    return (dt.date(2024, 1, 1) + dt.timedelta(days=n)).isoformat() + "T" + time


def point(instrument: str, key: str | None, date: str, total: int | None, **extra: Any) -> Point:
    return Point(instrument, key, date, total, source=f"obs-{key}", **extra)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), instrument=st.sampled_from(sorted(SHEET)))
def test_random_totals_agree_with_the_sheets_rules(data: st.DataObject, instrument: str) -> None:
    highest, response_rule, remission_at_most = SHEET[instrument]
    baseline = data.draw(st.integers(0, highest), label="baseline")
    # The sheet's edges, drawn often: band limits, the remission limit, and totals either side of a response.
    edges = {0, 1, highest, *(u for upper, _ in SHEET_BANDS[instrument] for u in (upper, upper + 1))}
    if remission_at_most is not None:
        edges |= {remission_at_most, remission_at_most + 1}
    if response_rule is not None:
        kind, amount = response_rule
        at = baseline - amount if kind == "points" else baseline * (100 - amount) // 100
        edges |= {at - 1, at, at + 1}
    total = st.one_of(st.integers(0, highest), st.sampled_from(sorted(e for e in edges if 0 <= e <= highest)))
    totals = [baseline, *data.draw(st.lists(total, max_size=7), label="totals")]
    points = [point(instrument, f"k{n}", day(n), total) for n, total in enumerate(totals)]
    shuffled = data.draw(st.permutations(points), label="order sent")

    summary = summarise(definition(instrument), list(shuffled), DEFAULTS)

    assert [p["key"] for p in summary["points"]] == [p.key for p in points]  # time order
    assert summary["baseline"]["key"] == "k0" and summary["baseline"]["reason"] == "earliest"
    for row, total in zip(summary["points"], totals, strict=True):
        want = expected(instrument, totals[0], total)
        got = {name: row[name] for name in ("change_from_baseline", "percent_change", "response", "remission")}
        assert got == {k: v for k, v in want.items() if k != "band"}, (totals[0], total)
        assert row["band"]["code"] == want["band"]
    assert summary["latest"] == summary["points"][-1]


@settings(max_examples=100, deadline=None)
@given(
    days=st.lists(st.integers(0, 60), min_size=1, max_size=8, unique=True),
    since_day=st.integers(0, 70),
    data=st.data(),
)
def test_the_baseline_is_the_earliest_since_the_date(days: list[int], since_day: int, data: st.DataObject) -> None:
    totals = data.draw(st.lists(st.integers(0, 21), min_size=len(days), max_size=len(days)))
    points = [point("gad7", f"k{d}", day(d), t) for d, t in zip(days, totals, strict=True)]
    since = dt.date(2024, 1, 1) + dt.timedelta(days=since_day)
    summary = summarise(definition("gad7"), points, DEFAULTS, since=since)
    inside = sorted(d for d in days if d >= since_day)
    assert [p["key"] for p in summary["points"]] == [f"k{d}" for d in inside]
    if not inside:
        assert summary["baseline"] is None and summary["latest"] is None
        return
    first = dict(zip(days, totals, strict=True))[inside[0]]
    assert summary["baseline"] == {
        "key": f"k{inside[0]}",
        "date": day(inside[0]),
        "total": first,
        "triage": None,
        "reason": "earliest_since",
        "since": since.isoformat(),
    }
    assert summary["points"][0]["change_from_baseline"] == 0


def test_a_named_baseline_opens_the_window_and_is_said() -> None:
    points = [point("madrs", "old", day(0), 40), point("madrs", "new", day(30), 30), point("madrs", "end", day(60), 12)]
    summary = summarise(definition("madrs"), points, DEFAULTS, baseline_key="new")
    assert summary["baseline"]["key"] == "new" and summary["baseline"]["reason"] == "baseline_key"
    assert [p["key"] for p in summary["points"]] == ["new", "end"]
    assert summary["latest"]["percent_change"] == -60.0 and summary["latest"]["response"] is True
    assert summary["latest"]["remission"] is True  # MADRS <= 12


def test_a_baseline_key_the_patient_does_not_have_is_not_found() -> None:
    with pytest.raises(NotFound, match="baseline_key names no madrs assessment"):
        summarise(definition("madrs"), [point("madrs", "a", day(0), 20)], DEFAULTS, baseline_key="zzz")


def test_a_baseline_of_zero_gives_no_percent_and_no_response_but_remission_as_a_level() -> None:
    points = [point("qids_sr16", "a", day(0), 0), point("qids_sr16", "b", day(1), 9)]
    latest = summarise(definition("qids_sr16"), points, DEFAULTS)["latest"]
    assert (latest["change_from_baseline"], latest["percent_change"], latest["response"]) == (9, None, None)
    assert latest["remission"] is False


def test_an_instrument_without_a_rule_says_null_and_names_the_rules_in_force() -> None:
    points = [point("pcl5", "a", day(0), 50), point("pcl5", "b", day(1), 39)]
    summary = summarise(definition("pcl5"), points, DEFAULTS)
    assert summary["latest"]["response"] is True and summary["latest"]["remission"] is None
    assert summary["rules"]["remission"] is None
    assert summary["rules"]["response"]["name"] == "PCL-5 response: total at least 10 points below baseline"
    gad7 = summarise(definition("gad7"), [], DEFAULTS)["rules"]
    assert gad7["response"]["published"] is False and "no published" in gad7["response"]["source"]


def test_points_are_ordered_by_instant_across_utc_offsets() -> None:
    points = [
        point("gad7", "late", "2026-10-02T01:00:00+00:00", 10),
        point("gad7", "early", "2026-10-01T23:30:00-05:00", 20),  # 2026-10-02T04:30Z: the later instant
    ]
    summary = summarise(definition("gad7"), points, DEFAULTS)
    assert [p["key"] for p in summary["points"]] == ["late", "early"]
    assert summary["baseline"]["total"] == 10


def test_a_point_without_a_total_keeps_its_safety_answer_and_is_no_baseline() -> None:
    points = [
        point("phq9", None, day(0), None, answers={"9": 2}),  # another system: item 9 alone
        point("phq9", "a", day(1), 12, answers={"9": 0}),
    ]
    summary = summarise(definition("phq9"), points, DEFAULTS)
    first = summary["points"][0]
    assert first["total"] is None and first["change_from_baseline"] is None and first["safety_positive"] is True
    assert summary["baseline"]["key"] == "a"
    assert summary["alerts"] == [
        {"key": None, "date": day(0), "positive": [{"item": "9", "answer": 2, "rule": "PHQ-9 item 9 >= 1"}]}
    ]


def test_safety_is_unknown_rather_than_negative_when_the_item_is_not_held() -> None:
    rows = summarise(
        definition("qids_sr16"),
        [point("qids_sr16", None, day(0), 14), point("qids_sr16", "b", day(1), 12, answers={"12": 0})],
        DEFAULTS,
    )["points"]
    assert [(r["safety_answers"], r["safety_positive"]) for r in rows] == [({"12": None}, None), ({"12": 0}, False)]
    gad7 = summarise(definition("gad7"), [point("gad7", "a", day(0), 3)], DEFAULTS)["points"][0]
    assert (gad7["safety_answers"], gad7["safety_positive"]) == ({}, None)  # no safety item: no claim either way


NO = False


@pytest.mark.parametrize(
    ("answers", "positive"),
    [
        ({"S1": NO, "S2": NO, "S6": NO}, False),  # S3-S5 and S6b unasked: every asked one held
        ({"S1": NO, "S2": True, "S3": NO, "S4": NO, "S5": NO, "S6": True, "S6b": NO}, True),
        ({"S1": NO, "S2": NO}, None),  # S6 is always asked, and not held
        ({"S1": NO, "S6": NO}, None),  # S2 not held: whether S3-S5 were asked is unknown
        ({"S1": True}, True),  # a yes is a yes whatever else is missing
    ],
)
def test_cssrs_safety_follows_the_skip_rules(answers: dict[str, bool], positive: bool | None) -> None:
    row = summarise(
        definition("cssrs_screen"), [point("cssrs_screen", "c", day(0), None, triage="low", answers=answers)], DEFAULTS
    )["points"][0]
    assert row["safety_positive"] is positive
    assert row["triage"] == {"code": "low", "display": "Low"} and row["total"] is None


def test_alerts_are_every_positive_point_newest_first_naming_the_rule() -> None:
    points = [
        point("madrs", "a", day(0), 30, answers={"10": 2}),
        point("madrs", "b", day(10), 20, answers={"10": 1}),
        point("madrs", "c", day(20), 10, answers={"10": 4}),
    ]
    alerts = summarise(definition("madrs"), points, DEFAULTS)["alerts"]
    assert [(a["key"], a["positive"][0]["answer"], a["positive"][0]["rule"]) for a in alerts] == [
        ("c", 4, "MADRS item 10 >= 2"),
        ("a", 2, "MADRS item 10 >= 2"),
    ]


def test_the_thresholds_in_force_judge_the_answers_and_a_weakened_one_is_named() -> None:
    weakened = apply_overrides(DEFINITIONS, [ItemOverride("qids_sr16", "12", 2, acknowledge_less_sensitive=True)])
    points = [point("qids_sr16", "a", day(0), 14, answers={"12": 1})]
    summary = summarise(definition("qids_sr16"), points, weakened)
    assert summary["points"][0]["safety_positive"] is False and summary["alerts"] == []
    (named,) = summary["rules"]["weakened"]
    assert (named["rule"], named["default"], named["configured"]) == ("12", 1, 2)
    assert "QIDS-SR16 item 12 >= 2 (default QIDS-SR16 item 12 >= 1), less sensitive" in named["description"]
    assert summary["rules"]["safety"]["thresholds"] == [
        {"item": "12", "at_least": 2, "default_at_least": 1, "rule": "QIDS-SR16 item 12 >= 2"}
    ]
    assert summarise(definition("qids_sr16"), points, DEFAULTS)["rules"]["weakened"] == []
    assert summarise(definition("madrs"), [], weakened)["rules"]["weakened"] == []  # only the instrument's own
