"""Streaming NDJSON input: (file, line, record-or-reasons), one line at a time, in constant memory."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
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


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`: the records whose patient MRN hashes to it (`--shard I/N`).

    All of a patient's records fall in one shard, so a session always travels with its children and
    N copies of a job (a Kubernetes Indexed Job, a Slurm or AWS Batch array) split a load with no
    coordinator. The hash is SHA-256 of the MRN: the same in every process and on every machine.
    Lines that are not valid records carry no trustworthy MRN: shard 0 reports them, once.
    """

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`I/N` with 0 <= I < N; ValueError otherwise."""
        index, sep, count = text.partition("/")
        if not sep or not index.strip().isdigit() or not count.strip().isdigit():
            raise ValueError("--shard must be I/N, e.g. 0/4")
        shard = cls(int(index), int(count))
        if shard.count < 1 or not 0 <= shard.index < shard.count:
            raise ValueError("--shard I/N needs N >= 1 and 0 <= I < N")
        return shard

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def of(self, mrn: str) -> int:
        """The shard a patient's records belong to."""
        return int.from_bytes(hashlib.sha256(mrn.encode()).digest()[:8], "big") % self.count

    def takes(self, line: Line) -> bool:
        if line.record is None:
            return self.index == 0
        return self.of(line.record.patient.mrn) == self.index


def in_shard(lines: Iterator[Line], shard: Shard, skipped: Callable[[Line], None] | None = None) -> Iterator[Line]:
    """The lines of one shard (every line when there is one shard); `skipped` hears of the others (the
    progress bar counts their bytes as done)."""
    if shard.count == 1:
        yield from lines
        return
    for line in lines:
        if shard.takes(line):
            yield line
        elif skipped:
            skipped(line)
