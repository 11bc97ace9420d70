"""One example body per request, shown in the OpenAPI document (and sent by the contract test).

Synthetic and clearly fake: no real patient. Records are sent on their own (no `session_key`, except
the monitoring score, which needs one), so they can be written as they stand; tests/unit/test_openapi.py
checks that every one is valid.
"""

from __future__ import annotations

from typing import Any

PATIENT = {"mrn": "DEMO-0001", "family": "Example", "given": ["Test"], "birth_date": "1980-01-31", "sex": "female"}
AT = "2026-03-02T09:30:00-05:00"

RECORD_EXAMPLES: dict[str, dict[str, Any]] = {
    "infusion_session": {
        "patient": PATIENT,
        "status": "completed",
        "started_at": AT,
        "ended_at": "2026-03-02T10:10:00-05:00",
        "drug": "ketamine",
        "dose": {"total_mg": 35, "mg_per_kg": 0.5, "weight_kg": 70, "rate": {"value": 0.75, "unit": "mg/kg/h"}},
        "indications": ["trd"],
        "vital_signs": [{"key": "DEMO-V-1", "measured_at": AT, "type": "heart_rate", "value": 80}],
        # a negative C-SSRS screener taken before the infusion: S3-S5 and S6b unasked
        "assessments": [
            {
                "key": "DEMO-C-1",
                "instrument": "cssrs_screen",
                "completed_at": "2026-03-02T09:10:00-05:00",
                "items": [False, False, None, None, None, False, None],
            }
        ],
    },
    "vital_sign": {
        "patient": PATIENT,
        "measured_at": AT,
        "type": "blood_pressure",
        "systolic": 128,
        "diastolic": 82,
    },
    # Scores are taken during a session: this one is refused (409) until session DEMO-S-1 is written.
    "monitoring_score": {
        "patient": PATIENT,
        "session_key": "DEMO-S-1",
        "measured_at": AT,
        "instrument": "cadss",
        "score": 10,
    },
    "adverse_event": {
        "patient": PATIENT,
        "onset_at": AT,
        "recorded_at": "2026-03-02T09:50:00-05:00",
        "event": "nausea",
        "severity": "mild",
        "serious": False,
        "outcome": "resolved",
    },
    "phq9_assessment": {"patient": PATIENT, "completed_at": AT, "items": [2, 2, 1, 2, 1, 1, 1, 0, 0], "total": 10},
    "assessment": {
        "patient": PATIENT,
        "instrument": "gad7",
        "completed_at": AT,
        "items": [2, 1, 2, 1, 1, 0, 1],
        "difficulty": "somewhat",
        "total": 8,
    },
}
"""PUT bodies by kind (the key is the URL's)."""

CONVERT_EXAMPLE: list[dict[str, Any]] = [
    {"kind": "vital_sign", "key": "DEMO-V-2", **RECORD_EXAMPLES["vital_sign"]},
    {"kind": "phq9_assessment", "key": "DEMO-P-1", **RECORD_EXAMPLES["phq9_assessment"]},
]
TREND_EXAMPLE: dict[str, Any] = {"mrn": PATIENT["mrn"]}
OUTCOME_TREND_EXAMPLES: dict[str, dict[str, Any]] = {
    "instrument": {
        "summary": "One instrument, baseline the earliest assessment",
        "value": {"mrn": PATIENT["mrn"], "instrument": "gad7"},
    },
    "since": {
        "summary": "One instrument since a date (a new course), baseline the earliest since then",
        "value": {"mrn": PATIENT["mrn"], "instrument": "gad7", "since": "2026-01-01"},
    },
    "every": {"summary": "One summary per instrument the patient has", "value": {"mrn": PATIENT["mrn"]}},
}
"""`$outcome-trend` bodies by name (the patient of RECORD_EXAMPLES, whose GAD-7 and PHQ-9 they can find)."""
