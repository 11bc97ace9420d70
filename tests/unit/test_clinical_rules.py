"""The clinical-integrity rules of the mapping and the trend, without a server (issue 10, docs/clinical-safety.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas import RecordInvalid, parse_record
from service.mappers import MappingConfig, codes, mapper_for, transaction_bundle
from service.mappers.context import SessionContext
from service.sync.trend import TrendPoint, trend_points, trend_summary
from tests.unit.examples import BASE, mutated

CONFIG = MappingConfig()
DOCS = Path(__file__).resolve().parents[2] / "docs" / "fhir"


def _record(kind: str, **changes: Any) -> Any:
    return parse_record(mutated(kind, changes))


def _map(kind: str, session: SessionContext | None = None, **changes: Any) -> list[dict[str, Any]]:
    return mapper_for(kind).to_fhir_json(_record(kind, **changes), CONFIG, session)


@pytest.mark.parametrize(
    ("total", "ok"),
    [(50, True), (55, True), (45, True), (55.1, False), (44.9, False), (500, False), (5, False)],
)
def test_total_mg_must_agree_with_mg_per_kg_times_weight_within_10_percent(total: float, ok: bool) -> None:
    dose = {"total_mg": total, "mg_per_kg": 0.5, "weight_kg": 100}
    if ok:
        assert _record("infusion_session", dose=dose).dose.total_mg == total
        return
    with pytest.raises(RecordInvalid) as refused:
        _record("infusion_session", dose=dose)
    assert [i.path for i in refused.value.issues] == ["dose.total_mg"]


def test_small_doses_get_1_mg_of_tolerance() -> None:
    assert _record("infusion_session", dose={"total_mg": 3.9, "mg_per_kg": 0.1, "weight_kg": 30}).dose.total_mg == 3.9
    with pytest.raises(RecordInvalid):
        _record("infusion_session", dose={"total_mg": 4.1, "mg_per_kg": 0.1, "weight_kg": 30})


def test_a_fatal_outcome_is_serious_results_in_death_and_reads_back_as_serious() -> None:
    (event,) = _map("adverse_event", outcome="fatal", serious=True)
    assert event["seriousness"]["coding"][0]["code"] == "SeriousResultsInDeath"
    record = _record("adverse_event", outcome="fatal", serious=True)
    assert mapper_for("adverse_event").from_fhir([event], record.patient, CONFIG) == record


def test_the_phq9_panel_carries_loincs_exact_display() -> None:
    observations = [r for r in _map("phq9_assessment") if r["resourceType"] == "Observation"]
    panel = next(r for r in observations if r["code"]["coding"][0]["code"] == "44249-1")
    assert panel["code"]["coding"][0]["display"] == "PHQ-9 quick depression assessment panel [Reported.PHQ]"


def test_bundle_entries_have_absolute_full_urls() -> None:
    config = MappingConfig(fhir_base_url="https://fhir.example.org/r4/")
    bundle = transaction_bundle([_record("infusion_session")], config)
    for entry in bundle["entry"]:
        if entry["request"]["method"] == "PUT":
            assert entry["fullUrl"] == f"https://fhir.example.org/r4/{entry['request']['url']}"
        else:
            assert entry["fullUrl"].startswith("urn:uuid:")


def test_mdd_with_trd_gives_one_reason_not_the_same_code_twice() -> None:
    record = _record("infusion_session", indications=["mdd", "trd", "gad"])
    assert record.indications == ["trd", "gad"]
    procedure = mapper_for("infusion_session").to_fhir_json(record, CONFIG)[0]
    snomed = [c["code"] for reason in procedure["reasonCode"] for c in reason["coding"] if c["system"] == codes.SNOMED]
    assert len(snomed) == len(set(snomed)) == 2


def test_an_entered_in_error_session_cannot_carry_adverse_events() -> None:
    session = BASE["infusion_session"]
    ae = {k: v for k, v in BASE["adverse_event"].items() if k not in ("kind", "patient", "session_key")}
    with pytest.raises(RecordInvalid) as refused:
        parse_record({**session, "status": "entered_in_error", "adverse_events": [ae]})
    assert [i.path for i in refused.value.issues] == ["adverse_events"]


def test_children_of_an_entered_in_error_session_are_entered_in_error_and_flags_too() -> None:
    session = dict(BASE["infusion_session"], status="entered_in_error")
    vital = {k: v for k, v in BASE["vital_sign"].items() if k not in ("kind", "patient", "session_key")}
    phq9 = {k: v for k, v in BASE["phq9_assessment"].items() if k not in ("kind", "patient", "session_key", "total")}
    phq9["items"] = [0] * 8 + [1]
    record = parse_record({**session, "vital_signs": [vital], "phq9_assessments": [phq9], "adverse_events": []})
    resources = mapper_for("infusion_session").to_fhir_json(record, CONFIG)
    kept = ("QuestionnaireResponse", "Observation", "Flag")
    statuses = {r["resourceType"]: r["status"] for r in resources if r["resourceType"] in kept}
    assert set(statuses.values()) == {"entered-in-error"}
    assert "Flag" in statuses and "QuestionnaireResponse" in statuses  # the PHQ-9's response too (issue 21)


def test_part_of_only_for_what_was_measured_during_the_infusion() -> None:
    session = SessionContext(
        key="S",
        encounter="Encounter/e",
        mrn="M",
        status="completed",
        started_at=_record("infusion_session").started_at,
        ended_at=_record("infusion_session").ended_at,
    )
    inside = _map("vital_sign", session, session_key="S", measured_at="2024-04-12T09:10:00-04:00")[0]
    before = _map("vital_sign", session, session_key="S", measured_at="2024-04-12T08:50:00-04:00")[0]
    assert inside["partOf"] and "partOf" not in before
    assert inside["encounter"] == before["encounter"] == {"reference": "Encounter/e"}
    not_done = SessionContext(key="S", encounter="Encounter/e", status="not_done", started_at=session.started_at)
    assert "partOf" not in _map("vital_sign", not_done, session_key="S", measured_at="2024-04-12T09:10:00-04:00")[0]


def _obs(oid: str, code: str, when: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "effectiveDateTime": when,
        "code": {"coding": [{"system": codes.LOINC, "code": code}]},
        **extra,
    }


def test_trend_reads_totals_sent_as_value_integer_and_item_9_from_the_panel() -> None:
    """A PHQ-9 written by another system: total as valueInteger, item 9 found through the panel."""
    item9 = _obs(
        "i9",
        "44260-8",
        "2026-01-01T10:00:00Z",
        valueCodeableConcept={"coding": [{"system": codes.LOINC, "code": "LA6570-1"}]},
    )
    total = _obs("t", "44261-6", "2026-01-01T10:00:00Z", valueInteger=7)
    panel = _obs(
        "p",
        "44249-1",
        "2026-01-01T10:00:00Z",
        hasMember=[{"reference": "Observation/i9"}, {"reference": "Observation/t"}],
    )
    retracted = _obs("t2", "44261-6", "2025-12-01T10:00:00Z", valueInteger=20, status="entered-in-error")
    points = trend_points([item9, total, panel, retracted], CONFIG)
    assert points == [TrendPoint(None, "2026-01-01T10:00:00Z", 7, 2)]
    summary = trend_summary(points)
    assert summary["alerts"] == [{"key": None, "date": "2026-01-01T10:00:00Z", "item9": 2}]


def test_trend_says_item_9_is_unknown_rather_than_negative_when_it_is_not_there() -> None:
    summary = trend_summary([TrendPoint("k", "2026-01-01", 3)])
    assert summary["points"][0]["item9"] is None and summary["points"][0]["item9_positive"] is None


def test_every_local_extension_has_a_published_structure_definition() -> None:
    paths = [
        v for k, v in vars(codes).items() if k.startswith("EXT_") and isinstance(v, str) and v.startswith("extension/")
    ]
    assert len(paths) == 6
    for path in paths:
        definition = json.loads((DOCS / f"StructureDefinition-{path.removeprefix('extension/')}.json").read_text())
        assert definition["url"] == codes.local_system(CONFIG.local_code_system_base, path)
        assert definition["resourceType"] == "StructureDefinition" and definition["type"] == "Extension"


def test_every_local_extension_a_resource_carries_is_allowed_on_it_by_its_published_context() -> None:
    """A published context that leaves a resource type out makes HAPI's `$validate` (with the SDs stored) an
    error: the session extensions on a QuestionnaireResponse were one (H-21)."""
    from tests.corpus import generate

    contexts = {}
    for path in DOCS.glob("StructureDefinition-*.json"):
        definition = json.loads(path.read_text(encoding="utf-8"))
        contexts[definition["url"]] = {c["expression"] for c in definition["context"]}
    carried: set[tuple[str, str]] = set()
    for raw in generate():
        record = parse_record(raw)
        for resource in mapper_for(record.kind).to_fhir_json(record, CONFIG):
            carried |= {
                (e["url"], resource["resourceType"]) for e in resource.get("extension", []) if e["url"] in contexts
            }
    assert ("https://infusion-fhir.example.org/fhir/CodeSystem/extension/session", "QuestionnaireResponse") in carried
    assert [(url, rtype) for url, rtype in sorted(carried) if rtype not in contexts[url]] == []
