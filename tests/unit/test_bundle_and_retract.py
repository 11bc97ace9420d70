"""Transaction Bundle builder (order, conditional Patient create, known patients) and retraction."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import orjson

from schemas import parse_record
from service.mappers import (
    MappingConfig,
    mapper_for,
    not_retractable,
    patient_if_none_exist,
    patient_urn,
    retract,
    transaction_bundle,
)
from service.mappers.fhir import to_json
from service.mappers.ids import resource_ref, visit_urn
from tests.unit.examples import BASE

CONFIG = MappingConfig()


def _records(*kinds: str, mrn: str = "MRN-1") -> list:
    out = []
    for kind in kinds:
        raw = copy.deepcopy(BASE[kind])
        raw["patient"] = {**raw["patient"], "mrn": mrn}
        out.append(parse_record(raw))
    return out


def test_bundle_is_a_transaction_with_patients_first_then_types_in_dependency_order() -> None:
    records = _records("adverse_event", "phq9_assessment", "vital_sign") + _records("infusion_session", mrn="M|2")
    bundle = transaction_bundle(records, CONFIG)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    order = [
        "Patient",
        "Encounter",
        "Procedure",
        "MedicationAdministration",
        "QuestionnaireResponse",
        "Observation",
        "AdverseEvent",
        "Flag",
    ]
    assert types == sorted(types, key=order.index)
    assert types.count("Patient") == 2
    for entry in bundle["entry"]:
        resource, request = entry["resource"], entry["request"]
        if resource["resourceType"] == "Patient":
            mrn = resource["identifier"][0]["value"]
            assert entry["fullUrl"] == patient_urn(mrn, CONFIG)
            assert request == {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": patient_if_none_exist(mrn, CONFIG),
            }
        else:
            url = f"{resource['resourceType']}/{resource['id']}"
            # R4 wants absolute fullUrls: the server base the bundle goes to.
            assert entry["fullUrl"] == f"{CONFIG.fhir_base_url}/{url}" and request == {"method": "PUT", "url": url}


def test_patients_are_deduplicated_by_mrn_with_the_first_demographics() -> None:
    first, second = _records("vital_sign", "monitoring_score")
    second = second.model_copy(update={"patient": second.patient.model_copy(update={"family": "Other"})})
    bundle = transaction_bundle([first, second], CONFIG)
    patients = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert len(patients) == 1 and patients[0]["name"][0]["family"] == "Okafor"


def test_known_patients_get_no_entry_and_literal_references() -> None:
    records = _records("infusion_session") + _records("vital_sign", mrn="NEW")
    bundle = transaction_bundle(records, CONFIG, patient_ids={"MRN-1": "pat-1", "UNUSED": "Patient/x"})
    patients = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert [p["resource"]["identifier"][0]["value"] for p in patients] == ["NEW"]
    text = orjson.dumps(bundle).decode()
    assert patient_urn("MRN-1", CONFIG) not in text
    assert "Patient/x" not in text
    subjects = Counter(e["resource"]["subject"]["reference"] for e in bundle["entry"] if "subject" in e["resource"])
    assert subjects["Patient/pat-1"] >= 3 and subjects[patient_urn("NEW", CONFIG)] == 1


def _walk_replacing_references(value: Any, replacements: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: replacements.get(v, v) if k == "reference" else _walk_replacing_references(v, replacements)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_walk_replacing_references(v, replacements) for v in value]
    return value


def test_known_patients_and_visits_change_exactly_the_references_and_nothing_else() -> None:
    session = parse_record(
        {**copy.deepcopy(BASE["infusion_session"]), "visit_id": "VIS-9", "note": patient_urn("MRN-1", CONFIG)}
    )
    records = [session, *_records("vital_sign", "adverse_event", "phq9_assessment")]
    known = {"MRN-1": "Patient/pat-1"}
    visits = {"VIS-9": "Encounter/enc-9"}
    with_urns = transaction_bundle(records, CONFIG)
    replacements = {patient_urn("MRN-1", CONFIG): "Patient/pat-1", visit_urn("VIS-9", CONFIG): "Encounter/enc-9"}
    expected = [
        _walk_replacing_references(e, replacements) for e in with_urns["entry"] if e["request"]["method"] == "PUT"
    ]

    literal = transaction_bundle(records, CONFIG, patient_ids=known, visit_ids=visits)

    assert literal["entry"] == expected
    assert orjson.dumps(session.note)[1:-1] in orjson.dumps(literal)  # a note that is the urn stays one


def test_a_record_sent_twice_yields_each_resource_once_with_its_last_content() -> None:
    (first,) = _records("vital_sign")
    changed = first.model_copy(update={"systolic": 150.0})
    bundle = transaction_bundle([first, changed], CONFIG)
    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert len(observations) == 1
    assert observations[0]["component"][0]["valueQuantity"]["value"] == 150


def test_bundle_json_is_identical_for_the_same_records() -> None:
    records = _records("infusion_session", "phq9_assessment")
    assert orjson.dumps(transaction_bundle(records, CONFIG)) == orjson.dumps(transaction_bundle(list(records), CONFIG))


def test_an_empty_batch_is_an_empty_transaction() -> None:
    assert transaction_bundle([], CONFIG) == {"resourceType": "Bundle", "type": "transaction", "entry": []}


def test_retract_marks_copies_entered_in_error_and_leaves_adverse_events_to_delete() -> None:
    (session,) = _records("infusion_session")
    resources = mapper_for("infusion_session").to_fhir(session, CONFIG)
    before = [to_json(r) for r in resources]
    retracted = retract(resources)
    assert [to_json(r) for r in resources] == before  # inputs untouched
    assert {r.get_resource_type() for r in retracted} == {
        "Encounter",
        "Procedure",
        "MedicationAdministration",
        "Observation",
    }
    assert all(r.status == "entered-in-error" for r in retracted)
    assert len(retracted) == len(resources) - 1
    assert [r.get_resource_type() for r in not_retractable(resources)] == ["AdverseEvent"]
    for resource in retracted:  # still valid resources
        type(resource).model_validate(to_json(resource))


def test_retract_works_on_json_as_read_back() -> None:
    (phq9,) = _records("phq9_assessment")
    as_json = [to_json(r) for r in mapper_for("phq9_assessment").to_fhir(phq9, CONFIG)]
    retracted = retract(as_json)
    assert len(retracted) == len(as_json) and {r["status"] for r in retracted} == {"entered-in-error"}
    assert {r["status"] for r in as_json} == {"final", "completed"}  # Observations, the QuestionnaireResponse


def test_retract_puts_a_resource_found_twice_once() -> None:
    """The session's retraction finds an embedded PHQ-9's QuestionnaireResponse through the visit and again
    through its Observations; a transaction naming one resource twice is refused by HAPI."""
    (phq9,) = _records("phq9_assessment")
    resources = [to_json(r) for r in mapper_for("phq9_assessment").to_fhir(phq9, CONFIG)]
    copies = retract([*resources, *resources[:2]])
    refs = [f"{r['resourceType']}/{r['id']}" for r in copies]
    assert len(refs) == len(set(refs)) == len(resources)
    models = mapper_for("phq9_assessment").to_fhir(phq9, CONFIG)
    assert len(retract([*models, models[0]])) == len(models)


def test_an_assessment_bundles_its_response_before_the_observations_and_its_flag_is_kept_for_clinicians() -> None:
    positive = parse_record(
        {
            **copy.deepcopy(BASE["assessment"]),
            "instrument": "madrs",
            "items": [0] * 9 + [2],
            "total": None,
            "difficulty": None,
            "session_key": None,
        }
    )
    negative = parse_record({**copy.deepcopy(BASE["assessment"]), "key": "Q-2", "session_key": None})
    types = [e["resource"]["resourceType"] for e in transaction_bundle([positive, negative], CONFIG)["entry"]]
    assert types.index("QuestionnaireResponse") < types.index("Observation") and types.count("Flag") == 1
    flags = [
        e["request"]["url"]
        for e in transaction_bundle([positive, negative], CONFIG)["entry"]
        if "Flag/" in e["request"]["url"]
    ]
    assert flags == [resource_ref("assessment", positive.key, "flag", CONFIG)]
    retracted = retract(mapper_for("assessment").to_fhir_json(positive, CONFIG))
    assert {r["resourceType"] for r in retracted} == {"QuestionnaireResponse", "Observation", "Flag"}
    assert {r["status"] for r in retracted} == {"entered-in-error"}
