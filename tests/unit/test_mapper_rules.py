"""Mapping rules from clinical-coding.md, checked on the mapper output; and the mapper-module conventions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas import parse_record
from service.mappers import MappingConfig, mapper_for
from service.mappers.context import SessionContext
from service.mappers.fhir import to_json
from service.mappers.ids import resource_ref
from tests.unit.examples import BASE, DROP, mutated

CONFIG = MappingConfig()
MAPPERS = Path(__file__).resolve().parents[2] / "service" / "mappers"


def _map(kind: str, changes: dict | None = None, config: MappingConfig = CONFIG) -> list[dict]:
    record = parse_record(mutated(kind, changes or {}))
    return [to_json(r) for r in mapper_for(kind).to_fhir(record, config)]


def _codes(concept: dict) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept.get("coding", [])}


@pytest.mark.parametrize(
    ("status", "procedure", "administration"),
    [
        ("planned", "preparation", None),
        ("in_progress", "in-progress", "in-progress"),
        ("completed", "completed", "completed"),
        ("stopped", "stopped", "stopped"),
        ("not_done", "not-done", "not-done"),
        ("entered_in_error", "entered-in-error", "entered-in-error"),
    ],
)
def test_session_status_maps_to_procedure_and_administration_status(status, procedure, administration) -> None:
    changes = {"status": status, "vital_signs": [], "adverse_events": []}
    if status in ("planned", "in_progress"):
        changes["ended_at"] = DROP
    if status == "planned":
        changes["dose"] = DROP
    if status == "stopped":
        changes["stop_reason"] = "IV access lost"
    by_type = {r["resourceType"]: r for r in _map("infusion_session", changes)}
    assert by_type["Procedure"]["status"] == procedure
    assert by_type.get("MedicationAdministration", {}).get("status") == administration


def test_session_children_reference_the_procedure_and_the_administration() -> None:
    resources = _map("infusion_session")
    procedure = next(r for r in resources if r["resourceType"] == "Procedure")
    administration = next(r for r in resources if r["resourceType"] == "MedicationAdministration")
    assert administration["partOf"][0]["reference"] == f"Procedure/{procedure['id']}"
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    assert len(observations) == 4  # dosing weight + 3 vital signs
    assert all(o["partOf"][0]["reference"] == f"Procedure/{procedure['id']}" for o in observations)
    event = next(r for r in resources if r["resourceType"] == "AdverseEvent")
    assert event["suspectEntity"][0]["instance"]["reference"] == f"MedicationAdministration/{administration['id']}"


def test_the_medication_product_code_is_configurable() -> None:
    config = MappingConfig(medication_product_coding=("http://hl7.org/fhir/sid/ndc", "0409-2051-05", "Ketamine HCl"))
    administration = next(r for r in _map("infusion_session", config=config) if "medicationCodeableConcept" in r)
    assert _codes(administration["medicationCodeableConcept"]) == {
        ("http://www.nlm.nih.gov/research/umls/rxnorm", "6130"),
        ("http://snomed.info/sct", "373464007"),
        ("http://hl7.org/fhir/sid/ndc", "0409-2051-05"),
    }


def test_local_code_systems_follow_the_configured_base() -> None:
    config = MappingConfig(local_code_system_base="https://clinic.example/cs")
    (observation,) = _map("monitoring_score", config=config)
    assert _codes(observation["code"]) == {("https://clinic.example/cs/monitoring-scale", "cadss-total")}
    assert observation["valueInteger"] == 10 and observation["category"][0]["coding"][0]["code"] == "survey"


def test_spo2_carries_both_loinc_codes_and_bp_only_components() -> None:
    (spo2,) = _map("vital_sign", {"type": "spo2", "value": 97, "systolic": DROP, "diastolic": DROP})
    assert _codes(spo2["code"]) == {("http://loinc.org", "2708-6"), ("http://loinc.org", "59408-5")}
    assert spo2["meta"]["profile"] == ["http://hl7.org/fhir/StructureDefinition/oxygensat"]
    (bp,) = _map("vital_sign")
    assert "valueQuantity" not in bp
    assert [_codes(c["code"]) for c in bp["component"]] == [
        {("http://loinc.org", "8480-6")},
        {("http://loinc.org", "8462-4")},
    ]
    assert all(c["valueQuantity"]["code"] == "mm[Hg]" for c in bp["component"])


@pytest.mark.parametrize(
    ("items", "band"),
    [
        ([0] * 9, "minimal"),
        ([1, 1, 1, 1, 0, 0, 0, 0, 0], "minimal"),
        ([1, 1, 1, 1, 1, 0, 0, 0, 0], "mild"),
        ([1, 1, 1, 1, 1, 1, 1, 1, 1], "mild"),
        ([2, 2, 2, 2, 2, 0, 0, 0, 0], "moderate"),
        ([2, 2, 2, 2, 2, 2, 2, 0, 0], "moderate"),
        ([3, 3, 3, 3, 3, 0, 0, 0, 0], "moderately-severe"),
        ([3, 3, 3, 3, 3, 2, 2, 0, 0], "moderately-severe"),
        ([3, 3, 3, 3, 3, 3, 2, 0, 0], "severe"),
        ([3] * 9, "severe"),
    ],
)
def test_phq9_total_has_value_quantity_score_and_severity_band(items: list[int], band: str) -> None:
    resources = _map("phq9_assessment", {"items": items, "total": DROP})
    total = next(r for r in resources if r.get("code", {}).get("coding", [{}])[0].get("code") == "44261-6")
    assert total["valueQuantity"] == {
        "value": sum(items),
        "unit": "{score}",
        "system": "http://unitsofmeasure.org",
        "code": "{score}",
    }
    assert total["interpretation"][0]["coding"][0]["code"] == band


@pytest.mark.parametrize("item9", [0, 1, 2, 3])
def test_phq9_item_9_above_zero_is_flagged_on_the_total(item9: int) -> None:
    items = [0, 0, 0, 0, 0, 0, 0, 0, item9]
    resources = _map("phq9_assessment", {"items": items, "total": DROP, "difficulty": DROP})
    flags = [r for r in resources if r["resourceType"] == "Flag"]
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    assert len(observations) == 11  # 9 items, total, panel (no difficulty)
    total = next(r for r in observations if r["code"]["coding"][0]["code"] == "44261-6")
    item9_answer = next(r for r in observations if r["code"]["coding"][0]["code"] == "44260-8")
    for observation in (total, item9_answer):  # the local code and the standard v3 POS, on both
        codes_ = {(c["system"], c["code"]) for i in observation.get("interpretation", []) for c in i["coding"]}
        assert ("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "POS") in codes_ or item9 == 0
        assert any(c == "item-9-positive" for _, c in codes_) == (item9 > 0)
    assert ("note" in total) == (item9 > 0)
    panel = observations[-1]
    assert panel["code"]["coding"][0]["code"] == "44249-1" and "valueQuantity" not in panel
    assert [m["reference"] for m in panel["hasMember"]] == [f"Observation/{r['id']}" for r in observations[:-1]]
    assert len(flags) == (item9 > 0)  # a positive item 9 raises a Flag on the patient, pointing at the panel
    for flag in flags:
        assert flag["status"] == "active" and flag["subject"] == panel["subject"]
        detail = flag["extension"][0]
        assert detail["url"] == "http://hl7.org/fhir/StructureDefinition/flag-detail"
        assert detail["valueReference"]["reference"] == f"Observation/{panel['id']}"


@pytest.mark.parametrize(
    ("status", "suspect"),
    [
        ("completed", "medication-administration"),
        ("stopped", "medication-administration"),
        ("planned", "procedure"),
        ("not_done", "procedure"),
        # retracted: its administration may never have existed, or been deleted when it was re-planned
        ("entered_in_error", "procedure"),
    ],
)
def test_adverse_event_suspects_the_administration_only_of_a_session_that_gave_a_dose(status, suspect) -> None:
    record = parse_record(BASE["adverse_event"])
    context = SessionContext(key=record.session_key, encounter="Encounter/e", status=status)
    (event,) = [to_json(r) for r in mapper_for("adverse_event").to_fhir(record, CONFIG, context)]
    expected = resource_ref("infusion_session", record.session_key, suspect, CONFIG)
    assert event["suspectEntity"][0]["instance"]["reference"] == expected


def test_adverse_event_without_session_has_no_suspect_entity_and_other_keeps_its_text() -> None:
    changes = {"session_key": DROP, "causality": DROP, "event": "other", "description": "Metallic taste"}
    (event,) = _map("adverse_event", changes)
    assert "suspectEntity" not in event
    assert event["event"]["text"] == "Metallic taste"
    assert event["actuality"] == "actual"


def test_adverse_event_local_events_carry_text_and_r4_codes() -> None:
    (event,) = _map(
        "adverse_event",
        {
            "event": "dissociation",
            "outcome": "resolved_with_sequelae",
            "causality": "unassessable",
            "serious": True,
        },
    )
    assert "text" not in event["event"]  # the local code's display is on the coding; text is the clinician's only
    assert event["event"]["coding"][0]["display"] == "Transient dissociation"
    assert _codes(event["outcome"]) == {
        ("http://terminology.hl7.org/CodeSystem/adverse-event-outcome", "resolvedWithSequelae")
    }
    assert _codes(event["seriousness"]) == {
        ("http://terminology.hl7.org/CodeSystem/adverse-event-seriousness", "Serious")
    }
    assert _codes(event["suspectEntity"][0]["causality"][0]["assessment"]) == {
        (
            "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess",
            "Unassessable-Unclassifiable",
        )
    }


def test_reverse_mapping_ignores_children_of_another_session() -> None:
    session = parse_record(BASE["infusion_session"])
    other = parse_record(mutated("vital_sign", {"key": "V-9", "session_key": "S-OTHER"}))
    resources = mapper_for("infusion_session").to_fhir(session, CONFIG) + mapper_for("vital_sign").to_fhir(
        other, CONFIG
    )
    assert mapper_for("infusion_session").from_fhir(resources, session.patient, CONFIG) == session


def test_reverse_mapping_picks_the_named_record_among_several() -> None:
    first = parse_record(BASE["vital_sign"])
    second = parse_record(mutated("vital_sign", {"key": "V-2", "systolic": 150}))
    mapper = mapper_for("vital_sign")
    resources = mapper.to_fhir(first, CONFIG) + mapper.to_fhir(second, CONFIG)
    assert mapper.from_fhir(resources, first.patient, CONFIG, key="V-2") == second
    with pytest.raises(ValueError):
        mapper.from_fhir(resources, first.patient, CONFIG)
    with pytest.raises(ValueError):
        mapper.from_fhir(resources, first.patient, CONFIG, key="V-3")


CODE_LIKE = re.compile(r"""["'](\d{3,}-\d|LA\d+-\d|\d{6,}|https?://[^"']*)["']""")


@pytest.mark.parametrize(
    "module", sorted(p.name for p in MAPPERS.glob("*.py") if p.name not in ("codes.py", "config.py"))
)
def test_mapper_modules_spell_no_codes_or_system_uris(module: str) -> None:
    found = CODE_LIKE.findall((MAPPERS / module).read_text(encoding="utf-8"))
    assert found == [], f"{module} spells codes inline: {found}"


def test_fhir_models_are_imported_from_r4b_in_one_module_only() -> None:
    root = MAPPERS.parents[1]
    importers = [
        p.relative_to(root).as_posix()
        for p in [*root.glob("service/**/*.py"), *root.glob("schemas/**/*.py")]
        if re.search(r"^\s*(from|import)\s+fhir\.resources", p.read_text(encoding="utf-8"), re.M)
    ]
    assert importers == ["service/mappers/fhir.py"]
    text = (MAPPERS / "fhir.py").read_text(encoding="utf-8")
    assert all(".R4B." in line for line in text.splitlines() if line.startswith("from fhir.resources"))
