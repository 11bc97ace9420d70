"""The shape of an instrument definition: items, answers, skip rules, scoring, bands, rules, licence.

A rating scale is data (style.md point 13): everything the schema, the mappers, the trend and the
docs need to know about one instrument is a frozen `Definition` built in one module per family
(`self_report.py`, `cssrs.py`, `restricted.py`). The functions over a definition live in
`answers.py`, `scoring.py` and `thresholds.py`; nothing here computes.

Text fields are named `title`, `text`, `display`, `label`, `name`, `method` or `note`, so a test can
walk a definition and check every one of them against the licence's allow-list (instruments.md
section 5); every other string field is a code, an id or a citation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LOINC = "http://loinc.org"
LOCAL_SYSTEM = "instrument"
"""Path of the service's local code system for instrument codes, relative to the mapping config's
`local_code_system_base` (as service/mappers/codes.py's `local_system` builds it)."""


@dataclass(frozen=True)
class Coding:
    """A code: LOINC, or one of the service's local codes (`local=True`, system path `LOCAL_SYSTEM`).

    `display` is None where none may be sent (C-SSRS items: LOINC's display repeats the wording).
    `confirmed` is False where instruments.md marks the code CHECK: the mapper keeps it configurable.
    """

    code: str
    display: str | None
    local: bool = False
    confirmed: bool = True


@dataclass(frozen=True)
class AnswerOption:
    """One coded answer of a choice item and the score it carries (ordinalValue in the Questionnaire)."""

    coding: Coding
    score: int


@dataclass(frozen=True)
class Choice:
    """A choice item: the answer sent is the option's score; the FHIR answer is its LOINC code."""

    options: tuple[AnswerOption, ...]

    @property
    def low(self) -> int:
        return min(option.score for option in self.options)

    @property
    def high(self) -> int:
        return max(option.score for option in self.options)


@dataclass(frozen=True)
class IntegerRange:
    """An integer item with its inclusive range (Questionnaire minValue / maxValue)."""

    low: int
    high: int


@dataclass(frozen=True)
class YesNo:
    """A yes/no item (C-SSRS): the answer sent is `true` or `false`; yes counts 1 for safety rules."""

    yes: Coding
    no: Coding
    low: int = 0
    high: int = 1


Answer = Choice | IntegerRange | YesNo


@dataclass(frozen=True)
class EnableWhen:
    """A skip rule: the item is asked only when the item `link_id` was answered `answer`."""

    link_id: str
    answer: bool


@dataclass(frozen=True)
class Item:
    """One question: its linkId, code, neutral or licensed text, answer type and skip rules."""

    link_id: str
    coding: Coding
    text: str
    answer: Answer
    enable_when: tuple[EnableWhen, ...] = ()


@dataclass(frozen=True)
class Group:
    """Part of a score: the sum, or the maximum, of the answers to these items."""

    link_ids: tuple[str, ...]
    combine: Literal["sum", "max"] = "sum"


@dataclass(frozen=True)
class ScoreRule:
    """A total or subscale: the sum of its groups (each a sum or a max over items)."""

    id: str
    coding: Coding
    label: str
    groups: tuple[Group, ...]


@dataclass(frozen=True)
class Band:
    """An inclusive range of the total with its local interpretation code."""

    low: int
    high: int
    code: str
    display: str


@dataclass(frozen=True)
class Bands:
    """The total's bands: `severity` (validated bands) or `screen` (a cut-point, not a severity)."""

    kind: Literal["severity", "screen"]
    system_path: str
    bands: tuple[Band, ...]
    source: str


@dataclass(frozen=True)
class TriageLevel:
    """A triage category and when it applies: any one clause, each clause all its (item, answer) pairs."""

    code: str
    display: str
    any_of: tuple[tuple[EnableWhen, ...], ...]


@dataclass(frozen=True)
class Triage:
    """C-SSRS triage: the levels checked highest first; `otherwise` when none applies (all no)."""

    coding: Coding
    label: str
    system_path: str
    levels: tuple[TriageLevel, ...]
    otherwise: TriageLevel
    method: str
    note: str
    source: str

    @property
    def order(self) -> tuple[str, ...]:
        """Level codes from the lowest (negative) to the highest."""
        return (self.otherwise.code, *(level.code for level in reversed(self.levels)))


@dataclass(frozen=True)
class Response:
    """Response against a baseline: a drop of at least `percent_drop` % or `points_drop` points."""

    name: str
    source: str
    published: bool
    percent_drop: int | None = None
    points_drop: int | None = None


@dataclass(frozen=True)
class Remission:
    """Remission: a current total at most `at_most`."""

    name: str
    source: str
    published: bool
    at_most: int


@dataclass(frozen=True)
class SafetyRule:
    """A safety item: an answer scoring at least `at_least` is positive (yes counts 1)."""

    link_id: str
    at_least: int


@dataclass(frozen=True)
class Safety:
    """The safety rules in force; C-SSRS raises the Flag only at `flag_at` triage or above."""

    rules: tuple[SafetyRule, ...]
    source: str
    flag_at: str | None = None


@dataclass(frozen=True)
class Licence:
    """Terms and what may ship; a restricted instrument's texts all come from `allow_list`."""

    terms: str
    ships: str
    restricted: bool
    allow_list: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Definition:
    """One instrument, version and all: read by the schema, the mappers, the trend and the docs."""

    id: str
    version: str
    title: str
    panel: Coding | None
    items: tuple[Item, ...]
    total: ScoreRule | None
    subscales: tuple[ScoreRule, ...]
    bands: Bands | None
    triage: Triage | None
    response: Response | None
    remission: Remission | None
    safety: Safety
    licence: Licence
    sources: tuple[str, ...]
    difficulty: Item | None = None

    def item(self, link_id: str) -> Item:
        """The item with this linkId (KeyError if none)."""
        for item in self.items:
            if item.link_id == link_id:
                return item
        raise KeyError(link_id)

    def index(self, link_id: str) -> int:
        """The 0-based position of this linkId in the answers (KeyError if none)."""
        for position, item in enumerate(self.items):
            if item.link_id == link_id:
                return position
        raise KeyError(link_id)
