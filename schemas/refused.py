"""What a refused record still tells: the positive safety answers in its input, which nothing wrote.

A record refused at parse time (422) or at sync (409) writes nothing, so a positive safety answer it
holds would reach no one unless the refusal says so (issue 21, "a refused record never hides a safety
answer"; docs/clinical-safety.md H-39). The rules are the instrument definitions' safety rules
(`service.instruments`, `Definition.safety`): nothing here spells a threshold.

What can be detected, read from the input as sent (whatever else is wrong with it):

- The forms: a `phq9_assessment`, an `assessment` whose `instrument` names a definition, and the
  same embedded in a session (each list of `schemas.kinds.CHILD_LISTS` holding one of those kinds).
  A record whose kind is missing or unknown, an `assessment` without a known `instrument`, or
  `items` that are not a list cannot say.
- The answer at the safety item's position in questionnaire order (PHQ-9 item 9 is `items[8]`),
  whatever the list's length: a list too long still has an answer there (the message says the count
  is wrong, so the position is the only evidence of which item it is). A list too short to reach the
  position cannot say.
- Numeric items: a number, or a string of one, at or above the rule's threshold; above the item's
  range counts too (a form scored from 1 would send PHQ-9 item 9 = 4). `true`/`false` and other
  text are not read as numbers.
- Yes/no items (C-SSRS, every yes positive): `true`, `1`, or the text `yes` / `true` (any case).
  An answer to a question the skip rules leave unasked still counts: the patient said yes.

Only which item is named (its neutral label and path), never an answer's value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas import kinds
from service.instruments import DEFINITIONS, Definition
from service.instruments.model import Item, Safety, YesNo

REFUSED_NOTE = "it was not written; correct and re-send it, or record the risk another way"
_NUMBER = re.compile(r"^\s*[0-9]+(\.[0-9]+)?\s*$")
_YES = frozenset({"yes", "true"})


@dataclass(frozen=True)
class SafetyAnswer:
    """A positive safety answer found in a refused record: where it is and which item (no value)."""

    path: str
    label: str
    wrong_count: bool = False

    @property
    def message(self) -> str:
        position = " (read at its position: the list has the wrong number of answers)" if self.wrong_count else ""
        return f"this refused record holds a positive safety answer ({self.label}){position}: {REFUSED_NOTE}"


def positive_safety_answers(
    kind: object, record: object, rules: Mapping[str, Safety] | None = None
) -> tuple[SafetyAnswer, ...]:
    """The positive safety answers in a record's JSON (a dict as sent), its embedded forms included.

    `rules`: the safety rules per instrument in force (default: each definition's own).
    """
    if not isinstance(record, dict):
        return ()
    if kind == kinds.SESSION:
        found: list[SafetyAnswer] = []
        for field, child_kind in kinds.CHILD_LISTS.items():
            children = record.get(field)
            if not isinstance(children, list):
                continue
            for index, child in enumerate(children):
                found += _in_form(child_kind, child, f"{field}[{index}].", rules)
        return tuple(found)
    return _in_form(kind, record, "", rules)


def _instrument(kind: object, form: dict[str, Any]) -> Definition | None:
    if kind == kinds.PHQ9:
        return DEFINITIONS["phq9"]
    instrument = form.get("instrument")
    if kind == kinds.ASSESSMENT and isinstance(instrument, str):
        return DEFINITIONS.get(instrument)
    return None


def _in_form(kind: object, form: object, prefix: str, rules: Mapping[str, Safety] | None) -> tuple[SafetyAnswer, ...]:
    if not isinstance(form, dict):
        return ()
    definition = _instrument(kind, form)
    answers = form.get("items")
    if definition is None or not isinstance(answers, list):
        return ()
    safety = (rules or {}).get(definition.id, definition.safety)
    wrong_count = len(answers) != len(definition.items)
    out = []
    for rule in safety.rules:
        position = definition.index(rule.link_id)
        if position >= len(answers):
            continue  # too short to hold it: cannot say
        item = definition.items[position]
        score = _score(item, answers[position])
        if score is not None and score >= rule.at_least:
            out.append(SafetyAnswer(f"{prefix}items[{position}]", label(definition, item), wrong_count))
    return tuple(out)


def label(definition: Definition, item: Item) -> str:
    """An item's neutral name: a C-SSRS item's allow-listed label, else "<title> item <linkId>"."""
    if isinstance(item.answer, YesNo):
        return item.text
    return f"{definition.title} item {item.link_id}"


def _score(item: Item, value: object) -> float | None:
    """The answer as its safety rule compares it (yes counts 1), or None when it cannot be read."""
    if isinstance(item.answer, YesNo):
        if isinstance(value, bool):
            return 1 if value else 0
        if isinstance(value, int | float) and value in (0, 1):
            return float(value)
        if isinstance(value, str):
            return 1 if value.strip().lower() in _YES else None
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER.match(value):
        return float(value)
    return None
