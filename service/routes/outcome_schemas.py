"""The `$outcome-trend` answer in JSON Schema (components of the OpenAPI document) and its documented example.

What service/outcomes/trend.py `summarise` returns, field by field: a tests checks the example below is what
`summarise` makes of its points, and that it validates against these schemas.
"""

from __future__ import annotations

from typing import Any

from service.instruments import DEFINITIONS

Json = dict[str, Any]
COMPONENTS = "#/components/schemas/"
TREND = "OutcomeTrend"
SUMMARIES = "OutcomeTrendSummaries"
POINT = "OutcomeTrendPoint"
TRIAGE = "CssrsTriage"
_TRIAGE_LEVELS = ["negative", "low", "moderate", "high"]
_NULLABLE_INT: Json = {"type": ["integer", "null"]}
_NULLABLE_BOOL: Json = {"type": ["boolean", "null"]}


def _ref(name: str) -> Json:
    return {"$ref": COMPONENTS + name}


def _object(properties: Json, description: str | None = None, **extra: Any) -> Json:
    """A closed object: every property required (null where it may be absent), nothing else."""
    out: Json = {"type": "object", "required": list(properties), "additionalProperties": False}
    if description:
        out["description"] = description
    return {**out, "properties": properties, **extra}


def _or_null(schema: Json) -> Json:
    return {"oneOf": [schema, {"type": "null"}]}


_TRIAGE = _object(
    {"code": {"enum": _TRIAGE_LEVELS}, "display": {"type": "string"}},
    "C-SSRS screener triage category, derived from the answers by a fixed rule (not a clinician's formulation).",
)
_CODED = _object({"code": {"type": "string"}, "display": {"type": "string"}})
_RULE = _object(
    {"name": {"type": "string"}, "source": {"type": "string"}, "published": {"type": "boolean"}},
    "A named rule and its source; `published` false for the service's own rule, labelled as such.",
)
_POINT = _object(
    {
        "key": {"type": ["string", "null"], "description": "Our record key; null when another system wrote it."},
        "date": {"type": "string", "description": "When it was taken (FHIR dateTime as the server holds it)."},
        "total": {
            **_NULLABLE_INT,
            "description": "The total; null for C-SSRS (see `triage`) or when the server holds no total.",
        },
        "triage": _or_null(_ref(TRIAGE)),
        "band": _or_null({**_CODED, "description": "The total's band (severity, or PCL-5's screen)."}),
        "change_from_baseline": {**_NULLABLE_INT, "description": "Total minus the baseline total."},
        "percent_change": {"type": ["number", "null"], "description": "Null when the baseline total is 0."},
        "response": {
            **_NULLABLE_BOOL,
            "description": "By the instrument's response rule (`rules.response`); null without one or at a baseline of 0.",
        },
        "remission": {
            **_NULLABLE_BOOL,
            "description": "By the instrument's remission rule (`rules.remission`); null without one.",
        },
        "safety_answers": {
            "type": "object",
            "description": "Each safety item's answer (linkId -> score, or true/false for C-SSRS); null when not "
            "held (unasked by the skip rules, or not on the server).",
            "additionalProperties": {"type": ["integer", "boolean", "null"]},
        },
        "safety_positive": {
            **_NULLABLE_BOOL,
            "description": "A safety answer at or above its threshold in force; null when unknown (an asked item "
            "not on the server) or the instrument has no safety item, never false for unknown.",
        },
    },
    "One assessment of the instrument.",
)
_BASELINE = _object(
    {
        "key": {"type": ["string", "null"]},
        "date": {"type": "string"},
        "total": _NULLABLE_INT,
        "triage": _or_null(_ref(TRIAGE)),
        "reason": {
            "enum": ["earliest", "earliest_since", "baseline_key"],
            "description": "The earliest assessment, the earliest since `since`, or the one `baseline_key` named.",
        },
        "since": {"type": ["string", "null"], "format": "date"},
    },
    "The assessment change, response and remission compare with, and why it was chosen.",
)
_ALERT = _object(
    {
        "key": {"type": ["string", "null"]},
        "date": {"type": "string"},
        "positive": {
            "type": "array",
            "minItems": 1,
            "items": _object(
                {
                    "item": {"type": "string", "description": "The safety item's linkId."},
                    "answer": {"type": ["integer", "boolean"]},
                    "rule": {"type": "string", "description": "The threshold in force it met."},
                }
            ),
        },
    },
    "An assessment with a positive safety answer.",
)
_RULES = _object(
    {
        "response": _or_null(_RULE),
        "remission": _or_null(_RULE),
        "safety": _object(
            {
                "source": {"type": "string"},
                "thresholds": {
                    "type": "array",
                    "items": _object(
                        {
                            "item": {"type": "string"},
                            "at_least": {"type": "integer"},
                            "default_at_least": {"type": "integer"},
                            "rule": {"type": "string"},
                        }
                    ),
                },
                "flag_at": {"type": ["string", "null"], "description": "C-SSRS: the triage that raises the Flag."},
                "default_flag_at": {"type": ["string", "null"]},
            },
            "The safety thresholds in force (the clinic's where configured) beside the defaults.",
        ),
        "weakened": {
            "type": "array",
            "description": "Every safety rule of this instrument the clinic made less sensitive (acknowledged).",
            "items": _object(
                {
                    "rule": {"type": "string"},
                    "default": {"type": ["integer", "string"]},
                    "configured": {"type": ["integer", "string"]},
                    "description": {"type": "string"},
                }
            ),
        },
    },
    "The rules in force for this answer.",
)
_TREND = _object(
    {
        "instrument": {"enum": list(DEFINITIONS)},
        "title": {"type": "string"},
        "baseline": _or_null(_BASELINE),
        "points": {"type": "array", "items": _ref(POINT)},
        "latest": _or_null(_ref(POINT)),
        "alerts": {"type": "array", "items": _ALERT, "description": "Newest first."},
        "rules": _RULES,
    },
    "One instrument's assessments in time order, retracted ones left out, each counted once.",
)
_SUMMARIES = _object(
    {"summaries": {"type": "array", "items": _ref(TREND)}},
    "One trend per instrument the patient has (asked without `instrument`).",
)


def outcome_components() -> dict[str, Json]:
    """The components the `$outcome-trend` answer names."""
    return {
        TREND: {"title": TREND, **_TREND},
        SUMMARIES: {"title": SUMMARIES, **_SUMMARIES},
        POINT: {"title": POINT, **_POINT},
        TRIAGE: {"title": TRIAGE, **_TRIAGE},
    }


def _example_point(key: str, date: str, total: int, band: tuple[str, str], change: int, pct: float | None) -> Json:
    return {
        "key": key,
        "date": date,
        "total": total,
        "triage": None,
        "band": {"code": band[0], "display": band[1]},
        "change_from_baseline": change,
        "percent_change": pct,
        "response": pct is not None and pct <= -50,
        "remission": total <= 4,
        "safety_answers": {},
        "safety_positive": None,
    }


_GAD7 = DEFINITIONS["gad7"]
_FIRST = _example_point("DEMO-G-1", "2026-01-05T09:30:00-05:00", 16, ("severe", "Severe anxiety"), 0, 0.0)
_LAST = _example_point("DEMO-G-2", "2026-02-02T09:30:00-05:00", 7, ("mild", "Mild anxiety"), -9, -56.2)
OUTCOME_TREND_EXAMPLE: Json = {
    "instrument": "gad7",
    "title": "GAD-7",
    "baseline": {
        "key": "DEMO-G-1",
        "date": _FIRST["date"],
        "total": 16,
        "triage": None,
        "reason": "earliest",
        "since": None,
    },
    "points": [_FIRST, _LAST],
    "latest": _LAST,
    "alerts": [],
    "rules": {
        "response": {"name": _GAD7.response.name, "source": _GAD7.response.source, "published": False}
        if _GAD7.response
        else None,
        "remission": {"name": _GAD7.remission.name, "source": _GAD7.remission.source, "published": False}
        if _GAD7.remission
        else None,
        "safety": {"source": _GAD7.safety.source, "thresholds": [], "flag_at": None, "default_flag_at": None},
        "weakened": [],
    },
}
"""A GAD-7 course: severe at the start, mild four weeks on (a response by the service's labelled rule)."""
