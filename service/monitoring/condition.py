"""The protocol's condition language (`systolic >= 180 or diastolic >= 110`), and which of two conditions is wider.

A condition is one comparison, or comparisons all joined by `or` (any holds) or all by `and` (every one
holds); `or` and `and` are not mixed. A comparison is `<measure> <op> <limit>`: op one of `>`, `>=`, `<`,
`<=`; limit a number, or `pre_infusion` (the session's last pre-infusion value of the same measure, which
only the session summary knows). "Wider" (more sensitive) means flagging at least every value the other
flags; where that cannot be shown the answer is no, so a change the code cannot prove harmless needs
the file's acknowledgement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Op = Literal[">", ">=", "<", "<="]
Join = Literal["or", "and"]
HIGH, LOW = "high", "low"
PRE_INFUSION = "pre_infusion"
_COMPARISON = re.compile(r"^([a-z_][a-z0-9_]*)\s*(>=|<=|>|<)\s*([0-9]+(?:\.[0-9]+)?|pre_infusion)$")
_WORDS: dict[str, str] = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}


@dataclass(frozen=True)
class Comparison:
    """`measure op limit`; `limit` None stands for the pre-infusion value."""

    measure: str
    op: Op
    limit: float | None

    @property
    def direction(self) -> str:
        """`high` for > and >=, `low` for < and <=."""
        return HIGH if self.op[0] == ">" else LOW

    @property
    def inclusive(self) -> bool:
        return self.op.endswith("=")

    def holds(self, value: float) -> bool:
        """Whether `value` meets this comparison (a numeric one: the pre-infusion value is never known here)."""
        limit = self.limit
        assert limit is not None, "resolve pre_infusion before judging a reading"
        if self.op == ">":
            return value > limit
        if self.op == ">=":
            return value >= limit
        if self.op == "<":
            return value < limit
        return value <= limit

    def covers(self, other: Comparison) -> bool:
        """Whether this comparison flags every value `other` flags (same measure, same direction)."""
        if self.measure != other.measure or self.direction != other.direction:
            return False
        if (self.limit is None) != (other.limit is None):
            return False
        if self.limit is None or other.limit is None or self.limit == other.limit:
            return self.inclusive or not other.inclusive
        return self.limit < other.limit if self.direction == HIGH else self.limit > other.limit

    def text(self) -> str:
        """As the file writes it: `systolic >= 180`."""
        return f"{self.measure} {self.op} {limit_text(self.limit)}"

    def words(self, unit: str = "") -> str:
        """As a sentence says it: `at or above 180 mmHg`."""
        suffix = f" {unit}" if unit and self.limit is not None else ""
        return f"{_WORDS[self.op]} {limit_text(self.limit)}{suffix}"


def limit_text(limit: float | None) -> str:
    """A limit as written: `140`, `0.2`, `pre_infusion`."""
    if limit is None:
        return PRE_INFUSION
    return str(int(limit)) if float(limit).is_integer() else repr(limit)


@dataclass(frozen=True)
class Condition:
    """Comparisons joined by one of `or` / `and` (a single comparison has join `or`)."""

    join: Join
    parts: tuple[Comparison, ...]

    def text(self) -> str:
        return f" {self.join} ".join(part.text() for part in self.parts)

    @property
    def measures(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(part.measure for part in self.parts))


class ConditionError(ValueError):
    """A condition that cannot be read; the message says what is wrong (the loader adds where)."""


def parse_condition(text: object, measures: tuple[str, ...]) -> Condition:
    """A condition from the file; `measures` are the ones allowed where it stands."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("must be a condition such as 'systolic > 140 or diastolic > 90'")
    words = re.split(r"\s+(or|and)\s+", text.strip())
    joins = set(words[1::2])
    if len(joins) > 1:
        raise ConditionError("mixes 'or' and 'and': write one or the other")
    parts = []
    for piece in words[0::2]:
        match = _COMPARISON.match(piece.strip())
        if match is None:
            raise ConditionError(f"cannot read {piece.strip()!r}: write <measure> <op> <number>, op one of > >= < <=")
        measure, op, limit = match.groups()
        if measure not in measures:
            raise ConditionError(f"unknown measure {measure!r} here: use {', '.join(measures)}")
        parts.append(Comparison(measure, op, None if limit == PRE_INFUSION else float(limit)))  # type: ignore[arg-type]
    join: Join = "and" if joins == {"and"} else "or"
    return Condition(join, tuple(parts))


def _covers_all(wide: Comparison, narrow: Condition) -> bool:
    """Whether one comparison flags everything `narrow` flags."""
    if narrow.join == "or" or len(narrow.parts) == 1:
        return all(wide.covers(part) for part in narrow.parts)
    return any(wide.covers(part) for part in narrow.parts)


def covers(wide: Condition, narrow: Condition) -> bool:
    """Whether `wide` flags every case `narrow` flags (provably; unproven is False)."""
    if wide.join == "and" and len(wide.parts) > 1:
        return all(_covers_all(part, narrow) for part in wide.parts)
    if narrow.join == "or" or len(narrow.parts) == 1:
        return all(any(w.covers(n) for w in wide.parts) for n in narrow.parts)
    return any(_covers_all(part, narrow) for part in wide.parts)
