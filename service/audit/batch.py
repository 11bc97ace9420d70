"""The audit of a batch job: what it did to each patient's records, counted line by line, and one AuditEvent per
patient at its end (created any: C, else U; any line of theirs rejected: a minor failure; the job stopped: serious)."""

from __future__ import annotations

import logging
import socket
from collections import Counter
from typing import Any

from schemas.kinds import SESSION
from service.audit import codes
from service.audit.event import Access, audit_event
from service.audit.middleware import new_event_id, now_instant
from service.audit.patients import PatientRef
from service.audit.trail import AuditTrail
from service.request_context import BATCH, Caller, current_caller, current_request_id

log = logging.getLogger("infusion_fhir.audit")

JOB_KIND = "batch-job"
MAX_SESSIONS = 200_000
"""Sessions remembered for the patient of their children lines (which may name none); beyond: unattributed."""


class JobPatients:
    """Line outcomes (created, updated, unchanged, rejected) per patient MRN; `None` for a line whose patient is
    not known (an unparsable line, or a child of a session outside the job)."""

    def __init__(self) -> None:
        self.counts: dict[str | None, Counter[str]] = {}
        self._session_mrn: dict[str, str] = {}

    def count(self, record: Any, outcome: str) -> None:
        mrn = self._mrn(record)
        self.counts.setdefault(mrn, Counter())[outcome] += 1

    def _mrn(self, record: Any) -> str | None:
        if record is None:
            return None
        mrn = getattr(getattr(record, "patient", None), "mrn", None)
        if getattr(record, "kind", None) == SESSION and mrn and len(self._session_mrn) < MAX_SESSIONS:
            self._session_mrn[record.key] = mrn
        return mrn or self._session_mrn.get(getattr(record, "session_key", None) or "")


def job_accesses(
    patients: JobPatients, *, stopped: bool, server_name: str, fhir_url: str, caller: Caller | None = None
) -> list[Access]:
    """One Access per patient of the job (and one for the lines of no known patient)."""
    caller = caller or current_caller()
    job_id = current_request_id()
    host = socket.gethostname()
    accesses = []
    for mrn, counts in patients.counts.items():
        created = counts["created"] > 0
        if stopped:
            outcome = codes.OUTCOME_SERIOUS_FAILURE
        elif counts["rejected"]:
            outcome = codes.OUTCOME_MINOR_FAILURE
        else:
            outcome = codes.OUTCOME_SUCCESS
        described = ", ".join(f"{counts[o]} {o}" for o in ("created", "updated", "unchanged", "rejected"))
        accesses.append(
            Access(
                event_id=new_event_id(),
                recorded=now_instant(),
                interaction=codes.CREATE if created else codes.UPDATE,
                action="C" if created else "U",
                outcome=outcome,
                outcome_desc=f"batch sync lines: {described}" + ("; the job stopped early" if stopped else ""),
                caller=caller,
                client_address=host,
                server_name=server_name,
                server_address=fhir_url,
                request_id=job_id,
                record=(JOB_KIND, job_id) if job_id else None,
                patients=(PatientRef(mrn=mrn),) if mrn else (),
                record_is_job=True,
            )
        )
    return accesses


async def record_job(trail: AuditTrail, patients: JobPatients, *, stopped: bool, fhir_url: str) -> int:
    """Record the job's events; how many no sink could record (each logged as `audit.sink_failed`)."""
    unrecorded = 0
    caller = current_caller() or Caller(BATCH, "sync")
    for access in job_accesses(
        patients, stopped=stopped, server_name=trail.server_name, fhir_url=fhir_url, caller=caller
    ):
        if not await trail.record(audit_event(access, trail.systems)):
            unrecorded += 1
    if unrecorded:
        log.error("audit.job_unrecorded", extra={"events": unrecorded})
    return unrecorded
