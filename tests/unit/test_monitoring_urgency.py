"""Which writes refresh their session's Flag before the answer: a reading that meets a confirmed rule, a correction."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from schemas import parse_record
from service.monitoring import default_protocol
from service.monitoring.condition import parse_condition
from service.monitoring.model import READINGS
from service.monitoring.urgency import corrected, may_raise, urgent
from service.sync.outcomes import WriteOutcome, WrittenResource
from tests.monitoring_sessions import bp, score, session, vital

PROTOCOL = default_protocol()
MRN = "MRN-URGENT"


def reading(body: dict[str, Any], kind: str = "vital_sign") -> Any:
    return parse_record({**body, "kind": kind, "patient": {"mrn": MRN}, "session_key": "S-U"})


# Each default confirmed rule's condition at its limit (meets), and just short of it (does not).
AT_AND_SHORT = [
    (bp("b", 10, 180, 80), bp("b", 10, 179, 80)),
    (bp("b", 10, 120, 110), bp("b", 10, 120, 109)),
    (vital("h", 10, "heart_rate", 121), vital("h", 10, "heart_rate", 120)),  # > 120
    (vital("h", 10, "heart_rate", 39), vital("h", 10, "heart_rate", 40)),  # < 40
    (vital("o", 10, "spo2", 89), vital("o", 10, "spo2", 90)),  # < 90
    (bp("b", 10, 79, 50), bp("b", 10, 80, 50)),  # < 80
]


@pytest.mark.parametrize(("meets", "short"), AT_AND_SHORT)
def test_a_reading_that_meets_a_confirmed_rule_is_urgent_one_just_short_is_not(
    meets: dict[str, Any], short: dict[str, Any]
) -> None:
    assert may_raise(reading(meets), PROTOCOL)
    assert not may_raise(reading(short), PROTOCOL)


def test_scores_and_embedded_readings_are_judged_too() -> None:
    assert may_raise(reading(score("m", 10, "moaas", 2), "monitoring_score"), PROTOCOL)
    assert not may_raise(reading(score("m", 10, "moaas", 3), "monitoring_score"), PROTOCOL)
    assert not may_raise(reading(score("c", 10, "cadss", 40), "monitoring_score"), PROTOCOL)  # no confirmed rule
    calm = parse_record({**session("S-U", MRN), "vital_signs": [bp("b", 10, 130, 80)]})
    high = parse_record({**session("S-U", MRN), "vital_signs": [bp("b", 10, 130, 80), bp("c", 20, 201, 90)]})
    assert not may_raise(calm, PROTOCOL) and may_raise(high, PROTOCOL)
    low = parse_record({**session("S-U", MRN), "monitoring_scores": [score("m", 10, "moaas", 1)]})
    assert may_raise(low, PROTOCOL)


def test_a_rule_against_the_pre_infusion_score_makes_any_reading_of_its_measure_urgent() -> None:
    rule = PROTOCOL.confirmed["over_sedation"]
    against_baseline = dataclasses.replace(rule, condition=parse_condition("moaas < pre_infusion", READINGS["moaas"]))
    clinic = dataclasses.replace(PROTOCOL, confirmed={**PROTOCOL.confirmed, "over_sedation": against_baseline})
    assert may_raise(reading(score("m", -5, "moaas", 5), "monitoring_score"), clinic)  # a new baseline, even
    assert not may_raise(reading(vital("t", 10, "temperature", 37, unit="Cel")), clinic)


def test_a_rewritten_reading_or_session_is_a_correction_a_first_write_or_a_no_op_is_not() -> None:
    def w(resource_type: str, outcome: WriteOutcome) -> WrittenResource:
        return WrittenResource(resource_type, "x", "2", outcome)

    assert corrected([w("Observation", WriteOutcome.updated)])
    assert corrected([w("Procedure", WriteOutcome.updated)])
    assert not corrected([w("Observation", WriteOutcome.created), w("Observation", WriteOutcome.unchanged)])
    assert not corrected([w("Patient", WriteOutcome.updated), w("Encounter", WriteOutcome.updated)])
    calm = reading(bp("b", 10, 130, 80))
    assert not urgent([calm], [w("Observation", WriteOutcome.created)], PROTOCOL)
    assert urgent([calm], [w("Observation", WriteOutcome.updated)], PROTOCOL)
