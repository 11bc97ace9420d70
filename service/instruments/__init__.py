"""Rating scales as data, one owner: a definition per instrument and the pure functions over it.

The definitions (instruments.md, issue 21): PHQ-9, GAD-7, PCL-5 (`self_report.py`), the C-SSRS
screener recent and since last contact (`cssrs.py`), QIDS-SR16, MADRS and Y-BOCS (`restricted.py`).
Answers are checked by `answers.py`, scored, banded and triaged by `scoring.py`; the clinic's safety
thresholds are applied by `thresholds.py`. No I/O, no FHIR models: the mappers, the schema, the trend
and the docs read these.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from service.instruments.answers import AnswerError, IncompleteAnswers, asked, require_complete, validate
from service.instruments.cssrs import CSSRS_SCREEN, CSSRS_SCREEN_SLC
from service.instruments.model import Definition
from service.instruments.restricted import MADRS, QIDS_SR16, YBOCS
from service.instruments.scoring import (
    Assessment,
    Change,
    Scores,
    assess,
    band,
    change,
    percent_change,
    raises_flag,
    rule_range,
    safety_positives,
    score,
    triage,
)
from service.instruments.self_report import GAD7, PCL5, PHQ9
from service.instruments.thresholds import (
    FlagOverride,
    ItemOverride,
    Override,
    ThresholdError,
    Thresholds,
    Weakened,
    apply_overrides,
    defaults,
    parse_overrides,
)

DEFINITIONS: Mapping[str, Definition] = MappingProxyType(
    {d.id: d for d in (PHQ9, GAD7, PCL5, CSSRS_SCREEN, CSSRS_SCREEN_SLC, QIDS_SR16, MADRS, YBOCS)}
)
"""Every instrument by its `instrument` value, in the order of instruments.md section 1."""


def definition(instrument: str) -> Definition:
    """The definition of this instrument (KeyError naming it if unknown)."""
    return DEFINITIONS[instrument]


__all__ = [
    "DEFINITIONS",
    "AnswerError",
    "Assessment",
    "Change",
    "Definition",
    "FlagOverride",
    "IncompleteAnswers",
    "ItemOverride",
    "Override",
    "Scores",
    "ThresholdError",
    "Thresholds",
    "Weakened",
    "apply_overrides",
    "assess",
    "asked",
    "band",
    "change",
    "defaults",
    "definition",
    "parse_overrides",
    "percent_change",
    "raises_flag",
    "require_complete",
    "rule_range",
    "safety_positives",
    "score",
    "triage",
    "validate",
]
