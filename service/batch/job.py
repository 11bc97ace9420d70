"""A batch job's identity: the caller name it is recorded under and the id its calls carry (`X-Request-Id`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from service.request_context import BATCH, CALLER_NAME_PATTERN, Caller, new_request_id


@dataclass(frozen=True)
class BatchJob:
    caller: Caller
    request_id: str
    """A fresh id per run: sent to the FHIR server on every call of the job, and in the report."""


def batch_job(files: list[str], name: str | None, now: datetime | None = None) -> BatchJob | None:
    """The job named `name`, else `<first input file's name>@<start time, UTC>` (stdin: `stdin@...`);
    None when a given name is not 1-64 of A-Z a-z 0-9 . _ - @ :"""
    if name is None:
        started = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        source = next((os.path.basename(f) for f in files if f != "-"), "stdin")
        name = f"{source[: 64 - len(started) - 1]}@{started}".replace(" ", "_")
        name = "".join(c if CALLER_NAME_PATTERN.fullmatch(c) else "_" for c in name)
    if not CALLER_NAME_PATTERN.fullmatch(name):
        return None
    return BatchJob(Caller(BATCH, name), new_request_id())
