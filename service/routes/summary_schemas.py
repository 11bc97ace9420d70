"""The `$monitoring-summary` answer in JSON Schema (components of the OpenAPI document) and its response sets.

What service/monitoring/summary_json.py `as_json` returns, field by field; a test validates real summaries
against these schemas (tests/unit/test_monitoring_summary_route.py).
"""

from __future__ import annotations

from typing import Any

from service.media import JSON
from service.monitoring.chart import PDF, PNG
from service.monitoring.discharge import MET, NOT_CONFIRMED, NOT_MET
from service.monitoring.model import PHASES

Json = dict[str, Any]
COMPONENTS = "#/components/schemas/"
SUMMARY = "MonitoringSummary"
READING = "MonitoringReading"
STATISTIC = "MonitoringStatistic"
EVENT = "MonitoringEvent"
LEVELS = ["HH", "H", "N", "L", "LL", "AA", "A", "none"]
_TIME: Json = {"type": "string", "description": "FHIR dateTime, in the offset it was recorded in."}
_NULLABLE_TIME: Json = {"type": ["string", "null"], "description": "FHIR dateTime; null when unknown."}
_KEY: Json = {"type": ["string", "null"], "description": "The clinic's record key; null when another system wrote it."}


def _ref(name: str) -> Json:
    return {"$ref": COMPONENTS + name}


def _or_null(schema: Json) -> Json:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(properties: Json, description: str | None = None, required: list[str] | None = None) -> Json:
    """A closed object: every property required unless said (null where it may be absent), nothing else."""
    out: Json = {"type": "object", "required": list(properties) if required is None else required}
    out["additionalProperties"] = False
    if description:
        out["description"] = description
    return {**out, "properties": properties}


_READING = _object(
    {
        "key": _KEY,
        "observation": {"type": "string", "description": "`Observation/<id>` on the FHIR server."},
        "at": _TIME,
        "phase": {"enum": [*PHASES, None], "description": "Before, during or after the infusion; null: unknown."},
        "values": {
            "type": "object",
            "description": "Measure -> value: systolic and diastolic (mmHg), heart_rate, respiratory_rate (/min), "
            "spo2 (%), temperature (its unit), moaas, cadss, rass (score).",
            "additionalProperties": {"type": "number"},
        },
        "level": {"enum": LEVELS, "description": "The interpretation the reading carries on the server, the more "
                  "severe of a blood pressure's two; `none` without one."},
        "supplemental_o2": {"type": "boolean", "description": "SpO2 only, when said."},
    },
    "A reading of the session.",
    required=["key", "observation", "at", "phase", "values", "level"],
)  # fmt: skip
_POINT = _object(
    {
        "value": {"type": "number"},
        "at": _TIME,
        "key": _KEY,
        "observation": {"type": "string"},
        "from_baseline": {"type": ["number", "null"], "description": "Minus the baseline; null without one."},
    }
)
_STATISTIC = _object(
    {
        "measure": {"enum": ["systolic", "diastolic", "heart_rate", "respiratory_rate", "spo2"]},
        "count": {"type": "integer", "minimum": 1},
        "baseline": {"type": ["number", "null"], "description": "The last pre-infusion value; null without one."},
        "peak": _POINT,
        "trough": _POINT,
    },
    "Peak, trough (the earliest on a tie) and count of one measure over every reading of the session.",
)
_EVENT = _object(
    {
        "reading": _or_null(_ref(READING)),
        "level": {"enum": ["HH", "H", "L", "LL", "AA", "A", None]},
        "adverse_event": _or_null(_object({"key": {"type": "string"}, "event": {"type": "string"}, "onset_at": _TIME})),
    },
    "A reading judged abnormal (MOAA/S, CADSS against the real pre-infusion score), or an adverse event.",
)
_CRITERION = _object(
    {
        "name": {"enum": ["minutes_after_end", "blood_pressure", "spo2", "moaas", "cadss", "adverse_events"]},
        "status": {"enum": [MET, NOT_MET, NOT_CONFIRMED]},
        "detail": {"type": "string"},
        "since": _NULLABLE_TIME,
    }
)
_SUMMARY = _object(
    {
        "session_key": {"type": "string"},
        "session_status": {"type": ["string", "null"]},
        "infusion": _object({"started_at": _NULLABLE_TIME, "ended_at": _NULLABLE_TIME}),
        "preliminary": {"type": "boolean", "description": "The infusion has not ended: the summary may change."},
        "protocol": _object(
            {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "weakened": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Every rule the summary used that the clinic made less sensitive than the default.",
                },
            }
        ),
        "readings": {"type": "integer", "minimum": 0},
        "baseline": {
            "type": "object",
            "description": "The last reading of each kind before the infusion started.",
            "additionalProperties": _ref(READING),
        },
        "statistics": {"type": "array", "items": _ref(STATISTIC)},
        "rises": {
            "type": "array",
            "items": _object(
                {
                    "reading": _ref(READING),
                    "systolic_rise": {"type": "number"},
                    "diastolic_rise": {"type": "number"},
                    "level": {"enum": ["H", "marked"]},
                }
            ),
            "description": "Blood pressures during or after the infusion whose rise from the baseline meets the "
            "protocol's rise rules (summarised; a rise alone is never a critical episode).",
        },
        "levels": {
            "type": "array",
            "items": _object(
                {
                    "reading": {"type": "string"},
                    "level": {"enum": LEVELS},
                    "count": {"type": "integer", "minimum": 1},
                    "keys": {"type": "array", "items": _KEY},
                }
            ),
        },
        "confirmed": {
            "type": "array",
            "description": "The protocol's confirmed rules that fired (each raises the session's critical-episode Flag).",
            "items": _object(
                {
                    "rule": {"type": "string"},
                    "description": {"type": "string"},
                    "source": {"type": "string"},
                    "readings": {"type": "array", "minItems": 1, "items": _ref(READING)},
                }
            ),
        },
        "session_fields": _object(
            {
                "note": {"const": "Modelled on the esketamine (Spravato) REMS patient monitoring form"},
                "blood_pressure_before": _or_null(_ref(READING)),
                "blood_pressure_near_40_min": _or_null(_ref(READING)),
                "blood_pressure_at_completion": _or_null(_ref(READING)),
                "sedation_events": {"type": "array", "items": _ref(EVENT)},
                "dissociation_events": {"type": "array", "items": _ref(EVENT)},
                "respiratory_events": {"type": "array", "items": _ref(EVENT)},
                "minutes_monitored": {"type": ["number", "null"]},
                "discharge_criteria_met_from": _NULLABLE_TIME,
            },
            "Session fields modelled on the esketamine (Spravato) REMS patient monitoring form.",
        ),
        "lowest_moaas": _or_null(_ref(READING)),
        "peak_cadss": _or_null(_ref(READING)),
        "adverse_events": {
            "type": "array",
            "items": _object(
                {
                    "key": {"type": "string"},
                    "event": {"type": "string"},
                    "onset_at": _TIME,
                    "severity": {"type": "string"},
                    "serious": {"type": "boolean"},
                    "outcome": {"type": "string"},
                }
            ),
        },
        "discharge": _object(
            {
                "met_from": _NULLABLE_TIME,
                "statement": {"type": "string"},
                "criteria": {"type": "array", "items": _CRITERION},
            },
            "The protocol's discharge criteria: the time from which all were met, or those not met (missing data is "
            "not met). Documentation only: a clinician's sign-off is not recorded.",
        ),
        "conclusion": {"type": "string", "description": "The summary in plain words."},
    },
    "An infusion session's monitoring summary, computed from what the FHIR server holds. Documentation, not an alarm.",
)


def summary_components() -> dict[str, Json]:
    return {SUMMARY: _SUMMARY, READING: _READING, STATISTIC: _STATISTIC, EVENT: _EVENT}


def summary_answer(description: str) -> Json:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {"description": description, "content": {JSON: {"schema": _ref(SUMMARY)}, PNG: binary, PDF: binary}}
