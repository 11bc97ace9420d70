"""Reads a protocol file (TOML, `tomllib`) into a `Protocol`, or says which field is wrong.

The shipped defaults (`default-protocol.toml` beside this module) are the reference every clinic file is
checked against (`service.monitoring.weakening`): a default rule cannot be removed, and making one less
sensitive needs the acknowledgement in its table. Unknown keys are refused, so a typo never drops a rule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from service.monitoring import rules, weakening
from service.monitoring.condition import PRE_INFUSION, Condition, ConditionError, parse_condition
from service.monitoring.model import (
    ANY_PHASE,
    DISCHARGE_FIELDS,
    MEASURES,
    ORDINAL_LEVELS,
    PHASES,
    READINGS,
    RISE_LEVELS,
    RISE_MEASURES,
    VITAL_LEVELS,
    Acknowledgement,
    ConfirmedRule,
    Discharge,
    Protocol,
    ProtocolError,
    Rule,
)

FORMAT = 1
DEFAULT_FILE = "default-protocol.toml"
ACK = "less_sensitive_than_default"
TOP_KEYS = {"format", "name", "version", "approved_by", "approved_on", "readings", "rise", "confirmed", "discharge"}
RULE_KEYS = {"when", "source", "action", ACK}
CONFIRMED_KEYS = {"when", "readings", "min_apart_minutes", "max_apart_minutes", "consecutive", "phases", "source", ACK}
RISE_PHASES = ("during", "after")


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(where, "must be a table")
    return value


def _text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError(f"{where}.{key}" if where else key, "must be a non-empty string")
    return value.strip()


def _optional_text(table: dict[str, Any], key: str, where: str) -> str | None:
    return None if table.get(key) is None else _text(table, key, where)


def _unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ProtocolError(f"{where}.{key}" if where else key, f"unknown key: use {', '.join(sorted(allowed))}")


def _number(table: dict[str, Any], key: str, where: str, kind: type = float) -> Any:
    value = table.get(key)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    if not ok:
        wanted = {bool: "true or false", int: "a whole number >= 0"}.get(kind, "a number >= 0")
        raise ProtocolError(f"{where}.{key}", f"must be {wanted}")
    return float(value) if kind is float and value is not None else value


def _acknowledgement(table: dict[str, Any], where: str) -> Acknowledgement | None:
    if ACK not in table:
        return None
    ack = _table(table[ACK], f"{where}.{ACK}")
    _unknown(ack, {"approved_by", "approved_on", "reason"}, f"{where}.{ACK}")
    on = ack.get("approved_on")
    if not isinstance(on, dt.date) or isinstance(on, dt.datetime):
        raise ProtocolError(f"{where}.{ACK}.approved_on", "must be a date, e.g. 2026-05-01")
    by = _text(ack, "approved_by", f"{where}.{ACK}")
    reason = _text(ack, "reason", f"{where}.{ACK}")
    return Acknowledgement(by, on, reason)


def _condition(table: dict[str, Any], where: str, measures: tuple[str, ...]) -> Condition:
    try:
        return parse_condition(table.get("when"), measures)
    except ConditionError as exc:
        raise ProtocolError(f"{where}.when", str(exc)) from None


def _reading_rule(reading: str, phase: str, level: str, table: Any, where: str) -> list[Rule]:
    """The rule of one `[readings.<reading>.<phase>.<level>]` table, spread over its phases."""
    table = _table(table, where)
    _unknown(table, RULE_KEYS, where)
    measures = READINGS[reading]
    ordinal = MEASURES[measures[0]].ordinal
    levels = tuple(ORDINAL_LEVELS) if ordinal else tuple(VITAL_LEVELS)
    if level not in levels:
        raise ProtocolError(where, f"unknown level {level!r} for {reading}: use {', '.join(levels)}")
    condition = _condition(table, where, measures)
    directions = {part.direction for part in condition.parts}
    for part in condition.parts:
        measure = MEASURES[part.measure]
        if part.limit is None and measure.scale is None:
            raise ProtocolError(f"{where}.when", f"{PRE_INFUSION} is for moaas and cadss only (see [rise])")
        if part.direction not in measure.directions:
            raise ProtocolError(f"{where}.when", f"{part.measure} has no {part.direction} limit")
        if not ordinal and part.direction != VITAL_LEVELS[level][0]:
            raise ProtocolError(f"{where}.when", f"{level} takes {'> or >=' if level[0] == 'H' else '< or <='}")
    if ordinal and len(directions) > 1:
        raise ProtocolError(f"{where}.when", "compares in both directions: one direction per rule")
    if condition.join == "and" and len(condition.measures) > 1:
        raise ProtocolError(f"{where}.when", "'and' across measures cannot be judged per measure: use 'or'")
    source = _text(table, "source", where)
    action = _optional_text(table, "action", where)
    phases = PHASES if phase == ANY_PHASE else (phase,)
    ack = _acknowledgement(table, where)
    return [Rule(where, reading, p, level, condition, source, action, ack) for p in phases]


def _readings(value: Any) -> dict[tuple[str, str, str], Rule]:
    out: dict[tuple[str, str, str], Rule] = {}
    for reading, phases in _table(value, "readings").items():
        if reading not in READINGS:
            raise ProtocolError(f"readings.{reading}", f"unknown reading: use {', '.join(READINGS)}")
        for phase, levels in _table(phases, f"readings.{reading}").items():
            if phase not in (*PHASES, ANY_PHASE):
                raise ProtocolError(f"readings.{reading}.{phase}", f"unknown phase: use {', '.join(PHASES)} or any")
            for level, table in _table(levels, f"readings.{reading}.{phase}").items():
                for rule in _reading_rule(reading, phase, level, table, f"readings.{reading}.{phase}.{level}"):
                    held = out.get((reading, rule.phase, level))
                    if held is not None:
                        raise ProtocolError(
                            rule.field, f"{reading} {rule.phase} {level} is already set by {held.field}"
                        )
                    out[(reading, rule.phase, level)] = rule
    return out


def _rise(value: Any) -> dict[tuple[str, str], Rule]:
    out: dict[tuple[str, str], Rule] = {}
    for phase, levels in _table(value, "rise").items():
        if phase not in RISE_PHASES:
            raise ProtocolError(f"rise.{phase}", f"unknown phase: use {' or '.join(RISE_PHASES)}")
        for level, table in _table(levels, f"rise.{phase}").items():
            where = f"rise.{phase}.{level}"
            if level not in RISE_LEVELS:
                raise ProtocolError(where, f"unknown level: use {' or '.join(RISE_LEVELS)}")
            table = _table(table, where)
            _unknown(table, RULE_KEYS, where)
            condition = _condition(table, where, RISE_MEASURES)
            if any(p.direction != "high" or p.limit is None for p in condition.parts):
                raise ProtocolError(f"{where}.when", "a rise takes > or >= and a number")
            source = _text(table, "source", where)
            action = _optional_text(table, "action", where)
            out[(phase, level)] = Rule(
                where, "blood_pressure", phase, level, condition, source, action, _acknowledgement(table, where)
            )
    return out


def _confirmed(value: Any) -> dict[str, ConfirmedRule]:
    out: dict[str, ConfirmedRule] = {}
    for name, table in _table(value, "confirmed").items():
        where = f"confirmed.{name}"
        table = _table(table, where)
        _unknown(table, CONFIRMED_KEYS, where)
        condition = _condition(table, where, tuple(MEASURES))
        if any(p.limit is None for p in condition.parts):
            raise ProtocolError(f"{where}.when", f"{PRE_INFUSION} cannot be used in a confirmed rule")
        count = _number(table, "readings", where, int)
        if count not in (1, 2):
            raise ProtocolError(f"{where}.readings", "must be 1 or 2")
        low = _number(table, "min_apart_minutes", where) if "min_apart_minutes" in table else 0.0
        high = _number(table, "max_apart_minutes", where) if "max_apart_minutes" in table else None
        if high is not None and high < low:
            raise ProtocolError(f"{where}.max_apart_minutes", "must not be below min_apart_minutes")
        consecutive = _number(table, "consecutive", where, bool) if "consecutive" in table else False
        phases = table.get("phases", list(PHASES))
        if not isinstance(phases, list) or not phases or any(p not in PHASES for p in phases):
            raise ProtocolError(f"{where}.phases", f"must be a list of {', '.join(PHASES)}")
        source = _text(table, "source", where)
        out[name] = ConfirmedRule(
            name, condition, count, low, high, consecutive, tuple(p for p in PHASES if p in phases), source,
            where, _acknowledgement(table, where),
        )  # fmt: skip
    return out


def _discharge(value: Any) -> Discharge:
    table = _table(value, "discharge")
    _unknown(table, {*DISCHARGE_FIELDS, "source", ACK}, "discharge")
    values = {name: _number(table, name, "discharge", kind) for name, (kind, _) in DISCHARGE_FIELDS.items()}
    source = _text(table, "source", "discharge")
    return Discharge(**values, source=source, acknowledged=_acknowledgement(table, "discharge"))


def parse(data: bytes, file: str | None, default: Protocol | None) -> Protocol:
    """A protocol from a file's bytes; checked against `default` unless it is the default itself."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProtocolError("(file)", f"not valid TOML: {exc}", file) from None
    try:
        _unknown(doc, TOP_KEYS, "")
        if doc.get("format") != FORMAT:
            raise ProtocolError("format", f"must be {FORMAT}")
        approved_on = doc.get("approved_on")
        if approved_on is not None and (not isinstance(approved_on, dt.date) or isinstance(approved_on, dt.datetime)):
            raise ProtocolError("approved_on", "must be a date, e.g. 2026-05-01")
        for section in ("readings", "rise", "confirmed", "discharge"):
            if section not in doc:
                raise ProtocolError(section, "missing: every section of the default protocol is required")
        name, version = _text(doc, "name", ""), _text(doc, "version", "")
        protocol = Protocol(
            name=name,
            version=version,
            digest=hashlib.sha256(data).hexdigest(),
            file=file,
            rules=_readings(doc["readings"]),
            rise=_rise(doc["rise"]),
            confirmed=_confirmed(doc["confirmed"]),
            discharge=_discharge(doc["discharge"]),
            approved_by=_optional_text(doc, "approved_by", ""),
            approved_on=approved_on,
        )
        protocol = weakening.checked(protocol, default)
        rules.check(protocol)
    except ProtocolError as exc:
        raise ProtocolError(exc.field, exc.message, file) from None
    return protocol


@lru_cache(maxsize=1)
def default_protocol() -> Protocol:
    """The shipped defaults (read once per process)."""
    data = resources.files("service.monitoring").joinpath(DEFAULT_FILE).read_bytes()
    return parse(data, None, None)


def load_protocol(file: str | Path | None) -> Protocol:
    """The protocol in `file` (None: the shipped defaults); ProtocolError naming the field when it is unusable."""
    if file is None:
        return default_protocol()
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise ProtocolError("(file)", f"cannot be read ({exc.strerror or exc.__class__.__name__})", str(file)) from None
    return parse(data, str(file), default_protocol())
