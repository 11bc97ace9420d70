"""Reading a transaction-response Bundle: what happened to each resource we sent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# HAPI FHIR states the storage outcome of each entry with a code from this system. Other servers do not,
# and some answer 200 to a PUT that creates (Medplum): see `_put_outcome` for how those are told apart.
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


@dataclass(frozen=True)
class HeldBefore:
    """What the server held, just before a write, of the `Type/id` refs read for it: ref -> its versionId."""

    read: frozenset[str]
    versions: Mapping[str, str | None]

    @classmethod
    def of(cls, read: Iterable[str], copies: Mapping[str, dict[str, Any]]) -> HeldBefore:
        """From the refs read and the server's copies of those it held."""
        return cls(frozenset(read), {ref: version_of(copy) for ref, copy in copies.items()})


def written_resources(
    request_bundle: dict[str, Any], response_bundle: dict[str, Any], before: HeldBefore | None = None
) -> list[WrittenResource]:
    """Pair each request entry with its response entry (same order, per the FHIR spec); `before` is what the
    server held of the refs read before writing, which tells a create from an update where its answer does not."""
    written = []
    for sent, answer in zip(request_bundle.get("entry", []), response_bundle.get("entry", []), strict=True):
        response = answer.get("response", {})
        resource_type, resource_id, version = _parse_location(response.get("location", ""))
        method = sent["request"]["method"]
        if method == "DELETE" and _deleted_nothing(response):
            continue  # a stale part that was never written: nothing happened to report
        if not resource_type:
            resource_type, _, resource_id = sent["request"]["url"].partition("/")
        version = version_of(answer.get("resource")) or version or _etag_version(response.get("etag"))
        if method == "DELETE":
            outcome = WriteOutcome.deleted
        elif method == "POST":
            outcome = _create_outcome(response)
        else:
            outcome = _put_outcome(response, f"{resource_type}/{resource_id}", version, before)
        written.append(WrittenResource(resource_type, resource_id, version, outcome))
    return written


def states_creates(request_bundle: dict[str, Any], response_bundle: dict[str, Any]) -> bool:
    """Whether this answer shows a server that tells a create-by-PUT itself: a PUT answered 201, or HAPI's
    storage codes. Such a server answers 200 only to an update (FHIR http.html#update), so no read is needed
    before writing to know which a PUT was."""
    for sent, answer in zip(request_bundle.get("entry", []), response_bundle.get("entry", []), strict=False):
        response = answer.get("response", {})
        if _storage_codes(response) or (sent["request"]["method"] == "PUT" and _status(response) == "201"):
            return True
    return False


def shows_storage_codes(response_bundle: dict[str, Any]) -> bool:
    """Whether a transaction answer carries HAPI's storage-outcome codes (HAPI takes a DELETE of nothing)."""
    return any(_storage_codes(answer.get("response", {})) for answer in response_bundle.get("entry", []))


def version_of(resource: Mapping[str, Any] | None) -> str | None:
    """A resource's `meta.versionId` as the server gave it (any form: integers, UUIDs, ...), or None."""
    version = ((resource or {}).get("meta") or {}).get("versionId")
    return None if version is None or version == "" else str(version)


def _create_outcome(response: dict[str, Any]) -> WriteOutcome:
    """A POST (our conditional creates): 201 made it; any other success found it and wrote nothing."""
    return WriteOutcome.created if _status(response) == "201" else WriteOutcome.unchanged


def _put_outcome(response: dict[str, Any], ref: str, version: str | None, before: HeldBefore | None) -> WriteOutcome:
    """A PUT's outcome, from the server's own word where it gives one, else from what it held before.

    201 is a create and HAPI's storage codes say which; a 200 is an update on a server that tells creates
    (the FHIR spec's rule), but Medplum answers 200 to a PUT that creates too, with nothing else in the entry
    to tell them apart (no storage codes, its `outcome` "All OK" either way; its versionIds are UUIDs, so
    no "first version" test is possible). So a ref read before the write decides: not held then, created;
    held with the very version the answer names, unchanged (no new version was written); else updated.
    """
    codes = _storage_codes(response)
    if codes & _UNCHANGED_CODES:
        return WriteOutcome.unchanged
    if _status(response) == "201":
        return WriteOutcome.created
    if codes or before is None or ref not in before.read:
        return WriteOutcome.updated
    if ref not in before.versions:
        return WriteOutcome.created
    held = before.versions[ref]
    return WriteOutcome.unchanged if held is not None and held == version else WriteOutcome.updated


def _status(response: dict[str, Any]) -> str:
    return str(response.get("status", "")).split(" ", 1)[0]


def _deleted_nothing(response: dict[str, Any]) -> bool:
    """A DELETE the server answered with "no such resource" (404, or HAPI's codes for one never written
    or already deleted)."""
    return _status(response) == "404" or bool(_storage_codes(response) & _DELETED_NOTHING)


def _storage_codes(response: dict[str, Any]) -> set[str]:
    return {
        coding.get("code")
        for issue in (response.get("outcome") or {}).get("issue", [])
        for coding in issue.get("details", {}).get("coding", [])
        if coding.get("system") == HAPI_STORAGE_CODES
    }


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
    """`W/"v"`, `"v"` or (HAPI in a transaction-response entry) a bare `v` -> v."""
    if not etag:
        return None
    return etag.removeprefix("W/").strip('"') or None
