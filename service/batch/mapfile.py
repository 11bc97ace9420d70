"""`infusion-fhir map`: records from NDJSON into transaction Bundles, offline (no FHIR server I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from service.batch.cuts import session_cut
from service.batch.source import Line
from service.mappers import MappingConfig, transaction_bundle


@dataclass
class MapSummary:
    """What a run did: lines read (non-blank), records mapped, lines rejected, bundles written."""

    lines: int = 0
    mapped: int = 0
    rejected: int = 0
    bundles: int = 0


def map_lines(lines: Iterable[Line], config: MappingConfig, batch_size: int, out: TextIO, err: TextIO) -> MapSummary:
    """Write the valid records to `out` as the transaction Bundles `sync` would cut them into (`batch_size`
    records at most, a session starting one: `session_cut`), one JSON per line;
    each bad line is reported on `err` by number, key and field, never by value."""
    summary = MapSummary()
    batch: list[Any] = []

    def flush() -> None:
        out.write(orjson.dumps(transaction_bundle(batch, config)).decode() + "\n")
        summary.bundles += 1
        batch.clear()

    for line in lines:
        if line.record is None and not line.issues:
            continue  # blank
        summary.lines += 1
        if line.record is None:
            summary.rejected += 1
            for issue in line.issues:
                err.write(f"line {line.number}: key={line.key or '?'}: {issue.path or '(record)'}: {issue.message}\n")
            continue
        summary.mapped += 1
        if session_cut(line.record, batch, batch_size):
            flush()
        batch.append(line.record)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return summary
