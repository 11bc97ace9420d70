"""Reading a transaction-response Bundle: what happened to each resource we sent."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# HAPI FHIR states the storage outcome of each entry with a code from this system; a server
# without it still tells created (201) from the rest, and we then report a 200 as "updated".
HAPI_STORAGE_CODES = "https://hapifhir.io/fhir/CodeSystem/hapi-fhir-storage-response-code"
_DELETED_NOTHING = {"SUCCESSFUL_DELETE_NOT_FOUND", "SUCCESSFUL_DELETE_ALREADY_DELETED"}
_UNCHANGED_CODES = {
    "SUCCESSFUL_UPDATE_NO_CHANGE",
    "SUCCESSFUL_UPDATE_WITH_CONDITIONAL_MATCH_NO_CHANGE",
    "SUCCESSFUL_CREATE_WITH_CONDITIONAL_MATCH",  # a conditional create that found the Patient
}


class WriteOutcome(StrEnum):
    created = "created"
    updated = "updated"
    unchanged = "unchanged"
    deleted = "deleted"


@dataclass(frozen=True)
class WrittenResource:
    """One resource the FHIR server holds after a write: where it is and what the write did."""

    resource_type: str
    id: str
    version: str | None
    outcome: WriteOutcome

    def as_dict(self) -> dict[str, Any]:
        return {
            "resourceType": self.resource_type,
            "id": self.id,
            "version": self.version,
            "outcome": self.outcome.value,
        }


def written_resources(request_bundle: dict[str, Any], response_bundle: dict[str, Any]) -> list[WrittenResource]:
    """Pair each request entry with its response entry (same order, per the FHIR spec)."""
    written = []
    for sent, answer in zip(request_bundle.get("entry", []), response_bundle.get("entry", []), strict=True):
        response = answer.get("response", {})
        resource_type, resource_id, version = _parse_location(response.get("location", ""))
        method = sent["request"]["method"]
        if method == "DELETE" and _deleted_nothing(response):
            continue  # a stale part that was never written: nothing happened to report
        if not resource_type:
            resource_type, _, resource_id = sent["request"]["url"].partition("/")
        version = version or _etag_version(response.get("etag"))
        written.append(WrittenResource(resource_type, resource_id, version, _outcome(method, response)))
    return written


def _deleted_nothing(response: dict[str, Any]) -> bool:
    """A DELETE the server answered with "no such resource" (404, or HAPI's codes for one never written
    or already deleted)."""
    return str(response.get("status", "")).startswith("404") or bool(_storage_codes(response) & _DELETED_NOTHING)


def _storage_codes(response: dict[str, Any]) -> set[str]:
    return {
        coding.get("code")
        for issue in (response.get("outcome") or {}).get("issue", [])
        for coding in issue.get("details", {}).get("coding", [])
        if coding.get("system") == HAPI_STORAGE_CODES
    }


def _outcome(method: str, response: dict[str, Any]) -> WriteOutcome:
    if method == "DELETE":
        return WriteOutcome.deleted
    status = str(response.get("status", "")).split(" ", 1)[0]
    if status == "201":
        return WriteOutcome.created
    if _storage_codes(response) & _UNCHANGED_CODES:
        return WriteOutcome.unchanged
    return WriteOutcome.updated


def _parse_location(location: str) -> tuple[str, str, str | None]:
    """`[base/]Type/id[/_history/v]` -> (Type, id, v)."""
    parts = location.split("?", 1)[0].rstrip("/").split("/")
    if "_history" in parts:
        at = parts.index("_history")
        return parts[at - 2], parts[at - 1], parts[at + 1] if at + 1 < len(parts) else None
    if len(parts) >= 2:
        return parts[-2], parts[-1], None
    return "", "", None


def _etag_version(etag: str | None) -> str | None:
    if not etag:
        return None
    return etag.removeprefix("W/").strip('"') or None
