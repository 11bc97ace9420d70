"""Stale parts deleted portably (issue 24, point 4; docs/compatibility.md rows 5 and 15; H-35).

The fake server here behaves as Medplum's engine does: a DELETE of what it does not hold fails the whole
transaction (404), and a DELETE of what another resource references succeeds (no referential integrity).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from schemas import parse_record
from service.errors import Conflict
from service.mappers import resource_ids
from service.mappers.ids import resource_ref
from service.sync.deletes import DoseSuspected
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import EngineRig as Rig
from tests.unit.fake_fhir import engine_rig, outcome


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with engine_rig() as made:

        def absent_deletes_fail(request: httpx.Request, body: Any) -> httpx.Response | None:
            if request.method == "POST" and request.url.path.rstrip("/") == "/fhir":
                for entry in body["entry"]:
                    url = entry["request"]["url"]
                    if entry["request"]["method"] == "DELETE" and url not in made.fake.store:
                        return httpx.Response(404, json=outcome(f"Not found: {url}"))
            return None

        made.fake.intercept = absent_deletes_fail
        made.engine.fhir.tells_creates = True  # as HAPI after its first 201: only the deletes are in question here
        yield made


def phq9(**changes: Any) -> Any:
    return parse_record({**EXAMPLES["phq9_assessment"], "session_key": None, **changes})


def session(**changes: Any) -> Any:
    return parse_record({**copy.deepcopy(EXAMPLES["infusion_session"]), **changes})


def planned(completed: Any) -> Any:
    body = completed.model_dump(mode="json", exclude_none=True)
    for field in ("ended_at", "dose", "vital_sign", "adverse_events", "vital_signs"):
        body.pop(field, None)
    return parse_record({**body, "status": "planned"})


def deletes(bundle: dict[str, Any]) -> list[str]:
    return [e["request"]["url"] for e in bundle["entry"] if e["request"]["method"] == "DELETE"]


async def test_a_part_never_written_gets_no_delete(rig: Rig) -> None:
    """A PHQ-9 without a difficulty answer, new: its difficulty Observation was never written."""
    await rig.engine.upsert([phq9(difficulty=None)])

    assert all(deletes(b) == [] for b in rig.fake.transactions)


async def test_a_withdrawn_answer_the_server_holds_is_deleted(rig: Rig) -> None:
    await rig.engine.upsert([phq9()])
    difficulty = resource_ref("phq9_assessment", "P-1", "difficulty", rig.config)
    assert difficulty in rig.fake.store

    await rig.engine.upsert([phq9(difficulty=None)])

    assert deletes(rig.fake.transactions[-1]) == [difficulty]
    assert difficulty not in rig.fake.store


async def test_a_server_showing_hapis_storage_codes_is_sent_the_delete_unread(rig: Rig) -> None:
    rig.fake.intercept = None  # HAPI takes a DELETE of nothing
    rig.engine.fhir.quiet_deletes = True
    rig.fake.events.clear()

    await rig.engine.upsert([phq9(difficulty=None)])

    difficulty = resource_ref("phq9_assessment", "P-1", "difficulty", rig.config)
    assert deletes(rig.fake.transactions[-1]) == [difficulty]
    assert not [e for e in rig.fake.events if e[0] == "search" and e[1] == "Observation"]  # nothing read for it


async def test_a_dose_an_adverse_event_suspects_is_never_deleted_under_it(rig: Rig) -> None:
    """H-35 on a server without referential integrity: the re-plan is refused before anything is sent."""
    completed = session(adverse_events=[])
    await rig.engine.upsert([completed])
    event = parse_record({**EXAMPLES["adverse_event"], "key": "AE-SEP", "session_key": completed.key})
    await rig.engine.upsert([event])
    administration = resource_ref("infusion_session", completed.key, "medication-administration", rig.config)
    sent = len(rig.fake.transactions)

    with pytest.raises(DoseSuspected) as refused:
        await rig.engine.upsert([planned(completed)])

    assert isinstance(refused.value, Conflict)  # a 409 at the API, a rejected line in a batch
    assert administration in str(refused.value) and "AdverseEvent/" in str(refused.value)
    assert len(rig.fake.transactions) == sent  # nothing was sent
    assert administration in rig.fake.store


async def test_a_replanned_session_whose_own_event_suspected_the_dose_is_written(rig: Rig) -> None:
    """An event embedded in the session is rewritten with it (to suspect the session), so the dose may go."""
    completed = session()
    await rig.engine.upsert([completed])
    administration = resource_ref("infusion_session", completed.key, "medication-administration", rig.config)
    assert administration in rig.fake.store

    replan = parse_record(
        {
            **planned(completed).model_dump(mode="json", exclude_none=True),
            "adverse_events": EXAMPLES["infusion_session"]["adverse_events"],
        }
    )
    await rig.engine.upsert([replan])

    assert administration in deletes(rig.fake.transactions[-1])
    assert administration not in rig.fake.store
    (event,) = [r for r in rig.fake.of_type("AdverseEvent")]
    assert resource_ids("infusion_session", completed.key, rig.config)[0].ref != administration
    assert administration not in str(event)
