"""The service on the Medplum FHIR engine (issue 24): what used to be refused there is written.

Medplum's engine takes at most 8 entries in a transaction that holds a conditional entry
(docs/compatibility.md, row 1): when a new Patient rode in the records' transaction, a PHQ-9 or a rating scale
for a new patient answered 502 every time over the API, and a batch rejected such lines. With the Patient
created first in its own transaction (`service.sync.identities`) both are written. Likewise the deletes of
parts a record no longer has: only what the server holds, and never a dose an adverse event suspects
(`service.sync.deletes`). Runs on the bed of `make medplum-up`, else on one of its own
(tests/integration/medplum_support.py).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import key_digest
from service.settings import Settings
from tests.integration.conftest import API_KEY, AUTH
from tests.unit.examples import BASE as EXAMPLES

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


@pytest.fixture
def api(medplum: httpx.Client, tmp_path: Path) -> Iterator[TestClient]:
    """The service on the bed, its identifier systems new to this test (the bed keeps what earlier tests wrote)."""
    run = uuid.uuid4().hex[:12]
    settings = Settings(
        FHIR_BASE_URL=str(medplum.base_url).rstrip("/"),
        api_keys=key_digest(API_KEY),
        identifier_system_base=f"https://test.infusion-fhir.example/{run}/sid",
        mrn_system=f"https://test.infusion-fhir.example/{run}/mrn",
        audit_log=str(tmp_path / "audit.jsonl"),
    )
    with TestClient(create_app(settings)) as client:
        yield client


def golden(kind: str, case: str) -> dict[str, Any]:
    """The golden input of `case` as a PUT body for a new patient, naming no session."""
    record = json.loads((GOLDEN / kind / case / "input.json").read_text(encoding="utf-8"))
    record.pop("session_key", None)
    record.pop("kind", None)
    record["patient"] = {**record["patient"], "mrn": f"M-{uuid.uuid4().hex[:10]}"}
    return record


@pytest.mark.parametrize(
    ("segment", "kind", "case"),
    [
        ("phq9-assessments", "phq9_assessment", "item9-positive"),
        ("assessments", "assessment", "pcl5-probable-ptsd"),
        ("assessments", "assessment", "cssrs-screen-high"),
    ],
)
def test_a_scale_for_a_new_patient_is_written_and_sent_again(
    api: TestClient, segment: str, kind: str, case: str
) -> None:
    body = golden(kind, case)
    url = f"/v1/{segment}/{body['key']}"

    first = api.put(url, json=body, headers=AUTH)
    assert first.status_code == 201, first.text[:800]
    outcomes = {(r["resourceType"], r["outcome"]) for r in first.json()["resources"]}
    assert ("Patient", "created") in outcomes
    assert {o for _, o in outcomes} == {"created"}

    again = api.put(url, json=body, headers=AUTH)
    assert again.status_code == 200, again.text[:800]
    # nothing created twice; the bed writes a new version of a PUT even when unchanged (docs/compatibility.md)
    assert {r["outcome"] for r in again.json()["resources"]} <= {"unchanged", "updated"}

    read = api.get(url, headers=AUTH)
    assert read.status_code == 200, read.text[:800]
    assert read.json()["items"] == body["items"]


# -- deletes (docs/compatibility.md rows 5 and 15; H-35) -------------------------------------------


def test_a_phq9_without_a_difficulty_answer_for_a_new_patient_is_written(api: TestClient) -> None:
    """Its difficulty Observation was never written: no DELETE of it is sent (the engine answers 404 to one, and
    refuses the whole transaction)."""
    body = golden("phq9_assessment", "minimal-no-session")
    assert "difficulty" not in body
    put = api.put(f"/v1/phq9-assessments/{body['key']}", json=body, headers=AUTH)
    assert put.status_code == 201, put.text[:800]


def test_a_withdrawn_difficulty_answer_is_deleted(api: TestClient, medplum: httpx.Client) -> None:
    """With Provenance on (the default), whose rewrite of what names a deleted resource needs a search the engine
    answers without the `_revinclude=*` wildcard."""
    body = {**golden("phq9_assessment", "minimal-no-session"), "difficulty": "somewhat"}
    url = f"/v1/phq9-assessments/{body['key']}"
    first = api.put(url, json=body, headers=AUTH)
    assert first.status_code == 201, first.text[:800]

    withdrawn = api.put(url, json={k: v for k, v in body.items() if k != "difficulty"}, headers=AUTH)

    assert withdrawn.status_code == 200, withdrawn.text[:800]
    (deleted,) = [r for r in withdrawn.json()["resources"] if r["outcome"] == "deleted"]
    assert medplum.get(f"Observation/{deleted['id']}").status_code in (404, 410)
    assert "difficulty" not in api.get(url, headers=AUTH).json()


def test_a_dose_an_adverse_event_suspects_is_not_withdrawn_under_it(api: TestClient) -> None:
    """H-35 where the server keeps no referential integrity (it deletes what another resource names): the re-plan
    is refused with a 409 before anything is sent, and the dose reads back."""
    mrn = f"M-{uuid.uuid4().hex[:10]}"
    session = {
        k: v for k, v in copy.deepcopy(EXAMPLES["infusion_session"]).items() if k not in ("key", "kind", "patient")
    }
    session |= {
        "patient": {**EXAMPLES["infusion_session"]["patient"], "mrn": mrn},
        "vital_signs": [],
        "adverse_events": [],
    }
    key = f"S-{uuid.uuid4().hex[:8]}"
    assert api.put(f"/v1/infusion-sessions/{key}", json=session, headers=AUTH).status_code == 201
    event = {k: v for k, v in copy.deepcopy(EXAMPLES["adverse_event"]).items() if k not in ("key", "kind")}
    event |= {"session_key": key, "patient": session["patient"]}
    assert api.put(f"/v1/adverse-events/AE-{key}", json=event, headers=AUTH).status_code == 201

    planned = {k: v for k, v in session.items() if k not in ("dose", "ended_at")} | {"status": "planned"}
    refused = api.put(f"/v1/infusion-sessions/{key}", json=planned, headers=AUTH)

    assert refused.status_code == 409, refused.text[:800]
    assert "suspected" in refused.json()["issue"][0]["diagnostics"]
    read = api.get(f"/v1/infusion-sessions/{key}", headers=AUTH)
    assert read.status_code == 200 and read.json()["status"] == "completed" and "dose" in read.json()


# -- the limit on updates in one transaction (docs/compatibility.md row 2) -------------------------


def test_a_session_with_60_embedded_readings_is_written_split_and_reads_back(api: TestClient) -> None:
    """Medplum takes at most 50 updates in a transaction: the session is written over several, and says so."""
    mrn = f"M-{uuid.uuid4().hex[:10]}"
    body = {k: v for k, v in copy.deepcopy(EXAMPLES["infusion_session"]).items() if k not in ("key", "kind")}
    body["patient"] = {**body["patient"], "mrn": mrn}
    started = body["started_at"]
    body["vital_signs"] = [
        {"key": f"V-{i}", "measured_at": started, "type": "heart_rate", "value": 60 + i % 40} for i in range(50)
    ]
    body["monitoring_scores"] = [
        {"key": f"M-{i}", "measured_at": started, "instrument": "rass", "score": 0} for i in range(10)
    ]
    key = f"S-{uuid.uuid4().hex[:8]}"

    first = api.put(f"/v1/infusion-sessions/{key}", json=body, headers=AUTH)

    assert first.status_code == 201, first.text[:800]
    assert first.json()["split_into_transactions"] >= 2
    read = api.get(f"/v1/infusion-sessions/{key}", headers=AUTH)
    assert read.status_code == 200, read.text[:800]
    assert len(read.json()["vital_signs"]) == 50 and len(read.json()["monitoring_scores"]) == 10


@pytest.mark.parametrize("mrn", ["B|", "|B", "B,1"])
def test_an_mrn_holding_a_bar_or_comma_lands_on_its_own_patient(
    api: TestClient, medplum: httpx.Client, mrn: str
) -> None:
    """Row 17 (H-70): the engine ignores search escaping, so a PHQ-9 for MRN `B|` was written on the Patient of
    MRN `B`. Now it gets a Patient of its own (matched on the MRN's match key), and a second one finds it."""
    run = uuid.uuid4().hex[:8]
    plain = golden("phq9_assessment", "item9-positive")
    plain["patient"]["mrn"] = f"B{run}"
    plain["key"] += f"-{run}-plain"
    odd = golden("phq9_assessment", "item9-positive")
    odd["patient"]["mrn"] = mrn.replace("B", f"B{run}")
    odd["key"] += f"-{run}-odd"
    again = {**copy.deepcopy(odd), "key": odd["key"] + "-2"}

    answers = [api.put(f"/v1/phq9-assessments/{b['key']}", json=b, headers=AUTH) for b in (plain, odd, again)]

    assert [a.status_code for a in answers] == [201, 201, 201], [a.text[:300] for a in answers]
    patients = [next(r["id"] for r in a.json()["resources"] if r["resourceType"] == "Observation") for a in answers]
    subjects = [medplum.get(f"Observation/{p}").json()["subject"]["reference"] for p in patients]
    assert subjects[1] != subjects[0] and subjects[2] == subjects[1]
    held = medplum.get(subjects[1]).json()
    assert odd["patient"]["mrn"] in [i["value"] for i in held["identifier"]]
    assert plain["patient"]["mrn"] not in [i["value"] for i in held["identifier"]]
