"""Where the batch job ends one transaction Bundle and starts the next, short of `--batch-size`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from schemas.kinds import SESSION


def session_cut(record: Any, held: Sequence[Any], batch_size: int) -> bool:
    """Whether a Bundle holding the records `held` ends before `record`, short of `batch_size`: at a session
    once it is half full, or once it holds a record naming a session it does not carry (it waits for another
    Bundle already); never before a session that a record it holds names (that record would go first, to a
    server without its session). A session then starts a Bundle with the records after it that name it, and
    that Bundle waits for none: Bundles cut at fixed counts each held the tail of the session before them, so
    each waited for the one before it and they went one at a time (BENCHMARKS.md section 2). `map` and the
    benchmark's ceiling cut alike."""
    if record.kind != SESSION or not held:
        return False
    named = {k for r in held if (k := getattr(r, "session_key", None)) is not None}
    if record.key in named:
        return False
    return len(held) >= batch_size // 2 or bool(named - {r.key for r in held if r.kind == SESSION})


def bundles_of(records: Iterable[Any], batch_size: int) -> Iterator[list[Any]]:
    """`records` in file order, cut into Bundles as `sync` cuts them: at `batch_size`, or before a session
    (`session_cut`); each yielded as soon as it is complete."""
    batch: list[Any] = []
    for record in records:
        if session_cut(record, batch, batch_size):
            yield batch
            batch = []
        batch.append(record)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
