"""Deterministic ids, business identifiers, FHIR search escaping and the Patient resource."""

from __future__ import annotations

import re
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import PatientInfo
from service.mappers import (
    MappingConfig,
    identifier_system,
    identifier_value,
    parse_identifier,
    patient_from_fhir,
    patient_if_none_exist,
    patient_resource,
    patient_urn,
    resource_id,
    resource_ids,
    search_escape,
)
from service.mappers.fhir import to_json
from service.mappers.ids import match_identifier, patient_token, patient_tokens

CONFIG = MappingConfig()


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("12345", "12345"),
        ("A,1", "A\\,1"),
        ("A|1", "A\\|1"),
        ("A$1", "A\\$1"),
        ("A\\1", "A\\\\1"),
        ("\\,", "\\\\\\,"),
        (",|$\\", "\\,\\|\\$\\\\"),
        ("a b/c:d", "a b/c:d"),
    ],
)
def test_search_escape_escapes_each_special_character(raw: str, escaped: str) -> None:
    assert search_escape(raw) == escaped


@pytest.mark.parametrize("mrn", ["ü 7&=+%", "00042", "a.b-c_d/e"])
def test_if_none_exist_is_the_url_encoded_escaped_identifier_token(mrn: str) -> None:
    value = patient_if_none_exist(mrn, CONFIG)
    name, _, encoded = value.partition("=")
    assert name == "identifier"
    assert not set(encoded) & set(",|$\\&=+ ")
    assert urllib.parse.unquote(encoded) == f"{search_escape(CONFIG.mrn_system)}|{search_escape(mrn)}"


@pytest.mark.parametrize("mrn", ["A,1", "A|1", "A$1", "A\\1", "x,|$\\y", "B|", "|B"])
def test_an_mrn_needing_escapes_is_matched_on_its_match_key_not_on_its_value(mrn: str) -> None:
    """Row 17: a server that does not honour search escaping matched `B|` to the Patient of MRN `B`."""
    value = patient_if_none_exist(mrn, CONFIG)
    name, _, encoded = value.partition("=")
    assert name == "identifier"
    system, _, key = urllib.parse.unquote(encoded).partition("|")
    assert system == f"{CONFIG.identifier_system_base}/match-key"
    assert re.fullmatch(r"[0-9a-f]{64}", key)  # nothing a server must unescape
    assert match_identifier(CONFIG.mrn_system, mrn, CONFIG) == {"use": "secondary", "system": system, "value": key}


@given(st.text(min_size=1, max_size=64))
def test_a_match_key_is_exactly_for_values_needing_escapes_and_per_system_and_value(value: str) -> None:
    key = match_identifier(CONFIG.mrn_system, value, CONFIG)
    assert (key is None) == set(value).isdisjoint(",|$\\")
    if key is not None:
        assert key != match_identifier(CONFIG.visit_system, value, CONFIG)
        assert key != match_identifier(CONFIG.mrn_system, value + "|", CONFIG)
        # the search finds the MRN's own token and its match key
        tokens = patient_tokens([value], CONFIG)
        assert tokens == f"{patient_token(value, CONFIG)},{key['system']}|{key['value']}"


def test_a_match_key_keeps_system_and_value_apart() -> None:
    one = match_identifier("s|a", "1|", MappingConfig())
    other = match_identifier("s", "a|1|", MappingConfig())
    assert one is not None and other is not None and one["value"] != other["value"]


def test_patient_urn_is_a_deterministic_uuid_per_system_and_mrn() -> None:
    urn = patient_urn("A|1", CONFIG)
    assert re.fullmatch(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", urn)
    assert urn == patient_urn("A|1", MappingConfig())
    assert urn != patient_urn("A,1", CONFIG)
    assert urn != patient_urn("A|1", MappingConfig(mrn_system="urn:oid:1.2.3"))
    # escaping keeps (system, mrn) pairs unambiguous even when they contain the separator
    assert patient_urn("1", MappingConfig(mrn_system="s|a")) != patient_urn("a|1", MappingConfig(mrn_system="s"))


def test_patient_resource_carries_the_mrn_exactly_and_the_demographics() -> None:
    patient = PatientInfo(mrn="00,4|2$1\\", family="Okafor", given=["Ada", "N."], birth_date="1981-07-14", sex="female")
    resource = to_json(patient_resource(patient, CONFIG))
    assert "id" not in resource
    assert resource["identifier"] == [
        {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                        "code": "MR",
                        "display": "Medical record number",
                    }
                ]
            },
            "system": CONFIG.mrn_system,
            "value": "00,4|2$1\\",
        },
        match_identifier(CONFIG.mrn_system, "00,4|2$1\\", CONFIG),  # the MRN needs escaping: row 17
    ]
    assert resource["identifier"][1] is not None
    assert resource["name"] == [{"family": "Okafor", "given": ["Ada", "N."]}]
    assert resource["birthDate"] == "1981-07-14"
    assert resource["gender"] == "female"
    assert patient_from_fhir(resource, CONFIG) == patient


def test_patient_with_only_an_mrn_has_only_the_identifier() -> None:
    resource = to_json(patient_resource(PatientInfo(mrn="7"), CONFIG))
    assert set(resource) == {"resourceType", "text", "identifier"}  # the narrative says only the MRN
    assert resource["text"]["div"] == '<div xmlns="http://www.w3.org/1999/xhtml"><p>Patient MRN 7</p></div>'


def test_patient_from_fhir_needs_the_configured_mrn_system() -> None:
    resource = to_json(patient_resource(PatientInfo(mrn="7"), CONFIG))
    with pytest.raises(ValueError):
        patient_from_fhir(resource, MappingConfig(mrn_system="urn:other"))


ID = re.compile(r"^[a-z]{2}-[a-z2-7]{26}$")


def test_resource_ids_are_deterministic_fhir_ids_unique_per_kind_key_part_and_source() -> None:
    first = resource_id("vital_sign", "V_1", "observation", CONFIG)
    assert ID.match(first) and first == resource_id("vital_sign", "V_1", "observation", MappingConfig())
    others = {
        resource_id("vital_sign", "V_2", "observation", CONFIG),
        resource_id("monitoring_score", "V_1", "observation", CONFIG),
        resource_id("vital_sign", "V_1", "observation", MappingConfig(identifier_system_base="urn:x")),
    }
    assert first not in others and len(others) == 3


def test_resource_ids_list_every_resource_a_kind_can_produce() -> None:
    listing = {
        kind: resource_ids(kind, "K.1", CONFIG)
        for kind in (
            "infusion_session",
            "vital_sign",
            "monitoring_score",
            "adverse_event",
            "phq9_assessment",
            "assessment",
        )
    }
    session = [(r.resource_type, r.part, r.optional) for r in listing["infusion_session"]]
    assert session == [
        ("Procedure", "procedure", False),
        ("MedicationAdministration", "medication-administration", True),
        ("Observation", "dosing-weight", True),
        ("Encounter", "encounter", True),
    ]
    assert [(r.resource_type, r.optional) for r in listing["adverse_event"]] == [("AdverseEvent", False)]
    phq9 = {r.part: r.optional for r in listing["phq9_assessment"]}
    assert phq9 == {
        "panel": False,
        "response": False,  # issue 21: PHQ-9 gained its QuestionnaireResponse (its other ids unchanged)
        **{f"item-{n}": False for n in range(1, 10)},
        "difficulty": True,
        "total": False,
        "flag": True,
    }
    assessment = [(r.resource_type, r.part, r.optional) for r in listing["assessment"]]
    assert assessment[0] == ("QuestionnaireResponse", "response", False)  # the primary: identifier value = key
    assert ("Observation", "item-S6b", True) in assessment and ("Observation", "item-20", True) in assessment
    assert ("Observation", "panel", False) in assessment and assessment[-1] == ("Flag", "flag", True)
    every = [r.id for rs in listing.values() for r in rs]
    assert len(set(every)) == len(every) and all(ID.match(i) for i in every)
    assert listing["vital_sign"][0].ref == f"Observation/{listing['vital_sign'][0].id}"
    with pytest.raises(ValueError):
        resource_ids("lab_result", "K.1", CONFIG)


@pytest.mark.parametrize(
    ("kind", "part", "value"),
    [
        ("infusion_session", "procedure", "S-1"),
        ("infusion_session", "medication-administration", "S-1/medication-administration"),
        ("phq9_assessment", "panel", "S-1"),
        ("phq9_assessment", "item-3", "S-1/item-3"),
        ("phq9_assessment", "total", "S-1/total"),
        ("adverse_event", "adverse-event", "S-1"),
    ],
)
def test_identifiers_are_the_key_for_the_primary_part_else_key_slash_part(kind: str, part: str, value: str) -> None:
    assert identifier_value(kind, "S-1", part) == value
    system = identifier_system(kind, CONFIG)
    assert system == f"{CONFIG.identifier_system_base}/{kind.replace('_', '-')}"
    assert parse_identifier(system, value, CONFIG) == (kind, "S-1", part)


def test_foreign_identifiers_are_not_ours() -> None:
    assert parse_identifier("urn:other", "S-1", CONFIG) is None
    assert parse_identifier(identifier_system("vital_sign", CONFIG), "S-1/nope", CONFIG) is None
    assert parse_identifier(f"{CONFIG.identifier_system_base}/lab-result", "S-1", CONFIG) is None
