"""One PHQ-9, two kinds (issue 21, H-33), through the API on the in-memory FHIR server: a PHQ-9 sent as
`assessment` writes its `phq9_assessment` resources, reads and retracts under either kind, keeps its
instrument across the kinds (409), and its QuestionnaireResponse goes with its session's retraction."""

from __future__ import annotations

import asyncio
import copy
import io
from typing import Any

import orjson
from fastapi.testclient import TestClient

from schemas import parse_record
from service.app import create_app
from service.auth import key_digest
from service.batch.report import Report
from service.batch.runner import BatchSync
from service.batch.source import parse_line
from service.fhir_client import open_fhir_client
from service.mappers import mapper_for, resource_ids
from service.mappers.ids import resource_ref
from service.settings import Settings
from service.sync import SyncEngine
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, FakeFhir

AUTH = {"Authorization": "Bearer unit-key"}
SETTINGS = Settings(FHIR_BASE_URL=BASE, api_keys=key_digest("unit-key"), retry_max_attempts=2)
CONFIG = SETTINGS.mapping_config()
PHQ9 = {
    "patient": {"mrn": "MRN-ONE"},
    "completed_at": "2026-03-02T09:10:00-05:00",
    "items": [1, 1, 0, 2, 1, 0, 0, 1, 2],
    "difficulty": "very",
}
GAD7 = {"patient": {"mrn": "MRN-ONE"}, "instrument": "gad7", "completed_at": PHQ9["completed_at"], "items": [1] * 7}


def api_on(fake: FakeFhir) -> TestClient:
    return TestClient(create_app(SETTINGS, transport=fake.transport()))


def held(fake: FakeFhir, kind: str, key: str) -> dict[str, dict[str, Any]]:
    """The server's copies of the resources of record `kind`/`key`, by `Type/id`."""
    refs = {rid.ref for rid in resource_ids(kind, key, CONFIG)}
    return {
        f"{t}/{r['id']}": r
        for t in ("QuestionnaireResponse", "Observation", "Flag")
        for r in fake.of_type(t)
        if f"{t}/{r['id']}" in refs
    }


def test_sent_as_assessment_it_writes_the_phq9_assessments_resources_and_reads_back_under_both_kinds() -> None:
    fake = FakeFhir()
    with api_on(fake) as api:
        written = api.put("/v1/assessments/P-9", json={**PHQ9, "instrument": "phq9"}, headers=AUTH)
        as_phq9 = api.get("/v1/phq9-assessments/P-9", headers=AUTH)
        as_assessment = api.get("/v1/assessments/P-9", headers=AUTH)
        again = api.put("/v1/phq9-assessments/P-9", json=PHQ9, headers=AUTH)

    assert written.status_code == 201, written.text
    expected = mapper_for("phq9_assessment").to_fhir_json(
        parse_record({"kind": "phq9_assessment", "key": "P-9", **PHQ9}), CONFIG
    )
    assert set(held(fake, "phq9_assessment", "P-9")) == {f"{r['resourceType']}/{r['id']}" for r in expected}
    assert held(fake, "assessment", "P-9") == {}, "nothing under the assessment kind's ids"
    assert as_phq9.json()["items"] == as_assessment.json()["items"] == PHQ9["items"]
    assert as_assessment.json()["instrument"] == "phq9" and "instrument" not in as_phq9.json()
    assert again.status_code == 200 and {r["outcome"] for r in again.json()["resources"]} <= {"updated", "unchanged"}
    assert len(fake.of_type("Flag")) == 1


def test_a_key_keeps_its_instrument_across_the_two_kinds() -> None:
    fake = FakeFhir()
    with api_on(fake) as api:
        assert api.put("/v1/assessments/K-1", json={**PHQ9, "instrument": "phq9"}, headers=AUTH).status_code == 201
        gad7_on_phq9 = api.put("/v1/assessments/K-1", json=GAD7, headers=AUTH)
        assert api.put("/v1/assessments/K-2", json=GAD7, headers=AUTH).status_code == 201
        phq9_on_gad7 = api.put("/v1/phq9-assessments/K-2", json=PHQ9, headers=AUTH)
        phq9_as_assessment_on_gad7 = api.put("/v1/assessments/K-2", json={**PHQ9, "instrument": "phq9"}, headers=AUTH)
        assert api.put("/v1/phq9-assessments/K-3", json=PHQ9, headers=AUTH).status_code == 201
        same_phq9_as_assessment = api.put("/v1/assessments/K-3", json={**PHQ9, "instrument": "phq9"}, headers=AUTH)
        gad7 = api.get("/v1/assessments/K-2", headers=AUTH)

    for refused in (gad7_on_phq9, phq9_on_gad7, phq9_as_assessment_on_gad7):
        assert refused.status_code == 409, refused.text
        conflict = [i for i in refused.json()["issue"] if i["code"] == "conflict"]
        assert conflict and "keeps its instrument" in conflict[0]["diagnostics"]
    assert same_phq9_as_assessment.status_code == 200, same_phq9_as_assessment.text
    assert gad7.json()["instrument"] == "gad7"
    assert held(fake, "assessment", "K-1") == {} and held(fake, "phq9_assessment", "K-2") == {}


def test_retracted_under_the_assessment_kind_the_phq9_is_retracted_and_a_stranger_key_is_404() -> None:
    fake = FakeFhir()
    with api_on(fake) as api:
        assert api.put("/v1/phq9-assessments/P-R", json=PHQ9, headers=AUTH).status_code == 201
        retracted = api.delete("/v1/assessments/P-R", headers=AUTH)
        gone = api.get("/v1/assessments/P-R", headers=AUTH)
        never = api.delete("/v1/assessments/P-NEVER", headers=AUTH)

    assert retracted.status_code == 204
    statuses = {r["status"] for r in held(fake, "phq9_assessment", "P-R").values()}
    assert statuses == {"entered-in-error"}
    assert gone.status_code == 404
    assert never.status_code == 404 and "assessment P-NEVER" in never.json()["issue"][0]["diagnostics"]


def test_a_sessions_retraction_takes_its_embedded_phq9s_questionnaire_response() -> None:
    fake = FakeFhir()
    session = copy.deepcopy(EXAMPLES["infusion_session"])
    session["phq9_assessments"] = [{"key": "P-E", "completed_at": session["started_at"], "items": PHQ9["items"]}]
    session.pop("kind")
    response = resource_ref("phq9_assessment", "P-E", "response", CONFIG)
    with api_on(fake) as api:
        assert api.put("/v1/infusion-sessions/S-1", json=session, headers=AUTH).status_code == 201
        assert fake.of_type("Questionnaire"), "the Questionnaires first: the session carries a response"
        assert held(fake, "phq9_assessment", "P-E")[response]["status"] == "completed"
        assert api.delete("/v1/infusion-sessions/S-1", headers=AUTH).status_code == 204

    assert {r["status"] for r in held(fake, "phq9_assessment", "P-E").values()} == {"entered-in-error"}


async def test_in_a_batch_a_phq9_after_another_instrument_on_its_key_waits_for_it_and_is_refused() -> None:
    """Two lines of one file, one key: a GAD-7 and, further down, a PHQ-9. Their Bundles fly at once, and the
    GAD-7's transaction is held open: the PHQ-9's Bundle waits for it, then the instrument check sees the GAD-7
    and rejects the PHQ-9 line (409). Without the wait both were written under one key."""
    fake = FakeFhir()

    async def hold_the_gad7(request: Any, body: Any) -> None:
        if request.url.path.rstrip("/") == "/fhir" and any(
            (e.get("resource") or {}).get("questionnaire", "").split("|")[0].endswith("/gad7") for e in body["entry"]
        ):
            for _ in range(200):
                await asyncio.sleep(0)

    fake.intercept = hold_the_gad7
    settings = Settings(FHIR_BASE_URL=BASE)
    lines = [
        parse_line("in.ndjson", 1, orjson.dumps({**GAD7, "kind": "assessment", "key": "K-B"})),
        parse_line("in.ndjson", 2, orjson.dumps({**PHQ9, "kind": "phq9_assessment", "key": "K-B"})),
    ]
    async with open_fhir_client(settings, transport=fake.transport()) as fhir:
        engine = SyncEngine(fhir, settings.mapping_config())
        report = await BatchSync(engine, Report(io.BytesIO()), batch_size=1, concurrency=2).run(lines)

    (rejected,) = [orjson.loads(line) for line in report.rejects.getvalue().splitlines()]  # type: ignore[attr-defined]
    assert rejected["line"] == 2 and "keeps its instrument" in rejected["reason"]
    assert held(fake, "phq9_assessment", "K-B") == {} and held(fake, "assessment", "K-B")
