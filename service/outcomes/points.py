"""Assessment points from the Observations a FHIR server holds, ours and other systems': grouped, retracted
ones left out, each assessment counted once.

A point is one assessment of one instrument: its date, total (C-SSRS: triage category) and the safety
items' answers, found by the definitions' codes (service/instruments), never by who wrote them:

* a panel (the instrument's panel code) with the members its `hasMember` names: total, triage and
  safety items. Ours (`assessment` and `phq9_assessment`) are written so; other systems' panels too.
* a total no panel names (another system that writes totals alone); a safety item no panel names joins
  the lone total of its instrument taken at the same instant, else is a point of its own (total unknown),
  so that its answer is never dropped.

Retracted (`entered-in-error`) Observations are left out, and so is every member of a retracted panel
(the assessment was retracted). Duplicates, the same assessment written by us and by another system
with the same codes (same instrument, same instant, same total or triage), are counted once:
ours is kept, and an answer only the other copy holds fills the kept one's gap. The same patient is
the caller's search (one MRN).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from schemas.kinds import ASSESSMENT, PHQ9
from service.instruments import DEFINITIONS, Definition, require_complete, rule_range, triage
from service.instruments.answers import is_valid_answer
from service.instruments.model import Choice, Item, YesNo
from service.mappers import codes
from service.mappers.config import MappingConfig
from service.mappers.ids import parse_identifier
from service.outcomes.index import CodeIndex, Token, code_index, token
from service.sync.trend import parse_instant

Json = dict[str, Any]
Answer = int | bool
RETRACTED = codes.ENTERED_IN_ERROR
OUR_KINDS = (ASSESSMENT, PHQ9)


@dataclass(frozen=True)
class Point:
    """One assessment of one instrument as the server holds it."""

    instrument: str
    key: str | None
    """Our record key; None when another system wrote it."""
    date: str
    """effective[x] as the server holds it (a FHIR dateTime)."""
    total: int | None
    """None for C-SSRS, or when the server holds no readable total for this assessment."""
    triage: str | None = None
    """C-SSRS triage level code (from the triage Observation, else computed from complete answers)."""
    answers: Mapping[str, Answer] = field(default_factory=dict)
    """Safety items' answers held on the server, by linkId (an item missing here is not held)."""
    source: str = ""
    """Id of the Observation the point was read from: the last tie-breaker of the time order."""

    @property
    def instant(self) -> dt.datetime:
        return parse_instant(self.date)

    @property
    def ours(self) -> bool:
        return self.key is not None


def _tokens(observation: Json) -> list[Token]:
    return [(c.get("system", ""), c.get("code", "")) for c in (observation.get("code") or {}).get("coding", []) or []]


def _first(observation: Json, table: Mapping[Token, str]) -> str | None:
    return next((table[t] for t in _tokens(observation) if t in table), None)


def _date(observation: Json) -> str | None:
    for name in ("effectiveDateTime", "effectiveInstant"):
        if isinstance(observation.get(name), str):
            return str(observation[name])
    start = (observation.get("effectivePeriod") or {}).get("start")
    return start if isinstance(start, str) else None


def _key(observation: Json, config: MappingConfig) -> str | None:
    for ident in observation.get("identifier", []) or []:
        parsed = parse_identifier(ident.get("system"), ident.get("value"), config)
        if parsed and parsed[0] in OUR_KINDS:
            return parsed[1]
    return None


def _whole(value: Any) -> int | None:
    """An integer held as valueInteger or a whole valueQuantity (never a boolean)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal) and value == int(value):
        return int(value)
    return None


def _number(observation: Json) -> int | None:
    if "valueQuantity" in observation:
        return _whole((observation["valueQuantity"] or {}).get("value"))
    return _whole(observation.get("valueInteger"))


def _answer(item: Item, observation: Json, config: MappingConfig) -> Answer | None:
    """The answer an item Observation holds, if well-formed for the item; None otherwise."""
    value: Answer | None = None
    held = {(c.get("system"), c.get("code")) for c in (observation.get("valueCodeableConcept") or {}).get("coding", [])}
    answer = item.answer
    if isinstance(answer, YesNo):
        if token(answer.yes, config) in held:
            value = True
        elif token(answer.no, config) in held:
            value = False
        elif isinstance(observation.get("valueBoolean"), bool):
            value = observation["valueBoolean"]
    elif isinstance(answer, Choice) and held:
        value = next((o.score for o in answer.options if token(o.coding, config) in held), None)
    else:
        value = _number(observation)
    return value if value is not None and is_valid_answer(item, value) else None


def _total(defn: Definition, observation: Json | None) -> int | None:
    """The total an Observation holds, if within the instrument's range."""
    if observation is None or defn.total is None:
        return None
    value = _number(observation)
    low, high = rule_range(defn, defn.total)
    return value if value is not None and low <= value <= high else None


def _triage(
    defn: Definition, observation: Json | None, answers: Mapping[str, Answer], config: MappingConfig
) -> str | None:
    """The C-SSRS triage level: the triage Observation's, else computed when every answer is held and valid."""
    if defn.triage is None:
        return None
    if observation is not None:
        system = codes.local_system(config.local_code_system_base, defn.triage.system_path)
        for coding in (observation.get("valueCodeableConcept") or {}).get("coding", []):
            if coding.get("system") == system and coding.get("code") in defn.triage.order:
                return str(coding["code"])
    positional = [answers.get(item.link_id) for item in defn.items]
    try:
        require_complete(defn, positional)
    except ValueError:
        return None
    return triage(defn, positional).code


@dataclass
class _Group:
    instrument: str
    anchor: Json
    members: list[Json]


def _point(group: _Group, index: CodeIndex, config: MappingConfig) -> Point | None:
    defn = DEFINITIONS[group.instrument]
    date = _date(group.anchor) or next((d for m in group.members if (d := _date(m))), None)
    if date is None:
        return None  # nowhere in time to put it
    answers: dict[str, Answer] = {}
    total_obs = triage_obs = None
    for member in group.members:
        tokens = _tokens(member)
        if _first(member, index.totals) == defn.id:
            total_obs = member
        if index.triage in tokens:
            triage_obs = member
        for t in tokens:
            for instrument, item in index.items.get(t, ()):
                if instrument == defn.id and item.link_id not in answers:
                    value = _answer(item, member, config)
                    if value is not None:
                        answers[item.link_id] = value
    return Point(
        instrument=defn.id,
        key=_key(group.anchor, config),
        date=date,
        total=_total(defn, total_obs),
        triage=_triage(defn, triage_obs, answers, config),
        answers=answers,
        source=str(group.anchor.get("id", "")),
    )


def _groups(observations: list[Json], index: CodeIndex, config: MappingConfig) -> list[_Group]:
    by_ref = {f"Observation/{o['id']}": o for o in observations if o.get("id")}
    claimed: set[str] = set()
    groups: list[_Group] = []
    for panel in observations:
        instrument = _first(panel, index.panels)
        if instrument is None:
            continue
        members = [by_ref[ref] for m in panel.get("hasMember", []) or [] if (ref := m.get("reference", "")) in by_ref]
        claimed |= {str(m["id"]) for m in members}
        if panel.get("status") != RETRACTED:
            groups.append(_Group(instrument, panel, [m for m in members if m.get("status") != RETRACTED]))
    loose = [o for o in observations if str(o.get("id")) not in claimed and o.get("status") != RETRACTED]
    lone_totals: dict[tuple[str, dt.datetime], _Group] = {}
    for total in loose:
        instrument = _first(total, index.totals)
        date = _date(total)
        if instrument is not None and date is not None:
            group = _Group(instrument, total, [total])
            groups.append(group)
            lone_totals.setdefault((instrument, parse_instant(date)), group)
    for item in loose:
        owners = {i for t in _tokens(item) for i, _ in index.items.get(t, ())}
        date = _date(item)
        if not owners or date is None or _first(item, index.totals) is not None:
            continue
        for instrument in sorted(owners):
            total_group = lone_totals.get((instrument, parse_instant(date)))
            if total_group is not None:
                total_group.members.append(item)
            else:
                groups.append(_Group(instrument, item, [item]))
    return groups


def read_points(observations: list[Json], config: MappingConfig) -> dict[str, list[Point]]:
    """Points by instrument (definition order), retracted ones left out, each assessment counted once."""
    index = code_index(config)
    points = [p for g in _groups(observations, index, config) if (p := _point(g, index, config)) is not None]
    once = counted_once(points)
    return {i: [p for p in once if p.instrument == i] for i in DEFINITIONS if any(p.instrument == i for p in once)}


def counted_once(points: list[Point]) -> list[Point]:
    """One point per assessment: same instrument, instant and total (or triage) is the same assessment.

    Ours are kept (each of our records once, by key); of other systems' copies, one (the lowest
    resource id) when none of ours is there. A safety answer only a dropped copy holds fills the
    kept point's gap, so no answer the server holds is lost.
    """
    same: dict[tuple[str, dt.datetime, int | None, str | None], list[Point]] = {}
    for point in sorted(points, key=lambda p: (not p.ours, p.key or "", p.source)):
        same.setdefault((point.instrument, point.instant, point.total, point.triage), []).append(point)
    out: list[Point] = []
    for copies in same.values():
        ours: dict[str, Point] = {}
        for point in copies:
            if point.key is not None:
                ours.setdefault(point.key, point)
        kept = list(ours.values()) or copies[:1]
        answers: dict[str, Answer] = {}
        for copy in copies:  # the kept point first: its own answers win
            for link_id, value in copy.answers.items():
                answers.setdefault(link_id, value)
        out.append(replace(kept[0], answers=answers))
        out.extend(kept[1:])
    return out
