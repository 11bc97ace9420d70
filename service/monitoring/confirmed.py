"""The protocol's confirmed rules judged across a session's readings: which fired, and by which readings.

Pure: the readings (`readings.Reading`, with their phases) and `Protocol.confirmed`, nothing else; the limits
come from the protocol, never from here. A rule of one reading fires on every reading that meets it. A repeat
(two readings) fires on each pair of readings that both meet it, apart by at least `min_apart_minutes` and at
most `max_apart_minutes` (both inclusive), with no reading between them that does not meet the rule ("below
those limits"). `consecutive` is read the same way: two readings joined by a run of readings that all meet the
rule are consecutive readings meeting it. Read literally ("no reading at all between the two"), a sustained
heart rate of 130 measured every 2 minutes would never have two consecutive readings 5 minutes apart and
would never fire; the run is the more sensitive reading, and it contains the literal one. "Between" is
strictly between in time, so readings taken at the same instant never break a pair whatever order they
arrive in. A reading whose phase is unknown is judged by every rule (the most sensitive choice); one outside a
rule's phases neither fires it nor breaks its pairs. The session's Flag is raised by these rules only: a rise
from the baseline alone never fires one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from service.monitoring.model import ConfirmedRule, Protocol
from service.monitoring.readings import Reading, carries, in_order, meets, minutes_between


@dataclass(frozen=True)
class Fired:
    """A confirmed rule that fired, and every reading that took part in it (in order)."""

    rule: ConfirmedRule
    readings: tuple[Reading, ...]

    @property
    def first(self) -> Reading:
        return self.readings[0]


def fired(readings: Iterable[Reading], protocol: Protocol) -> list[Fired]:
    """The confirmed rules of `protocol` that `readings` fire, in the protocol's order (see the module)."""
    ordered = in_order(readings)
    out = []
    for rule in protocol.confirmed.values():
        judged = [r for r in ordered if carries(rule.condition, r) and (r.phase is None or r.phase in rule.phases)]
        found = _singles(rule, judged) if rule.readings == 1 else _repeats(rule, judged)
        if found:
            out.append(Fired(rule, tuple(in_order(found))))
    return out


def triggers(fired_rules: Iterable[Fired]) -> list[Reading]:
    """Every reading that fired any rule, once each, in order."""
    return in_order({r.ref: r for f in fired_rules for r in f.readings}.values())


def _singles(rule: ConfirmedRule, judged: list[Reading]) -> list[Reading]:
    return [r for r in judged if meets(rule.condition, r.values)]


def _repeats(rule: ConfirmedRule, judged: list[Reading]) -> list[Reading]:
    met = [meets(rule.condition, r.values) for r in judged]
    found: dict[str, Reading] = {}
    for i, first in enumerate(judged):
        if not met[i]:
            continue
        for j in range(i + 1, len(judged)):
            second = judged[j]
            if not met[j]:
                continue
            apart = minutes_between(first.at, second.at)
            if apart < rule.min_apart_minutes or (
                rule.max_apart_minutes is not None and apart > rule.max_apart_minutes
            ):
                continue
            between = [k for k in range(i + 1, j) if first.at < judged[k].at < second.at]
            if not all(met[k] for k in between):
                continue
            for k in (i, *between, j):  # the run between the two met the rule too: all took part
                found[judged[k].ref] = judged[k]
    return list(found.values())
