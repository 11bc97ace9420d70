"""Valid example records of every kind, and a helper to derive invalid variants from them."""

from __future__ import annotations

import copy
import re
from typing import Any

PATIENT = {"mrn": "MRN-1", "family": "Okafor", "given": ["Ada"], "birth_date": "1981-07-14", "sex": "female"}
T0 = "2024-04-12T09:05:00-04:00"
BASE: dict[str, dict[str, Any]] = {
    "infusion_session": {
        "kind": "infusion_session",
        "key": "S-1",
        "patient": PATIENT,
        "status": "completed",
        "started_at": T0,
        "ended_at": "2024-04-12T09:45:00-04:00",
        "drug": "ketamine",
        "dose": {
            "total_mg": 35,
            "mg_per_kg": 0.5,
            "weight_kg": 70,
            "rate": {"value": 0.75, "unit": "mg/kg/h"},
        },
        "indications": ["trd"],
        "clinician": {"id": "C-1", "name": "Dr. Osei"},
        "note": "ok",
        "vital_signs": [
            {"key": "V-1", "measured_at": T0, "type": "heart_rate", "value": 80},
            {"key": "V-2", "measured_at": T0, "type": "spo2", "value": 98},
            {"key": "V-3", "measured_at": T0, "type": "blood_pressure", "systolic": 130, "diastolic": 80},
        ],
        "adverse_events": [
            {
                "key": "A-1",
                "onset_at": T0,
                "recorded_at": T0,
                "event": "nausea",
                "severity": "mild",
                "serious": False,
                "outcome": "resolved",
                "causality": "possible",
            },
        ],
    },
    "vital_sign": {
        "kind": "vital_sign",
        "key": "V-1",
        "patient": PATIENT,
        "session_key": "S-1",
        "measured_at": T0,
        "type": "blood_pressure",
        "systolic": 130,
        "diastolic": 80,
    },
    "monitoring_score": {
        "kind": "monitoring_score",
        "key": "M-1",
        "patient": PATIENT,
        "session_key": "S-1",
        "measured_at": T0,
        "instrument": "cadss",
        "score": 10,
    },
    "adverse_event": {
        "kind": "adverse_event",
        "key": "A-1",
        "patient": PATIENT,
        "session_key": "S-1",
        "onset_at": T0,
        "recorded_at": "2024-04-12T09:50:00-04:00",
        "event": "nausea",
        "severity": "mild",
        "serious": False,
        "outcome": "resolved",
        "causality": "possible",
        "action_taken": "none",
        "note": "n",
    },
    "phq9_assessment": {
        "kind": "phq9_assessment",
        "key": "P-1",
        "patient": PATIENT,
        "session_key": "S-1",
        "completed_at": T0,
        "items": [1, 1, 1, 1, 1, 1, 1, 1, 0],
        "difficulty": "somewhat",
        "total": 8,
    },
    "assessment": {
        "kind": "assessment",
        "key": "Q-1",
        "patient": PATIENT,
        "session_key": "S-1",
        "instrument": "gad7",
        "completed_at": T0,
        "items": [1, 2, 1, 0, 1, 2, 1],
        "difficulty": "somewhat",
        "total": 8,
    },
}
DROP = object()


def set_path(record: dict[str, Any], path: str, value: Any) -> None:
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]
    target = record
    for part in parts[:-1]:
        target = target[part]
    if value is DROP:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value


def mutated(kind: str, changes: dict[str, Any]) -> dict[str, Any]:
    record = copy.deepcopy(BASE[kind])
    for path, value in changes.items():
        set_path(record, path, value)
    return record


def as_server_holds(record: Any, resources: list[dict[str, Any]], config: Any) -> list[dict[str, Any]]:
    """`resources` as a FHIR server holds them after the transaction: an EHR visit's Encounter (created
    conditionally by the Bundle, not by the mapper) is there with a server id, and referenced by it."""
    if getattr(record, "visit_id", None) is None:
        return resources
    from service.mappers.bundle import _replace_references
    from service.mappers.ids import visit_urn
    from service.mappers.session import visit_encounter

    encounter = {**visit_encounter(record, config), "id": "visit-1"}
    held = _replace_references(resources, {visit_urn(record.visit_id, config): "Encounter/visit-1"})
    return [*held, encounter]
