"""Every per-reading rule of the default monitoring protocol, at, just below and just above each limit.

The expectations are written here from ../shared/monitoring-protocol.md section 2 (the sheet's rules table),
not from the protocol file, so a default that drifts from the sheet fails. Readings go through the real
mappers: the interpretation on the Observation (blood pressure: on each component) is what is checked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from schemas import parse_record
from service.mappers import MappingConfig, mapper_for
from service.mappers.context import SessionContext

CONFIG = MappingConfig()
PATIENT = {"mrn": "MRN-R"}
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
END = START + dt.timedelta(minutes=40)
AT = {"before": START - dt.timedelta(minutes=10), "during": START + dt.timedelta(minutes=20)}
AT["after"] = END + dt.timedelta(minutes=30)
PHASES = ("before", "during", "after", None)  # None: unknown (the record's session is not known)
COMPLETED = SessionContext(
    key="S-R", encounter="Encounter/e", mrn="MRN-R", status="completed", started_at=START, ended_at=END
)


def _sheet_level(measure: str, value: float, phase: str | None) -> str | None:
    """The sheet's rules table, one reading alone: the level, `N`, or None (no limit in some direction)."""
    if measure == "systolic":  # H > 140, HH >= 180 (every phase); L < 90, LL < 80 (any)
        return "HH" if value >= 180 else "H" if value > 140 else "LL" if value < 80 else "L" if value < 90 else "N"
    if measure == "diastolic":  # H > 90, HH >= 110; no low limit: never N
        return "HH" if value >= 110 else "H" if value > 90 else None
    if measure == "heart_rate":  # H > 110, L < 50, LL < 40
        return "H" if value > 110 else "LL" if value < 40 else "L" if value < 50 else "N"
    if measure == "respiratory_rate":  # H > 24, HH > 30, L < 10, LL < 8
        return "HH" if value > 30 else "H" if value > 24 else "LL" if value < 8 else "L" if value < 10 else "N"
    if measure == "spo2":  # L < 94, LL < 90; 100% is the top of the scale
        return "LL" if value < 90 else "L" if value < 94 else "N"
    if phase == "before":  # MOAA/S and CADSS: during and after only (unknown: the strictest of any phase)
        return None
    if measure == "moaas":  # AA <= 2; A below the pre-infusion score, per reading below 5
        return "AA" if value <= 2 else "A" if value < 5 else "N"
    assert measure == "cadss"  # A > 4 and above the pre-infusion score, per reading above 4
    return "A" if value > 4 else "N"


# (measure, limit, whole units only): each limit is tried at, just below and just above
LIMITS: list[tuple[str, float, bool]] = [
    *[("systolic", v, False) for v in (140, 180, 90, 80)],
    *[("diastolic", v, False) for v in (90, 110)],
    *[("heart_rate", v, False) for v in (110, 50, 40)],
    *[("respiratory_rate", v, False) for v in (24, 30, 10, 8)],
    *[("spo2", v, False) for v in (94, 90)],
    *[("moaas", v, True) for v in (5, 2)],
    ("cadss", 4, True),
]


def _cases() -> list[tuple[str, float, str | None]]:
    out = []
    for measure, limit, whole in LIMITS:
        steps = (-1, 0, 1) if whole else (-1, -0.1, 0, 0.1, 1)
        for step in steps:
            value = round(limit + step, 1)
            if measure == "moaas" and value > 5:  # the top of the scale
                continue
            out.extend((measure, value, phase) for phase in PHASES)
    return out


def _record(measure: str, value: float, phase: str | None) -> dict[str, Any]:
    when = (AT[phase] if phase else START).isoformat()
    base: dict[str, Any] = {"key": f"R-{measure}", "patient": PATIENT, "session_key": "S-R", "measured_at": when}
    if measure in ("moaas", "cadss"):
        return {**base, "kind": "monitoring_score", "instrument": measure, "score": int(value)}
    if measure in ("systolic", "diastolic"):  # the other of the pair well inside its own limits
        pair = {"systolic": value, "diastolic": 70} if measure == "systolic" else {"systolic": 150, "diastolic": value}
        if pair["diastolic"] >= pair["systolic"]:
            pair["systolic"] = pair["diastolic"] + 20
        return {**base, "kind": "vital_sign", "type": "blood_pressure", **pair}
    return {**base, "kind": "vital_sign", "type": measure, "value": value}


def _mapped(record: dict[str, Any], phase: str | None) -> dict[str, Any]:
    parsed = parse_record(record)
    ctx = COMPLETED if phase else None  # None: the default context of a key alone (offline), phase unknown
    return mapper_for(parsed.kind).to_fhir_json(parsed, CONFIG, ctx)[0]


def _element(resource: dict[str, Any], measure: str) -> dict[str, Any]:
    if measure in ("systolic", "diastolic"):
        return resource["component"][0 if measure == "systolic" else 1]
    return resource


def _level(element: dict[str, Any]) -> str | None:
    found = element.get("interpretation")
    if found is None:
        return None
    assert len(found) == 1 and len(found[0]["coding"]) == 1
    coding = found[0]["coding"][0]
    assert coding["system"] == "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
    return coding["code"]


@pytest.mark.parametrize(("measure", "value", "phase"), _cases())
def test_each_default_rule_at_just_below_and_just_above_its_limit(
    measure: str, value: float, phase: str | None
) -> None:
    record = _record(measure, value, phase)
    element = _element(_mapped(record, phase), measure)
    assert _level(element) == _sheet_level(measure, value, phase), (measure, value, phase)


@pytest.mark.parametrize("phase", PHASES)
def test_both_operators_of_every_x_over_y_rule_flag_the_blood_pressure(phase: str | None) -> None:
    """`SBP x OR DBP y`: either alone raises its own component, and a reading with both raises both."""
    cases = [
        ((141, 80), ("H", None)),  # systolic alone over 140 (diastolic: no low limit, so never N)
        ((130, 91), ("N", "H")),  # diastolic alone over 90
        ((180, 80), ("HH", None)),  # systolic alone at 180
        ((150, 110), ("H", "HH")),  # diastolic alone at 110
        ((212, 124), ("HH", "HH")),
        ((140, 90), ("N", None)),  # at both H limits: not above them; diastolic has no low limit
        ((179, 109), ("H", "H")),  # just below both HH limits
    ]
    for (systolic, diastolic), expected in cases:
        record = _record("systolic", systolic, phase) | {"systolic": systolic, "diastolic": diastolic}
        resource = _mapped(record, phase)
        got = tuple(_level(c) for c in resource["component"])
        assert got == expected, ((systolic, diastolic), phase)
        assert "interpretation" not in resource and "referenceRange" not in resource  # on the components only


def test_n_only_where_every_direction_was_checked() -> None:
    """Diastolic has no low limit: never N, even at a normal value; systolic, heart rate, SpO2 do."""
    bp = _mapped(_record("systolic", 120, "during") | {"diastolic": 75}, "during")
    assert [_level(c) for c in bp["component"]] == ["N", None]
    assert [r["type"]["coding"][0]["code"] for r in bp["component"][1]["referenceRange"]] == ["normal", "treatment"]
    assert "low" not in bp["component"][1]["referenceRange"][0]
    for measure, value in (("heart_rate", 80), ("spo2", 98), ("respiratory_rate", 14)):
        assert _level(_mapped(_record(measure, value, "during"), "during")) == "N"


@pytest.mark.parametrize("vital", ["temperature", "body_weight"])
def test_temperature_and_weight_get_no_interpretation_and_no_range(vital: str) -> None:
    unit, value = ("Cel", 41.5) if vital == "temperature" else ("kg", 400)
    record = {**_record("heart_rate", 0, "during"), "type": vital, "value": value, "unit": unit}
    for phase in PHASES:
        resource = _mapped(record, phase)
        assert "interpretation" not in resource and "referenceRange" not in resource
        assert ". " not in resource["text"]["div"]  # the narrative names no interpretation either


def test_rass_has_no_rule_and_gets_no_interpretation() -> None:
    record = {**_record("moaas", 0, "during"), "instrument": "rass", "score": -5}
    resource = _mapped(record, "during")
    assert "interpretation" not in resource and "referenceRange" not in resource


def test_scores_carry_a_or_aa_with_ranges_and_before_the_infusion_none() -> None:
    moaas = _mapped(_record("moaas", 1, "during"), "during")
    assert _level(moaas) == "AA"
    normal, treatment = moaas["referenceRange"]
    assert normal["low"]["value"] == 5 and treatment["low"]["value"] == 3  # A below 5; AA at or below 2
    assert "pre-infusion score" in normal["text"]  # 5 stands for the pre-infusion score
    cadss = _mapped(_record("cadss", 12, "after"), "after")
    assert _level(cadss) == "A" and [r["high"]["value"] for r in cadss["referenceRange"]] == [4]
    before = _mapped(_record("moaas", 1, "before"), "before")
    assert "interpretation" not in before and "referenceRange" not in before


def test_reference_ranges_name_the_protocol_its_version_the_phase_and_the_exact_rule() -> None:
    resource = _mapped(_record("systolic", 212, "during") | {"diastolic": 124}, "during")
    normal, treatment = resource["component"][0]["referenceRange"]
    meaning = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"
    assert normal["type"]["coding"] == [{"system": meaning, "code": "normal", "display": "Normal Range"}]
    assert treatment["type"]["coding"] == [{"system": meaning, "code": "treatment", "display": "Treatment Range"}]
    assert (normal["low"]["value"], normal["high"]["value"]) == (90, 140)  # inclusive bounds of "normal"
    assert (treatment["low"]["value"], treatment["high"]["value"]) == (80, 179)  # ">= 180" is outside 179
    for text in (normal["text"], treatment["text"]):
        assert text.startswith("Ketamine infusion monitoring, version 1, during the infusion: ")
    assert "HH at or above 180 mmHg (recheck now)" in treatment["text"]
    before = _mapped(_record("systolic", 212, "before") | {"diastolic": 124}, "before")
    assert "(hold for clinician review)" in before["component"][0]["referenceRange"][1]["text"]
    assert "Systolic critical high, diastolic critical high" in resource["text"]["div"]


def test_an_unknown_phase_applies_the_strictest_limit_of_any_phase_and_says_so() -> None:
    """Offline (no session known): MOAA/S has rules only during and after; unknown applies them."""
    resource = _mapped(_record("moaas", 4, None), None)
    assert _level(resource) == "A"
    assert all(
        "phase unknown" in r["text"] and "strictest limit of any phase" in r["text"] for r in resource["referenceRange"]
    )
    assert "recheck now" not in str(_mapped(_record("systolic", 200, None), None))  # a phase's action is not said


@pytest.mark.parametrize(
    ("status", "phase"),
    [("planned", None), ("entered_in_error", None), ("not_done", "before"), ("in_progress", "during")],
)
def test_the_session_status_decides_whether_its_times_place_a_reading(status: str, phase: str | None) -> None:
    """Planned: the record may be stale once the infusion starts, so unknown (strictest); not done: no
    infusion took place, so before; in progress: open-ended."""
    ctx = SessionContext(key="S-R", encounter="Encounter/e", status=status, started_at=START, ended_at=None)
    assert ctx.phase(START + dt.timedelta(minutes=5)) == phase
    record = parse_record(_record("moaas", 1, "during"))
    level = _level(mapper_for(record.kind).to_fhir_json(record, CONFIG, ctx)[0])
    assert level == (None if phase == "before" else "AA")
