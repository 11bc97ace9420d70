"""Provenance: the pure builder (groups, ids, agents, sources, deletions) and the writer (retries, sequence, deletes)."""

from __future__ import annotations

import asyncio
from typing import Any

from schemas import parse_record
from service.fhir_client import open_fhir_client
from service.mappers import MappingConfig, transaction_bundle
from service.mappers.ids import identifier_system, patient_urn
from service.provenance import ProvenanceWriter, SourceRecord, Transactions, source_lines
from service.provenance.agents import AgentsOnce, Clinic
from service.provenance.build import Agents, Deleted, Source, Stamp, provenance_id, provenances
from service.request_context import Caller, request_scope
from service.settings import Settings
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, FakeFhir

CONFIG = MappingConfig(fhir_base_url=BASE)
AGENTS = Agents("Device/svc", "Organization/clinic", "https://x.example/sid/caller", "ehr-main")
STAMP = Stamp("2026-01-02T03:04:05.000+00:00", "req-1")


def put(resource_type: str, resource_id: str, subject: str, **extra: Any) -> dict[str, Any]:
    resource = {"resourceType": resource_type, "id": resource_id, "subject": {"reference": subject}, **extra}
    url = f"{resource_type}/{resource_id}"
    return {"fullUrl": f"{BASE}/{url}", "resource": resource, "request": {"method": "PUT", "url": url}}


def create_patient(urn: str) -> dict[str, Any]:
    request = {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=x"}
    return {"fullUrl": urn, "resource": {"resourceType": "Patient"}, "request": request}


def by_group(found: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["target"][0].get("reference", ""), p["activity"]["coding"][0]["code"]): p for p in found}


def test_one_provenance_per_patient_and_activity_naming_that_patients_resources() -> None:
    entries = [
        create_patient("urn:uuid:a"),
        put("Procedure", "p1", "urn:uuid:a"),
        put("Observation", "o1", "urn:uuid:a"),
        put("Observation", "o2", "Patient/7"),
        put("Flag", "f1", "Patient/7", status="entered-in-error"),
    ]
    found = provenances(entries, [], AGENTS, STAMP, BASE)
    targets = {(p["activity"]["coding"][0]["code"], tuple(t["reference"] for t in p["target"])) for p in found}
    assert targets == {
        ("CREATE", ("urn:uuid:a",)),
        ("UPDATE", ("Procedure/p1", "Observation/o1")),
        ("UPDATE", ("Observation/o2",)),
        ("NULLIFY", ("Flag/f1",)),
    }
    assert {p["recorded"] for p in found} == {STAMP.recorded}
    assert len({p["id"] for p in found}) == 4


def test_the_agents_the_service_the_clinic_and_the_caller_each_device_on_behalf_of_the_clinic() -> None:
    (found,) = provenances([put("Observation", "o1", "Patient/7")], [], AGENTS, STAMP, BASE)
    agents = {a["type"]["coding"][0]["code"]: a for a in found["agent"]}
    assert agents["assembler"]["who"] == {"reference": "Device/svc"}
    assert agents["author"]["who"] == {"reference": "Organization/clinic"}
    assert agents["transmitter"]["who"]["identifier"] == {"system": AGENTS.caller_system, "value": "ehr-main"}
    for code in ("assembler", "transmitter"):
        assert agents[code]["onBehalfOf"] == {"reference": "Organization/clinic"}
    anonymous = Agents("Device/svc", "Organization/clinic", AGENTS.caller_system, None)
    (without,) = provenances([put("Observation", "o1", "Patient/7")], [], anonymous, STAMP, BASE)
    assert "transmitter" not in {a["type"]["coding"][0]["code"] for a in without["agent"]}


def test_a_record_is_a_source_only_of_the_groups_holding_its_resources() -> None:
    entries = [
        create_patient("urn:uuid:a"),
        put("Observation", "o1", "urn:uuid:a"),
        put("Observation", "o2", "Patient/7"),
    ]
    one = Source("sys/vital-sign", "v1", frozenset({"Observation/o1"}), "in.ndjson", 3, "urn:uuid:a")
    two = Source("sys/vital-sign", "v2", frozenset({"Observation/o2"}), "in.ndjson", 4, "urn:uuid:b")
    gone = Source("sys/vital-sign", "v3", frozenset({"Observation/o3"}), "in.ndjson", 5, "urn:uuid:c")  # unchanged
    groups = by_group(provenances(entries, [one, two, gone], AGENTS, STAMP, BASE))
    keys = {g: [e["what"]["identifier"]["value"] for e in p.get("entity", [])] for g, p in groups.items()}
    assert keys == {
        ("urn:uuid:a", "CREATE"): ["v1"],
        ("Observation/o1", "UPDATE"): ["v1"],
        ("Observation/o2", "UPDATE"): ["v2"],
    }
    what = groups[("Observation/o2", "UPDATE")]["entity"][0]["what"]
    assert what == {"identifier": {"system": "sys/vital-sign", "value": "v2"}, "display": "in.ndjson line 4"}
    (summary,) = provenances([put("Observation", "o1", "Patient/7")], [Source("sys/s", "s1")], AGENTS, STAMP, BASE)
    assert [e["role"] for e in summary["entity"]] == ["source"]  # a record without refs: a source of every group


def test_a_deleted_resource_is_named_by_its_url_and_its_deleted_version() -> None:
    deleted = [Deleted("AdverseEvent", "ae1", "3", "Patient/7")]
    (found,) = provenances([], [Source("sys/adverse-event", "k")], AGENTS, STAMP, BASE, deleted)
    assert found["activity"]["coding"][0]["code"] == "DELETE"
    url = f"{BASE}/AdverseEvent/ae1"
    assert found["target"] == [{"type": "AdverseEvent", "identifier": {"system": "urn:ietf:rfc:3986", "value": url}}]
    assert found["entity"][-1] == {
        "role": "removal",
        "what": {"type": "AdverseEvent", "identifier": {"system": "urn:ietf:rfc:3986", "value": f"{url}/_history/3"}},
    }


def test_ids_follow_the_scope_patient_and_activity() -> None:
    same = provenance_id("req-1#1", "Patient/7", "UPDATE")
    assert same == provenance_id("req-1#1", "Patient/7", "UPDATE")
    assert same != provenance_id("req-1#2", "Patient/7", "UPDATE")
    assert same != provenance_id("req-1#1", "Patient/8", "UPDATE")
    assert same != provenance_id("req-1#1", "Patient/7", "NULLIFY")


# -- the writer, on the fake FHIR server --------------------------------------------------------


def session() -> Any:
    return parse_record(EXAMPLES["infusion_session"])


class Clock:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return f"2026-01-02T03:04:0{self.calls}.000+00:00"


async def writer_on(fake: FakeFhir, clock: Clock, *, sequenced: bool = False) -> Any:
    settings = Settings(FHIR_BASE_URL=BASE, retry_max_attempts=1)
    context = open_fhir_client(settings, transport=fake.transport())
    fhir = await context.__aenter__()
    agents = AgentsOnce(fhir, Clinic("Clinic", "sys|c1"), BASE, version="1.2.3")
    writer = ProvenanceWriter(fhir, CONFIG, agents, caller_system="sys/caller", sequenced=sequenced, clock=clock)
    return writer, context


def sent_provenances(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e.get("resource", {}).get("resourceType") == "Provenance"]


async def test_the_same_bundle_sent_again_carries_the_same_provenances_and_the_answer_only_its_own() -> None:
    fake, clock = FakeFhir(), Clock()
    writer, context = await writer_on(fake, clock)
    try:
        record = session()
        bundle = transaction_bundle([record], CONFIG)
        with request_scope("req-1", Caller("api-key", "ehr-main")):
            first = await writer.send(bundle, [record])
            await writer.send(bundle, [record])
    finally:
        await context.__aexit__(None, None, None)
    assert len(first["entry"]) == len(bundle["entry"])  # the caller's entries only
    agents, once, twice = fake.transactions
    assert {e["resource"]["resourceType"] for e in agents["entry"]} == {"Device", "Organization"}
    assert sent_provenances(once) == sent_provenances(twice) and sent_provenances(once)
    assert clock.calls == 1 and writer.provenances == len(sent_provenances(once))
    assert "Provenance" not in {e.get("resource", {}).get("resourceType") for e in bundle["entry"]}  # not mutated


async def test_an_api_request_sent_again_numbers_its_bundles_alike_and_a_new_request_anew() -> None:
    fake = FakeFhir()
    writer, context = await writer_on(fake, Clock())
    record = session()

    async def request(request_id: str) -> None:  # each API request runs in a task (its own context) of its own
        with request_scope(request_id, Caller("api-key", "ehr-main")):
            await writer.send(transaction_bundle([record], CONFIG), [record])
            await writer.send(transaction_bundle([record], CONFIG), [record])  # a second Bundle of the request

    try:
        for request_id in ("req-1", "req-1", "req-2"):
            await asyncio.create_task(request(request_id))
    finally:
        await context.__aexit__(None, None, None)
    ids = [frozenset(p["id"] for p in sent_provenances(b)) for b in fake.transactions[1:]]
    assert ids[0] != ids[1]  # two Bundles of one request
    assert ids[2:4] == ids[0:2]  # the request sent again
    assert not set(ids[4:6]) & set(ids[0:2])  # a new request


async def test_a_batch_numbers_its_bundles_across_its_workers() -> None:
    fake = FakeFhir()
    writer, context = await writer_on(fake, Clock(), sequenced=True)
    record = session()

    async def worker() -> None:
        await writer.send(transaction_bundle([record], CONFIG), [record])

    try:
        with request_scope("job-1", Caller("batch", "in.ndjson")):
            await asyncio.gather(*(asyncio.create_task(worker()) for _ in range(3)))
    finally:
        await context.__aexit__(None, None, None)
    ids = [frozenset(p["id"] for p in sent_provenances(b)) for b in fake.transactions[1:]]
    assert len(set(ids)) == 3


async def test_a_delete_rewrites_the_provenances_naming_what_it_removes() -> None:
    fake = FakeFhir()
    fake.put({"resourceType": "AdverseEvent", "id": "ae1", "subject": {"reference": "Patient/7"}})
    fake.put(
        {
            "resourceType": "Provenance",
            "id": "both",
            "target": [{"reference": "AdverseEvent/ae1"}, {"reference": "Observation/o1"}],
        }
    )
    fake.put({"resourceType": "Provenance", "id": "only", "target": [{"reference": "AdverseEvent/ae1"}]})
    writer, context = await writer_on(fake, Clock())
    try:
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": "AdverseEvent/ae1"}}],
        }
        with request_scope("req-1", None):
            await writer.send(bundle, [SourceRecord("adverse_event", "k1")])
    finally:
        await context.__aexit__(None, None, None)
    sent = fake.transactions[-1]["entry"]
    requests = [(e["request"]["method"], e["request"]["url"]) for e in sent]
    assert requests[:3] == [("DELETE", "AdverseEvent/ae1"), ("PUT", "Provenance/both"), ("DELETE", "Provenance/only")]
    assert sent[1]["resource"]["target"] == [{"reference": "Observation/o1"}]
    (deletion,) = sent_provenances(fake.transactions[-1])[1:]
    assert deletion["activity"]["coding"][0]["code"] == "DELETE"
    assert [a["type"]["coding"][0]["code"] for a in deletion["agent"]] == ["assembler", "author"]  # no caller known


async def test_a_delete_of_what_something_else_still_names_rewrites_nothing_so_the_server_refuses_it() -> None:
    fake = FakeFhir()
    fake.put({"resourceType": "MedicationAdministration", "id": "ma1", "subject": {"reference": "Patient/7"}})
    suspect = {"instance": {"reference": "MedicationAdministration/ma1"}}
    fake.put(
        {"resourceType": "AdverseEvent", "id": "ae1", "subject": {"reference": "Patient/7"}, "suspectEntity": [suspect]}
    )
    fake.put({"resourceType": "Provenance", "id": "p1", "target": [{"reference": "MedicationAdministration/ma1"}]})
    writer, context = await writer_on(fake, Clock())
    try:
        delete = {"request": {"method": "DELETE", "url": "MedicationAdministration/ma1"}}
        with request_scope("req-1", None):
            await writer.send({"resourceType": "Bundle", "type": "transaction", "entry": [delete]}, [])
    finally:
        await context.__aexit__(None, None, None)
    # HAPI checks only the first reference it finds to a deleted resource, and forgets it when its source is
    # written in the same transaction: rewriting p1 here could let the DELETE through past the AdverseEvent.
    assert "Provenance/p1" not in {e["request"]["url"] for e in fake.transactions[-1]["entry"]}


async def test_the_batch_names_each_records_file_and_line() -> None:
    from service.batch.source import Line

    fake = FakeFhir()
    writer, context = await writer_on(fake, Clock())
    try:
        record = session()
        with request_scope("job-1", Caller("batch", "in.ndjson")), source_lines([Line("in.ndjson", 12, record)]):
            await writer.send(transaction_bundle([record], CONFIG), [record])
    finally:
        await context.__aexit__(None, None, None)
    (create, update) = sorted(sent_provenances(fake.transactions[-1]), key=lambda p: p["activity"]["coding"][0]["code"])
    assert create["target"] == [{"reference": patient_urn(record.patient.mrn, CONFIG)}]
    system = identifier_system(record.kind, CONFIG)
    for provenance in (create, update):
        assert provenance["entity"] == [
            {
                "role": "source",
                "what": {"identifier": {"system": system, "value": record.key}, "display": "in.ndjson line 12"},
            }
        ]


async def test_without_provenance_the_bundle_goes_as_built() -> None:
    fake = FakeFhir()
    async with open_fhir_client(Settings(FHIR_BASE_URL=BASE), transport=fake.transport()) as fhir:
        bundle = transaction_bundle([session()], CONFIG)
        await Transactions(fhir).send(bundle, [session()])
    assert fake.transactions == [bundle]
