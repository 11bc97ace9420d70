"""Identity on a server that ignores FHIR search escaping (docs/compatibility.md row 17, hazard H-70).

Medplum's engine split `s|B\\|` into pieces and matched the Patient of MRN `B`: a conditional create for MRN `B|`
found that Patient and a PHQ-9 landed on another patient. The fake here parses tokens the same loose way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from schemas import parse_record
from service.errors import FhirRejected
from service.mappers.ids import match_identifier
from service.outcomes.read import outcome_trend
from service.sync.engine import SessionRefused
from service.sync.trend import phq9_trend
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import EngineRig as Rig
from tests.unit.fake_fhir import engine_rig


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with engine_rig() as made:
        made.fake.honours_escapes = False
        made.engine.fhir.tells_creates = True  # as HAPI after its first 201 (outcomes.py)
        yield made


def record(kind: str, key: str, mrn: str, **changes: Any) -> Any:
    data = {**EXAMPLES[kind], "key": key, "patient": {**EXAMPLES[kind]["patient"], "mrn": mrn}, **changes}
    return parse_record(data)


def subjects(rig: Rig, resource_type: str) -> set[str]:
    return {r["subject"]["reference"] for r in rig.fake.of_type(resource_type) if "subject" in r}


def patient_ref(rig: Rig, mrn: str) -> str:
    (patient,) = [
        p
        for p in rig.fake.of_type("Patient")
        if any(i.get("system") == rig.config.mrn_system and i.get("value") == mrn for i in p["identifier"])
    ]
    return f"Patient/{patient['id']}"


@pytest.mark.parametrize("mrn", ["B|", "|B", "A,B", "B,", "B\\"])
async def test_an_mrn_needing_escapes_lands_on_its_own_patient_not_on_the_one_its_pieces_name(
    rig: Rig, mrn: str
) -> None:
    await rig.engine.upsert([record("phq9_assessment", "P-B", "B", session_key=None)])
    await rig.engine.upsert([record("phq9_assessment", "P-X", mrn, session_key=None)])

    assert len(rig.fake.of_type("Patient")) == 2
    own = patient_ref(rig, mrn)
    assert own != patient_ref(rig, "B")
    written = [r for r in rig.fake.of_type("Observation") if r["identifier"][0]["value"].startswith("P-X")]
    assert written and {r["subject"]["reference"] for r in written} == {own}


async def test_the_same_mrn_sent_again_finds_its_patient_by_the_match_key(rig: Rig) -> None:
    for key in ("P-1", "P-2"):
        await rig.engine.upsert([record("phq9_assessment", key, "Q|7,x", session_key=None)])

    (patient,) = rig.fake.of_type("Patient")
    key = match_identifier(rig.config.mrn_system, "Q|7,x", rig.config)
    assert key in patient["identifier"]
    assert subjects(rig, "Observation") == {f"Patient/{patient['id']}"}


async def test_a_conditional_create_matching_a_patient_without_the_mrn_is_refused_and_nothing_written(
    rig: Rig,
) -> None:
    """Whatever the server's search does: a Patient matched for an MRN must hold it (defence in depth)."""
    await rig.engine.upsert([record("vital_sign", "V-B", "B", session_key=None)])
    other = patient_ref(rig, "B")

    def match_patient_b(request: httpx.Request, body: Any) -> httpx.Response | None:
        transaction = request.method == "POST" and request.url.path.rstrip("/") == "/fhir"
        if transaction and any("ifNoneExist" in e["request"] for e in body["entry"]):
            entry = {"response": {"status": "200 OK", "location": f"{other}/_history/1"}}
            return httpx.Response(
                200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": [entry]}
            )
        return None

    rig.fake.intercept = match_patient_b
    before = {ref: dict(r) for ref, r in rig.fake.store.items()}
    with pytest.raises(FhirRejected) as caught:
        await rig.engine.upsert([record("phq9_assessment", "P-1", "C|1", session_key=None)])

    assert "does not hold its MRN" in caught.value.message and "C|1" not in caught.value.message
    assert rig.fake.store == before  # the record's transaction was never sent


async def test_a_visit_id_needing_escapes_gets_its_own_encounter_not_another_patients_visit(rig: Rig) -> None:
    await rig.engine.upsert([record("infusion_session", "S-1", "MRN-1", visit_id="V")])
    await rig.engine.upsert([record("infusion_session", "S-2", "MRN-2", visit_id="V|")])

    visits = {
        next(i["value"] for i in e["identifier"] if i["system"] == rig.config.visit_system): e
        for e in rig.fake.of_type("Encounter")
        if any(i["system"] == rig.config.visit_system for i in e["identifier"])
    }
    assert set(visits) == {"V", "V|"}
    assert visits["V|"]["subject"]["reference"] == patient_ref(rig, "MRN-2")
    (procedure,) = [p for p in rig.fake.of_type("Procedure") if p["identifier"][0]["value"] == "S-2"]
    assert procedure["encounter"]["reference"] == f"Encounter/{visits['V|']['id']}"


async def test_a_visit_the_conditional_create_matched_on_another_patient_refuses_the_session(rig: Rig) -> None:
    """The lookup misses the visit (say, written between it and the identity transaction); the conditional create then
    matches it: another patient's visit is not taken, the visits are read again and the session refused."""
    await rig.engine.upsert([record("infusion_session", "S-1", "MRN-1", visit_id="V|")])
    missed: list[str] = []

    def miss_the_first_visit_lookup(request: httpx.Request, body: Any) -> httpx.Response | None:
        if request.url.path.endswith("/Encounter/_search") and not missed:
            missed.append(request.url.path)
            return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []})
        return None

    rig.fake.intercept = miss_the_first_visit_lookup
    with pytest.raises(SessionRefused) as caught:
        await rig.engine.upsert([record("infusion_session", "S-2", "MRN-2", visit_id="V|")])

    assert missed and caught.value.visits == ["S-2"]
    assert not [p for p in rig.fake.of_type("Procedure") if p["identifier"][0]["value"] == "S-2"]


async def test_a_trend_reads_only_the_patient_holding_exactly_the_mrn(rig: Rig) -> None:
    await rig.engine.upsert([record("phq9_assessment", "P-B", "B", session_key=None)])
    await rig.engine.upsert([record("phq9_assessment", "P-X", "B|", session_key=None)])

    trend = await phq9_trend(rig.engine.fhir, rig.config, "B|")

    assert [p["key"] for p in trend["points"]] == ["P-X"]


async def test_an_outcome_trend_reads_only_the_patient_holding_exactly_the_mrn(rig: Rig) -> None:
    await rig.engine.upsert([record("phq9_assessment", "P-B", "B", session_key=None)])
    await rig.engine.upsert([record("phq9_assessment", "P-X", "B|", session_key=None)])

    trend = await outcome_trend(rig.engine.fhir, rig.config, "B|", "phq9")

    assert [p["key"] for p in trend["points"]] == ["P-X"]
