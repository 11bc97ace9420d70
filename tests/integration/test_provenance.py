"""Provenance on every write, against the real HAPI server (issue 23, points 2 and 3; docs/security.md).

Every test turns Provenance on explicitly (`INFUSION_FHIR_PROVENANCE`), whatever the default.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas import parse_record
from schemas.kinds import ADVERSE_EVENT, SESSION
from service.fhir_client import open_fhir_client
from service.mappers import transaction_bundle
from service.mappers.ids import identifier_system
from service.provenance import ProvenanceWriter, transactions_for
from service.provenance.agents import device_id, service_version
from service.request_context import Caller, request_scope
from service.settings import Settings
from service.sync import SyncEngine
from tests.conftest import provenances_naming
from tests.integration.batch_support import DEPENDENTS, Namespace
from tests.integration.beds import deleted_status
from tests.integration.test_api_sync import session_body

FHIR_JSON = {"Accept": "application/fhir+json"}
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"provenance": True})


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[SyncEngine]:
    async with open_fhir_client(settings) as fhir:
        writer = transactions_for(settings, fhir)
        assert isinstance(writer, ProvenanceWriter)
        yield SyncEngine(fhir, settings.mapping_config(), writer)


def session(run_id: str) -> Any:
    return parse_record({"kind": SESSION, **session_body(f"s-{run_id}", f"MRN-{run_id}")})


def search(base_url: str, resource_type: str, **params: str) -> list[dict[str, Any]]:
    answer = httpx.post(f"{base_url}/{resource_type}/_search", data={**params, "_count": "500"}, headers=FHIR_JSON)
    answer.raise_for_status()
    return [e["resource"] for e in answer.json().get("entry", [])]


def provenances_of(base_url: str, ref: str) -> list[dict[str, Any]]:
    return search(base_url, "Provenance", target=ref)


def activity(provenance: dict[str, Any]) -> str:
    (coding,) = provenance["activity"]["coding"]
    assert coding["system"] == DATA_OPERATION
    return str(coding["code"])


def agent(provenance: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [a for a in provenance["agent"] if a["type"]["coding"][0]["code"] == code]
    return found


def validate_errors(base_url: str, resource: dict[str, Any]) -> list[str]:
    answer = httpx.post(
        f"{base_url}/{resource['resourceType']}/$validate",
        json=resource,
        headers={**FHIR_JSON, "Content-Type": "application/fhir+json"},
        timeout=120,
    )
    issues = answer.json().get("issue", [])
    return [i.get("diagnostics", "") for i in issues if i["severity"] in ("error", "fatal")]


def track(fhir_cleanup: Any, result: Any) -> None:
    refs = [f"{r.resource_type}/{r.id}" for r in result.resources]
    fhir_cleanup.track(*sorted(refs, key=lambda ref: not ref.startswith("Patient/")))


@pytest.mark.needs("$validate")
async def test_a_transactions_provenance_names_its_targets_agents_and_sources(
    engine: SyncEngine, settings: Settings, fhir_base_url: str, fhir_cleanup: Any, run_id: str
) -> None:
    record = session(run_id)
    with request_scope(f"req-{run_id}", Caller("api-key", "ehr-main")):
        result = await engine.upsert([record])
    track(fhir_cleanup, result)
    written = {f"{r.resource_type}/{r.id}" for r in result.resources}
    (patient,) = [ref for ref in written if ref.startswith("Patient/")]
    procedure = next(ref for ref in written if ref.startswith("Procedure/"))

    (update,) = provenances_of(fhir_base_url, procedure)
    assert activity(update) == "UPDATE"
    assert {t["reference"] for t in update["target"]} == written - {patient}
    (create,) = provenances_of(fhir_base_url, patient)
    assert activity(create) == "CREATE" and [t["reference"] for t in create["target"]] == [patient]
    assert create["recorded"] <= update["recorded"]  # the new Patient's own transaction came first (identities.py)
    assert create["id"] != update["id"]

    organization = agent(update, "author")["who"]["reference"]
    assembler = agent(update, "assembler")
    assert assembler["who"]["reference"] == f"Device/{device_id(service_version())}"
    assert assembler["onBehalfOf"]["reference"] == organization  # US Core provenance-1: a Device acts for someone
    transmitter = agent(update, "transmitter")
    assert transmitter["who"]["identifier"] == {
        "system": f"{settings.identifier_system_base}/caller",
        "value": "ehr-main",
    }
    assert transmitter["onBehalfOf"]["reference"] == organization
    assert update["entity"] == [
        {
            "role": "source",
            "what": {"identifier": {"system": identifier_system(SESSION, engine.config), "value": record.key}},
        }
    ]
    device = httpx.get(f"{fhir_base_url}/{assembler['who']['reference']}", headers=FHIR_JSON).json()
    assert device["version"] == [{"value": service_version()}]
    clinic = httpx.get(f"{fhir_base_url}/{organization}", headers=FHIR_JSON).json()
    assert clinic["name"] == settings.provenance_clinic_name
    for resource in (update, create, device, clinic):
        assert validate_errors(fhir_base_url, resource) == [], resource["resourceType"]


@pytest.mark.needs("unchanged-put-keeps-version")
async def test_a_retried_transaction_adds_one_provenance_and_a_later_write_a_new_one(
    engine: SyncEngine, fhir_base_url: str, fhir_cleanup: Any, run_id: str
) -> None:
    record = session(run_id)
    writer = engine.transactions
    with request_scope(f"req-{run_id}", Caller("api-key", "ehr-main")):
        result = await engine.upsert([record])
    track(fhir_cleanup, result)
    procedure = next(f"Procedure/{r.id}" for r in result.resources if r.resource_type == "Procedure")
    patient = next(f"Patient/{r.id}" for r in result.resources if r.resource_type == "Patient")
    bundle = transaction_bundle([record], engine.config, {record.patient.mrn: patient})
    with request_scope(f"retried-{run_id}", Caller("api-key", "ehr-main")):
        created = writer.provenances
        await writer.send(bundle, [record])
        first = {p["id"]: p for p in provenances_of(fhir_base_url, procedure)}
        await writer.send(bundle, [record])  # the same Bundle again, as the client's retry sends it
    again = {p["id"]: p for p in provenances_of(fhir_base_url, procedure)}
    assert len(first) == 2 and again.keys() == first.keys()
    assert writer.provenances == created + 1
    assert all(p["meta"]["versionId"] == "1" for p in again.values())  # the retry wrote the same Provenance

    with request_scope(f"later-{run_id}", Caller("api-key", "ehr-main")):
        await engine.upsert([record])  # the same content, a later request: a new Provenance
    assert len(provenances_of(fhir_base_url, procedure)) == 3


@pytest.mark.needs("$validate")
async def test_a_retraction_deletes_the_adverse_event_and_keeps_what_named_it(
    engine: SyncEngine, fhir_base_url: str, fhir_cleanup: Any, run_id: str
) -> None:
    record = session(run_id)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with request_scope(f"req-{run_id}", Caller("api-key", "ehr-main")):
        result = await engine.upsert([record])
    track(fhir_cleanup, result)
    event = next(f"AdverseEvent/{r.id}" for r in result.resources if r.resource_type == "AdverseEvent")
    (named,) = provenances_of(fhir_base_url, event)
    ae_key = record.adverse_events[0].key
    version = httpx.get(f"{fhir_base_url}/{event}", headers=FHIR_JSON).json()["meta"]["versionId"]  # `1` on HAPI

    with request_scope(f"retract-{run_id}", Caller("api-key", "ehr-main")):
        retracted = await engine.retract(ADVERSE_EVENT, ae_key)
    assert [r.outcome.value for r in retracted.resources] == ["deleted"]
    assert httpx.get(f"{fhir_base_url}/{event}", headers=FHIR_JSON).status_code == deleted_status()
    assert provenances_of(fhir_base_url, event) == []
    now = httpx.get(f"{fhir_base_url}/Provenance/{named['id']}", headers=FHIR_JSON).json()
    assert event not in {t["reference"] for t in now["target"]} and now["target"]  # its other targets stay
    history = httpx.get(f"{fhir_base_url}/Provenance/{named['id']}/_history", headers=FHIR_JSON).json()
    first = history["entry"][-1]["resource"]  # newest first (FHIR http.html#history); versions need not be numbers
    assert event in {t["reference"] for t in first["target"]}  # its history still names the event

    device = f"Device/{device_id(service_version())}"
    deletes = [
        p for p in search(fhir_base_url, "Provenance", agent=device, recorded=f"ge{started}") if activity(p) == "DELETE"
    ]
    (deletion,) = [p for p in deletes if any(event in t["identifier"]["value"] for t in p["target"])]
    url = f"{fhir_base_url}/{event}"
    assert deletion["target"] == [{"type": "AdverseEvent", "identifier": {"system": "urn:ietf:rfc:3986", "value": url}}]
    roles = {(e["role"], e["what"]["identifier"]["value"]) for e in deletion["entity"]}
    assert roles == {("source", ae_key), ("removal", f"{url}/_history/{version}")}
    fhir_cleanup.track(f"Provenance/{deletion['id']}")
    assert validate_errors(fhir_base_url, deletion) == []

    with request_scope(f"retract-session-{run_id}", Caller("api-key", "ehr-main")):
        await engine.retract(SESSION, record.key)
    procedure = next(f"Procedure/{r.id}" for r in result.resources if r.resource_type == "Procedure")
    nullified = [p for p in provenances_of(fhir_base_url, procedure) if activity(p) == "NULLIFY"]
    assert len(nullified) == 1 and validate_errors(fhir_base_url, nullified[0]) == []


def test_a_resent_unchanged_corpus_adds_no_provenance(fhir_base_url: str, run_id: str, tmp_path: Path) -> None:
    ns = Namespace(fhir_base_url, run_id)
    try:
        path = tmp_path / "demo.ndjson"
        made = ns.cli("demo-data", "--patients", "1", "--seed", "5", "-o", str(path))
        assert made.returncode == 0, made.stderr

        def sync() -> dict[str, Any]:
            report = tmp_path / "report.json"
            done = ns.cli(
                "sync",
                str(path),
                "--report",
                str(report),
                "--rejects",
                str(tmp_path / "rejects.ndjson"),
                INFUSION_FHIR_PROVENANCE="true",
            )
            assert done.returncode == 0, done.stderr[-2000:]
            return dict(json.loads(report.read_text()))

        def held() -> set[str]:
            (patient,) = ns.patient_ids()
            refs = [f"{t}/{r['id']}" for t in DEPENDENTS for r in ns.all_of(t)] + [f"Patient/{patient}"]
            with httpx.Client(base_url=fhir_base_url, headers=FHIR_JSON, timeout=120) as http:
                return set(provenances_naming(http, refs))

        first = sync()
        provenances = held()
        assert first["provenances"] == len(provenances) > 0
        some = search(fhir_base_url, "Provenance", _id=",".join(ref.split("/")[1] for ref in provenances))
        sources = [e["what"] for p in some for e in p.get("entity", [])]
        assert all(w["display"].startswith(f"{path} line ") for w in sources if "display" in w)
        assert any("display" in w for w in sources)
        again = sync()
        assert again["transactions"] == 0 and again["provenances"] == 0
        assert held() == provenances
    finally:
        ns.purge()


def test_an_api_write_carries_its_provenance_and_its_retraction_succeeds(
    settings: Settings, fhir_cleanup: Any, fhir_base_url: str, run_id: str
) -> None:
    """Through the API: the caller named, a request sent again with its `X-Request-Id` writing no second
    Provenance, a new request writing one, and the adverse event's retraction succeeding."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from tests.integration.conftest import TrackingApi

    with TestClient(create_app(settings)) as client:
        api = TrackingApi(client, fhir_cleanup)
        body = session_body(f"s-{run_id}", f"MRN-{run_id}")
        url = f"/v1/infusion-sessions/{body['key']}"
        request_id = {"X-Request-Id": f"rq-{run_id}"}
        written = api.put(url, json=body, headers=request_id)
        assert written.status_code == 201, written.text
        refs = {r["resourceType"]: f"{r['resourceType']}/{r['id']}" for r in written.json()["resources"]}
        (first,) = provenances_of(fhir_base_url, refs["Procedure"])
        assert agent(first, "transmitter")["who"]["identifier"]["value"].startswith("key-")  # the key's name
        assert api.put(url, json=body, headers=request_id).status_code == 200  # the same request again
        assert [p["id"] for p in provenances_of(fhir_base_url, refs["Procedure"])] == [first["id"]]
        assert api.put(url, json=body).status_code == 200  # a new request: a new Provenance
        assert len(provenances_of(fhir_base_url, refs["Procedure"])) == 2

        event = refs["AdverseEvent"]
        assert len(provenances_of(fhir_base_url, event)) == 2
        assert api.delete(f"/v1/adverse-events/{body['key']}.ae1").status_code == 204
        assert provenances_of(fhir_base_url, event) == []
        assert httpx.get(f"{fhir_base_url}/{event}", headers=FHIR_JSON).status_code == deleted_status()
