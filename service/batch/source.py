"""Streaming NDJSON input: (file, line, record-or-reasons), one line at a time, in constant memory."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas import Issue, RecordInvalid, parse_record
from schemas.common import KEY_PATTERN

_KEY = re.compile(KEY_PATTERN)


@dataclass(frozen=True)
class Line:
    """One input line: where it came from, and either a record or why it was rejected."""

    source: str
    number: int
    record: Any = None
    issues: tuple[Issue, ...] = field(default=())
    kind: str | None = None
    key: str | None = None
    size: int = 0


def key_of(obj: Any) -> str | None:
    """The record key, only when it is a valid key (never a stray value that might be PHI)."""
    key = obj.get("key") if isinstance(obj, dict) else None
    return key if isinstance(key, str) and _KEY.match(key) else None


def kind_of(obj: Any) -> str | None:
    kind = obj.get("kind") if isinstance(obj, dict) else None
    return kind if isinstance(kind, str) and _KEY.match(kind) else None


def parse_line(source: str, number: int, raw: bytes) -> Line:
    """One NDJSON line: its record, or why it is not one (field paths and messages, never values)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Line(source, number, issues=(Issue("", "not valid JSON"),), size=len(raw))
    try:
        record = parse_record(obj)
    except RecordInvalid as invalid:
        return Line(source, number, issues=invalid.issues, kind=kind_of(obj), key=key_of(obj), size=len(raw))
    return Line(source, number, record=record, kind=record.kind, key=record.key, size=len(raw))


def read_lines(paths: Sequence[str]) -> Iterator[Line]:
    """Every non-blank line of every file (`-` is stdin), parsed; nothing is held beyond one line."""
    for path in paths:
        stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
        try:
            for number, raw in enumerate(stream, start=1):
                if raw.strip():
                    yield parse_line(path, number, raw)
                else:
                    yield Line(path, number, size=len(raw))  # blank: no record, no issues
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
