"""Instrument rules case by case: band edges, QIDS-SR16 max-of-groups, C-SSRS skip rules and triage, change."""

from __future__ import annotations

from typing import Any

import pytest

from service.instruments import (
    DEFINITIONS,
    IncompleteAnswers,
    band,
    change,
    definition,
    percent_change,
    rule_range,
    safety_positives,
    score,
    triage,
    validate,
)

# (instrument, band code, low, high) from instruments.md section 3, inclusive
BAND_EDGES = [
    ("phq9", "minimal", 0, 4),
    ("phq9", "mild", 5, 9),
    ("phq9", "moderate", 10, 14),
    ("phq9", "moderately-severe", 15, 19),
    ("phq9", "severe", 20, 27),
    ("gad7", "minimal", 0, 4),
    ("gad7", "mild", 5, 9),
    ("gad7", "moderate", 10, 14),
    ("gad7", "severe", 15, 21),
    ("pcl5", "below-cut-point", 0, 32),
    ("pcl5", "probable-ptsd", 33, 80),
    ("qids_sr16", "none", 0, 5),
    ("qids_sr16", "mild", 6, 10),
    ("qids_sr16", "moderate", 11, 15),
    ("qids_sr16", "severe", 16, 20),
    ("qids_sr16", "very-severe", 21, 27),
    ("madrs", "normal", 0, 6),
    ("madrs", "mild", 7, 19),
    ("madrs", "moderate", 20, 34),
    ("madrs", "severe", 35, 60),
    ("ybocs", "subclinical", 0, 7),
    ("ybocs", "mild", 8, 15),
    ("ybocs", "moderate", 16, 23),
    ("ybocs", "severe", 24, 31),
    ("ybocs", "extreme", 32, 40),
]


@pytest.mark.parametrize(("instrument", "code", "low", "high"), BAND_EDGES)
def test_each_band_holds_both_its_edges_and_not_the_neighbours(instrument: str, code: str, low: int, high: int) -> None:
    d = definition(instrument)
    for total in (low, high):
        found = band(d, total)
        assert found is not None and found.code == code
    for outside in (low - 1, high + 1):
        if d.total is not None and rule_range(d, d.total)[0] <= outside <= rule_range(d, d.total)[1]:
            neighbour = band(d, outside)
            assert neighbour is not None and neighbour.code != code


@pytest.mark.parametrize("instrument", sorted({row[0] for row in BAND_EDGES}))
def test_bands_cover_exactly_the_totals_range_and_no_more(instrument: str) -> None:
    d = definition(instrument)
    assert d.total is not None
    low, high = rule_range(d, d.total)
    rows = [row for row in BAND_EDGES if row[0] == instrument]
    assert (low, high) == (rows[0][2], rows[-1][3])
    for outside in (low - 1, high + 1):
        with pytest.raises(ValueError, match="out of range"):
            band(d, outside)


def test_pcl5_bands_are_a_screen_not_a_severity() -> None:
    bands = definition("pcl5").bands
    assert bands is not None and bands.kind == "screen"


def test_the_screeners_have_no_total_and_no_bands() -> None:
    for instrument in ("cssrs_screen", "cssrs_screen_slc"):
        d = definition(instrument)
        assert (d.total, d.bands, band(d, 0)) == (None, None, None)
        with pytest.raises(ValueError, match="no total"):
            score(d, [False] * len(d.items))


# --- QIDS-SR16 ---
def test_qids_sr16_is_scored_by_the_max_of_each_group_not_summed() -> None:
    d = definition("qids_sr16")
    answers = [3, 3, 2, 1, 2, 0, 1, 3, 2, 1, 1, 0, 2, 1, 1, 3]
    by_groups = max(answers[0:4]) + answers[4] + max(answers[5:9]) + sum(answers[9:14]) + max(answers[14:16])
    assert score(d, answers).total == by_groups == 3 + 2 + 3 + 5 + 3
    assert sum(answers) != by_groups
    worst = [3] * 16
    assert score(d, worst).total == 27  # summed it would be 48, beyond the scale


# --- C-SSRS skip rules ---
RECENT_NO = [False, False, None, None, None, False, None]


def _with(base: list[Any], **answers: Any) -> list[Any]:
    order = ["S1", "S2", "S3", "S4", "S5", "S6", "S6b"]
    out = list(base)
    for link_id, value in answers.items():
        out[order.index(link_id)] = value
    return out


@pytest.mark.parametrize(
    ("answers", "named"),
    [
        (_with(RECENT_NO, S3=True), "S3"),  # S2 no: S3 unasked, so null
        (_with(RECENT_NO, S5=False), "S5"),
        (_with(RECENT_NO, S6b=False), "S6b"),  # S6 no: S6b unasked
        (_with(RECENT_NO, S2=True), "S3"),  # S2 yes: S3-S5 asked, null is an error (first of three)
        (_with(RECENT_NO, S6=True), "S6b"),  # S6 yes: S6b asked
        (_with(RECENT_NO, S1=None), "S1"),  # always asked
        (_with(RECENT_NO, S1=1), "S1"),  # an integer is not yes
    ],
)
def test_recent_screener_skip_rules_name_the_item(answers: list[Any], named: str) -> None:
    d = definition("cssrs_screen")
    errors = validate(d, answers)
    assert errors and errors[0].link_id == named
    assert all("True" not in e.message and "False" not in e.message for e in errors)
    with pytest.raises(IncompleteAnswers) as refused:
        triage(d, answers)
    assert refused.value.errors == errors


def test_s2_yes_with_s3_to_s5_null_names_all_three() -> None:
    errors = validate(definition("cssrs_screen"), _with(RECENT_NO, S2=True))
    assert [e.link_id for e in errors] == ["S3", "S4", "S5"]


def test_a_string_is_not_a_list_of_answers() -> None:
    (error,) = validate(definition("phq9"), "000000000")
    assert (error.index, error.link_id) == (None, None)


def test_since_last_contact_has_six_answers_and_no_s6b() -> None:
    d = definition("cssrs_screen_slc")
    assert [item.link_id for item in d.items] == ["S1", "S2", "S3", "S4", "S5", "S6"]
    errors = validate(d, RECENT_NO)
    assert errors[0].index is None and [e.index for e in errors[1:]] == [6]


# --- C-SSRS triage, cases from instruments.md section 3 ---
@pytest.mark.parametrize(
    ("answers", "level"),
    [
        (RECENT_NO, "negative"),
        (_with(RECENT_NO, S1=True), "low"),
        (_with(RECENT_NO, S2=True, S3=False, S4=False, S5=False), "low"),
        (_with(RECENT_NO, S1=True, S2=True, S3=True, S4=False, S5=False), "moderate"),
        (_with(RECENT_NO, S6=True, S6b=False), "moderate"),  # S6 yes, S6b no
        (_with(RECENT_NO, S6=True, S6b=True), "high"),  # S6 yes, S6b yes
        (_with(RECENT_NO, S2=True, S3=False, S4=True, S5=False), "high"),
        (_with(RECENT_NO, S2=True, S3=False, S4=False, S5=True), "high"),
    ],
)
def test_recent_screener_triage(answers: list[Any], level: str) -> None:
    assert triage(definition("cssrs_screen"), answers).code == level


@pytest.mark.parametrize(
    ("answers", "level"),
    [
        ([False, False, None, None, None, False], "negative"),
        ([True, False, None, None, None, False], "low"),
        ([True, True, True, False, False, False], "moderate"),
        ([False, False, None, None, None, True], "high"),  # no S6b in this window: S6 yes is high
        ([True, True, False, True, False, False], "high"),
        ([True, True, False, False, True, False], "high"),
    ],
)
def test_since_last_contact_triage(answers: list[Any], level: str) -> None:
    assert triage(definition("cssrs_screen_slc"), answers).code == level


def test_the_same_s6_answer_triages_differently_in_the_two_windows() -> None:
    recent = triage(definition("cssrs_screen"), _with(RECENT_NO, S6=True, S6b=False))
    since = triage(definition("cssrs_screen_slc"), [False, False, None, None, None, True])
    assert (recent.code, since.code) == ("moderate", "high")


# --- Nothing scored from incomplete answers; safety answers still seen in a refused record ---
def test_no_score_from_incomplete_answers() -> None:
    d = definition("phq9")
    with pytest.raises(IncompleteAnswers) as refused:
        score(d, [1, 2, 3, 0, 1, 2, 3, 0])
    assert refused.value.instrument == "phq9"
    assert [(e.index, e.link_id) for e in refused.value.errors] == [(None, None), (8, "9")]


def test_a_refused_record_still_shows_its_positive_safety_answer() -> None:
    phq9 = definition("phq9")
    answers: list[Any] = [7, 0, 0, 0, 0, 0, 0, 0, 2]  # item 1 out of range: refused
    assert validate(phq9, answers)
    assert safety_positives(phq9, answers) == ("9",)
    screener = definition("cssrs_screen")
    unasked_yes = _with(RECENT_NO, S4=True)  # refused (S2 no), but a yes is a yes
    assert validate(screener, unasked_yes)
    assert safety_positives(screener, unasked_yes) == ("S4",)
    assert safety_positives(phq9, [0, 0]) == ()  # too short to hold item 9: nothing to read


# --- Response, remission, percent change (instruments.md section 3) ---
@pytest.mark.parametrize(
    ("instrument", "baseline", "current", "response", "remission"),
    [
        ("phq9", 20, 10, True, False),
        ("phq9", 20, 11, False, False),
        ("phq9", 9, 4, True, True),
        ("phq9", 10, 5, True, False),  # remission is below 5
        ("gad7", 20, 10, True, False),
        ("gad7", 8, 4, True, True),
        ("pcl5", 40, 30, True, None),
        ("pcl5", 40, 31, False, None),
        ("qids_sr16", 12, 6, True, False),
        ("qids_sr16", 12, 5, True, True),  # remission is 5 or below
        ("madrs", 30, 15, True, False),
        ("madrs", 30, 16, False, False),
        ("madrs", 24, 12, True, True),
        ("madrs", 24, 13, False, False),
        ("ybocs", 20, 13, True, False),  # 35% of 20 = 7
        ("ybocs", 20, 14, False, False),
        ("ybocs", 30, 12, True, True),
        ("cssrs_screen", 1, 0, None, None),
    ],
)
def test_response_and_remission(instrument: str, baseline: int, current: int, response: Any, remission: Any) -> None:
    result = change(definition(instrument), baseline, current)
    assert (result.response, result.remission, result.change) == (response, remission, current - baseline)


@pytest.mark.parametrize("instrument", sorted(DEFINITIONS))
def test_a_baseline_of_zero_gives_no_response_and_no_percent_change(instrument: str) -> None:
    d = definition(instrument)
    result = change(d, 0, 0)
    assert (result.response, result.percent_change, result.change) == (None, None, 0)
    assert result.remission is (None if d.remission is None else True)


def test_percent_change() -> None:
    assert percent_change(20, 10) == -50.0
    assert percent_change(3, 4) == 33.3
    assert percent_change(0, 5) is None


def test_rules_are_named_with_their_source_and_the_unpublished_ones_say_so() -> None:
    gad7 = definition("gad7")
    assert gad7.response is not None and gad7.remission is not None
    for rule in (gad7.response, gad7.remission):
        assert not rule.published and "no published rule" in rule.name and "service" in rule.name.lower()
    ybocs = definition("ybocs")
    assert ybocs.response is not None and ybocs.remission is not None
    assert all(r.name.startswith("Y-BOCS criterion only (CGI not recorded)") for r in (ybocs.response, ybocs.remission))
    assert "Mataix-Cols" in ybocs.response.source
    assert definition("pcl5").remission is None
    for d in DEFINITIONS.values():
        for rule in (d.response, d.remission):
            assert rule is None or (rule.name and rule.source)
