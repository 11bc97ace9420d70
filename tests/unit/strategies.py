"""Hypothesis strategies producing valid record dicts of every kind (JSON-shaped, as clinics send them)."""

from __future__ import annotations

import datetime as dt
import typing
from typing import Any, get_args

from hypothesis import strategies as st

from schemas.adverse_event import Action, Causality, Event, Outcome, Severity
from schemas.assessment import DIFFICULTY_ORDER, INSTRUMENTS, EmbeddedInstrument
from schemas.common import Sex
from schemas.monitoring_score import SCORE_RANGES
from schemas.phq9 import Difficulty
from schemas.session import RATE_LIMITS, Indication, Status
from schemas.vital_sign import DIASTOLIC_RANGE, RANGES, SYSTOLIC_RANGE
from service.instruments import DEFINITIONS
from service.instruments.model import Choice, YesNo


def _choice(literal: Any) -> st.SearchStrategy[str]:
    return st.sampled_from(typing.get_args(literal))


def _allowed(ch: str) -> bool:
    return ch in " \t\n\r" or not (ord(ch) < 32 or 127 <= ord(ch) < 160 or ch.isspace())


CHARS = st.characters(exclude_categories=("Cs",)).filter(_allowed)
keys = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
mrns = st.one_of(
    st.text(CHARS, min_size=1, max_size=64).filter(lambda s: s == s.strip() and s),
    st.from_regex(r"[A-Z0-9,|$\\]{1,20}", fullmatch=True),
)
short_texts = st.text(CHARS, min_size=1, max_size=30).map(str.strip).filter(bool)
texts = st.text(CHARS, min_size=1, max_size=200).map(str.strip).filter(bool)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
times = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2090, 12, 31), timezones=offsets)


def _number(low: float, high: float, **kw: Any) -> st.SearchStrategy[float]:
    return st.one_of(
        st.integers(int(low) + 1, int(high) - 1) if high - low > 2 else st.nothing(),
        st.floats(low, high, allow_nan=False, allow_infinity=False, **kw),
    )


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


def _optional(draw: st.DrawFn, out: dict[str, Any], name: str, strategy: st.SearchStrategy[Any]) -> None:
    if draw(st.booleans()):
        out[name] = draw(strategy)


@st.composite
def patients(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {"mrn": draw(mrns)}
    _optional(draw, out, "family", short_texts)
    _optional(draw, out, "given", st.lists(short_texts, min_size=1, max_size=3))
    _optional(draw, out, "birth_date", st.dates(dt.date(1900, 1, 1), dt.date(2030, 1, 1)).map(str))
    _optional(draw, out, "sex", _choice(Sex))
    return out


@st.composite
def vital_signs(draw: st.DrawFn, embedded: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"key": draw(keys), "measured_at": _iso(draw(times))}
    vital_type, unit = draw(st.sampled_from([("blood_pressure", "mm[Hg]"), *RANGES]))
    out["type"] = vital_type
    if vital_type == "blood_pressure":
        systolic = draw(_number(SYSTOLIC_RANGE[0] + 1, SYSTOLIC_RANGE[1]))
        out["systolic"] = systolic
        out["diastolic"] = draw(_number(DIASTOLIC_RANGE[0], min(systolic, DIASTOLIC_RANGE[1]), exclude_max=True))
    else:
        out["value"] = draw(_number(*RANGES[(vital_type, unit)]))
    if vital_type in ("temperature", "body_weight") or draw(st.booleans()):
        out["unit"] = unit
    return _standalone(draw, out, "vital_sign", embedded, session_key=draw(st.booleans()))


@st.composite
def monitoring_scores(draw: st.DrawFn, embedded: bool = False) -> dict[str, Any]:
    instrument = draw(st.sampled_from(sorted(SCORE_RANGES)))
    out = {
        "key": draw(keys),
        "measured_at": _iso(draw(times)),
        "instrument": instrument,
        "score": draw(st.integers(*SCORE_RANGES[instrument])),
    }
    return _standalone(draw, out, "monitoring_score", embedded, session_key=True)


@st.composite
def adverse_events(draw: st.DrawFn, embedded: bool = False) -> dict[str, Any]:
    onset = draw(times)
    event = draw(_choice(Event))
    outcome = draw(_choice(Outcome))
    out: dict[str, Any] = {
        "key": draw(keys),
        "onset_at": _iso(onset),
        "recorded_at": _iso(onset + draw(st.timedeltas(dt.timedelta(0), dt.timedelta(days=30)))),
        "event": event,
        "severity": draw(_choice(Severity)),
        "serious": outcome == "fatal" or draw(st.booleans()),
        "outcome": outcome,
    }
    if event == "other" or draw(st.booleans()):
        out["description"] = draw(texts)
    _optional(draw, out, "action_taken", _choice(Action))
    _optional(draw, out, "note", texts)
    linked = embedded or draw(st.booleans())
    if linked:
        _optional(draw, out, "causality", _choice(Causality))
    return _standalone(draw, out, "adverse_event", embedded, session_key=linked)


@st.composite
def phq9_assessments(draw: st.DrawFn, embedded: bool = False) -> dict[str, Any]:
    items = draw(st.lists(st.integers(0, 3), min_size=9, max_size=9))
    out: dict[str, Any] = {"key": draw(keys), "completed_at": _iso(draw(times)), "items": items}
    _optional(draw, out, "difficulty", _choice(Difficulty))
    if draw(st.booleans()):
        out["total"] = sum(items)
    return _standalone(draw, out, "phq9_assessment", embedded, session_key=draw(st.booleans()))


@st.composite
def answers(draw: st.DrawFn, instrument: str) -> list[Any]:
    """Valid answers to `instrument`, drawn item by item: a skipped question is null, every asked one answered.

    Skip rules are read as data (each item's enableWhen against the answers drawn before it), so this
    serves every instrument without naming one.
    """
    definition = DEFINITIONS[instrument]
    out: list[Any] = []
    for item in definition.items:
        if any(out[definition.index(rule.link_id)] is not rule.answer for rule in item.enable_when):
            out.append(None)
        elif isinstance(item.answer, YesNo):
            out.append(draw(st.booleans()))
        elif isinstance(item.answer, Choice):
            out.append(draw(st.sampled_from([option.score for option in item.answer.options])))
        else:
            out.append(draw(st.integers(item.answer.low, item.answer.high)))
    return out


@st.composite
def assessments(draw: st.DrawFn, instrument: str | None = None, embedded: bool = False) -> dict[str, Any]:
    """A valid `assessment` record of `instrument` (any when None); the total given or left out."""
    name = instrument or draw(st.sampled_from(sorted(get_args(EmbeddedInstrument) if embedded else INSTRUMENTS)))
    items = draw(answers(name))
    out: dict[str, Any] = {"key": draw(keys), "instrument": name, "completed_at": _iso(draw(times)), "items": items}
    if DEFINITIONS[name].difficulty is not None:
        _optional(draw, out, "difficulty", st.sampled_from(DIFFICULTY_ORDER))
    return _standalone(draw, out, "assessment", embedded, session_key=draw(st.booleans()))


def _standalone(draw: st.DrawFn, out: dict[str, Any], kind: str, embedded: bool, session_key: bool) -> dict[str, Any]:
    if draw(st.booleans()) or not embedded:
        out["kind"] = kind
    if not embedded:
        out["patient"] = draw(patients())
        if session_key:
            out["session_key"] = draw(keys)
    return out


@st.composite
def doses(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {"total_mg": draw(_number(0, 1000))}
    _optional(draw, out, "mg_per_kg", _number(0, 5))
    _optional(draw, out, "weight_kg", _number(2, 400))
    if "mg_per_kg" in out and "weight_kg" in out:  # the total must then agree with them (10% or 1 mg)
        expected = out["mg_per_kg"] * out["weight_kg"]
        if expected > 1000:
            del out["weight_kg"]
        else:
            out["total_mg"] = draw(st.floats(max(0, expected - 0.9), min(1000, expected + 0.9), allow_nan=False))
    if draw(st.booleans()):
        unit = draw(st.sampled_from(sorted(RATE_LIMITS)))
        value = draw(st.floats(0, RATE_LIMITS[unit], exclude_min=True, allow_nan=False))
        out["rate"] = {"unit": unit, "value": value}
    return out


def _unique_keys(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    return [c for c in children if not (c["key"] in seen or seen.add(c["key"]))]


@st.composite
def infusion_sessions(draw: st.DrawFn, max_children: int = 2) -> dict[str, Any]:
    status = draw(_choice(Status))
    start = draw(times)
    out: dict[str, Any] = {
        "kind": "infusion_session",
        "key": draw(keys),
        "patient": draw(patients()),
        "status": status,
        "started_at": _iso(start),
        "drug": "ketamine",
        "indications": draw(st.lists(_choice(Indication), min_size=1, max_size=6, unique=True)),
    }
    _optional(draw, out, "visit_id", mrns)
    if status in ("completed", "stopped") or (status != "in_progress" and draw(st.booleans())):
        minutes = draw(st.integers(1, 24 * 60))
        out["ended_at"] = _iso((start + dt.timedelta(minutes=minutes)).astimezone(draw(offsets)))
    if status in ("in_progress", "completed", "stopped") or (status != "planned" and draw(st.booleans())):
        out["dose"] = draw(doses())
    if status == "stopped" or (status == "not_done" and draw(st.booleans())):
        out["stop_reason"] = draw(texts)
    _optional(draw, out, "note", texts)
    if draw(st.booleans()):
        out["clinician"] = {"id": draw(mrns)}
        _optional(draw, out["clinician"], "name", short_texts)
    for name, strategy in (
        ("vital_signs", vital_signs),
        ("monitoring_scores", monitoring_scores),
        *([] if status == "entered_in_error" else [("adverse_events", adverse_events)]),
        ("phq9_assessments", phq9_assessments),
        ("assessments", assessments),
    ):
        children = _unique_keys(draw(st.lists(strategy(embedded=True), max_size=max_children)))
        if children or draw(st.booleans()):
            out[name] = children
    return out


RECORDS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "infusion_session": infusion_sessions(),
    "vital_sign": vital_signs(),
    "monitoring_score": monitoring_scores(),
    "adverse_event": adverse_events(),
    "phq9_assessment": phq9_assessments(),
    "assessment": assessments(),
}
any_record = st.one_of(*RECORDS.values())
