"""Which patients a request or job involved, told to the audit trail by the code that learns it (routes, engine):
kept in a context variable for the audit, never logged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class PatientRef:
    """A patient as the audit names it: by MRN (identifier-only), or, where only the server's id is known, by the
    absolute URL of its Patient."""

    mrn: str | None = None
    url: str | None = None


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


def involve_patient_at(url: str) -> None:
    """The request in progress involves the Patient at this absolute URL (its MRN unknown here)."""
    if url:
        _add(PatientRef(url=url))


def _add(ref: PatientRef) -> None:
    involved = _involved.get()
    if involved is not None and ref not in involved:
        involved.append(ref)
