"""Assessments embedded in a session (`assessments: [...]`), as `phq9_assessments` are: read back with the
session, retracted with it (their answers taken off the patient's Flag), never changing a Flag a clinician
closed, keeping their instrument.

Against the in-memory FHIR server (tests/unit/fake_fhir.py); the same on the real HAPI in
tests/integration/test_embedded_assessments.py.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any, get_args

import pytest

from schemas import parse_record
from service.errors import Conflict
from service.mappers import MappingConfig, mapper_for, resource_ids, transaction_bundle
from service.mappers.codes import ENTERED_IN_ERROR
from service.mappers.ids import resource_ref
from service.safety.flags import details
from service.sync.questionnaires import carry_questionnaire_responses
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import EngineRig as Rig
from tests.unit.fake_fhir import engine_rig

SESSION_KEY = "S-1"
GAD7 = {
    "key": "Q-GAD",
    "instrument": "gad7",
    "completed_at": "2024-04-12T08:40:00-04:00",
    "items": [1, 2, 1, 0, 1, 2, 1],
}
# S1, S2, S3 yes: triage moderate, which raises the suicide-risk Flag (instruments.md section 3)
CSSRS_POSITIVE = {
    "key": "Q-CSSRS",
    "instrument": "cssrs_screen",
    "completed_at": "2024-04-12T08:45:00-04:00",
    "items": [True, True, True, False, False, False, None],
}
CONFIG = MappingConfig()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with engine_rig() as made:
        yield made


def session(*assessments: dict[str, Any], **changes: Any) -> Any:
    raw = {**copy.deepcopy(EXAMPLES["infusion_session"]), "assessments": copy.deepcopy(list(assessments)), **changes}
    return parse_record(raw)


def standalone(key: str, body: dict[str, Any], **changes: Any) -> Any:
    """An assessment sent on its own, naming the session."""
    raw = {**body, "kind": "assessment", "key": key, "patient": EXAMPLES["assessment"]["patient"], **changes}
    return parse_record({**raw, "session_key": SESSION_KEY})


def refs(kind: str, key: str, store: dict[str, Any]) -> set[str]:
    return {rid.ref for rid in resource_ids(kind, key, CONFIG) if rid.ref in store}


def flag_of(key: str) -> str:
    return resource_ref("assessment", key, "flag", CONFIG)


def panel_of(key: str) -> str:
    return resource_ref("assessment", key, "panel", CONFIG)


# -- the record and its mapping -------------------------------------------------------------------


def test_a_session_adopts_its_assessments_and_maps_them_with_its_context() -> None:
    record = session(CSSRS_POSITIVE, GAD7)
    assert [a.key for a in record.assessments] == ["Q-GAD", "Q-CSSRS"]  # in time order
    assert all(a.patient == record.patient and a.session_key == SESSION_KEY for a in record.assessments)
    resources = mapper_for("infusion_session").to_fhir_json(record, CONFIG)
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    response = by_ref[resource_ref("assessment", "Q-CSSRS", "response", CONFIG)]
    assert response["encounter"] == {"reference": resource_ref("infusion_session", SESSION_KEY, "encounter", CONFIG)}
    assert response["extension"][0]["url"].endswith("embedded-in-session")
    assert by_ref[flag_of("Q-CSSRS")]["status"] == "active"
    assert flag_of("Q-GAD") not in by_ref
    back = mapper_for("infusion_session").from_fhir(resources, record.patient, CONFIG)
    assert back == record


def test_a_session_refuses_an_embedded_assessment_of_another_patient_or_session() -> None:
    from schemas import RecordInvalid

    with pytest.raises(RecordInvalid) as refused:
        session({**GAD7, "patient": {"mrn": "OTHER"}}, {**CSSRS_POSITIVE, "session_key": "S-2"})
    refusals = {i.path for i in refused.value.issues if not i.safety}  # (the C-SSRS yes answers are named too)
    assert refusals == {"assessments[0].patient.mrn", "assessments[1].session_key"}


def test_a_phq9_embedded_as_an_assessment_is_refused_pointing_at_phq9_assessments() -> None:
    """A PHQ-9 is one record under both kinds only through `phq9_assessments` (its ids); embedded as an
    `assessment` it would land a second time under other ids (H-33). Its item 9 is still named (H-39)."""
    from schemas import RecordInvalid
    from schemas.assessment import INSTRUMENTS, EmbeddedInstrument

    assert set(get_args(EmbeddedInstrument)) == set(INSTRUMENTS) - {"phq9"}
    phq9 = {**GAD7, "instrument": "phq9", "items": [0] * 8 + [2]}
    with pytest.raises(RecordInvalid) as refused:
        session(phq9)
    paths = [i.path for i in refused.value.issues]
    assert paths == ["assessments[0].items[8]", "assessments[0].instrument"]
    assert "phq9_assessments" in refused.value.issues[1].message
    assert refused.value.issues[0].safety


def test_an_entered_in_error_session_marks_its_assessments_and_their_flags_entered_in_error() -> None:
    record = session(CSSRS_POSITIVE, GAD7, status="entered_in_error", adverse_events=[])
    resources = mapper_for("infusion_session").to_fhir_json(record, CONFIG)
    embedded = [r for r in resources if r["id"] in {rid.id for k in ("Q-GAD", "Q-CSSRS") for rid in _ids(k)}]
    assert len(embedded) > 10 and {r["status"] for r in embedded} == {ENTERED_IN_ERROR}
    assert [r["id"] for r in embedded if r["resourceType"] == "Flag"] == [flag_of("Q-CSSRS").split("/")[1]]


def _ids(key: str) -> list[Any]:
    return resource_ids("assessment", key, CONFIG)


def test_the_session_bundle_puts_the_responses_before_the_observations_derived_from_them() -> None:
    bundle = transaction_bundle([session(CSSRS_POSITIVE, GAD7)], CONFIG)
    types = [e["request"]["url"].split("/")[0] for e in bundle["entry"] if e["request"]["method"] == "PUT"]
    assert types.count("QuestionnaireResponse") == 2
    last_response = max(i for i, t in enumerate(types) if t == "QuestionnaireResponse")
    assert all(t != "Observation" for t in types[:last_response])
    assert types[-1] == "Flag"


def test_a_session_carrying_an_assessment_needs_the_questionnaires_first() -> None:
    assert carry_questionnaire_responses([session(GAD7)])
    assert not carry_questionnaire_responses([session()])


# -- against the in-memory server ----------------------------------------------------------------


async def test_a_session_reads_back_with_its_embedded_assessments(rig: Rig) -> None:
    record = session(CSSRS_POSITIVE, GAD7)
    await rig.engine.upsert([record])

    back = await rig.engine.read("infusion_session", SESSION_KEY)

    assert back == record
    assert [a.instrument for a in back.assessments] == ["gad7", "cssrs_screen"]


async def test_retracting_a_session_takes_its_assessments_off_the_flag_but_not_those_sent_on_their_own(
    rig: Rig,
) -> None:
    await rig.engine.upsert([session(CSSRS_POSITIVE, GAD7)])
    await rig.engine.upsert([standalone("Q-OWN", CSSRS_POSITIVE)])
    store = rig.fake.store
    flag_ref = flag_of("Q-CSSRS")  # the patient's one Flag, opened by the first positive
    embedded = (refs("assessment", "Q-CSSRS", store) | refs("assessment", "Q-GAD", store)) - {flag_ref}
    own = refs("assessment", "Q-OWN", store)
    (flag,) = rig.fake.of_type("Flag")
    assert f"Flag/{flag['id']}" == flag_ref and set(details(flag)) == {panel_of("Q-CSSRS"), panel_of("Q-OWN")}

    await rig.engine.retract("infusion_session", SESSION_KEY)

    assert {ref: store[ref]["status"] for ref in embedded} == dict.fromkeys(embedded, ENTERED_IN_ERROR)
    (flag,) = rig.fake.of_type("Flag")  # still the patient's alert: the answer sent on its own stands
    assert flag["status"] == "active" and details(flag) == (panel_of("Q-OWN"),)
    assert all(store[ref]["status"] != ENTERED_IN_ERROR for ref in own)
    assert (await rig.engine.read("assessment", "Q-OWN")).session_key == SESSION_KEY


async def test_a_flag_raised_only_by_a_retracted_session_is_entered_in_error(rig: Rig) -> None:
    await rig.engine.upsert([session(CSSRS_POSITIVE, GAD7)])
    assert rig.fake.store[flag_of("Q-CSSRS")]["status"] == "active"

    await rig.engine.retract("infusion_session", SESSION_KEY)

    (flag,) = rig.fake.of_type("Flag")
    assert flag["status"] == ENTERED_IN_ERROR and details(flag) == (panel_of("Q-CSSRS"),)  # what it was raised on


async def test_a_resent_session_leaves_a_flag_a_clinician_closed(rig: Rig) -> None:
    record = session(CSSRS_POSITIVE)
    await rig.engine.upsert([record])
    flag = rig.fake.store[flag_of("Q-CSSRS")]
    rig.fake.put({**flag, "status": "inactive"})  # a clinician has reviewed the risk

    result = await rig.engine.upsert([record])

    assert [f["status"] for f in rig.fake.of_type("Flag")] == ["inactive"]
    assert flag_of("Q-CSSRS") not in {e["request"]["url"] for e in rig.fake.transactions[-1]["entry"]}
    assert any(r.resource_type == "Flag" and r.outcome.value == "unchanged" for r in result.resources)


async def test_an_embedded_assessment_key_keeps_its_instrument(rig: Rig) -> None:
    await rig.engine.upsert([session(GAD7)])
    transactions = len(rig.fake.transactions)
    madrs = {**GAD7, "instrument": "madrs", "items": [1] * 10, "total": None, "difficulty": None}

    with pytest.raises(Conflict, match="keeps its instrument"):
        await rig.engine.upsert([session(madrs)])

    assert len(rig.fake.transactions) == transactions
