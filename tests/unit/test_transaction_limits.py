"""Transactions that fit the server's limit on updates (issue 24 point 2; docs/compatibility.md row 2).

The fake server keeps Medplum's rule: a transaction holding more than 50 PUTs is refused whole with 400
"Transaction contains more update operations than allowed".
"""

from __future__ import annotations

import copy
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from schemas import parse_record
from service.batch.report import Report
from service.batch.runner import BatchSync
from service.batch.source import Line
from service.sync.limits import PartlyWritten, TooManyUpdates, updates
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import EngineRig as Rig
from tests.unit.fake_fhir import engine_rig, outcome

MAX_UPDATES = 50
T0 = EXAMPLES["infusion_session"]["started_at"]


class UpdateLimit:
    """Medplum's limit, and a log of what it refused."""

    def __init__(self) -> None:
        self.refused: list[int] = []

    def __call__(self, request: httpx.Request, body: Any) -> httpx.Response | None:
        transaction = request.method == "POST" and request.url.path.rstrip("/") == "/fhir"
        if transaction and updates(body["entry"]) > MAX_UPDATES:
            self.refused.append(updates(body["entry"]))
            return httpx.Response(400, json=outcome("Transaction contains more update operations than allowed"))
        return None


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with engine_rig() as made:
        made.fake.intercept = UpdateLimit()
        made.engine.fhir.tells_creates = True
        yield made


def session(key: str = "S-1", readings: int = 60, mrn: str = "MRN-1") -> Any:
    body = copy.deepcopy(EXAMPLES["infusion_session"])
    body["key"] = key
    body["patient"] = {**body["patient"], "mrn": mrn}
    body["vital_signs"] = [
        {"key": f"{key}-V-{i}", "measured_at": T0, "type": "heart_rate", "value": 60 + i % 40} for i in range(readings)
    ]
    return parse_record(body)


def written(rig: Rig) -> list[dict[str, Any]]:
    return [b for b in rig.fake.transactions if updates(b["entry"])]


async def test_a_session_with_60_readings_is_written_over_several_transactions_and_says_so(rig: Rig) -> None:
    record = session()

    result = await rig.engine.upsert([record])

    assert rig.fake.intercept.refused and rig.fake.intercept.refused[0] > MAX_UPDATES  # learned from its refusal
    parts = written(rig)
    assert len(parts) == result.parts >= 2
    assert all(updates(p["entry"]) <= MAX_UPDATES for p in parts)
    vitals = [o for o in rig.fake.of_type("Observation") if o["id"].startswith("vs-")]
    assert len(vitals) == 60
    assert result.as_dict()["split_into_transactions"] == result.parts
    assert {r.outcome.value for r in result.resources} == {"created"}
    assert len(result.resources) == 1 + sum(len(p["entry"]) for p in parts)  # the Patient, and every part's


async def test_once_learned_a_large_record_is_split_before_it_is_sent(rig: Rig) -> None:
    await rig.engine.upsert([session("S-1")])
    refused = len(rig.fake.intercept.refused)

    result = await rig.engine.upsert([session("S-2")])

    assert len(rig.fake.intercept.refused) == refused  # no refused round trip this time
    assert result.parts >= 2


async def test_a_record_that_fits_is_never_split(rig: Rig) -> None:
    await rig.engine.upsert([session("S-1")])  # the limit is learned

    result = await rig.engine.upsert([session("S-2", readings=20)])

    assert result.parts == 1 and "split_into_transactions" not in result.as_dict()


async def test_a_configured_limit_splits_without_a_refusal(rig: Rig) -> None:
    rig.engine.fhir.max_updates = MAX_UPDATES

    result = await rig.engine.upsert([session()])

    assert rig.fake.intercept.refused == []
    assert result.parts >= 2


async def test_several_records_are_never_split_apart(rig: Rig) -> None:
    rig.engine.fhir.max_updates = MAX_UPDATES
    before = len(rig.fake.transactions)

    with pytest.raises(TooManyUpdates):
        await rig.engine.upsert([session("S-1", readings=30), session("S-2", readings=30)])

    assert written(rig)[before:] == []  # nothing of them was written


async def test_a_later_part_refused_says_how_much_was_written(rig: Rig) -> None:
    limit = rig.fake.intercept
    parts_seen: list[int] = []

    def refuse_the_second_part(request: httpx.Request, body: Any) -> httpx.Response | None:
        answer = limit(request, body)
        if answer is not None or request.method != "POST" or request.url.path.rstrip("/") != "/fhir":
            return answer
        if any(e["request"]["url"].startswith("Observation/vs-") for e in body["entry"]):
            parts_seen.append(1)
            if len(parts_seen) == 2:
                return httpx.Response(422, json=outcome("refused for another reason"))
        return None

    rig.fake.intercept = refuse_the_second_part

    with pytest.raises(PartlyWritten) as refused:
        await rig.engine.upsert([session()])

    assert "1 part(s) were written" in str(refused.value)
    assert refused.value.operation_outcome is None  # our words only: a server's may echo PHI


async def test_a_batch_halves_a_bundle_of_several_records_and_reports_none_split(rig: Rig) -> None:
    records = [session("S-1", readings=30), session("S-2", readings=30)]
    lines = [
        Line(source="t.ndjson", number=n, record=r, kind=r.kind, key=r.key, size=1) for n, r in enumerate(records, 1)
    ]
    report = Report(io.BytesIO())

    await BatchSync(rig.engine, report, batch_size=4, concurrency=1).run(lines)  # below half: one Bundle

    assert report.synced == 2 and report.rejected == 0
    assert report.split_records == [] and report.splits >= 1
    vitals = [o for o in rig.fake.of_type("Observation") if o["id"].startswith("vs-")]
    assert len(vitals) == 60
