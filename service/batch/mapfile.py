"""`infusion-fhir map`: records from NDJSON into transaction Bundles, offline (no FHIR server I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from service.batch.cuts import bundles_of
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
    records at most, a session starting one: `bundles_of`), one JSON per line;
    each bad line is reported on `err` by number, key and field, never by value."""
    summary = MapSummary()

    def valid_records() -> Iterator[Any]:
        for line in lines:
            if line.record is None and not line.issues:
                continue  # blank
            summary.lines += 1
            if line.record is None:
                summary.rejected += 1
                for issue in line.issues:
                    err.write(
                        f"line {line.number}: key={line.key or '?'}: {issue.path or '(record)'}: {issue.message}\n"
                    )
                continue
            summary.mapped += 1
            yield line.record

    for batch in bundles_of(valid_records(), batch_size):
        out.write(orjson.dumps(transaction_bundle(batch, config)).decode() + "\n")
        summary.bundles += 1
    return summary
