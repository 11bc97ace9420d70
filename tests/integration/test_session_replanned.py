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

from tests.unit.examples import BASE


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
        assert gone.status_code == 410, gone.status_code

    again = api.put("/v1/infusion-sessions/S-replan", json=planned)  # nothing left to delete: nothing reported
    assert again.status_code == 200
    assert all(r["outcome"] != "deleted" for r in again.json()["resources"])
