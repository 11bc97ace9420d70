"""Scrubbing a FHIR server's diagnostics of the PHI in the records we sent, before anyone sees them."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from schemas.common import phi_strings
from service.errors import InfusionFhirError
from service.mappers.config import MappingConfig
from service.mappers.ids import match_keys, search_escape
from service.mappers.narrative import day, escape

REDACTED = "[redacted]"


def phi_values(records: Iterable[Any], config: MappingConfig) -> list[str]:
    """The PHI strings of records (the fields `schemas` marks as PHI) and the forms they take in a
    server's diagnostics (search-escaped, URL-encoded; as a narrative writes them: XHTML-escaped, a
    birth date as `6 Jun 1966`; the match key of an MRN or visit id: `ids.match_identifier`), longest first."""
    values: set[str] = set()
    for text in phi_strings(list(records)):
        values.update({text, search_escape(text), quote(text, safe=""), quote(search_escape(text), safe="")})
        values.update(match_keys(text, config))
        values.add(escape(text))
        values.update(_narrative_date(text))
    return sorted((v for v in values if len(v) >= 2), key=len, reverse=True)


def _narrative_date(text: str) -> set[str]:
    """A date as the Patient's narrative writes it (service.mappers.narrative.day), if `text` is one."""
    try:
        return {day(dt.date.fromisoformat(text))} if len(text) == 10 else set()
    except ValueError:
        return set()


def redact_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def redact_error(error: InfusionFhirError, records: Iterable[Any], config: MappingConfig) -> InfusionFhirError:
    """The same error with every PHI value of `records` blanked out of its OperationOutcome."""
    if not error.operation_outcome:
        return error
    secrets = phi_values(records, config)
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
