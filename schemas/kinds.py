"""The record kinds, their URL segments and a session's child lists: named once, used everywhere."""

from __future__ import annotations

from typing import Any

SESSION = "infusion_session"
VITAL_SIGN = "vital_sign"
MONITORING_SCORE = "monitoring_score"
ADVERSE_EVENT = "adverse_event"
PHQ9 = "phq9_assessment"
ASSESSMENT = "assessment"

KINDS: tuple[str, ...] = (SESSION, VITAL_SIGN, MONITORING_SCORE, ADVERSE_EVENT, PHQ9, ASSESSMENT)
"""Every record kind, sessions first."""

SEGMENTS: dict[str, str] = {  # REST path segment -> kind (`/v1/<segment>/{key}`)
    "infusion-sessions": SESSION,
    "vital-signs": VITAL_SIGN,
    "monitoring-scores": MONITORING_SCORE,
    "adverse-events": ADVERSE_EVENT,
    "phq9-assessments": PHQ9,
    "assessments": ASSESSMENT,
}

SEGMENT_OF: dict[str, str] = {kind: segment for segment, kind in SEGMENTS.items()}
"""Kind -> its REST path segment."""

CHILD_LISTS: dict[str, str] = {  # a session's list field -> the kind of its children, in mapping order
    "vital_signs": VITAL_SIGN,
    "monitoring_scores": MONITORING_SCORE,
    "phq9_assessments": PHQ9,
    "assessments": ASSESSMENT,
    "adverse_events": ADVERSE_EVENT,
}

SESSION_ENTERED_IN_ERROR = "entered_in_error"
"""The session status that retracts the session and every child embedded in it."""


def embedded_children(record: Any) -> list[Any]:
    """The child records embedded in a session record (none for other kinds), in mapping order."""
    if record.kind != SESSION:  # (asking a pydantic model for a field it lacks costs a raised AttributeError)
        return []
    return [child for field in CHILD_LISTS for child in getattr(record, field, None) or []]
