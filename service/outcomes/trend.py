"""One instrument's trend from its points and definition: baseline, change, response, remission, safety, alerts.

Pure (instruments.md section 3, "Baseline"): response and remission compare with a baseline, so they belong
to the trend. The window is the caller's: every point, the points since a date (`since`, the date as the
assessment recorded it, in its own UTC offset), or the points from a named assessment on
(`baseline_key`). The baseline is the earliest point in the window with a result (a total; C-SSRS a
triage), or the named one, and the answer says which and why. Change, response and remission follow the
definition's named rules (scoring.change): `percent_change` and `response` are null when the baseline
total is 0, each rule null where the instrument has none. Safety answers are judged by the thresholds in
force (the clinic's, MappingConfig.thresholds): `safety_positive` is true when any is positive, false only
when every safety item the skip rules asked is held, else null (unknown, never false). Every positive
point is an alert, newest first; the rules in force, and every weakened one, are named in the answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from service.errors import NotFound
from service.instruments import Definition, Thresholds, asked, band, change, safety_positives
from service.instruments.model import Remission, Response, Safety, TriageLevel
from service.instruments.thresholds import rule_text
from service.outcomes.points import Answer, Point

Json = dict[str, Any]


def order(point: Point) -> tuple[dt.datetime, str, str]:
    """Time order: the instant (offsets parsed), then the key, then the resource id."""
    return point.instant, point.key or "", point.source


def has_result(definition: Definition, point: Point) -> bool:
    """Whether a point can be a baseline: it has a total (C-SSRS: a triage)."""
    return point.triage is not None if definition.total is None else point.total is not None


def safety(definition: Definition, rules: Safety, answers: Mapping[str, Answer]) -> tuple[list[str], bool | None]:
    """(positive linkIds, safety_positive) of held answers under the rules in force.

    None when the instrument has no safety item, or no positive is held and some item the skip rules
    asked (or may have asked) is not held.
    """
    if not rules.rules:
        return [], None
    positional = [answers.get(item.link_id) for item in definition.items]
    positives = list(safety_positives(definition, positional, rules))
    if positives:
        return positives, True
    states = asked(definition, positional)
    for rule in rules.rules:
        position = definition.index(rule.link_id)
        if states[position] is not False and positional[position] is None:
            return [], None
    return [], False


def _window(
    definition: Definition, points: list[Point], since: dt.date | None, baseline_key: str | None
) -> tuple[list[Point], Point | None, str]:
    ordered = sorted(points, key=order)
    if since is not None:
        ordered = [p for p in ordered if dt.date.fromisoformat(p.date[:10]) >= since]
    if baseline_key is not None:
        at = next((n for n, p in enumerate(ordered) if p.key == baseline_key and has_result(definition, p)), None)
        if at is None:
            raise NotFound(f"baseline_key names no {definition.id} assessment of this patient with a result")
        return ordered[at:], ordered[at], "baseline_key"
    baseline = next((p for p in ordered if has_result(definition, p)), None)
    return ordered, baseline, "earliest_since" if since is not None else "earliest"


def _point(definition: Definition, rules: Safety, point: Point, baseline: Point | None) -> tuple[Json, list[str]]:
    held_band = band(definition, point.total) if point.total is not None else None
    level = next((lv for lv in _levels(definition) if lv.code == point.triage), None)
    out: Json = {
        "key": point.key,
        "date": point.date,
        "total": point.total,
        "triage": None if level is None else {"code": level.code, "display": level.display},
        "band": None if held_band is None else {"code": held_band.code, "display": held_band.display},
        "change_from_baseline": None,
        "percent_change": None,
        "response": None,
        "remission": None,
    }
    if point.total is not None and baseline is not None and baseline.total is not None:
        moved = change(definition, baseline.total, point.total)
        out.update(
            change_from_baseline=moved.change,
            percent_change=moved.percent_change,
            response=moved.response,
            remission=moved.remission,
        )
    positives, positive = safety(definition, rules, point.answers)
    out["safety_answers"] = {rule.link_id: point.answers.get(rule.link_id) for rule in rules.rules}
    out["safety_positive"] = positive
    return out, positives


def _levels(definition: Definition) -> tuple[TriageLevel, ...]:
    if definition.triage is None:
        return ()
    return (*definition.triage.levels, definition.triage.otherwise)


def _named_rule(rule: Response | Remission | None) -> Json | None:
    return None if rule is None else {"name": rule.name, "source": rule.source, "published": rule.published}


def rules_in_force(definition: Definition, thresholds: Thresholds) -> Json:
    """The response and remission rules (names, sources), the safety thresholds in force and the weakened ones."""
    rules = thresholds.of(definition.id)
    defaults = {rule.link_id: rule.at_least for rule in definition.safety.rules}
    return {
        "response": _named_rule(definition.response),
        "remission": _named_rule(definition.remission),
        "safety": {
            "source": definition.safety.source,
            "thresholds": [
                {
                    "item": rule.link_id,
                    "at_least": rule.at_least,
                    "default_at_least": defaults[rule.link_id],
                    "rule": rule_text(definition, rule.link_id, rule.at_least),
                }
                for rule in rules.rules
            ],
            "flag_at": rules.flag_at,
            "default_flag_at": definition.safety.flag_at,
        },
        "weakened": [
            {"rule": w.rule, "default": w.default, "configured": w.configured, "description": w.description}
            for w in thresholds.weakened_for(definition.id)
        ],
    }


def summarise(
    definition: Definition,
    points: list[Point],
    thresholds: Thresholds,
    *,
    since: dt.date | None = None,
    baseline_key: str | None = None,
) -> Json:
    """The trend of one instrument: points in time order, baseline, latest, alerts newest first, rules in force.

    NotFound when `baseline_key` names no point of this instrument with a result (in the window).
    """
    rules = thresholds.of(definition.id)
    window, baseline, reason = _window(definition, points, since, baseline_key)
    rows: list[Json] = []
    alerts: list[Json] = []
    baseline_row: Json | None = None
    for point in window:
        row, positives = _point(definition, rules, point, baseline)
        rows.append(row)
        if point is baseline:
            baseline_row = row
        if positives:
            alerts.append(
                {
                    "key": point.key,
                    "date": point.date,
                    "positive": [
                        {
                            "item": link_id,
                            "answer": point.answers[link_id],
                            "rule": rule_text(definition, link_id, _at_least(rules, link_id)),
                        }
                        for link_id in positives
                    ],
                }
            )
    return {
        "instrument": definition.id,
        "title": definition.title,
        "baseline": None
        if baseline_row is None
        else {
            **{name: baseline_row[name] for name in ("key", "date", "total", "triage")},
            "reason": reason,
            "since": None if since is None else since.isoformat(),
        },
        "points": rows,
        "latest": rows[-1] if rows else None,
        "alerts": alerts[::-1],
        "rules": rules_in_force(definition, thresholds),
    }


def _at_least(rules: Safety, link_id: str) -> int:
    return next(rule.at_least for rule in rules.rules if rule.link_id == link_id)
