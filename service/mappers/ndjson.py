"""Offline mapping of an NDJSON stream of records into transaction Bundles (the `map` command's core)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from schemas.common import KEY_PATTERN
from schemas.records import RecordInvalid, parse_record
from service.mappers.bundle import transaction_bundle
from service.mappers.config import MappingConfig

_KEY = re.compile(KEY_PATTERN)


@dataclass
class MapSummary:
    """What a run did: lines read (non-blank), records mapped, lines rejected, bundles written."""

    lines: int = 0
    mapped: int = 0
    rejected: int = 0
    bundles: int = 0


def _key_of(obj: Any) -> str:
    """The record key for error lines, only when it is a valid key (never a stray value)."""
    key = obj.get("key") if isinstance(obj, dict) else None
    return key if isinstance(key, str) and _KEY.match(key) else "?"


def read_records(lines: Iterable[str | bytes], summary: MapSummary, err: TextIO) -> Iterator[Any]:
    """Valid records of an NDJSON stream; each bad line reported on `err` without values."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        summary.lines += 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            summary.rejected += 1
            err.write(f"line {number}: key=?: (record): not valid JSON\n")
            continue
        try:
            record = parse_record(obj)
        except RecordInvalid as invalid:
            summary.rejected += 1
            for issue in invalid.issues:
                err.write(f"line {number}: key={_key_of(obj)}: {issue.path or '(record)'}: {issue.message}\n")
            continue
        summary.mapped += 1
        yield record


def map_ndjson(
    lines: Iterable[str | bytes], config: MappingConfig, batch_size: int, out: TextIO, err: TextIO
) -> MapSummary:
    """Write one transaction Bundle per `batch_size` valid records to `out`, one JSON per line."""
    summary = MapSummary()
    batch: list[Any] = []

    def flush() -> None:
        out.write(orjson.dumps(transaction_bundle(batch, config)).decode() + "\n")
        summary.bundles += 1
        batch.clear()

    for record in read_records(lines, summary, err):
        batch.append(record)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return summary
