"""Scrubbing a FHIR server's diagnostics of the PHI in the records we sent, before anyone sees them."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from service.mappers.ids import search_escape

from service.errors import InfusionFhirError

REDACTED = "[redacted]"


def phi_values(records: Iterable[Any]) -> list[str]:
    """The PHI strings of records: MRNs, visit ids, names, birth dates, free-text notes (longest first)."""
    values: set[str] = set()
    for record in records:
        patient = getattr(record, "patient", None)
        if patient is not None:
            mrn = patient.mrn
            values.update({mrn, search_escape(mrn), quote(mrn, safe=""), quote(search_escape(mrn), safe="")})
            values.update(v for v in (patient.family, str(patient.birth_date) if patient.birth_date else None) if v)
            values.update(patient.given or [])
        visit_id = getattr(record, "visit_id", None)
        if visit_id:
            values.update({visit_id, search_escape(visit_id), quote(visit_id, safe=""), quote(search_escape(visit_id), safe="")})
        for attr in ("note", "description", "stop_reason"):
            value = getattr(record, attr, None)
            if isinstance(value, str) and value:
                values.add(value)
        clinician = getattr(record, "clinician", None)
        if clinician is not None and getattr(clinician, "name", None):
            values.add(clinician.name)
        for child_list in ("vital_signs", "monitoring_scores", "adverse_events", "phq9_assessments"):
            values.update(phi_values(getattr(record, child_list, None) or []))
    return sorted((v for v in values if len(v) >= 2), key=len, reverse=True)


def redact_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def redact_error(error: InfusionFhirError, records: Iterable[Any]) -> InfusionFhirError:
    """The same error with every PHI value of `records` blanked out of its OperationOutcome."""
    if not error.operation_outcome:
        return error
    secrets = phi_values(records)
    outcome: dict[str, Any] = copy.deepcopy(error.operation_outcome)
    for issue in outcome.get("issue", []):
        if "diagnostics" in issue:
            issue["diagnostics"] = redact_text(str(issue["diagnostics"]), secrets)
        details = issue.get("details")
        if isinstance(details, dict) and "text" in details:
            details["text"] = redact_text(str(details["text"]), secrets)
        if "expression" in issue:
            issue["expression"] = [redact_text(str(e), secrets) for e in issue["expression"]]
    return type(error)(error.message, status_code=error.status_code, operation_outcome=outcome)
