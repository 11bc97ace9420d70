"""The `assessment` kind per instrument: random valid answers map, and the total, band, triage, POS items
and Flag in the resources agree with a straightforward reading of instruments.md written here, apart
from service/instruments; invalid answers are refused naming the field; restricted texts are allow-listed.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import RecordInvalid, parse_record, record_json_schema
from schemas.assessment import INSTRUMENTS as ASSESSMENT_INSTRUMENTS
from service.instruments import DEFINITIONS
from service.instruments.model import YesNo
from service.mappers import MappingConfig, codes, mapper_for
from service.mappers.fhir import to_json
from tests.unit.examples import PATIENT
from tests.unit.strategies import answers

CONFIG = MappingConfig()
SCHEMA = jsonschema.Draft202012Validator(record_json_schema("assessment"))
INSTRUMENTS = sorted(ASSESSMENT_INSTRUMENTS)  # PHQ-9 included: it maps as the phq9_assessment it is
T0 = "2024-04-12T09:05:00-04:00"

# --- instruments.md sections 1 and 3, read independently of service/instruments ---


def _total(instrument: str, a: list[Any]) -> int | None:
    if instrument == "qids_sr16":
        return max(a[0:4]) + a[4] + max(a[5:9]) + sum(a[9:14]) + max(a[14:16])
    if instrument.startswith("cssrs"):
        return None
    return sum(a)


def _subscales(instrument: str, a: list[Any]) -> dict[str, int]:
    if instrument == "pcl5":
        return {
            "cluster-b": sum(a[0:5]),
            "cluster-c": sum(a[5:7]),
            "cluster-d": sum(a[7:14]),
            "cluster-e": sum(a[14:20]),
        }
    if instrument == "ybocs":
        return {"obsessions": sum(a[0:5]), "compulsions": sum(a[5:10])}
    return {}


BANDS: dict[str, list[tuple[int, str]]] = {  # (upper bound inclusive, code)
    "phq9": [(4, "minimal"), (9, "mild"), (14, "moderate"), (19, "moderately-severe"), (27, "severe")],
    "gad7": [(4, "minimal"), (9, "mild"), (14, "moderate"), (21, "severe")],
    "pcl5": [(32, "below-cut-point"), (80, "probable-ptsd")],
    "qids_sr16": [(5, "none"), (10, "mild"), (15, "moderate"), (20, "severe"), (27, "very-severe")],
    "madrs": [(6, "normal"), (19, "mild"), (34, "moderate"), (60, "severe")],
    "ybocs": [(7, "subclinical"), (15, "mild"), (23, "moderate"), (31, "severe"), (40, "extreme")],
}


def _band(instrument: str, total: int) -> str:
    return next(code for upper, code in BANDS[instrument] if total <= upper)


def _triage(instrument: str, a: list[Any]) -> str | None:
    if not instrument.startswith("cssrs"):
        return None
    s1, s2, s3, s4, s5, s6 = a[:6]
    if instrument == "cssrs_screen":
        s6b = a[6]
        if s4 or s5 or s6b:
            return "high"
        if s3 or (s6 and s6b is False):
            return "moderate"
    else:
        if s4 or s5 or s6:
            return "high"
        if s3:
            return "moderate"
    return "low" if s1 or s2 else "negative"


def _positive_items(instrument: str, a: list[Any]) -> set[int]:
    """0-based positions of the positive safety answers (defaults of instruments.md section 3)."""
    if instrument == "phq9":
        return {8} if a[8] > 0 else set()
    if instrument == "qids_sr16":
        return {11} if a[11] >= 1 else set()
    if instrument == "madrs":
        return {9} if a[9] >= 2 else set()
    if instrument.startswith("cssrs"):
        return {i for i, value in enumerate(a) if value is True}
    return set()


def _flag(instrument: str, a: list[Any]) -> bool:
    if instrument.startswith("cssrs"):
        return _triage(instrument, a) in ("moderate", "high")
    return bool(_positive_items(instrument, a))


# --- reading the mapped resources ---


def _by_part(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for resource in resources:
        ident = resource["identifier"]
        value = (ident if isinstance(ident, dict) else ident[0])["value"]
        primary = "response" if resource["resourceType"] == "QuestionnaireResponse" else "panel"  # (PHQ-9: panel)
        out[value.partition("/")[2] or primary] = resource
    return out


def _record(instrument: str, items: list[Any], **fields: Any) -> dict[str, Any]:
    return {
        "kind": "assessment",
        "key": "Q-P",
        "patient": PATIENT,
        "instrument": instrument,
        "completed_at": T0,
        "items": items,
        **fields,
    }


@pytest.mark.parametrize("instrument", INSTRUMENTS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_valid_answers_map_and_agree_with_the_sheet(instrument: str, data: st.DataObject) -> None:
    items = data.draw(answers(instrument))
    SCHEMA.validate(_record(instrument, items))
    record = parse_record(_record(instrument, copy.deepcopy(items)))
    mapper = mapper_for(record.kind)  # a PHQ-9's is phq9_assessment's (test_a_phq9_sent_as_assessment_...)
    resources = [to_json(r) for r in mapper.to_fhir(record, CONFIG)]
    parts = _by_part(resources)
    assert mapper.from_fhir(resources, record.patient, CONFIG) == record

    response = parts["response"]
    assert response["resourceType"] == "QuestionnaireResponse" and response["status"] == "completed"
    definition = DEFINITIONS[instrument]
    asked = [item.link_id for item, value in zip(definition.items, items, strict=True) if value is not None]
    assert [i["linkId"] for i in response["item"]] == asked
    assert {p.removeprefix("item-") for p in parts if p.startswith("item-")} == set(asked)  # none for unasked

    total = _total(instrument, items)
    if total is None:
        assert "total" not in parts
        triage = parts["triage"]
        assert triage["valueCodeableConcept"]["coding"][0]["code"] == _triage(instrument, items)
        assert "not a clinician's risk formulation" in triage["note"][0]["text"]
        assert triage["method"]["text"]
    else:
        assert parts["total"]["valueQuantity"]["value"] == total
        assert parts["total"]["valueQuantity"]["code"] == "{score}"
        assert parts["total"]["interpretation"][0]["coding"][0]["code"] == _band(instrument, total)
        assert "triage" not in parts
    for score_id, value in _subscales(instrument, items).items():
        assert parts[f"score-{score_id}"]["valueQuantity"]["value"] == value

    positives = {definition.items[i].link_id for i in _positive_items(instrument, items)}
    flagged = {p.removeprefix("item-") for p, r in parts.items() if p.startswith("item-") and r.get("interpretation")}
    assert flagged == positives
    assert ("flag" in parts) == _flag(instrument, items)
    if "flag" in parts:
        assert parts["flag"]["status"] == "active"

    response_ref = f"QuestionnaireResponse/{response['id']}"
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    assert all(o["derivedFrom"] == [{"reference": response_ref}] for o in observations)
    assert all(o["category"][0]["coding"][0]["code"] == "survey" for o in observations)
    members = {m["reference"] for m in parts["panel"]["hasMember"]}
    assert members == {f"Observation/{o['id']}" for o in observations if o is not parts["panel"]}


def _bad(instrument: str, items: list[Any], position: int | None, draw: st.DrawFn) -> list[Any]:
    """The answers broken at `position` (out of range, wrong type, or null/answered against a skip rule)."""
    definition = DEFINITIONS[instrument]
    if position is None:
        return [*items, items[0]] if draw(st.booleans()) else items[:-1]
    bad = list(items)
    item = definition.items[position]
    value = items[position]
    if value is None:
        bad[position] = True  # answered though unasked
    elif item.enable_when and draw(st.booleans()):
        bad[position] = None  # asked, yet null
    elif isinstance(value, bool):
        bad[position] = draw(st.sampled_from([0, 1, "yes"]))
    else:
        bad[position] = draw(st.sampled_from([item.answer.high + 1, -1, True, "2", 1.5]))
    return bad


@pytest.mark.parametrize("instrument", INSTRUMENTS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_invalid_answers_are_refused_naming_the_field(instrument: str, data: st.DataObject) -> None:
    items = data.draw(answers(instrument))
    count = len(DEFINITIONS[instrument].items)
    position = data.draw(st.one_of(st.none(), st.integers(0, count - 1)))
    bad = _bad(instrument, items, position, data.draw)
    assert not SCHEMA.is_valid(_record(instrument, bad)), "the published JSON Schema states this rule too"
    with pytest.raises(RecordInvalid) as refused:
        parse_record(_record(instrument, bad))
    paths = {issue.path for issue in refused.value.issues if not issue.safety}  # (safety: test_refused_safety.py)
    assert paths == ({"items"} if position is None else {f"items[{position}]"}), paths
    for issue in refused.value.issues:  # never an answer echoed
        assert "yes" not in issue.message.split() and "1.5" not in issue.message


def _lowest(instrument: str) -> list[Any]:
    """The lowest answers: every gated question unasked, every other at its lowest (no for C-SSRS)."""
    return [
        None if item.enable_when else False if isinstance(item.answer, YesNo) else item.answer.low
        for item in DEFINITIONS[instrument].items
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"items": [1, 1, 1, 1, 1, 1, 1, 1, 1], "total": 9, "session_key": "S-1"},
        {"items": [0] * 9, "difficulty": "very"},
        {"items": [3, 2, 1, 0, 3, 2, 1, 0, 2]},
    ],
)
def test_a_phq9_sent_as_assessment_is_the_phq9_assessment_of_its_key(fields: dict[str, Any]) -> None:
    """Issue 21 (H-33): one form, one record, whichever kind it came as: the same record after parsing, so the
    same resource ids and resources (the QuestionnaireResponse among them) and one Flag at most."""
    as_assessment = parse_record({**_record("phq9", []), **fields})
    as_phq9 = parse_record(
        {k: v for k, v in {**_record("phq9", []), **fields}.items() if k != "instrument"} | {"kind": "phq9_assessment"}
    )
    SCHEMA.validate({**_record("phq9", []), **fields})  # the published JSON Schema accepts it too

    assert as_assessment == as_phq9 and as_assessment.kind == "phq9_assessment"
    resources = mapper_for(as_assessment.kind).to_fhir_json(as_assessment, CONFIG)
    assert resources == mapper_for(as_phq9.kind).to_fhir_json(as_phq9, CONFIG)
    assert [r["resourceType"] for r in resources].count("QuestionnaireResponse") == 1
    assert [r["resourceType"] for r in resources].count("Flag") == (fields["items"][8] > 0)


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_a_total_that_disagrees_is_refused_at_total(instrument: str) -> None:
    with pytest.raises(RecordInvalid) as refused:
        parse_record(_record(instrument, _lowest(instrument), total=1))
    assert [issue.path for issue in refused.value.issues] == ["total"]


@pytest.mark.parametrize("instrument", [i for i in INSTRUMENTS if i not in ("phq9", "gad7")])
def test_difficulty_only_for_phq9_and_gad7(instrument: str) -> None:
    with pytest.raises(RecordInvalid) as refused:
        parse_record(_record(instrument, _lowest(instrument), difficulty="very"))
    assert [issue.path for issue in refused.value.issues] == ["difficulty"]


def _texts(value: Any, key: str = "") -> list[str]:
    """Every `text` and `display` string in a resource (the narrative div aside: it is checked apart)."""
    if isinstance(value, dict):
        return [t for k, v in value.items() if k != "div" for t in _texts(v, k)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v, key)]
    return [value] if key in ("text", "display") and isinstance(value, str) else []


# The service's own words around an instrument's labels: category, POS, and the Flag (naming no instrument).
SERVICE_WORDS = {
    codes.CATEGORY_SURVEY.display,
    codes.INTERPRETATION_POSITIVE.display,
    codes.FLAG_CATEGORY_SAFETY.display,
    codes.ASSESSMENT_FLAG_TEXT,
    *(code.display for code in codes.ASSESSMENT_FLAG_CODE),
}


@pytest.mark.parametrize("instrument", [i for i in INSTRUMENTS if DEFINITIONS[i].licence.restricted])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_a_restricted_instrument_ships_only_allow_listed_texts(instrument: str, data: st.DataObject) -> None:
    items = data.draw(answers(instrument))
    resources = mapper_for("assessment").to_fhir_json(parse_record(_record(instrument, items)), CONFIG)
    allowed = DEFINITIONS[instrument].licence.allow_list | SERVICE_WORDS
    for resource in resources:
        assert set(_texts(resource)) <= allowed, resource["id"]
    if instrument.startswith("cssrs"):
        items_ = [
            r for r in resources if r["resourceType"] == "Observation" and "/item-" in r["identifier"][0]["value"]
        ]
        assert items_ and all("display" not in c for r in items_ for c in r["code"]["coding"])
