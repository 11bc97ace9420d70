"""Batch `sync` writes the monitoring summary of every session the run touched, at the end of the run, reading
those sessions only; a re-run writes none again; a summary that cannot be written stops the job (exit 2)."""

from __future__ import annotations

from typing import Any

import httpx

from service.mappers import MappingConfig
from service.mappers.ids import resource_id
from service.mappers.monitoring_report import part_ref
from tests.monitoring_sessions import bp, hypertensive, separate, session
from tests.unit.fake_fhir import BASE, FakeFhir
from tests.unit.test_questionnaires_wired import batch_on, ndjson, run_sync

CONFIG = MappingConfig(fhir_base_url=BASE)
MRN = "MRN-BATCH"


def _records() -> list[dict[str, Any]]:
    embedded = {**session("S-B1", MRN), **hypertensive("B1")}
    on_their_own = separate({"vital_signs": [bp("B2-0", -10, 120, 80), bp("B2-1", 10, 140, 85)]}, "S-B2", MRN)
    return [embedded, session("S-B2", MRN), *on_their_own, session("S-B3", MRN)]


def test_the_run_writes_each_touched_sessions_summary_once_at_its_end(tmp_path, monkeypatch) -> None:
    fake = FakeFhir()
    untouched = session("S-OLD", MRN)
    with batch_on(fake, monkeypatch):
        first = run_sync(ndjson(tmp_path, [untouched]), tmp_path)
        assert first["monitoring_summaries"] == {"sessions": 1, "resources": {}}  # no reading: no summary
        before = len(fake.requests)
        summary = run_sync(ndjson(tmp_path, _records()), tmp_path)
        asked = [str(r.url) for r in fake.requests[before:]]
        again = run_sync(ndjson(tmp_path, _records()), tmp_path)
    assert summary["exit_code"] == 0
    assert summary["monitoring_summaries"]["sessions"] == 3
    assert summary["monitoring_summaries"]["resources"] == {"created": 10}  # B1: 7 (with its Flag), B2: 3
    assert fake.store[part_ref("S-B1", "flag", CONFIG)]["status"] == "active"
    assert part_ref("S-B2", "report", CONFIG) in fake.store
    assert (
        part_ref("S-B3", "report", CONFIG) not in fake.store and part_ref("S-OLD", "report", CONFIG) not in fake.store
    )
    old = resource_id("infusion_session", "S-OLD", "procedure", CONFIG)
    assert not any(old in url for url in asked)  # an untouched session is not read
    summaries_written = [
        t for t in fake.transactions if any(e["request"]["url"].startswith("DiagnosticReport") for e in t["entry"])
    ]
    assert len(summaries_written) == 2
    assert again["monitoring_summaries"]["resources"] == {"unchanged": 10}


def test_a_summary_that_cannot_be_written_stops_the_job_saying_so(tmp_path, monkeypatch) -> None:
    fake = FakeFhir()

    def refuse_summaries(request: httpx.Request, body: Any) -> httpx.Response | None:
        bundle = body if isinstance(body, dict) and body.get("resourceType") == "Bundle" else {"entry": []}
        if any(e["request"]["url"].startswith("DiagnosticReport") for e in bundle["entry"]):
            return httpx.Response(503, json={"resourceType": "OperationOutcome", "issue": []})
        return None

    fake.intercept = refuse_summaries
    with batch_on(fake, monkeypatch):
        summary = run_sync(ndjson(tmp_path, _records()), tmp_path)
    assert summary["exit_code"] == 2
    assert summary["synced"] == len(_records())  # every line synced: the records are written
    assert summary["stopped_reason"].startswith("monitoring summaries not written: ")
