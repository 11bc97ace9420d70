"""Scores, bands, C-SSRS triage, safety positives and change against a baseline, from a definition.

Pure functions of a `Definition` and answers (instruments.md section 3). A total, subscale, band or
triage is computed only from answers that validate (`IncompleteAnswers` otherwise). Safety positives
are the exception on purpose: they read each safety item's own answer wherever it is well-formed, so
a refused record can still say that it held a positive safety answer (issue 21, "a refused record
never hides a safety answer").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service.instruments.answers import Answers, answer_score, is_valid_answer, require_complete
from service.instruments.model import Band, Definition, Safety, ScoreRule, TriageLevel


@dataclass(frozen=True)
class Scores:
    """A total and its subscales (by subscale id, in definition order)."""

    total: int
    subscales: Mapping[str, int]


@dataclass(frozen=True)
class Change:
    """One assessment against its baseline; None where the rule is absent or the baseline is 0."""

    change: int
    percent_change: float | None
    response: bool | None
    remission: bool | None


@dataclass(frozen=True)
class Assessment:
    """Everything one complete set of answers yields (`total` and `band` None for C-SSRS)."""

    total: int | None
    subscales: Mapping[str, int]
    band: Band | None
    triage: TriageLevel | None
    positives: tuple[str, ...]
    raises_flag: bool


def rule_score(definition: Definition, rule: ScoreRule, answers: Answers) -> int:
    """A total or subscale of validated answers: the sum over groups of each group's sum or max."""
    result = 0
    for group in rule.groups:
        values = [_int(answers[definition.index(link_id)]) for link_id in group.link_ids]
        result += max(values) if group.combine == "max" else sum(values)
    return result


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("a scored answer must be an integer")
    return value


def rule_range(definition: Definition, rule: ScoreRule) -> tuple[int, int]:
    """The lowest and highest value a total or subscale can take."""
    low = high = 0
    for group in rule.groups:
        lows = [definition.item(link_id).answer.low for link_id in group.link_ids]
        highs = [definition.item(link_id).answer.high for link_id in group.link_ids]
        low += max(lows) if group.combine == "max" else sum(lows)
        high += max(highs) if group.combine == "max" else sum(highs)
    return low, high


def score(definition: Definition, answers: Answers) -> Scores:
    """Total and subscales; IncompleteAnswers unless the answers validate, ValueError if no total."""
    if definition.total is None:
        raise ValueError(f"{definition.id} has no total (its result is a triage category)")
    require_complete(definition, answers)
    subscales = {rule.id: rule_score(definition, rule, answers) for rule in definition.subscales}
    return Scores(rule_score(definition, definition.total, answers), subscales)


def band(definition: Definition, total: int) -> Band | None:
    """The band holding this total (bounds inclusive); None if the instrument has none."""
    if definition.bands is None:
        return None
    for row in definition.bands.bands:
        if row.low <= total <= row.high:
            return row
    raise ValueError(f"{definition.id} total out of range")


def triage(definition: Definition, answers: Answers) -> TriageLevel:
    """The C-SSRS triage category: the highest level one of whose clauses holds, else negative."""
    if definition.triage is None:
        raise ValueError(f"{definition.id} has no triage")
    require_complete(definition, answers)
    for level in definition.triage.levels:
        for clause in level.any_of:
            if all(answers[definition.index(cond.link_id)] is cond.answer for cond in clause):
                return level
    return definition.triage.otherwise


def safety_positives(definition: Definition, answers: Answers, safety: Safety | None = None) -> tuple[str, ...]:
    """linkIds of the safety items answered at or above their threshold (`safety`: the clinic's rules).

    Reads each safety item's own answer where it is well-formed, whatever else is wrong with the
    answers, so that a refused record never hides a positive safety answer.
    """
    rules = (safety or definition.safety).rules
    out = []
    for rule in rules:
        position = definition.index(rule.link_id)
        if position >= len(answers):
            continue
        value = answers[position]
        item = definition.items[position]
        if isinstance(value, int) and is_valid_answer(item, value) and answer_score(item, value) >= rule.at_least:
            out.append(rule.link_id)
    return tuple(out)


def raises_flag(definition: Definition, positives: tuple[str, ...], level: TriageLevel | None, safety: Safety) -> bool:
    """Whether the answers raise the suicide-risk Flag: any positive, or (C-SSRS) triage at `flag_at`+."""
    if not positives:
        return False
    if definition.triage is None or safety.flag_at is None:
        return True
    if level is None:
        return True  # no triage to compare (incomplete answers): sensitivity first
    order = definition.triage.order
    return order.index(level.code) >= order.index(safety.flag_at)


def assess(definition: Definition, answers: Answers, safety: Safety | None = None) -> Assessment:
    """Total, subscales, band, triage, positives and the Flag decision of complete answers."""
    rules = safety or definition.safety
    require_complete(definition, answers)
    level = triage(definition, answers) if definition.triage is not None else None
    scores = score(definition, answers) if definition.total is not None else None
    positives = safety_positives(definition, answers, rules)
    return Assessment(
        total=scores.total if scores else None,
        subscales=scores.subscales if scores else {},
        band=band(definition, scores.total) if scores else None,
        triage=level,
        positives=positives,
        raises_flag=raises_flag(definition, positives, level, rules),
    )


def percent_change(baseline: int, current: int) -> float | None:
    """100 * (current - baseline) / baseline to one decimal; None when the baseline is 0."""
    if baseline == 0:
        return None
    return round(100 * (current - baseline) / baseline, 1)


def change(definition: Definition, baseline: int, current: int) -> Change:
    """Change, response and remission per the definition's named rules (instruments.md section 3).

    Response is None without a rule or with a baseline of 0; remission is None without a rule and
    does not depend on the baseline (a level, not a change). Comparisons are on integers: a 50% drop
    is `(baseline - current) * 100 >= 50 * baseline`.
    """
    rule = definition.response
    response: bool | None = None
    if rule is not None and baseline > 0:
        drop = baseline - current
        if rule.percent_drop is not None:
            response = drop * 100 >= rule.percent_drop * baseline
        elif rule.points_drop is not None:
            response = drop >= rule.points_drop
    remission = None if definition.remission is None else current <= definition.remission.at_most
    return Change(current - baseline, percent_change(baseline, current), response, remission)
