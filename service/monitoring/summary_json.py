"""The summary as the JSON `GET /v1/infusion-sessions/{key}/$monitoring-summary` answers (schema:
service/routes/summary_schemas.py). Record keys and resource ids only, never a name, an MRN or free text."""

from __future__ import annotations

from typing import Any

from service.mappers.build import number, when
from service.monitoring.discharge import DischargeResult
from service.monitoring.readings import Reading
from service.monitoring.summary import Judged, Statistic, Summary, reading_level
from service.monitoring.words import conclusion, discharge_words, rule_words

Json = dict[str, Any]
SESSION_FIELDS_NOTE = "Modelled on the esketamine (Spravato) REMS patient monitoring form"


def reading_json(reading: Reading | None) -> Json | None:
    """A reading: its key, resource, time, phase, values, and the level it carries on the server."""
    if reading is None:
        return None
    out: Json = {
        "key": reading.key,
        "observation": reading.ref,
        "at": when(reading.at),
        "phase": reading.phase,
        "values": {m: number(v) for m, v in reading.values.items()},
        "level": reading_level(reading),
    }
    if reading.supplemental_o2 is not None:
        out["supplemental_o2"] = reading.supplemental_o2
    return out


def _point(statistic: Statistic, reading: Reading) -> Json:
    change = statistic.from_baseline(reading)
    return {
        "value": number(statistic.value(reading)),
        "at": when(reading.at),
        "key": reading.key,
        "observation": reading.ref,
        "from_baseline": None if change is None else number(change),
    }


def _statistic(statistic: Statistic) -> Json:
    return {
        "measure": statistic.measure,
        "count": statistic.count,
        "baseline": None if statistic.baseline is None else number(statistic.baseline),
        "peak": _point(statistic, statistic.peak),
        "trough": _point(statistic, statistic.trough),
    }


def _judged(item: Judged) -> Json:
    if item.reading is not None:
        return {"reading": reading_json(item.reading), "level": item.level, "adverse_event": None}
    assert item.event is not None
    event = item.event
    return {
        "reading": None,
        "level": None,
        "adverse_event": {"key": event.key, "event": event.event, "onset_at": when(event.onset_at)},
    }


def discharge_json(result: DischargeResult) -> Json:
    return {
        "met_from": None if result.met_from is None else when(result.met_from),
        "statement": discharge_words(result),
        "criteria": [
            {
                "name": c.name,
                "status": c.status,
                "detail": c.detail,
                "since": None if c.since is None else when(c.since),
            }
            for c in result.criteria
        ],
    }


def as_json(summary: Summary) -> Json:
    """The summary's JSON answer (see the module)."""
    held, protocol = summary.held, summary.protocol
    return {
        "session_key": held.key,
        "session_status": held.status,
        "infusion": {
            "started_at": None if held.started_at is None else when(held.started_at),
            "ended_at": None if held.ended_at is None else when(held.ended_at),
        },
        "preliminary": summary.in_progress,
        "protocol": {
            "name": protocol.name,
            "version": protocol.version,
            "weakened": [w.describe() for w in summary.weakened],
        },
        "readings": len(held.readings),
        "baseline": {kind: reading_json(reading) for kind, reading in summary.baseline.items()},
        "statistics": [_statistic(s) for s in summary.statistics],
        "rises": [
            {
                "reading": reading_json(r.reading),
                "systolic_rise": number(r.systolic),
                "diastolic_rise": number(r.diastolic),
                "level": r.level,
            }
            for r in summary.rises
        ],
        "levels": [
            {"reading": kind, "level": level, "count": len(found), "keys": [r.key for r in found]}
            for kind, by_level in summary.levels.items()
            for level, found in by_level.items()
        ],
        "confirmed": [
            {
                "rule": f.rule.name,
                "description": rule_words(f.rule),
                "source": f.rule.source,
                "readings": [reading_json(r) for r in f.readings],
            }
            for f in summary.fired
        ],
        "session_fields": {
            "note": SESSION_FIELDS_NOTE,
            "blood_pressure_before": reading_json(summary.bp_before),
            "blood_pressure_near_40_min": reading_json(summary.bp_near_40_min),
            "blood_pressure_at_completion": reading_json(summary.bp_at_completion),
            "sedation_events": [_judged(j) for j in summary.sedation],
            "dissociation_events": [_judged(j) for j in summary.dissociation],
            "respiratory_events": [_judged(j) for j in summary.respiratory],
            "minutes_monitored": None
            if summary.minutes_monitored is None
            else number(round(summary.minutes_monitored, 1)),
            "discharge_criteria_met_from": None
            if summary.discharge.met_from is None
            else when(summary.discharge.met_from),
        },
        "lowest_moaas": reading_json(summary.lowest_moaas),
        "peak_cadss": reading_json(summary.peak_cadss),
        "adverse_events": [
            {
                "key": e.key,
                "event": e.event,
                "onset_at": when(e.onset_at),
                "severity": e.severity,
                "serious": e.serious,
                "outcome": e.outcome,
            }
            for e in held.events
        ],
        "discharge": discharge_json(summary.discharge),
        "conclusion": conclusion(summary),
    }
