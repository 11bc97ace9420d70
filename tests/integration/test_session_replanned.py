"""A session sent again as `planned` reads back as planned, and the EHR no longer sees its administration.

Found by Schemathesis' stateful phase: a completed session maps to a Procedure, a MedicationAdministration
and a dosing weight; the same key sent again as `planned` maps to neither of the last two (R4 has no
planned administration status). A PUT never deletes, so both stayed on the server: GET read a dose back
into a planned session (502), and the EHR kept a ketamine administration that the clinic had withdrawn.
The transaction now deletes the parts a record no longer has (`KindMapper.stale_parts`).
"""

from __future__ import annotations

import copy

import httpx
import pytest

from service.settings import Settings
from tests.integration.beds import deleted_status
from tests.unit.examples import BASE


@pytest.fixture(params=[True, False], ids=["provenance", "no-provenance"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Each test with Provenance on and off: a stale part's DELETE must act the same (docs/security.md, Deletes)."""
    return settings.model_copy(update={"provenance": request.param})


def test_a_completed_session_put_again_as_planned_reads_back_as_planned_and_its_dose_is_gone(
    api, fhir_base_url: str
) -> None:
    completed = {k: v for k, v in copy.deepcopy(BASE["infusion_session"]).items() if k not in ("key", "kind")}
    completed |= {"vital_signs": [], "adverse_events": []}
    planned = {k: v for k, v in completed.items() if k not in ("dose", "ended_at")} | {"status": "planned"}
    first = api.put("/v1/infusion-sessions/S-replan", json=completed)
    assert first.status_code == 201
    given = [r for r in first.json()["resources"] if r["resourceType"] in ("MedicationAdministration",)]
    assert given, first.json()

    second = api.put("/v1/infusion-sessions/S-replan", json=planned)
    assert second.status_code in (200, 201), second.text
    assert {"MedicationAdministration"} <= {
        r["resourceType"] for r in second.json()["resources"] if r["outcome"] == "deleted"
    }

    read = api.get("/v1/infusion-sessions/S-replan")
    assert read.status_code == 200, read.text
    assert read.json()["status"] == "planned" and "dose" not in read.json()
    for resource in given:
        gone = httpx.get(f"{fhir_base_url}/MedicationAdministration/{resource['id']}")
        assert gone.status_code == deleted_status(), gone.status_code

    again = api.put("/v1/infusion-sessions/S-replan", json=planned)  # nothing left to delete: nothing reported
    assert again.status_code == 200
    assert all(r["outcome"] != "deleted" for r in again.json()["resources"])


def _session_body() -> dict:
    body = {k: v for k, v in copy.deepcopy(BASE["infusion_session"]).items() if k not in ("key", "kind")}
    return body | {"vital_signs": [], "adverse_events": []}


def _planned(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("dose", "ended_at")} | {"status": "planned"}


def _event_of(session_key: str, patient: dict) -> dict:
    event = {k: v for k, v in copy.deepcopy(BASE["adverse_event"]).items() if k not in ("key", "kind")}
    return event | {"session_key": session_key, "patient": patient}


def test_with_read_before_write_only_what_the_server_holds_is_deleted(settings, fhir_cleanup) -> None:
    """The diff reads every part a record can have, so it sends a DELETE only for one the server holds."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from tests.integration.conftest import TrackingApi

    with TestClient(create_app(settings.model_copy(update={"api_read_before_write": True}))) as client:
        api = TrackingApi(client, fhir_cleanup)
        completed = _session_body()
        assert api.put("/v1/infusion-sessions/S-replan-diff", json=completed).status_code == 201
        second = api.put("/v1/infusion-sessions/S-replan-diff", json=_planned(completed))
        assert second.status_code == 200, second.text
        deleted = {r["resourceType"] for r in second.json()["resources"] if r["outcome"] == "deleted"}
        assert "MedicationAdministration" in deleted
        read = api.get("/v1/infusion-sessions/S-replan-diff")
        assert read.status_code == 200 and read.json()["status"] == "planned", read.text


def test_an_adverse_event_of_a_replanned_then_retracted_session_is_written(api) -> None:
    """Found by Schemathesis with the first version of the fix: the event suspected the deleted
    administration (HAPI-1096, so a 502). A retracted session's event suspects its Procedure."""
    completed = _session_body()
    assert api.put("/v1/infusion-sessions/S-replan-ae", json=completed).status_code == 201
    assert api.put("/v1/infusion-sessions/S-replan-ae", json=_planned(completed)).status_code == 200
    assert api.delete("/v1/infusion-sessions/S-replan-ae").status_code in (200, 204)

    put = api.put("/v1/adverse-events/AE-replan", json=_event_of("S-replan-ae", completed["patient"]))

    assert put.status_code == 201, put.text
    assert api.get("/v1/adverse-events/AE-replan").status_code == 200


def test_a_dose_an_adverse_event_suspects_is_not_withdrawn_under_it(api) -> None:
    """A separately sent event suspecting the dose keeps the dose: the re-plan is refused (409, saying
    what to do) and nothing is written, rather than the event pointing at nothing."""
    completed = _session_body()
    assert api.put("/v1/infusion-sessions/S-replan-held", json=completed).status_code == 201
    event = _event_of("S-replan-held", completed["patient"])
    assert api.put("/v1/adverse-events/AE-replan-held", json=event).status_code == 201

    refused = api.put("/v1/infusion-sessions/S-replan-held", json=_planned(completed))

    assert refused.status_code == 409, refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    read = api.get("/v1/infusion-sessions/S-replan-held")
    assert read.status_code == 200 and read.json()["status"] == "completed" and "dose" in read.json()
