"""Patient-first (issue 24, point 2): new Patients and visits in small transactions, records' transactions unconditional.

The fake server here keeps Medplum's rule (docs/compatibility.md, row 1): a transaction holding a conditional entry
may hold at most 8 entries, else the whole of it is refused with 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from schemas import parse_record
from service.sync.identities import PER_TRANSACTION
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import EngineRig as Rig
from tests.unit.fake_fhir import engine_rig, outcome

STRICT_MAX = 8


def strict_isolation(request: httpx.Request, body: Any) -> httpx.Response | None:
    """Medplum's limit: a transaction with a conditional entry holds at most 8 entries."""
    if request.method != "POST" or request.url.path.rstrip("/") != "/fhir":
        return None
    entries = body.get("entry", [])
    if any("ifNoneExist" in e["request"] for e in entries) and len(entries) > STRICT_MAX:
        return httpx.Response(400, json=outcome("Transaction requires strict isolation but has too many entries"))
    return None


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with engine_rig() as made:
        made.fake.intercept = strict_isolation
        made.engine.fhir.tells_creates = True  # as HAPI after its first 201 (outcomes.py)
        yield made


def record(kind: str, key: str, mrn: str = "MRN-1", **changes: Any) -> Any:
    data = {**EXAMPLES[kind], "key": key, "patient": {**EXAMPLES[kind]["patient"], "mrn": mrn}, **changes}
    return parse_record(data)


def conditional(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in bundle["entry"] if "ifNoneExist" in e["request"]]


async def test_a_new_patients_phq9_is_written_with_its_patient_created_first(rig: Rig) -> None:
    phq9 = record("phq9_assessment", "P-1", session_key=None)

    result = await rig.engine.upsert([phq9])

    identity, main = rig.fake.transactions
    assert [e["request"]["url"] for e in identity["entry"]] == ["Patient"]
    assert conditional(main) == []
    (patient,) = rig.fake.of_type("Patient")
    subjects = {e["resource"]["subject"]["reference"] for e in main["entry"] if "subject" in e["resource"]}
    assert subjects == {f"Patient/{patient['id']}"}
    assert "urn:uuid:" not in orjson.dumps(main).decode()
    assert len(main["entry"]) > STRICT_MAX  # the PHQ-9 alone would not fit beside a conditional entry
    assert ("Patient", "created") in {(r.resource_type, r.outcome.value) for r in result.resources}
    assert result.transactions == 2


async def test_a_patient_the_server_holds_costs_no_identity_transaction(rig: Rig) -> None:
    await rig.engine.upsert([record("vital_sign", "V-1", session_key=None)])
    before = len(rig.fake.transactions)

    result = await rig.engine.upsert([record("phq9_assessment", "P-1", session_key=None)])

    (main,) = rig.fake.transactions[before:]
    assert conditional(main) == []
    assert result.transactions == 1
    assert "Patient" not in {r.resource_type for r in result.resources}


async def test_many_new_patients_are_created_a_few_to_a_transaction(rig: Rig) -> None:
    vitals = [record("vital_sign", f"V-{i}", mrn=f"MRN-{i}", session_key=None) for i in range(2 * PER_TRANSACTION + 1)]

    result = await rig.engine.upsert(vitals)

    *identities, main = rig.fake.transactions
    assert [len(conditional(b)) for b in identities] == [PER_TRANSACTION, PER_TRANSACTION, 1]
    assert all(len(b["entry"]) == len(conditional(b)) for b in identities)
    assert conditional(main) == [] and len(main["entry"]) == len(vitals)
    assert len(rig.fake.of_type("Patient")) == len(vitals)
    assert result.transactions == 4


async def test_a_new_patients_visit_is_created_beside_the_patient_and_referenced_literally(rig: Rig) -> None:
    session = record("infusion_session", "S-1", visit_id="VISIT-1")

    await rig.engine.upsert([session])

    identity, main = rig.fake.transactions
    assert [e["request"]["url"] for e in identity["entry"]] == ["Patient", "Encounter"]
    (visit,) = [e for e in rig.fake.of_type("Encounter") if e["id"].startswith("encounter-")]
    (patient,) = rig.fake.of_type("Patient")
    assert visit["subject"]["reference"] == f"Patient/{patient['id']}"
    assert conditional(main) == []
    (procedure,) = [e["resource"] for e in main["entry"] if e["resource"]["resourceType"] == "Procedure"]
    assert procedure["encounter"]["reference"] == f"Encounter/{visit['id']}"


async def test_a_lost_race_for_a_new_patient_goes_on_with_the_winner(rig: Rig) -> None:
    vital = record("vital_sign", "V-9", mrn="MRN-RACE", session_key=None)
    lost: list[dict[str, Any]] = []

    def lose_the_identity_transaction(request: httpx.Request, body: Any) -> httpx.Response | None:
        if request.method == "POST" and request.url.path.rstrip("/") == "/fhir" and not lost:
            lost.append(body)
            rig.fake.put(
                {
                    "resourceType": "Patient",
                    "id": "winner",
                    "identifier": [{"system": rig.config.mrn_system, "value": "MRN-RACE"}],
                }
            )
            return httpx.Response(409, json=outcome("HAPI-2840: duplicate match URL"))
        return strict_isolation(request, body)

    rig.fake.intercept = lose_the_identity_transaction
    result = await rig.engine.upsert([vital])

    assert conditional(lost[0]) and len(lost[0]["entry"]) == 1  # the identity transaction lost, nothing else
    (main,) = rig.fake.transactions
    assert {e["resource"]["subject"]["reference"] for e in main["entry"]} == {"Patient/winner"}
    assert [p["id"] for p in rig.fake.of_type("Patient")] == ["winner"]
    assert result.counts() == {"created": 1}


async def test_a_conflict_on_the_records_transaction_keeps_the_patient_it_created_first(rig: Rig) -> None:
    """The retry after a 409 (a Flag changed meanwhile) still reports the Patient created before it, so a batch run
    does not send that Patient again (`BatchSync.run_patients`)."""
    refused: list[dict[str, Any]] = []

    def refuse_the_first_records_transaction(request: httpx.Request, body: Any) -> httpx.Response | None:
        transaction = request.method == "POST" and request.url.path.rstrip("/") == "/fhir"
        if transaction and not conditional(body) and not refused:
            refused.append(body)
            return httpx.Response(409, json=outcome("HAPI-0550: resource changed"))
        return strict_isolation(request, body)

    rig.fake.intercept = refuse_the_first_records_transaction
    result = await rig.engine.upsert([record("vital_sign", "V-1", mrn="MRN-C", session_key=None)])

    assert refused
    (patient,) = rig.fake.of_type("Patient")
    assert result.patients == {"MRN-C": f"Patient/{patient['id']}"}
