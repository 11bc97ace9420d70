"""Example monitoring charts of three demo sessions (normal, hypertensive, desaturating) as PNG files: `make charts`.

The sessions are the first of each kind in the demo corpus of seed 1. Every reading goes through the real mappers
with its session, so the chart marks what an EHR receives: the interpretation on each Observation (blood pressure:
on each component) against the shipped protocol. The time the discharge criteria were met is the session
summary's to compute; these examples do not draw it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from schemas import parse_record
from schemas.session import InfusionSession
from service.demo.stream import EMBEDDED_LISTS, generate_records
from service.mappers import MappingConfig, codes, mapper_for
from service.mappers.session import session_context
from service.monitoring import Protocol, default_protocol
from service.monitoring.chart import PNG, ChartInput, Point, marked, protocol_limits, render

SEED, MOST_PATIENTS = 1, 60
OUT = Path(__file__).resolve().parents[2] / "docs" / "charts"
KINDS = ("normal", "hypertensive", "desaturating")
Json = dict[str, Any]
_COMPONENTS = {codes.BP_SYSTOLIC.code: "systolic", codes.BP_DIASTOLIC.code: "diastolic"}
_SINGLE = {codes.VITALS["heart_rate"].codes[0].code: "heart_rate", codes.VITALS["spo2"].codes[0].code: "spo2"}


def _level(element: Json) -> str | None:
    for concept in element.get("interpretation", []):
        for coding in concept.get("coding", []):
            if coding.get("system") == codes.V3_OBSERVATION_INTERPRETATION:
                return str(coding["code"])
    return None


def observation_points(observation: Json) -> Iterator[tuple[str, Point]]:
    """(measure, reading) of a vital-sign Observation as FHIR JSON: systolic and diastolic from a blood pressure's
    components, heart rate and SpO2 from the value; each with its interpretation code."""
    at = datetime.fromisoformat(observation["effectiveDateTime"])
    codes_ = {c.get("code") for c in observation["code"].get("coding", []) if c.get("system") == codes.LOINC}
    for component in observation.get("component", []):
        for coding in component["code"].get("coding", []):
            measure = _COMPONENTS.get(coding.get("code", "")) if coding.get("system") == codes.LOINC else None
            if measure and "valueQuantity" in component:
                yield measure, Point(at, float(component["valueQuantity"]["value"]), _level(component))
    for code in codes_:
        if code in _SINGLE and "valueQuantity" in observation:
            yield _SINGLE[code], Point(at, float(observation["valueQuantity"]["value"]), _level(observation))


def chart_input(session: Json, children: list[Json], protocol: Protocol) -> ChartInput:
    """The chart of a demo session (its record and its children's records, embedded or not)."""
    config = MappingConfig(protocol=protocol)
    record = parse_record(session)
    assert isinstance(record, InfusionSession) and record.started_at is not None
    context = session_context(record, config)
    series: dict[str, list[Point]] = {"systolic": [], "diastolic": [], "heart_rate": [], "spo2": []}
    mapper = mapper_for("vital_sign")
    for child in children:
        if child["kind"] != "vital_sign":
            continue
        vital = parse_record({**child, "patient": session["patient"]})
        for observation in mapper.to_fhir_json(vital, config, context):
            for measure, point in observation_points(observation):
                series[measure].append(point)
    return ChartInput(
        session_key=record.key,
        started_at=record.started_at,
        ended_at=record.ended_at,
        limits=protocol_limits(protocol),
        protocol_title=protocol.title,
        systolic=_in_time_order(series["systolic"]),
        diastolic=_in_time_order(series["diastolic"]),
        heart_rate=_in_time_order(series["heart_rate"]),
        spo2=_in_time_order(series["spo2"]),
    )


def _in_time_order(points: list[Point]) -> tuple[Point, ...]:
    return tuple(sorted(points, key=lambda p: p.at))


def _sessions(patients: int, seed: int) -> Iterator[tuple[Json, list[Json]]]:
    """Each completed session of the corpus with its children, in corpus order."""
    held: tuple[Json, list[Json]] | None = None
    for line in generate_records(patients, seed):
        if line["kind"] == "infusion_session":
            if held is not None:
                yield held
            children = [{**c, "kind": kind} for kind, name in EMBEDDED_LISTS.items() for c in line.get(name, [])]
            held = (line, children) if line["status"] == "completed" else None
        elif held is not None and line.get("session_key") == held[0]["key"]:
            held[1].append(line)
    if held is not None:
        yield held


def kind_of(chart: ChartInput) -> str | None:
    """`normal` (no reading out of limit), `hypertensive` (two critical blood pressures), `desaturating` (a critical
    SpO2), or None (another kind of session)."""
    found = marked(chart)
    if not found:
        return "normal"
    if len({m.point.at for m in found if m.measure in ("systolic", "diastolic") and m.tier == 2}) >= 2:
        return "hypertensive"
    if any(m.measure == "spo2" and m.tier == 2 for m in found):
        return "desaturating"
    return None


def _remarkable(children: list[Json]) -> bool:
    """Whether a session has a blood pressure of 180/110 or more, or an SpO2 below 90 (before any mapping)."""
    for child in children:
        if child["kind"] == "vital_sign" and child["type"] == "blood_pressure":
            if child["systolic"] >= 180 or child["diastolic"] >= 110:
                return True
        elif child["kind"] == "vital_sign" and child["type"] == "spo2" and child["value"] < 90:
            return True
    return False


def examples(protocol: Protocol | None = None) -> dict[str, ChartInput]:
    """The first session of each kind in the demo corpus (seed 1)."""
    protocol = protocol or default_protocol()
    out: dict[str, ChartInput] = {}
    for session, children in _sessions(MOST_PATIENTS, SEED):
        if "normal" in out and not _remarkable(children):
            continue  # only a normal session could be drawn from it, and one is found
        chart = chart_input(session, children, protocol)
        kind = kind_of(chart)
        if kind is not None and kind not in out:
            out[kind] = chart
        if len(out) == len(KINDS):
            return {kind: out[kind] for kind in KINDS}
    raise LookupError(f"the demo corpus of seed {SEED} lacks {sorted(set(KINDS) - set(out))}")


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or [str(OUT)])[0])
    out.mkdir(parents=True, exist_ok=True)
    for kind, chart in examples().items():
        path = out / f"{kind}.png"
        path.write_bytes(render(chart, PNG))
        print(f"wrote {path} (session {chart.session_key})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
