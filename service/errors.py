"""Errors by what the caller must do next; each edge (HTTP, CLI) translates them once.

    InfusionFhirError
    ├── FhirUnavailable     the FHIR server cannot be reached or kept failing: try again later
    ├── FhirAuthRefused     the FHIR server refused *our* credentials (401/403): fix the service's
    │                       credentials; no record is at fault (API 502, batch exit 2)
    ├── FhirMisconfigured   the base URL is not a FHIR R4 server (404, not FHIR, wrong version):
    │                       fix the configuration (API /readyz 503, batch exit 2 before any input)
    │   └── FhirLacksCapability  the server lacks an operation or interaction a command needs (501, or
    │                       404/405 to a `$operation`): use a server that has it (CLI exit 2)
    ├── FhirRejected        the FHIR server refused the data; its OperationOutcome says why
    ├── FhirDataUnreadable  the FHIR server holds data this service cannot read back (API 502)
    ├── NotFound            the resource or record is not on the FHIR server
    ├── Conflict            a version conflict, or a reference to something missing (e.g. a session)
    ├── Unauthorized        our caller's API key (or OAuth access token) is missing or wrong
    ├── Forbidden           our caller's access token lacks the scope the operation needs
    ├── IssuerUnavailable   the OAuth issuer's signing keys cannot be fetched: try again later
    └── PayloadTooLarge     our caller sent more than the configured body size

Record validation errors live with the record contract (`schemas.RecordInvalid`): bad input.
Messages never carry PHI; the server's OperationOutcome travels on the exception, not in the text.
"""

from __future__ import annotations

from typing import Any


class InfusionFhirError(Exception):
    """Base of every error the sync engine raises."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        operation_outcome: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.operation_outcome = operation_outcome
        self.safety: tuple[Any, ...] = ()
        """`schemas.Issue`s of the positive safety answers a record refused with this error holds, added by
        the edge that knows the record (the records route) so that its answer says so first (H-39)."""

    def diagnostics(self) -> list[str]:
        """The human-readable lines of the server's OperationOutcome, if there was one."""
        return outcome_diagnostics(self.operation_outcome)


class FhirUnavailable(InfusionFhirError):
    """The FHIR server is down, overloaded or timing out, even after retries."""

    retry_after_s: float | None = None
    """What the FHIR server's last answer asked for in `Retry-After`, if anything."""


class FhirAuthRefused(InfusionFhirError):
    """The FHIR server refused the service's credentials (401/403): nothing is wrong with the data."""


class FhirMisconfigured(InfusionFhirError):
    """The configured base URL does not answer as a FHIR R4 server: a configuration error."""


class FhirLacksCapability(FhirMisconfigured):
    """The FHIR server answers, but lacks an operation or interaction this needs (e.g. no `$validate`)."""


class FhirRejected(InfusionFhirError):
    """The FHIR server answered with a client error for the data we sent (400, 422, ...)."""


class FhirDataUnreadable(InfusionFhirError):
    """The FHIR server holds resources this service cannot map back to a record."""


class NotFound(InfusionFhirError):
    """What was asked for does not exist on the FHIR server."""


class Conflict(InfusionFhirError):
    """A write conflicted (409/412) or refers to a resource the server does not have."""


class Unauthorized(InfusionFhirError):
    """Our own caller did not present an accepted API key (or, when configured, OAuth access token)."""

    def __init__(self, message: str, *, bearer_error: str | None = None) -> None:
        super().__init__(message)
        self.bearer_error = bearer_error
        """The RFC 6750 error for `WWW-Authenticate` (`invalid_token`) when a presented token was refused."""


class Forbidden(InfusionFhirError):
    """Our own caller's OAuth access token is valid but lacks the scope the operation needs."""

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message)
        self.scope = scope
        """A scope that would be enough, named in `WWW-Authenticate` (RFC 6750 `insufficient_scope`)."""


class IssuerUnavailable(InfusionFhirError):
    """The OAuth issuer's signing keys are needed to check a token and cannot be fetched now."""

    retry_after_s: float | None = None


class PayloadTooLarge(InfusionFhirError):
    """Our own caller sent a body over the configured limit."""


def outcome_diagnostics(outcome: dict[str, Any] | None) -> list[str]:
    """`severity: diagnostics` for each issue of an OperationOutcome dict (empty if none)."""
    if not outcome or outcome.get("resourceType") != "OperationOutcome":
        return []
    lines = []
    for issue in outcome.get("issue", []):
        text = issue.get("diagnostics") or issue.get("details", {}).get("text") or issue.get("code", "")
        lines.append(f"{issue.get('severity', 'error')}: {text}")
    return lines
