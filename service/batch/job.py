"""A batch job's identity: the caller name it is recorded under and the id its calls carry (`X-Request-Id`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from service.request_context import BATCH, CALLER_NAME_PATTERN, Caller, new_request_id


@dataclass(frozen=True)
class BatchJob:
    caller: Caller
    request_id: str
    """A fresh id per run: sent to the FHIR server on every call of the job, and in the report."""


def batch_job(name: str | None, now: datetime | None = None) -> BatchJob | None:
    """The job named `name`, else `sync@<start time, UTC>`; None when a given name is not 1-64 of A-Z a-z 0-9 . _ - @ :

    The default names no input file: a file's name is the operator's and may name a patient, and the job's name is
    written into every AuditEvent and Provenance of the run (the report lists the files)."""
    if name is None:
        name = "sync@" + (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not CALLER_NAME_PATTERN.fullmatch(name):
        return None
    return BatchJob(Caller(BATCH, name), new_request_id())
