"""Random valid answers: the package agrees with a plain re-implementation of instruments.md section 1-3.

The `SHEET` functions below are written from the reference sheet alone; they call nothing in
service.instruments. The package is asked only through its public functions (validate, score, band,
triage, safety_positives, assess).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.instruments import assess, band, definition, safety_positives, score, triage, validate


@dataclass(frozen=True)
class Sheet:
    """One numeric instrument as the sheet states it."""

    count: int
    high: int
    total: Callable[[list[int]], int]
    bands: tuple[tuple[int, int, str], ...]  # (low, high, code), inclusive
    safety: Callable[[list[int]], list[str]]
    subscales: Callable[[list[int]], dict[str, int]] = lambda a: {}


def _none(_: list[int]) -> list[str]:
    return []


def _qids_total(a: list[int]) -> int:
    return max(a[0:4]) + a[4] + max(a[5:9]) + a[9] + a[10] + a[11] + a[12] + a[13] + max(a[14:16])


SHEET: dict[str, Sheet] = {
    "phq9": Sheet(
        9,
        3,
        sum,
        ((0, 4, "minimal"), (5, 9, "mild"), (10, 14, "moderate"), (15, 19, "moderately-severe"), (20, 27, "severe")),
        lambda a: ["9"] if a[8] > 0 else [],
    ),
    "gad7": Sheet(7, 3, sum, ((0, 4, "minimal"), (5, 9, "mild"), (10, 14, "moderate"), (15, 21, "severe")), _none),
    "pcl5": Sheet(
        20,
        4,
        sum,
        ((0, 32, "below-cut-point"), (33, 80, "probable-ptsd")),
        _none,
        lambda a: {
            "cluster-b": sum(a[0:5]),
            "cluster-c": sum(a[5:7]),
            "cluster-d": sum(a[7:14]),
            "cluster-e": sum(a[14:20]),
        },
    ),
    "qids_sr16": Sheet(
        16,
        3,
        _qids_total,
        ((0, 5, "none"), (6, 10, "mild"), (11, 15, "moderate"), (16, 20, "severe"), (21, 27, "very-severe")),
        lambda a: ["12"] if a[11] >= 1 else [],
    ),
    "madrs": Sheet(
        10,
        6,
        sum,
        ((0, 6, "normal"), (7, 19, "mild"), (20, 34, "moderate"), (35, 60, "severe")),
        lambda a: ["10"] if a[9] >= 2 else [],
    ),
    "ybocs": Sheet(
        10,
        4,
        sum,
        ((0, 7, "subclinical"), (8, 15, "mild"), (16, 23, "moderate"), (24, 31, "severe"), (32, 40, "extreme")),
        _none,
        lambda a: {"obsessions": sum(a[0:5]), "compulsions": sum(a[5:10])},
    ),
}


def sheet_band(sheet: Sheet, total: int) -> str:
    return next(code for low, high, code in sheet.bands if low <= total <= high)


@st.composite
def numeric(draw: st.DrawFn) -> tuple[str, list[int]]:
    instrument = draw(st.sampled_from(sorted(SHEET)))
    sheet = SHEET[instrument]
    return instrument, draw(st.lists(st.integers(0, sheet.high), min_size=sheet.count, max_size=sheet.count))


@pytest.mark.parametrize("instrument", sorted(SHEET))
def test_every_numeric_instrument_is_covered_by_the_property(instrument: str) -> None:
    d = definition(instrument)
    assert len(d.items) == SHEET[instrument].count
    assert d.total is not None


@given(numeric())
def test_numeric_answers_give_the_sheets_total_band_subscales_and_safety(case: tuple[str, list[int]]) -> None:
    instrument, answers = case
    sheet, d = SHEET[instrument], definition(instrument)
    assert validate(d, answers) == ()
    scores = score(d, answers)
    assert scores.total == sheet.total(answers)
    assert dict(scores.subscales) == sheet.subscales(answers)
    found = band(d, scores.total)
    assert found is not None and found.code == sheet_band(sheet, scores.total)
    assert list(safety_positives(d, answers)) == sheet.safety(answers)
    result = assess(d, answers)
    assert (result.total, result.band, result.triage) == (scores.total, found, None)
    assert result.raises_flag == bool(sheet.safety(answers))


# --- C-SSRS: answers S1, S2, S3, S4, S5, S6[, S6b], None where unasked ---
@st.composite
def screener(draw: st.DrawFn, recent: bool) -> list[bool | None]:
    s1, s2, s6 = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    s3, s4, s5 = (draw(st.booleans()), draw(st.booleans()), draw(st.booleans())) if s2 else (None, None, None)
    answers: list[bool | None] = [s1, s2, s3, s4, s5, s6]
    if recent:
        answers.append(draw(st.booleans()) if s6 else None)
    return answers


def sheet_triage_recent(a: list[bool | None]) -> str:
    s1, s2, s3, s4, s5, s6, s6b = a
    if s4 is True or s5 is True or s6b is True:
        return "high"
    if s3 is True or (s6 is True and s6b is False):
        return "moderate"
    if s1 or s2:
        return "low"
    return "negative"


def sheet_triage_slc(a: list[bool | None]) -> str:
    s1, s2, s3, s4, s5, s6 = a
    if s4 is True or s5 is True or s6 is True:
        return "high"
    if s3 is True:
        return "moderate"
    if s1 or s2:
        return "low"
    return "negative"


def sheet_yes(a: list[bool | None], link_ids: list[str]) -> list[str]:
    return [link_id for link_id, answer in zip(link_ids, a, strict=True) if answer is True]


@given(screener(recent=True))
def test_recent_screener_gives_the_sheets_triage_and_every_yes(answers: list[bool | None]) -> None:
    d = definition("cssrs_screen")
    assert validate(d, answers) == ()
    expected = sheet_triage_recent(answers)
    assert triage(d, answers).code == expected
    positives = sheet_yes(answers, ["S1", "S2", "S3", "S4", "S5", "S6", "S6b"])
    assert list(safety_positives(d, answers)) == positives
    result = assess(d, answers)
    assert (result.total, result.band, result.positives) == (None, None, tuple(positives))
    assert result.raises_flag == (expected in ("moderate", "high"))


@given(screener(recent=False))
def test_since_last_contact_screener_gives_the_sheets_triage_and_every_yes(answers: list[bool | None]) -> None:
    d = definition("cssrs_screen_slc")
    assert validate(d, answers) == ()
    expected = sheet_triage_slc(answers)
    assert triage(d, answers).code == expected
    positives = sheet_yes(answers, ["S1", "S2", "S3", "S4", "S5", "S6"])
    assert list(safety_positives(d, answers)) == positives
    assert assess(d, answers).raises_flag == (expected in ("moderate", "high"))


# --- Invalid answers: each error names the item, and no error repeats the value ---
def _named(errors: Any, index: int) -> list[str]:
    return [e.message for e in errors if e.index == index]


@given(numeric(), st.data())
def test_an_out_of_range_answer_is_named_and_not_echoed(case: tuple[str, list[int]], data: st.DataObject) -> None:
    instrument, answers = case
    d = definition(instrument)
    index = data.draw(st.integers(0, len(answers) - 1))
    bad = data.draw(st.one_of(st.integers(-999, -1), st.integers(100, 999)))
    answers[index] = bad
    errors = validate(d, answers)
    assert [(e.index, e.link_id) for e in errors] == [(index, d.items[index].link_id)]
    assert all(str(bad) not in e.message for e in errors)


@given(numeric(), st.data())
def test_a_wrong_type_or_a_null_is_named(case: tuple[str, list[int]], data: st.DataObject) -> None:
    instrument, answers = case
    d = definition(instrument)
    index = data.draw(st.integers(0, len(answers) - 1))
    wrong: list[Any] = list(answers)
    wrong[index] = data.draw(st.sampled_from([None, True, False, 1.5, "2"]))
    errors = validate(d, wrong)
    assert [(e.index, e.link_id) for e in errors] == [(index, d.items[index].link_id)]


@given(numeric(), st.integers(-3, 3).filter(bool))
def test_a_wrong_count_is_an_error_of_the_list(case: tuple[str, list[int]], delta: int) -> None:
    instrument, answers = case
    d = definition(instrument)
    answers = answers[:delta] if delta < 0 else answers + [0] * delta
    errors = validate(d, answers)
    assert errors[0].index is None and "expected" in errors[0].message
    # missing items are named by linkId; extra answers by position
    extra = {e.index for e in errors[1:]}
    assert extra == set(range(len(answers), len(d.items))) | set(range(len(d.items), len(answers)))


@given(st.booleans(), st.data())
def test_screener_skip_rule_breaches_are_named(recent: bool, data: st.DataObject) -> None:
    d = definition("cssrs_screen" if recent else "cssrs_screen_slc")
    answers = data.draw(screener(recent=recent))
    order = [item.link_id for item in d.items]
    unasked = [i for i, a in enumerate(answers) if a is None]
    index = data.draw(st.sampled_from(unasked or list(range(len(answers)))))
    broken: list[Any] = list(answers)
    # an answer to an unasked question, or (all asked) a null for an asked one
    broken[index] = data.draw(st.booleans()) if unasked else None
    errors = validate(d, broken)
    assert [(e.index, e.link_id) for e in errors] == [(index, order[index])]


@given(numeric(), st.data())
def test_a_refused_record_keeps_its_safety_positives(case: tuple[str, list[int]], data: st.DataObject) -> None:
    instrument, answers = case
    d = definition(instrument)
    safety_items = {d.index(rule.link_id) for rule in d.safety.rules}
    others = [i for i in range(len(answers)) if i not in safety_items]
    broken: list[Any] = list(answers)
    broken[data.draw(st.sampled_from(others))] = data.draw(st.sampled_from([None, -1, 99, True]))
    assert validate(d, broken)
    assert list(safety_positives(d, broken)) == SHEET[instrument].safety(answers)
