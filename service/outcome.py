"""Building FHIR OperationOutcome bodies for the API's error answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def operation_outcome(*issues: tuple[str, str, str | Sequence[str] | None], severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome from (code, diagnostics, expression(s)-or-None) triples."""
    out = []
    for code, diagnostics, expression in issues:
        issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
        if expression:
            issue["expression"] = [expression] if isinstance(expression, str) else list(expression)
        out.append(issue)
    return {"resourceType": "OperationOutcome", "issue": out}


def single_issue(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome with one issue."""
    return operation_outcome((code, diagnostics, None), severity=severity)
