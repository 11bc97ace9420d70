"""Checking answers against a definition: the count, each answer's type and range, and the skip rules.

Answers come in questionnaire order, one per item: an integer score (choice and integer items), `True`
/ `False` (C-SSRS), or `None` exactly where the skip rules leave the question unasked
(instruments.md section 1). A question that was asked must be answered, so nothing is ever scored or
triaged from a partial form. Errors name the item (position and linkId) and the rule broken; they
never repeat an answer's value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.instruments.model import Choice, Definition, IntegerRange, Item, YesNo

AnswerValue = int | bool | None
Answers = Sequence[object]
"""What a caller hands in: anything, checked here (a JSON list of integers, booleans and nulls)."""


@dataclass(frozen=True)
class AnswerError:
    """One thing wrong with the answers: `index` (0-based) and `link_id` are None for the list itself."""

    index: int | None
    link_id: str | None
    message: str


class IncompleteAnswers(ValueError):
    """Raised by the scoring functions when the answers do not validate; carries the errors."""

    def __init__(self, instrument: str, errors: Sequence[AnswerError]) -> None:
        self.instrument = instrument
        self.errors = tuple(errors)
        super().__init__(f"{instrument}: {len(self.errors)} answer error(s); nothing is scored from them")


def is_valid_answer(item: Item, value: object) -> bool:
    """Whether `value` is a well-formed answer to `item` (right type, in range); None is not."""
    answer = item.answer
    if isinstance(answer, YesNo):
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    if isinstance(answer, Choice):
        return any(option.score == value for option in answer.options)
    return answer.low <= value <= answer.high


def answer_score(item: Item, value: int | bool) -> int:
    """The score of a well-formed answer (yes counts 1, no 0) as safety thresholds compare it."""
    if isinstance(item.answer, YesNo):
        return 1 if value is True else 0
    return int(value)


def expected(item: Item) -> str:
    """What an answer to this item must be, in words (no value echoed)."""
    answer = item.answer
    if isinstance(answer, YesNo):
        return "must be true or false"
    if isinstance(answer, Choice | IntegerRange):
        return f"must be an integer from {answer.low} to {answer.high}"
    raise TypeError(answer)  # pragma: no cover - the Answer union is closed


def asked(definition: Definition, answers: Answers) -> tuple[bool | None, ...]:
    """Per item: was it asked under the skip rules? None when unknown (a controlling answer is bad).

    An item without skip rules is always asked. One with rules is asked when every controlling item
    was answered as the rule says.
    """
    out: list[bool | None] = []
    for item in definition.items:
        state: bool | None = True
        for rule in item.enable_when:
            position = definition.index(rule.link_id)
            value = answers[position] if position < len(answers) else None
            if not is_valid_answer(definition.items[position], value):
                state = None
                break
            if value is not rule.answer:
                state = False
        out.append(state)
    return tuple(out)


def _skip_rule_text(item: Item) -> str:
    return " and ".join(f"{rule.link_id} is {'yes' if rule.answer else 'no'}" for rule in item.enable_when)


def validate(definition: Definition, answers: Answers) -> tuple[AnswerError, ...]:
    """Every error in the answers, in item order; empty when they can be scored."""
    if isinstance(answers, str | bytes):
        return (AnswerError(None, None, "must be a list of answers in questionnaire order"),)
    errors: list[AnswerError] = []
    count = len(definition.items)
    if len(answers) != count:
        errors.append(AnswerError(None, None, f"expected {count} answers in questionnaire order, got {len(answers)}"))
    states = asked(definition, answers)
    for position, item in enumerate(definition.items):
        if position >= len(answers):
            errors.append(AnswerError(position, item.link_id, "missing: every item has an answer or null"))
            continue
        value = answers[position]
        state = states[position]
        if value is None:
            if state is True:
                errors.append(
                    AnswerError(position, item.link_id, "asked, so it must be answered (null only when unasked)")
                )
            continue
        if state is False:
            rule = _skip_rule_text(item)
            errors.append(
                AnswerError(position, item.link_id, f"not asked (asked only when {rule}), so it must be null")
            )
        elif not is_valid_answer(item, value):
            errors.append(AnswerError(position, item.link_id, expected(item)))
    for position in range(count, len(answers)):
        errors.append(AnswerError(position, None, f"no such item: {definition.title} has {count}"))
    return tuple(errors)


def require_complete(definition: Definition, answers: Answers) -> None:
    """Raise IncompleteAnswers unless the answers validate."""
    errors = validate(definition, answers)
    if errors:
        raise IncompleteAnswers(definition.id, errors)
