"""Answer lists and builders shared by the definitions (instruments.md section 2).

Source of the LOINC answer codes: instruments.md section 2 and clinical-coding.md section 3
(LL358-3 for PHQ-9 and GAD-7 items, LL359-1 for the difficulty item; LA33-6 / LA32-8 for C-SSRS).
"""

from __future__ import annotations

from service.instruments.model import (
    AnswerOption,
    Band,
    Choice,
    Coding,
    EnableWhen,
    Group,
    IntegerRange,
    Item,
    SafetyRule,
    ScoreRule,
    YesNo,
)

# PHQ-9 and GAD-7 share this answer list (LL358-3); the score is the option's position.
FREQUENCY = Choice(
    (
        AnswerOption(Coding("LA6568-5", "Not at all"), 0),
        AnswerOption(Coding("LA6569-3", "Several days"), 1),
        AnswerOption(Coding("LA6570-1", "More than half the days"), 2),
        AnswerOption(Coding("LA6571-9", "Nearly every day"), 3),
    )
)

# The unscored difficulty item's answers (LL359-1), in order of increasing difficulty.
DIFFICULTY = Choice(
    (
        AnswerOption(Coding("LA6572-7", "Not difficult at all"), 0),
        AnswerOption(Coding("LA6573-5", "Somewhat difficult"), 1),
        AnswerOption(Coding("LA6575-0", "Very difficult"), 2),
        AnswerOption(Coding("LA6574-3", "Extremely difficult"), 3),
    )
)

# C-SSRS answers: LOINC LA33-6 Yes, LA32-8 No. "Yes" and "No" are the answer list's own words, not
# the scale's wording, and are on the C-SSRS allow-lists.
YES_NO = YesNo(yes=Coding("LA33-6", "Yes"), no=Coding("LA32-8", "No"))


def local(code: str, display: str | None) -> Coding:
    """A code in the service's local instrument code system."""
    return Coding(code, display, local=True)


def integer_items(code_prefix: str, label_prefix: str, count: int, low: int, high: int) -> tuple[Item, ...]:
    """Items `1`..`count`, local codes `<code_prefix>-N`, labels `<label_prefix> N`, integers low..high."""
    return tuple(
        Item(
            link_id=str(n),
            coding=local(f"{code_prefix}-{n}", f"{label_prefix} {n}"),
            text=f"{label_prefix} {n}",
            answer=IntegerRange(low, high),
        )
        for n in range(1, count + 1)
    )


def items_range(first: int, last: int) -> tuple[str, ...]:
    """The linkIds of items first..last (inclusive) of a numbered scale."""
    return tuple(str(n) for n in range(first, last + 1))


def summed(score_id: str, coding: Coding, label: str, link_ids: tuple[str, ...]) -> ScoreRule:
    """A score that is the plain sum of these items."""
    return ScoreRule(score_id, coding, label, (Group(link_ids, "sum"),))


def bands(system_path: str, *rows: tuple[int, int, str, str]) -> tuple[Band, ...]:
    """Bands from (low, high, code, display) rows, checked to tile their range without gaps."""
    out = tuple(Band(low, high, code, display) for low, high, code, display in rows)
    for before, after in zip(out, out[1:], strict=False):
        if after.low != before.high + 1:
            raise ValueError(f"{system_path}: bands leave a gap or overlap at {before.high}")
    return out


def when(link_id: str, answer: bool = True) -> EnableWhen:
    """The condition `link_id` answered `answer` (a skip rule or a triage clause)."""
    return EnableWhen(link_id, answer)


def every_yes(link_ids: tuple[str, ...]) -> tuple[SafetyRule, ...]:
    """C-SSRS: every yes is a positive safety answer."""
    return tuple(SafetyRule(link_id, 1) for link_id in link_ids)
