"""Structured log events of the sync engine and the FHIR client, and no PHI in any of their records."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from schemas import parse_record
from service.fhir_client import open_fhir_client
from service.logs import JsonFormatter
from service.mappers import search_escape
from service.settings import Settings
from service.sync import SyncEngine
from service.sync.engine import SessionRefused
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, FakeFhir, InstantSleep, outcome

MRN = "LOGMRN|55,7"
SECRETS = [
    MRN,
    search_escape(MRN),
    quote(MRN, safe=""),
    quote(search_escape(MRN), safe=""),
    "Lognote about the patient's brother",
    "Aenote kept private",
    "Logfamilyname",
]


def record(kind: str, **changes: Any) -> Any:
    patient = {"mrn": MRN, "family": "Logfamilyname"}
    return parse_record({**copy.deepcopy(EXAMPLES[kind]), "patient": patient, **changes})


@pytest.fixture
async def rig() -> AsyncIterator[tuple[FakeFhir, SyncEngine, InstantSleep]]:
    fake = FakeFhir()
    settings = Settings(FHIR_BASE_URL=BASE)
    sleep = InstantSleep()
    async with open_fhir_client(settings, transport=fake.transport()) as fhir:
        fhir.retry = dataclasses.replace(fhir.retry, sleep=sleep)  # RetryPolicy's seam: no waiting
        yield fake, SyncEngine(fhir, settings.mapping_config()), sleep


def record_text(record: logging.LogRecord) -> str:
    """Everything a log record carries: every attribute (extras included) and its JSON line."""
    return repr(vars(record)) + record.getMessage() + JsonFormatter().format(record)


async def test_events_are_logged_and_none_carries_an_mrn_or_a_note(rig, caplog: pytest.LogCaptureFixture) -> None:
    fake, engine, sleep = rig
    caplog.set_level(logging.DEBUG, logger="infusion_fhir")
    raced: list[bool] = []
    busy: list[bool] = []

    def server(request: httpx.Request, body: Any) -> httpx.Response | None:
        if request.url.path.rstrip("/") == "/fhir" and not raced:  # the first transaction loses the Patient race
            raced.append(True)
            fake.put(
                {
                    "resourceType": "Patient",
                    "id": "p1",
                    "identifier": [{"system": engine.config.mrn_system, "value": MRN}],
                }
            )
            return httpx.Response(409, json=outcome(f"HAPI-2840: duplicate identifier={MRN}"))
        if request.url.path.endswith("/Patient/_search") and not busy:  # then a busy server, once
            busy.append(True)
            return httpx.Response(503, headers={"Retry-After": "1"})
        return None

    fake.intercept = server
    session = record(
        "infusion_session",
        note="Lognote about the patient's brother",
        adverse_events=[{**EXAMPLES["infusion_session"]["adverse_events"][0], "note": "Aenote kept private"}],
    )
    await engine.upsert([session])
    await engine.retract("infusion_session", "S-1")
    with pytest.raises(SessionRefused):
        await engine.upsert([record("vital_sign", key="V-9", session_key="S-NOT-THERE")])

    events = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("infusion_fhir.sync", "sync.patient_race_retry") in events
    assert ("infusion_fhir.sync", "sync.retract") in events
    assert ("infusion_fhir.sync", "sync.session_refused") in events
    assert ("infusion_fhir.fhir", "fhir.retry") in events
    assert sleep.delays == [1.0]
    retry = next(r for r in caplog.records if r.getMessage() == "fhir.retry")
    assert (retry.operation, retry.status, retry.attempt) == ("POST Patient/_search", 503, 1)
    retract = next(r for r in caplog.records if r.getMessage() == "sync.retract")
    assert (retract.kind, retract.key) == ("infusion_session", "S-1")
    refused = next(r for r in caplog.records if r.getMessage() == "sync.session_refused")
    assert (refused.missing, refused.other_patient) == (1, 0)
    assert len(caplog.records) >= 10  # debug events too: all of them are searched below
    for log_record in caplog.records:
        text = record_text(log_record)
        for secret in SECRETS:
            assert secret not in text, (log_record.getMessage(), secret)
