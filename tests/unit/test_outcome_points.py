"""Points from the Observations a server holds (service/outcomes/points.py), without a server: our mapped
assessments of every instrument and PHQ-9s written as `phq9_assessment`, other systems' panels and lone
totals, retracted ones left out, and the same assessment counted once (ours kept)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import parse_record
from schemas.assessment import INSTRUMENTS
from service.instruments import DEFINITIONS, definition, score, triage
from service.mappers import MappingConfig, codes, mapper_for
from service.outcomes import read_points
from service.outcomes.points import Point, counted_once
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.strategies import answers

CONFIG = MappingConfig()
AT = "2024-03-01T09:00:00-05:00"
LOINC = codes.LOINC


def ours(kind: str, key: str, at: str = AT, **fields: Any) -> list[dict[str, Any]]:
    """The Observations our mapper writes for a record (no session)."""
    record = {**copy.deepcopy(EXAMPLES[kind]), "key": key, "completed_at": at, **fields}
    for name in ("session_key", "total", "difficulty"):
        if name not in fields:
            record.pop(name, None)
    parsed = parse_record(record)  # a PHQ-9 sent as `assessment` is the phq9_assessment of its key
    resources = mapper_for(parsed.kind).to_fhir_json(parsed, CONFIG)
    return [copy.deepcopy(r) for r in resources if r["resourceType"] == "Observation"]


def phq9(key: str, items: list[int], at: str = AT) -> list[dict[str, Any]]:
    return ours("phq9_assessment", key, at, items=items)


def theirs(id_: str, code: str, at: str = AT, members: list[str] | None = None, **value: Any) -> dict[str, Any]:
    """An Observation another system wrote with a LOINC code (no identifier of ours)."""
    out = {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": at,
        **value,
    }
    if members is not None:
        out["hasMember"] = [{"reference": f"Observation/{m}"} for m in members]
    return out


def part(resources: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in resources if r["identifier"][0]["value"].endswith(f"/{name}"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), instrument=st.sampled_from(sorted(INSTRUMENTS)))
def test_each_instrument_we_write_reads_back_as_its_point(data: st.DataObject, instrument: str) -> None:
    defn = definition(instrument)
    items = data.draw(answers(instrument))
    resources = ours("assessment", "a-1", instrument=instrument, items=items)
    ((name, (held,)),) = read_points(resources, CONFIG).items()
    assert name == instrument and held.key == "a-1" and held.date == AT, (name, held)
    assert held.total == (score(defn, items).total if defn.total is not None else None)
    assert held.triage == (triage(defn, items).code if defn.triage is not None else None)
    safety_items = {rule.link_id for rule in defn.safety.rules}
    assert held.answers == {
        item.link_id: value
        for item, value in zip(defn.items, items, strict=True)
        if item.link_id in safety_items and value is not None
    }


def test_a_phq9_written_as_phq9_assessment_is_a_phq9_point_with_item_9() -> None:
    ((name, (held,)),) = read_points(phq9("p-1", [2, 2, 1, 1, 1, 1, 1, 1, 3]), CONFIG).items()
    assert (name, held.key, held.total, dict(held.answers)) == ("phq9", "p-1", 13, {"9": 3})


def test_retracted_assessments_and_the_members_of_a_retracted_panel_are_left_out() -> None:
    kept = phq9("p-1", [1] * 9)
    whole = phq9("p-2", [3] * 9, at="2024-02-01T09:00:00Z")
    for resource in whole:
        resource["status"] = codes.ENTERED_IN_ERROR
    panel_only = ours("assessment", "g-1", "2024-04-01T09:00:00Z", instrument="gad7", items=[1] * 7)
    part(panel_only, "panel")["status"] = codes.ENTERED_IN_ERROR  # its live total goes with it
    points = read_points(kept + whole + panel_only, CONFIG)
    assert {name: [p.key for p in held] for name, held in points.items()} == {"phq9": ["p-1"]}


def test_another_systems_panel_and_lone_total_are_read_by_their_codes() -> None:
    observations = [
        theirs("t9", "44260-8", valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA6570-1"}]}),
        theirs("tt", "44261-6", valueInteger=14),
        theirs("tp", "44249-1", members=["t9", "tt"]),
        theirs("g", "70274-6", at="2024-03-02T09:00:00Z", valueQuantity={"value": 11.0}),  # GAD-7 total alone
    ]
    points = read_points(observations, CONFIG)
    assert points["phq9"] == [Point("phq9", None, AT, 14, None, {"9": 2}, "tp")]
    assert points["gad7"] == [Point("gad7", None, "2024-03-02T09:00:00Z", 11, None, {}, "g")]


def test_a_total_out_of_range_or_an_answer_code_not_of_the_item_is_not_read() -> None:
    observations = [
        theirs("t9", "44260-8", valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA33-6"}]}),
        theirs("tt", "44261-6", valueInteger=40),
        theirs("tp", "44249-1", members=["t9", "tt"]),
    ]
    (held,) = read_points(observations, CONFIG)["phq9"]
    assert (held.total, dict(held.answers)) == (None, {})  # kept, as unknown, never as a made-up value


def test_the_same_assessment_from_another_system_is_counted_once_and_ours_is_kept() -> None:
    mine = phq9("p-1", [2, 2, 2, 2, 2, 2, 2, 2, 0])  # total 16, item 9 = 0
    same_instant = "2024-03-01T14:00:00Z"  # AT in UTC
    copy_total = theirs("x-total", "44261-6", at=same_instant, valueQuantity={"value": 16})
    other_total = theirs("y-total", "44261-6", at=same_instant, valueInteger=17)  # another assessment
    (kept, other) = sorted(read_points([copy_total, other_total, *mine], CONFIG)["phq9"], key=lambda p: p.total or 0)
    assert (kept.key, kept.total, dict(kept.answers)) == ("p-1", 16, {"9": 0})
    assert (other.key, other.total) == (None, 17)


def test_two_other_systems_copies_are_one_point_and_an_answer_only_one_holds_is_kept() -> None:
    a_total = theirs("a-total", "44261-6", valueInteger=9)
    b_item9 = theirs("b-9", "44260-8", valueCodeableConcept={"coding": [{"system": LOINC, "code": "LA6569-3"}]})
    b_total = theirs("b-total", "44261-6", valueInteger=9)
    b_panel = theirs("b-panel", "44249-1", members=["b-9", "b-total"])
    (held,) = read_points([a_total, b_item9, b_total, b_panel], CONFIG)["phq9"]
    assert (held.total, dict(held.answers), held.source) == (9, {"9": 1}, "a-total")


def test_a_lone_safety_answer_joins_the_lone_total_taken_with_it_or_stands_alone() -> None:
    item12 = theirs("q12", "x", valueInteger=2)
    item12["code"] = {
        "coding": [{"system": f"{CONFIG.local_code_system_base}/instrument", "code": "qids-sr16-item-12"}]
    }
    total = theirs("qt", "x", valueInteger=15)
    total["code"] = {"coding": [{"system": f"{CONFIG.local_code_system_base}/instrument", "code": "qids-sr16-total"}]}
    (joined,) = read_points([item12, total], CONFIG)["qids_sr16"]
    assert (joined.total, dict(joined.answers)) == (15, {"12": 2})
    (alone,) = read_points([item12], CONFIG)["qids_sr16"]
    assert (alone.total, dict(alone.answers)) == (None, {"12": 2})


def test_another_systems_cssrs_panel_without_a_triage_gets_it_from_complete_answers() -> None:
    def item(id_: str, code: str, yes: bool) -> dict[str, Any]:
        return theirs(id_, code, valueBoolean=yes)

    answers = {"93246-7": True, "93247-5": True, "93248-3": True, "93249-1": False, "93250-9": False}
    items = [item(f"s{n}", code, yes) for n, (code, yes) in enumerate(answers.items())]
    items.append(item("s6", "93267-3", False))
    panel = theirs("c", "93373-9", members=[i["id"] for i in items])
    (held,) = read_points([*items, panel], CONFIG)["cssrs_screen"]
    assert held.triage == "moderate" and held.answers["S3"] is True
    (partial,) = read_points([*items[:-1], panel], CONFIG)["cssrs_screen"]  # S6 missing: no triage guessed
    assert partial.triage is None


def test_counted_once_keeps_each_of_our_records() -> None:
    a = Point("gad7", "a", AT, 8, source="1")
    b = Point("gad7", "b", AT, 8, source="2")  # two records of ours at the same instant: both kept
    c = Point("gad7", None, "2024-03-01T14:00:00Z", 8, source="0")
    assert sorted(p.key or "" for p in counted_once([c, b, a])) == ["a", "b"]


def test_every_definition_has_a_panel_code_the_reader_knows() -> None:
    from service.outcomes.index import code_index

    index = code_index(CONFIG)
    assert sorted(index.panels.values()) == sorted(DEFINITIONS)
    assert index.triage in index.tokens(["cssrs_screen"]) and index.triage not in index.tokens(["gad7"])
