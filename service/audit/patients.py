"""Which patients a request or job involved, told to the audit trail by the code that learns it (routes, engine):
kept in a context variable for the audit, never logged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class PatientRef:
    """A patient as the audit names it: by MRN, an identifier-only reference (an audit store need not hold the
    Patient, and a literal reference would tie the Patient's deletion to the audit trail)."""

    mrn: str


_involved: ContextVar[list[PatientRef] | None] = ContextVar("infusion_fhir_audit_patients", default=None)


@contextmanager
def patients_scope() -> Iterator[list[PatientRef]]:
    """Within the block, `involve_patient*` add to the list yielded (outside any block they do nothing)."""
    involved: list[PatientRef] = []
    token = _involved.set(involved)
    try:
        yield involved
    finally:
        _involved.reset(token)


def involve_patient(mrn: str | None) -> None:
    """The request in progress involves the patient of this MRN."""
    if mrn:
        _add(PatientRef(mrn=mrn))


def _add(ref: PatientRef) -> None:
    involved = _involved.get()
    if involved is not None and ref not in involved:
        involved.append(ref)
