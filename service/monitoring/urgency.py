"""Which API writes refresh their session's summary before answering: those that may raise its critical-episode Flag.

Pure: the records just written, what the write did to their resources, and the protocol. A session's summary
and Flag are refreshed after every write either way (`deferred.py` does the others right after the answer); a
write is urgent when its answer must not come before the Flag it may raise (docs/clinical-safety.md, H-58):

- a reading (on its own, or embedded in a session) that meets the condition of any confirmed rule, whatever its
  phase: it may complete a repeat or fire a single-reading rule. A condition against the pre-infusion score
  counts as met by any reading of its measure (a new baseline may make later readings meet it);
- a correction: a reading's or the session's resources rewritten (a changed value or a moved infusion period
  may move a reading into a rule's phase).

Anything else (a new reading that meets no confirmed rule, an adverse event, a session's first write with no
such reading) can only leave the Flag as it is or end it: ending it a moment later errs on the side of showing
it. Retractions are not judged here: the routes refresh after them before answering, always.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from schemas.kinds import MONITORING_SCORE, SESSION, VITAL_SIGN
from service.monitoring.condition import Condition
from service.monitoring.model import Protocol
from service.monitoring.readings import meets, vital_values
from service.sync.outcomes import WriteOutcome, WrittenResource

CORRECTED_TYPES = frozenset({"Observation", "Procedure"})
"""Resource types whose rewrite is a correction that may move a reading into a rule (readings, the session)."""


def reading_values(record: Any) -> Iterator[Mapping[str, float]]:
    """Measure -> value of each reading a record carries: a vital sign's or a score's own, a session's embedded."""
    if record.kind == SESSION:
        for vital in record.vital_signs:
            yield from reading_values(vital)
        for score in record.monitoring_scores:
            yield from reading_values(score)
    elif record.kind == VITAL_SIGN:
        values = vital_values(record.type, record.value, record.systolic, record.diastolic)
        if values is not None:
            yield values
    elif record.kind == MONITORING_SCORE:
        yield {record.instrument: float(record.score)}


def _may_meet(condition: Condition, values: Mapping[str, float]) -> bool:
    if any(part.limit is None and part.measure in values for part in condition.parts):
        return True  # against the pre-infusion score: judged by the summary, which knows the baseline
    return meets(condition, values)


def may_raise(record: Any, protocol: Protocol) -> bool:
    """Whether a reading the record carries meets the condition of a confirmed rule (see the module)."""
    conditions = [rule.condition for rule in protocol.confirmed.values()]
    return any(_may_meet(c, values) for values in reading_values(record) for c in conditions)


def corrected(written: Iterable[WrittenResource]) -> bool:
    """Whether the write rewrote a reading or a session (an update, not a first write or a no-op)."""
    return any(w.outcome is WriteOutcome.updated and w.resource_type in CORRECTED_TYPES for w in written)


def urgent(records: Iterable[Any], written: Iterable[WrittenResource], protocol: Protocol) -> bool:
    """Whether the summaries these records touch are refreshed before the write is answered (see the module)."""
    return corrected(written) or any(may_raise(record, protocol) for record in records)
