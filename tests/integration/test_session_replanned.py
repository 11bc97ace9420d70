"""Known issue, found by Schemathesis' stateful phase: a session re-PUT as `planned` no longer reads back.

A completed session maps to a Procedure and a MedicationAdministration; the same key PUT again as
`planned` maps to no MedicationAdministration (R4 has no planned administration status), and a PUT
never deletes, so the old one stays on the server. GET then reads a dose back into a planned session,
which the record rules refuse: 502 "the FHIR server holds data this service cannot read". Strict
xfail: it fails the run once the sync engine retracts what a record no longer maps to, and then this
marker goes.
"""

from __future__ import annotations

import copy

import pytest

from tests.unit.examples import BASE


@pytest.mark.xfail(strict=True, reason="a re-PUT leaves the resources the record no longer maps to (sync engine)")
def test_a_completed_session_put_again_as_planned_reads_back_as_planned(api) -> None:
    completed = {k: v for k, v in copy.deepcopy(BASE["infusion_session"]).items() if k not in ("key", "kind")}
    completed |= {"vital_signs": [], "adverse_events": []}
    planned = {k: v for k, v in completed.items() if k not in ("dose", "ended_at")} | {"status": "planned"}
    assert api.put("/v1/infusion-sessions/S-replan", json=completed).status_code == 201
    assert api.put("/v1/infusion-sessions/S-replan", json=planned).status_code in (200, 201)
    read = api.get("/v1/infusion-sessions/S-replan")
    assert read.status_code == 200, read.text
    assert read.json()["status"] == "planned" and "dose" not in read.json()
