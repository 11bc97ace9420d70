"""A clinic's protocol against the shipped defaults: nothing removed, nothing made less sensitive unacknowledged.

More sensitive (flags at least every reading the default flags; for discharge, harder to meet) is free.
Less sensitive, or a change the code cannot prove is not, needs `less_sensitive_than_default` in that
table, and becomes a `Weakening` on the protocol (logged at start, named by every reading judged by it).
An acknowledgement where nothing is less sensitive is refused too, so a summary never shows a stale one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from service.monitoring.condition import covers, limit_text
from service.monitoring.model import (
    DISCHARGE_FIELDS,
    Acknowledgement,
    ConfirmedRule,
    Discharge,
    Protocol,
    ProtocolError,
    Rule,
    Weakening,
)

ACK = "less_sensitive_than_default"


def _weakening(field: str, default: str, configured: str, ack: Acknowledgement | None) -> Weakening:
    if ack is None:
        raise ProtocolError(
            field,
            f"less sensitive than the default ({default}): to keep it, add {ACK} = "
            "{ approved_by = ..., approved_on = YYYY-MM-DD, reason = ... } to this table",
        )
    return Weakening(field, default, configured, ack.approved_by, ack.approved_on, ack.reason)


def _stale(acknowledged: Iterable[tuple[str, Acknowledgement | None]], weakened: set[str]) -> None:
    for field, ack in acknowledged:
        if ack is not None and field not in weakened:
            raise ProtocolError(f"{field}.{ACK}", "nothing in this table is less sensitive than the default: remove it")


def _rules(
    own: dict[Any, Rule], default: dict[Any, Rule], section: str
) -> tuple[dict[Any, Rule], dict[str, Weakening]]:
    """Each default rule present and at least as sensitive, or acknowledged."""
    out = dict(own)
    found: dict[str, Weakening] = {}
    for key, reference in default.items():
        rule = own.get(key)
        if rule is None:
            where = ".".join((section, *key))
            raise ProtocolError(
                where, "missing: a rule of the default protocol cannot be removed (make it less sensitive instead)"
            )
        if not covers(rule.condition, reference.condition):
            text = reference.condition.text(), rule.condition.text()
            weak = found.get(rule.field) or _weakening(rule.field + ".when", *text, rule.acknowledged)
            found[rule.field] = dataclasses.replace(weak, field=rule.field)
            out[key] = dataclasses.replace(rule, weakened=found[rule.field])
    _stale(((r.field, r.acknowledged) for r in own.values()), set(found))
    return out, found


def _confirmed_text(rule: ConfirmedRule) -> str:
    text = f"{rule.condition.text()}, {rule.readings} reading(s)"
    if rule.readings > 1:
        text += f" {limit_text(rule.min_apart_minutes)}"
        text += f"-{limit_text(rule.max_apart_minutes)}" if rule.max_apart_minutes is not None else "+"
        text += " min apart, " + ("consecutive" if rule.consecutive else "none below the limits between")
    return text + f", phases {' '.join(rule.phases)}"


def _confirmed_weaker(rule: ConfirmedRule, reference: ConfirmedRule) -> bool:
    if not covers(rule.condition, reference.condition) or rule.readings > reference.readings:
        return True
    if rule.readings == 2 and reference.readings == 2:
        if rule.min_apart_minutes > reference.min_apart_minutes:
            return True
        if reference.max_apart_minutes is None and rule.max_apart_minutes is not None:
            return True
        if None not in (rule.max_apart_minutes, reference.max_apart_minutes):
            assert rule.max_apart_minutes is not None and reference.max_apart_minutes is not None
            if rule.max_apart_minutes < reference.max_apart_minutes:
                return True
        if rule.consecutive and not reference.consecutive:
            return True
    return not set(reference.phases) <= set(rule.phases)


def _confirmed(own: dict[str, ConfirmedRule], default: dict[str, ConfirmedRule]) -> dict[str, ConfirmedRule]:
    out = dict(own)
    for name, reference in default.items():
        rule = own.get(name)
        if rule is None:
            raise ProtocolError(f"confirmed.{name}", "missing: a rule of the default protocol cannot be removed")
        if _confirmed_weaker(rule, reference):
            weak = _weakening(rule.field, _confirmed_text(reference), _confirmed_text(rule), rule.acknowledged)
            out[name] = dataclasses.replace(rule, weakened=weak)
    _stale(((r.field, r.acknowledged) for r in own.values()), {r.field for r in out.values() if r.weakened})
    return out


def _discharge(own: Discharge, default: Discharge, fields: dict[str, tuple[type, str]]) -> Discharge:
    weaker = []
    for name, (_, safer) in fields.items():
        mine, reference = getattr(own, name), getattr(default, name)
        if (
            (safer == "higher" and mine < reference)
            or (safer == "lower" and mine > reference)
            or (safer == "true" and not mine and reference)
            or (safer == "false" and mine and not reference)
        ):
            weaker.append((name, reference, mine))
    if not weaker:
        _stale([("discharge", own.acknowledged)], set())
        return own
    text = "; ".join(f"{name} = {_value(reference)}" for name, reference, _ in weaker)
    configured = "; ".join(f"{name} = {_value(mine)}" for name, _, mine in weaker)
    return dataclasses.replace(own, weakened=_weakening("discharge", text, configured, own.acknowledged))


def _value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else limit_text(value)


def checked(protocol: Protocol, default: Protocol | None) -> Protocol:
    """`protocol` with its weakenings recorded; ProtocolError for a removed rule or an unacknowledged weakening."""
    if default is None:  # the defaults themselves: nothing to compare, nothing to acknowledge
        for field, ack in _acknowledgements(protocol):
            if ack is not None:
                raise ProtocolError(f"{field}.{ACK}", "the default protocol cannot acknowledge a weakening")
        return protocol
    rules, weak_rules = _rules(protocol.rules, default.rules, "readings")
    rise, weak_rise = _rules(protocol.rise, default.rise, "rise")
    confirmed = _confirmed(protocol.confirmed, default.confirmed)
    discharge = _discharge(protocol.discharge, default.discharge, DISCHARGE_FIELDS)
    weakened = [*weak_rules.values(), *weak_rise.values()]
    weakened += [r.weakened for r in confirmed.values() if r.weakened is not None]
    weakened += [discharge.weakened] if discharge.weakened is not None else []
    return dataclasses.replace(
        protocol, rules=rules, rise=rise, confirmed=confirmed, discharge=discharge, weakened=tuple(weakened)
    )


def _acknowledgements(protocol: Protocol) -> list[tuple[str, Acknowledgement | None]]:
    out: list[tuple[str, Acknowledgement | None]] = [(r.field, r.acknowledged) for r in protocol.rules.values()]
    out += [(r.field, r.acknowledged) for r in protocol.rise.values()]
    out += [(r.field, r.acknowledged) for r in protocol.confirmed.values()]
    return [*out, ("discharge", protocol.discharge.acknowledged)]
