"""Every record validator's rule is in the published JSON Schema, or on the named list of rules it cannot state.

The validators are found by introspection (every `field_validator`/`model_validator` of every model in
schemas/*.py, and every function validator in the field types' `Annotated` metadata): a new one
without an entry in RULES (or TYPE_RULES) fails `test_every_validator_has_an_entry`. For a
stated rule, the record schema (schemas/json/, validated with `jsonschema`, draft 2020-12) rejects an
example the model rejects; for a rule on the cannot-state list, the model rejects its example and the
schema accepts it (so an entry whose rule became stated must move), and
tests/integration/schemathesis.toml names it, since Schemathesis then sends such bodies and gets 422.
The reverse: records the models accept (the examples and Hypothesis-generated ones) the schemas accept.
"""

from __future__ import annotations

import copy
import importlib
import pkgutil
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import AfterValidator, BaseModel, BeforeValidator

import schemas
from schemas import KINDS, RecordInvalid, parse_record, record_json_schema
from schemas.common import _allowed_char
from schemas.stated import FORBIDDEN_CLASS, WHITESPACE_CLASS
from tests.unit.examples import BASE, DROP, mutated
from tests.unit.strategies import any_record

S, V, M, A, P = "infusion_session", "vital_sign", "monitoring_score", "adverse_event", "phq9_assessment"
Q = "assessment"


def cssrs(*items: bool | None, instrument: str = "cssrs_screen") -> dict[str, Any]:
    """Changes turning the GAD-7 example into a C-SSRS screener with these answers (a fresh list each time)."""
    return {"instrument": instrument, "items": list(items), "total": DROP, "difficulty": DROP}


T, F = True, False
CSSRS = (T, F, None, None, None, T, F)  # S1 yes, S2 no (S3-S5 unasked), S6 yes, S6b no


def embedded(**fields: Any) -> dict[str, Any]:
    """The GAD-7 example as an assessment embedded in a session (no patient, session_key), with `fields`."""
    out = {k: v for k, v in BASE["assessment"].items() if k not in ("kind", "patient", "session_key")}
    return {**out, **fields}


def embedded_cssrs(*items: bool | None) -> dict[str, Any]:
    return embedded(instrument="cssrs_screen", items=list(items), total=None, difficulty=None)


SCHEMATHESIS_CONFIG = Path(__file__).resolve().parents[1] / "integration" / "schemathesis.toml"
VALIDATORS = {kind: jsonschema.Draft202012Validator(record_json_schema(kind)) for kind in KINDS}


@dataclass(frozen=True)
class Case:
    """An example of a rule broken: `changes` to the valid example record of `kind`."""

    rule: str
    kind: str
    changes: dict[str, Any]


@dataclass(frozen=True)
class Unstated:
    """A rule JSON Schema cannot state, why, and an example that only the model refuses."""

    rule: str
    why: str
    kind: str
    changes: dict[str, Any]


def bp_to(vital: str, **fields: Any) -> dict[str, Any]:
    """Changes turning the blood-pressure example into a single-valued vital sign."""
    return {"type": vital, "systolic": DROP, "diastolic": DROP, **fields}


ARITHMETIC, ORDER, CROSS = "arithmetic", "two fields compared", "across records"
# validator (qualified name) -> the cases of its rules: stated (Case) or not statable (Unstated)
RULES: dict[str, list[Case | Unstated]] = {
    "Rate._plausible": [
        Case("rate in mg/kg/h at most 10", S, {"dose.rate.value": 12}),
        Case("rate in mL/h at most 2000", S, {"dose.rate": {"unit": "mL/h", "value": 2500}}),
    ],
    "Dose._total_agrees": [
        Unstated("total_mg equals mg_per_kg x weight_kg within 10% or 1 mg", ARITHMETIC, S, {"dose.total_mg": 350}),
    ],
    "InfusionSession._ended": [
        Case("ended_at required when completed", S, {"ended_at": DROP}),
        Case("ended_at required when stopped", S, {"status": "stopped", "stop_reason": "x", "ended_at": None}),
        Case("ended_at absent while in progress", S, {"status": "in_progress"}),
        Unstated("ended_at after started_at", ORDER, S, {"ended_at": "2024-04-12T09:00:00-04:00"}),
        Unstated("infusion at most 24 hours", ARITHMETIC, S, {"ended_at": "2024-04-13T10:00:00-04:00"}),
    ],
    "InfusionSession._dose": [
        Case("dose required when completed", S, {"dose": DROP}),
        Case("dose required when in progress", S, {"status": "in_progress", "ended_at": DROP, "dose": None}),
        Case("dose absent when planned", S, {"status": "planned"}),
    ],
    "InfusionSession._unique": [Case("indications distinct", S, {"indications": ["trd", "gad", "trd"]})],
    "InfusionSession._stop_reason": [
        Case("stop_reason required when stopped", S, {"status": "stopped"}),
        Case("stop_reason only when stopped or not done", S, {"stop_reason": "x"}),
    ],
    "InfusionSession._children": [
        Case("no adverse events in an entered_in_error session", S, {"status": "entered_in_error"}),
        Unstated("embedded record's patient is the session's", CROSS, S, {"vital_signs[0].patient": {"mrn": "OTHER"}}),
        Unstated("embedded record's session_key is the session's", CROSS, S, {"adverse_events[0].session_key": "S-2"}),
        Unstated("embedded records' keys distinct within a list", CROSS, S, {"vital_signs[1].key": "V-1"}),
    ],
    "VitalSign._unit_fits_type": [
        Case("unit allowed for the type", V, {"unit": "kg"}),
        Case("unit required where two are allowed", S, {"vital_signs[0]": {**BASE[V], **bp_to("temperature")}}),
    ],
    "VitalSign._value_fits_type": [
        Case("no value for blood_pressure", V, {"value": 120}),
        Case("value required for a single-valued type", V, bp_to("heart_rate")),
        Case("heart_rate within its range", V, bp_to("heart_rate", value=400)),
        Case("temperature in Cel within its range", V, bp_to("temperature", value=50, unit="Cel")),
        Case("temperature in [degF] within its range", V, bp_to("temperature", value=37, unit="[degF]")),
        Case("spo2 at most 100", S, {"vital_signs[1].value": 101}),
    ],
    "VitalSign._systolic": [
        Case("systolic required for blood_pressure", V, {"systolic": DROP}),
        Case("systolic within its range", V, {"systolic": 350}),
        Case("systolic only for blood_pressure", V, bp_to("heart_rate", value=80, systolic=120)),
    ],
    "VitalSign._diastolic": [
        Case("diastolic required for blood_pressure", V, {"diastolic": None}),
        Case("diastolic within its range", V, {"diastolic": 10}),
        Unstated("diastolic below systolic", ORDER, V, {"diastolic": 130}),
    ],
    "VitalSign._oxygen_only_on_spo2": [
        Case("supplemental_o2 only on spo2", V, {"supplemental_o2": True}),
        Case("supplemental_o2 only on spo2, false too", V, bp_to("heart_rate", value=80, supplemental_o2=False)),
    ],
    "MonitoringScore._score_in_range": [
        Case("cadss 0-92", M, {"score": 93}),
        Case("moaas 0-5", M, {"instrument": "moaas", "score": 6}),
        Case("rass -5 to 4", M, {"instrument": "rass", "score": 10}),
    ],
    "AdverseEvent._recorded_after_onset": [
        Unstated("recorded_at not before onset_at", ORDER, A, {"recorded_at": "2024-04-12T09:00:00-04:00"}),
    ],
    "AdverseEvent._description_for_other": [Case("event other needs a description", A, {"event": "other"})],
    "AdverseEvent._fatal_is_serious": [Case("a fatal outcome is serious", A, {"outcome": "fatal"})],
    "AdverseEvent._causality_needs_session": [
        Case("causality needs session_key", A, {"session_key": DROP}),
        Case("causality needs session_key (null)", A, {"session_key": None}),
    ],
    "Phq9Assessment._total_is_sum": [Unstated("total equals the sum of the 9 items", ARITHMETIC, P, {"total": 9})],
    "Assessment._answers_fit_the_instrument": [
        Case("items count per instrument", Q, {"items": [1, 2, 1, 0, 1, 2]}),
        Case("items at most the instrument's count", Q, {"items": [1, 2, 1, 0, 1, 2, 1, 0], "total": DROP}),
        Case("a choice answer within its scores", Q, {"items[2]": 4}),
        Case("an integer answer within its range", Q, {"instrument": "madrs", "items": [7] + [0] * 9, "total": DROP}),
        Case("a C-SSRS answer is true or false", Q, cssrs(1, F, None, None, None, T, F)),
        Case("a C-SSRS question always asked is not null", Q, cssrs(None, F, None, None, None, T, F)),
        Case("C-SSRS S3 null unless S2 is yes", Q, cssrs(T, F, F, None, None, T, F)),
        Case("C-SSRS S4 answered when S2 is yes", Q, cssrs(T, T, F, None, None, T, F)),
        Case("C-SSRS S6b answered when S6 is yes", Q, cssrs(T, F, None, None, None, T, None)),
        Case("C-SSRS S6b null unless S6 is yes", Q, cssrs(T, F, None, None, None, F, F)),
        Case(
            "C-SSRS since last contact has 6 answers", Q, cssrs(T, T, F, F, F, F, None, instrument="cssrs_screen_slc")
        ),
        Case("a GAD-7 answer is not a boolean", Q, {"instrument": "gad7", "items": [True] * 7, "total": DROP}),
        Case("a PHQ-9 answer within 0-3", Q, {"instrument": "phq9", "items": [0] * 8 + [4], "total": DROP}),
        Case("an embedded assessment's item count", S, {"assessments": [embedded(items=[1, 2, 1], total=None)]}),
        Case(
            "an embedded C-SSRS S6b answered when S6 is yes",
            S,
            {"assessments": [embedded_cssrs(T, F, None, None, None, T, None)]},
        ),
    ],
    "EmbeddedAssessment._phq9_goes_in_phq9_assessments": [
        Case(
            "a PHQ-9 in a session goes in phq9_assessments",
            S,
            {"assessments": [embedded(instrument="phq9", items=[1] * 9, total=9, difficulty=None)]},
        ),
    ],
    "Assessment._difficulty_only_where_asked": [
        Case("difficulty only for PHQ-9 and GAD-7", Q, {**cssrs(*CSSRS), "difficulty": "very"}),
        Case("difficulty not for PCL-5", Q, {"instrument": "pcl5", "items": [0] * 20, "total": DROP}),
    ],
    "Assessment._total_is_the_score": [
        Case("no total for the C-SSRS screener", Q, {**cssrs(*CSSRS), "total": 0}),
        Case("no total for an embedded C-SSRS screener", S, {"assessments": [{**embedded_cssrs(*CSSRS), "total": 0}]}),
        Case("total within the instrument's range", Q, {"total": 22}),
        Unstated("total equals the instrument's score of the items", ARITHMETIC, Q, {"total": 9}),
    ],
}
# function validators of the field types (schemas/common.py `Annotated` metadata) -> their cases
TYPE_RULES: dict[str, list[Case | Unstated]] = {
    "_date_time_text": [
        Case("time as a number", V, {"measured_at": 1712927100}),
        Case("time as a string of digits", V, {"measured_at": "1712927100"}),
    ],
    "_whole_minute_offset": [
        Case("offset within 14 hours", V, {"measured_at": "2024-04-12T09:05:00+15:00"}),
        Case("time from the year 1900", M, {"measured_at": "1850-04-12T09:05:00Z"}),
    ],
    "_date_text": [
        Case("birth date a string", V, {"patient.birth_date": 19810714}),
        Case("birth date of digits", V, {"patient.birth_date": "0000086400"}),
    ],
    "_plausible_birth_date": [Case("birth date from 1900", V, {"patient.birth_date": "1899-12-31"})],
    "_no_control_chars": [
        Case("no control characters in an id", V, {"patient.mrn": "12\x003"}),
        Case("no control characters in text", S, {"note": "a\x07b"}),
        Case("no line separator in a name", V, {"patient.given": ["A\u2028B"]}),
    ],
    "_no_edge_whitespace": [
        Case("no leading whitespace in an id", V, {"patient.mrn": " 123"}),
        Case("no trailing no-break space in an id", S, {"clinician.id": "C-1\xa0"}),
    ],
    "_whole_number": [Case("an integer has no fraction", P, {"items[0]": 1.5})],
    "_answer_value": [
        Case("an answer is an integer, a boolean or null", Q, {"items[0]": "1"}),
        Case("an answer has no fraction", Q, {"items[0]": 1.5}),
    ],
}
# rules of StringConstraints (no validator function of ours) that the schema states too
CONSTRAINT_CASES = [
    Case("text not blank", S, {"note": "   "}),
    Case("name not blank", V, {"patient.family": "\u3000"}),
]
STATED = [case for cases in [*RULES.values(), *TYPE_RULES.values()] for case in cases if isinstance(case, Case)]
STATED += CONSTRAINT_CASES
UNSTATED = [case for cases in [*RULES.values(), *TYPE_RULES.values()] for case in cases if isinstance(case, Unstated)]


def _schemas_modules() -> list[Any]:
    return [importlib.import_module(f"schemas.{info.name}") for info in pkgutil.iter_modules(schemas.__path__)]


def record_validators() -> set[str]:
    """`Class.method` of every field and model validator declared in schemas/*.py (inherited ones once)."""
    found: set[str] = set()
    for module in _schemas_modules():
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__.startswith("schemas."):
                decorators = obj.__pydantic_decorators__
                for decorator in [*decorators.field_validators.values(), *decorators.model_validators.values()]:
                    found.add(decorator.func.__qualname__)
    return found


def type_validators() -> set[str]:
    """Every function validator in the `Annotated` field types of schemas/*.py (e.g. `Timestamp`)."""
    found: set[str] = set()

    def walk(annotation: Any) -> None:
        if typing.get_origin(annotation) is Annotated:
            base, *metadata = typing.get_args(annotation)
            walk(base)
            for item in metadata:
                if isinstance(item, (AfterValidator, BeforeValidator)):
                    found.add(item.func.__name__)

    for module in _schemas_modules():
        for obj in vars(module).values():
            walk(obj)
    return found


def test_every_validator_has_an_entry() -> None:
    validators = record_validators()
    assert "VitalSign._systolic" in validators and "Dose._total_agrees" in validators  # the finder finds
    assert validators == set(RULES), (
        "every validator needs a rule entry here (stated in the schema, or on the cannot-state list): "
        f"missing {sorted(validators - set(RULES))}, stale {sorted(set(RULES) - validators)}"
    )
    types = type_validators()
    assert "_whole_minute_offset" in types
    assert types == set(TYPE_RULES), (
        f"missing {sorted(types - set(TYPE_RULES))}, stale {sorted(set(TYPE_RULES) - types)}"
    )
    assert all(RULES.values()) and all(TYPE_RULES.values())


def test_the_character_classes_in_the_schema_patterns_are_the_validators() -> None:
    code_points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    whitespace = re.compile(f"[{WHITESPACE_CLASS}]")
    forbidden = re.compile(f"[{FORBIDDEN_CLASS}]")
    assert [c for c in code_points if bool(whitespace.fullmatch(c)) != c.isspace()] == []
    assert [c for c in code_points if bool(forbidden.fullmatch(c)) == _allowed_char(c)] == []


def _model_rejects(kind: str, changes: dict[str, Any]) -> dict[str, Any]:
    record = mutated(kind, changes)
    with pytest.raises(RecordInvalid):
        parse_record(copy.deepcopy(record))
    return record


@pytest.mark.parametrize("case", STATED, ids=[c.rule for c in STATED])
def test_the_schema_rejects_what_the_model_rejects(case: Case) -> None:
    record = _model_rejects(case.kind, case.changes)
    assert not VALIDATORS[case.kind].is_valid(record), f"the {case.kind} schema does not state: {case.rule}"


@pytest.mark.parametrize("case", UNSTATED, ids=[c.rule for c in UNSTATED])
def test_a_rule_json_schema_cannot_state_is_refused_by_the_model_only_and_named_for_schemathesis(
    case: Unstated,
) -> None:
    record = _model_rejects(case.kind, case.changes)
    errors = [e.message for e in VALIDATORS[case.kind].iter_errors(record)]
    assert errors == [], f"the schema states {case.rule!r} now: move it to the stated cases"
    assert case.rule in SCHEMATHESIS_CONFIG.read_text(encoding="utf-8"), (
        f"tests/integration/schemathesis.toml must name {case.rule!r} with an example"
    )


VALID: list[tuple[str, dict[str, Any]]] = [
    (S, {}),
    (S, {"status": "stopped", "stop_reason": "patient request"}),
    (S, {"status": "not_done", "stop_reason": "x", "ended_at": DROP}),
    (S, {"status": "planned", "ended_at": DROP, "dose": DROP}),
    (S, {"status": "in_progress", "ended_at": None}),
    (S, {"status": "entered_in_error", "adverse_events": []}),
    (S, {"dose.rate": {"unit": "mL/h", "value": 2000}}),
    (V, {}),
    (V, bp_to("heart_rate", value=80, unit="/min")),
    (V, bp_to("heart_rate", value=80, unit=None)),
    (V, bp_to("temperature", value=98.6, unit="[degF]")),
    (V, bp_to("body_weight", value=154, unit="[lb_av]")),
    (V, {"unit": "mm[Hg]", "value": None}),
    (M, {"instrument": "rass", "score": -5}),
    (M, {"instrument": "moaas", "score": 5}),
    (A, {"event": "other", "description": "d"}),
    (A, {"outcome": "fatal", "serious": True, "severity": "severe"}),
    (A, {"session_key": DROP, "causality": DROP}),
    (A, {"session_key": None, "causality": None}),
    (P, {"total": DROP}),
    (S, {"note": "  padded, with a\ttab and\nlines  ", "clinician.id": "C 1"}),
    (V, {"patient.mrn": "A|B,1$", "patient.birth_date": "1900-01-01", "measured_at": "2024-04-12T09:05:00+14:00"}),
    (M, {"measured_at": "1900-01-01T00:00:00.5-13:59"}),
    (Q, {"total": DROP, "difficulty": DROP, "session_key": DROP}),
    (Q, {"items[0]": 1.0}),
    (Q, cssrs(*CSSRS)),
    (Q, cssrs(T, T, F, T, F, F, None)),
    (Q, cssrs(T, T, F, F, F, F, instrument="cssrs_screen_slc")),
    (
        Q,
        {
            "instrument": "qids_sr16",
            "items": [3, 0, 1, 2, 3, 0, 0, 2, 1, 0, 1, 2, 3, 0, 1, 3],
            "total": 17,
            "difficulty": DROP,
        },
    ),
    (Q, {"instrument": "ybocs", "items": [4] * 10, "total": 40, "difficulty": DROP}),
    (Q, {"instrument": "phq9", "items": [3] * 9, "total": 27, "difficulty": "extremely"}),
    (Q, {"instrument": "pcl5", "items": [4] * 20, "total": 80, "difficulty": DROP}),
    (S, {"assessments": [embedded(), {**embedded_cssrs(*CSSRS), "key": "Q-2", "kind": "assessment"}]}),
    (S, {"status": "entered_in_error", "adverse_events": [], "assessments": [embedded_cssrs(T, T, T, F, F, F, None)]}),
]


@pytest.mark.parametrize(("kind", "changes"), VALID)
def test_the_schema_accepts_what_the_model_accepts(kind: str, changes: dict[str, Any]) -> None:
    record = mutated(kind, changes)
    parse_record(copy.deepcopy(record))
    VALIDATORS[kind].validate(record)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_record)
def test_the_schema_accepts_generated_records_the_model_accepts(record: dict[str, Any]) -> None:
    parse_record(copy.deepcopy(record))
    VALIDATORS[record["kind"]].validate(record)
