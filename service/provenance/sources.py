"""What a Provenance names as its sources: the records written (kind and key), and for a batch their file and line."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NamedTuple

from service.mappers import MappingConfig, record_refs
from service.mappers.ids import identifier_system, patient_urn
from service.provenance.build import Source


class SourceRecord(NamedTuple):
    """A record named by kind and key only: what a retraction or a session's monitoring summary derives from."""

    kind: str
    key: str


_lines: ContextVar[dict[int, tuple[str, int]] | None] = ContextVar("infusion_fhir_source_lines", default=None)


@contextmanager
def source_lines(lines: Sequence[Any]) -> Iterator[None]:
    """Within the block, the records of these batch `lines` (`service.batch.source.Line`) are known by file and
    line, for their Provenance's source entities."""
    token = _lines.set({id(line.record): (line.source, line.number) for line in lines})
    try:
        yield
    finally:
        _lines.reset(token)


def sources_of(records: Sequence[Any], config: MappingConfig) -> list[Source]:
    """The Provenance sources of `records` (records of `schemas`, or `SourceRecord`s)."""
    where = _lines.get() or {}
    out = []
    for record in records:
        system = identifier_system(record.kind, config)
        if isinstance(record, SourceRecord):
            out.append(Source(system, record.key))
            continue
        file, line = where.get(id(record), (None, None))
        refs = frozenset(record_refs(record, config))
        out.append(Source(system, record.key, refs, file, line, patient_urn(record.patient.mrn, config)))
    return out
