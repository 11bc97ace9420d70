"""SyncEngine read / retract / Patient race retry against an in-memory FHIR server (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import orjson
import pytest

from schemas import parse_record
from service.errors import Conflict, NotFound
from service.mappers import MappingConfig, mapper_for, resource_ids, search_escape
from service.mappers.codes import (
    ENTERED_IN_ERROR,
    EXT_EMBEDDED_IN_SESSION,
    EXT_SESSION,
    local_system,
)
from service.mappers.ids import match_param, patient_token, resource_ref
from service.mappers.session import session_context
from service.safety.flags import details
from service.settings import Settings
from service.sync.engine import SessionRefused
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.examples import T0
from tests.unit.fake_fhir import BASE, FakeFhir, engine_rig, outcome
from tests.unit.fake_fhir import EngineRig as Rig

SESSION_KEY = "S-1"
EMBEDDED_PHQ9 = {"key": "P-E", "completed_at": T0, "items": [1, 1, 1, 1, 1, 1, 1, 1, 2], "difficulty": "somewhat"}


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with engine_rig() as made:
        yield made


def record(kind: str, **changes: Any) -> Any:
    return parse_record({**copy.deepcopy(EXAMPLES[kind]), **changes})


def session_with_phq9() -> Any:
    return record("infusion_session", phq9_assessments=[EMBEDDED_PHQ9])


def transaction_posts(fake: FakeFhir) -> list[httpx.Request]:
    return [r for r in fake.requests if r.method == "POST" and r.url.path.rstrip("/") == httpx.URL(BASE).path]


def patient_id(fake: FakeFhir) -> str:
    (patient,) = fake.of_type("Patient")
    return patient["id"]


# -- read -------------------------------------------------------------------------------------


async def test_read_finds_a_records_resources_by_id_and_maps_them_back(rig: Rig) -> None:
    vital = record("vital_sign", key="V-9")
    await rig.engine.upsert([record("infusion_session"), vital])
    before = len(rig.fake.requests)

    back = await rig.engine.read("vital_sign", "V-9")

    assert back == vital
    searches = [e for e in rig.fake.events if e[0] == "search"][-1:]
    (primary,) = resource_ids("vital_sign", "V-9", rig.config)
    assert searches == [("search", "Observation", {"_id": primary.id})]
    read_paths = [r.url.path for r in rig.fake.requests[before:] if r.method == "GET"]
    assert read_paths == [f"/fhir/Patient/{patient_id(rig.fake)}"]


async def test_read_of_a_session_brings_its_children_but_not_another_patients_or_another_sessions(rig: Rig) -> None:
    session = record("infusion_session")
    standalone = record("vital_sign", key="V-9")
    await rig.engine.upsert([session, standalone])
    config = rig.config
    context = session_context(session, config)
    procedure_ref = resource_ref("infusion_session", SESSION_KEY, "procedure", config)
    own_patient = f"Patient/{patient_id(rig.fake)}"

    # Another patient's Observation naming this session, in this session's visit and partOf it.
    rig.fake.put(
        {"resourceType": "Patient", "id": "other", "identifier": [{"system": config.mrn_system, "value": "MRN-2"}]}
    )
    stranger = record("vital_sign", key="V-OTHER", patient={"mrn": "MRN-2"})
    (foreign,) = mapper_for("vital_sign").to_fhir_json(stranger, config, context)
    rig.fake.put({**foreign, "subject": {"reference": "Patient/other"}, "partOf": [{"reference": procedure_ref}]})
    # This patient's Observation naming another session, yet found through this session's visit.
    other_session = record("vital_sign", key="V-S2", session_key="S-2")
    (elsewhere,) = mapper_for("vital_sign").to_fhir_json(other_session, config)
    rig.fake.put(
        {
            **elsewhere,
            "subject": {"reference": own_patient},
            "encounter": {"reference": context.encounter},
            "partOf": [{"reference": procedure_ref}],
        }
    )
    # The searches the engine makes do find both: leaving them out is the engine's filtering.
    found = {r["id"] for r in rig.fake.matches("Observation", {"encounter": context.encounter})}
    assert {foreign["id"], elsewhere["id"]} <= found

    # And a retracted child is no child any more.
    await rig.engine.upsert([record("vital_sign", key="V-RETRACTED")])
    await rig.engine.retract("vital_sign", "V-RETRACTED")

    back = await rig.engine.read("infusion_session", SESSION_KEY)

    assert [v.key for v in back.vital_signs] == ["V-1", "V-2", "V-3", "V-9"]
    assert [a.key for a in back.adverse_events] == ["A-1"]
    assert back.model_copy(update={"vital_signs": back.vital_signs[:3]}) == session


async def test_read_of_a_record_the_server_never_had_is_not_found(rig: Rig) -> None:
    with pytest.raises(NotFound):
        await rig.engine.read("adverse_event", "never")
    assert [r.method for r in rig.fake.requests] == ["POST"]  # one search, no transaction


async def test_read_of_a_retracted_record_is_not_found(rig: Rig) -> None:
    await rig.engine.upsert([record("infusion_session"), record("vital_sign", key="V-9")])
    await rig.engine.retract("vital_sign", "V-9")
    (primary,) = resource_ids("vital_sign", "V-9", rig.config)
    assert rig.fake.store[primary.ref]["status"] == ENTERED_IN_ERROR  # still there, marked

    with pytest.raises(NotFound):
        await rig.engine.read("vital_sign", "V-9")


async def test_read_of_a_retracted_session_is_not_found(rig: Rig) -> None:
    await rig.engine.upsert([record("infusion_session")])
    await rig.engine.retract("infusion_session", SESSION_KEY)
    with pytest.raises(NotFound):
        await rig.engine.read("infusion_session", SESSION_KEY)


# -- retract ----------------------------------------------------------------------------------


def refs_of(kind: str, key: str, config: MappingConfig, store: dict[str, Any]) -> set[str]:
    return {rid.ref for rid in resource_ids(kind, key, config) if rid.ref in store}


async def test_retract_of_a_session_puts_entered_in_error_and_deletes_adverse_events_in_one_transaction(
    rig: Rig,
) -> None:
    session = session_with_phq9()
    await rig.engine.upsert([session])
    await rig.engine.upsert([record("vital_sign", key="V-9"), record("adverse_event", key="A-9")])
    config, store = rig.config, rig.fake.store
    expected_puts = refs_of("infusion_session", SESSION_KEY, config, store)
    for key in ("V-1", "V-2", "V-3"):
        expected_puts |= refs_of("vital_sign", key, config, store)
    expected_puts |= refs_of("phq9_assessment", "P-E", config, store)
    flag = resource_ref("phq9_assessment", "P-E", "flag", config)
    assert flag in expected_puts  # item 9 > 0: the Flag goes with its PHQ-9
    embedded_ae = resource_ref("adverse_event", "A-1", "adverse-event", config)
    untouched = refs_of("vital_sign", "V-9", config, store) | refs_of("adverse_event", "A-9", config, store)
    transactions_before = len(transaction_posts(rig.fake))

    result = await rig.engine.retract("infusion_session", SESSION_KEY)

    assert len(transaction_posts(rig.fake)) == transactions_before + 1
    bundle = rig.fake.transactions[-1]
    puts = {e["request"]["url"]: e for e in bundle["entry"] if e["request"]["method"] == "PUT"}
    deletes = [e["request"]["url"] for e in bundle["entry"] if e["request"]["method"] == "DELETE"]
    assert set(puts) == expected_puts
    assert deletes == [embedded_ae]
    for url, entry in puts.items():
        assert entry["resource"]["status"] == ENTERED_IN_ERROR, url
        assert entry["fullUrl"] == f"{BASE}/{url}"
        assert "meta" not in entry["resource"]
    assert not [e for e in bundle["entry"] if e["request"]["method"] == "DELETE" and "resource" in e]
    assert not untouched & (set(puts) | set(deletes))
    assert all(store[ref].get("status", "final") != ENTERED_IN_ERROR for ref in untouched)
    assert embedded_ae not in store and embedded_ae in rig.fake.deleted
    assert result.counts() == {"updated": len(expected_puts), "deleted": 1}


async def test_retract_of_a_session_leaves_records_that_only_name_it(rig: Rig) -> None:
    """A record sent on its own carries the `session` extension, embedded ones `embedded-in-session`."""
    await rig.engine.upsert([session_with_phq9()])
    await rig.engine.upsert(
        [
            record("vital_sign", key="V-9"),
            record("adverse_event", key="A-9"),
            record("phq9_assessment", key="P-9", items=[0, 0, 0, 0, 0, 0, 0, 1, 3], total=4),
        ]
    )
    config = rig.config
    own_url, embedded_url = (
        local_system(config.local_code_system_base, p) for p in (EXT_SESSION, EXT_EMBEDDED_IN_SESSION)
    )

    await rig.engine.retract("infusion_session", SESSION_KEY)

    sent = {e["request"]["url"]: e.get("resource") for e in rig.fake.transactions[-1]["entry"]}
    for ref in (
        refs_of("vital_sign", "V-9", config, rig.fake.store)
        | refs_of("phq9_assessment", "P-9", config, rig.fake.store)
        | refs_of("adverse_event", "A-9", config, rig.fake.store)
    ):
        assert ref not in sent
        if not ref.startswith("Flag/"):
            assert own_url in {x["url"] for x in rig.fake.store[ref].get("extension", [])}
    children = [r for r in sent.values() if r and r["resourceType"] in ("Observation",) and "extension" in r]
    assert children and all(embedded_url in {x["url"] for x in r["extension"]} for r in children)
    # the patient's one Flag (opened by the embedded PHQ-9, joined by P-9) keeps P-9 and loses the embedded one
    (flag,) = rig.fake.of_type("Flag")
    assert flag["id"] == resource_ref("phq9_assessment", "P-E", "flag", config).split("/")[1]
    assert flag["status"] == "active"
    assert details(flag) == (resource_ref("phq9_assessment", "P-9", "panel", config),)


async def test_retract_of_a_record_already_deleted_is_no_error_and_sends_nothing(rig: Rig) -> None:
    await rig.engine.upsert([record("adverse_event", key="A-9", session_key=None, causality=None)])
    await rig.engine.retract("adverse_event", "A-9")  # an AdverseEvent is deleted: 410 from now on
    (primary,) = resource_ids("adverse_event", "A-9", rig.config)
    transactions_before = len(transaction_posts(rig.fake))
    requests_before = len(rig.fake.requests)

    result = await rig.engine.retract("adverse_event", "A-9")

    assert result.resources == []
    assert len(transaction_posts(rig.fake)) == transactions_before
    reads = [r for r in rig.fake.requests[requests_before:] if r.method == "GET"]
    assert [r.url.path for r in reads] == [f"/fhir/{primary.ref}"]


async def test_retract_of_a_record_never_had_is_not_found_and_sends_nothing(rig: Rig) -> None:
    with pytest.raises(NotFound):
        await rig.engine.retract("infusion_session", "never")
    assert transaction_posts(rig.fake) == []
    assert any(r.method == "GET" for r in rig.fake.requests)  # the 404 read that tells never-had from deleted


# -- the Patient race -------------------------------------------------------------------------

RACE_MRN = "RACE|7,$x\\y z"


async def test_a_lost_patient_race_is_retried_once_with_the_patient_found_by_identifier(rig: Rig) -> None:
    config = rig.config
    vital = record("vital_sign", key="V-9", session_key=None, patient={"mrn": RACE_MRN, "family": "Racer"})
    first: list[dict[str, Any]] = []

    def lose_the_first_transaction(request: httpx.Request, body: Any) -> httpx.Response | None:
        if request.method == "POST" and request.url.path.rstrip("/") == "/fhir" and not first:
            first.append(body)
            # another writer created the Patient meanwhile; the conditional create loses on the unique index
            rig.fake.put(
                {
                    "resourceType": "Patient",
                    "id": "winner",
                    "identifier": [{"system": config.mrn_system, "value": RACE_MRN}],
                }
            )
            return httpx.Response(409, json=outcome("HAPI-2840: duplicate match URL"))
        return None

    rig.fake.intercept = lose_the_first_transaction
    rig.engine.fhir.tells_creates = True  # as HAPI after its first 201: no read before writing (outcomes.py)
    result = await rig.engine.upsert([vital])

    assert len(first) == 1
    assert any(
        e["request"]
        == {
            "method": "POST",
            "url": "Patient",
            # matched on the MRN's match key: a server need not honour search escaping (ids.py, row 17)
            "ifNoneExist": f"identifier={quote(match_param(config.mrn_system, RACE_MRN, config), safe='')}",
        }
        for e in first[0]["entry"]
    )
    methods = [(r.method, r.url.path.rstrip("/")) for r in rig.fake.requests]
    # the lookup, the Patient's own transaction (lost), the lookup again, the record's transaction
    search = ("POST", "/fhir/Patient/_search")
    assert methods == [search, ("POST", "/fhir"), search, ("POST", "/fhir")]
    for n in (0, 2):
        form = parse_qs(rig.fake.requests[n].content.decode())
        # the MRN's token (a server honouring escapes finds a Patient the EHR made) and its match key
        match_key = match_param(config.mrn_system, RACE_MRN, config)
        assert form == {"identifier": [f"{patient_token(RACE_MRN, config)},{match_key}"]}
    assert len(first[0]["entry"]) == 1  # the Patient alone: the record was never sent with a conditional entry
    for request in rig.fake.requests:
        url = str(request.url)
        for form in (
            RACE_MRN,
            search_escape(RACE_MRN),
            quote(RACE_MRN, safe=""),
            quote(search_escape(RACE_MRN), safe=""),
            "RACE",
        ):
            assert form not in url
    (second,) = rig.fake.transactions
    assert not [
        e for e in second["entry"] if e["request"]["url"] == "Patient" or e["resource"]["resourceType"] == "Patient"
    ]
    assert "urn:uuid:" not in orjson.dumps(second).decode()
    assert {e["resource"]["subject"]["reference"] for e in second["entry"]} == {"Patient/winner"}
    assert [p["id"] for p in rig.fake.of_type("Patient")] == ["winner"]
    assert result.counts() == {"created": 1}


# -- the diff's reads -------------------------------------------------------------------------


def id_reads(fake: FakeFhir) -> list[tuple[str, str]]:
    """(type, id) of every resource the diff read by `_id` (the no-store searches)."""
    return [
        (e[1], i)
        for e in fake.events
        if e[0] == "search" and "_id" in e[2] and e[1] != "Flag"
        for i in e[2]["_id"].split(",")
    ]


async def test_a_diff_reads_only_the_records_of_patients_the_server_held_before(rig: Rig) -> None:
    held = record("vital_sign", key="V-H", session_key=None)
    new = record("vital_sign", key="V-N", session_key=None, patient={"mrn": "MRN-NEW", "family": "Neu"})
    await rig.engine.upsert([held])  # MRN-1's Patient and V-H are on the server; MRN-NEW is not
    rig.fake.events.clear()
    before = len(rig.fake.transactions)

    result = await rig.engine.upsert([held, new], diff=True)

    assert id_reads(rig.fake) == [("Observation", resource_ids("vital_sign", "V-H", rig.config)[0].id)]
    identity, sent = rig.fake.transactions[before:]
    assert [e["request"]["url"] for e in identity["entry"]] == ["Patient"]  # MRN-NEW's, first and alone
    assert {e["request"]["url"] for e in sent["entry"]} == {resource_ids("vital_sign", "V-N", rig.config)[0].ref}
    assert result.counts() == {"unchanged": 1, "created": 2}


async def test_a_diff_writes_unread_the_records_of_a_patient_this_run_created(rig: Rig) -> None:
    vital = record("vital_sign", key="V-R", session_key=None)
    await rig.engine.upsert([vital])
    created = f"Patient/{patient_id(rig.fake)}"
    rig.fake.events.clear()

    again = await rig.engine.upsert([vital], diff=True, new_patients={created})
    assert id_reads(rig.fake) == []
    assert again.transactions == 1  # written as without diff (HAPI makes it a no-op update)
    assert [e["request"]["url"] for e in rig.fake.transactions[-1]["entry"]] == [
        resource_ids("vital_sign", "V-R", rig.config)[0].ref
    ]

    rig.fake.events.clear()
    read = await rig.engine.upsert([vital], diff=True)
    assert id_reads(rig.fake) == [("Observation", resource_ids("vital_sign", "V-R", rig.config)[0].id)]
    assert read.transactions == 0 and read.counts() == {"unchanged": 1}


async def test_refusals_found_at_once_are_raised_together_whichever_lookup_answers_first(rig: Rig) -> None:
    other = {"mrn": "MRN-OTHER", "family": "Other"}
    await rig.engine.upsert([record("infusion_session", key="S-O", patient=other, visit_id="VIS-O")])
    visits_answered = asyncio.Event()

    async def sessions_answer_last(request: httpx.Request, body: Any) -> httpx.Response | None:
        if request.url.path.endswith("/Procedure/_search"):
            await visits_answered.wait()
        return None

    def note_visits(request: httpx.Request, body: Any) -> None:
        if request.url.path.endswith("/Encounter/_search"):
            visits_answered.set()

    async def intercept(request: httpx.Request, body: Any) -> httpx.Response | None:
        note_visits(request, body)
        return await sessions_answer_last(request, body)

    rig.fake.intercept = intercept
    vital = record("vital_sign", key="V-X", session_key="S-O")  # MRN-1's vital naming MRN-OTHER's session
    session = record("infusion_session", key="S-X", visit_id="VIS-O")  # MRN-1's session in MRN-OTHER's visit
    transactions = len(rig.fake.transactions)

    with pytest.raises(SessionRefused) as refused:
        await rig.engine.upsert([session, vital])

    assert refused.value.other_patient == ["S-O"] and refused.value.visits == ["S-X"]
    assert refused.value.refuses(vital) and refused.value.refuses(session)
    assert len(rig.fake.transactions) == transactions


# -- the diff's comparison (before our references are rewritten) -------------------------------


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    return [path]


def _changed_at(resource: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    target = out
    for part in path[:-1]:
        target = target[part]
    leaf = target[path[-1]]
    target[path[-1]] = not leaf if isinstance(leaf, bool) else leaf + 1 if isinstance(leaf, int | float) else f"{leaf}x"
    return out


def test_the_diff_takes_a_copy_as_unchanged_exactly_when_it_is_our_resource_once_rewritten() -> None:
    """`_Unchanged` compares before the urn -> literal rewrite, undoing it on the server's copy: it must
    answer as comparing the rewritten resource would, for every resource and every single change."""
    from service.mappers.bundle import _replace_references, bundle_resources
    from service.mappers.ids import patient_urn, visit_urn
    from service.sync.engine import _content, _Unchanged

    config = Settings(FHIR_BASE_URL=BASE).mapping_config()
    session = record("infusion_session", visit_id="VISIT-1")
    rewrites = {
        patient_urn(session.patient.mrn, config): "Patient/p-1",
        visit_urn("VISIT-1", config): "Encounter/visit-1",
    }
    _, _, resources = bundle_resources([session], config)
    compared = 0
    for (rtype, rid), ours in resources.items():
        url = f"{rtype}/{rid}"
        stored = {**_replace_references(ours, rewrites), "meta": {"versionId": "3", "lastUpdated": T0}}
        assert _Unchanged({url: stored})(url, ours, rewrites)
        for path in _leaves(stored):
            if path[0] in ("meta", "text"):  # the narrative follows the rest (tests/unit/test_narrative.py)
                continue
            other = _changed_at(stored, path)
            forward = _content(other) == _content(_replace_references(ours, rewrites))
            assert _Unchanged({url: other})(url, ours, rewrites) is forward is False, (url, path)
            compared += 1
        if b"urn:uuid:" in orjson.dumps(ours):  # a copy that kept our urn is not what we would write
            assert not _Unchanged({url: {**ours, "meta": {}}})(url, ours, rewrites)
        # Two urns onto one Patient (one Patient holding two MRNs): ours is rewritten and compared instead.
        both = {**rewrites, patient_urn("MRN-OTHER", config): "Patient/p-1"}
        assert _Unchanged({url: stored})(url, ours, both)
    assert compared > 200


def test_what_the_diff_leaves_out_is_reported_unchanged_with_the_servers_version() -> None:
    from service.sync.engine import _Unchanged

    check = _Unchanged({"Observation/o-1": {"resourceType": "Observation", "id": "o-1", "meta": {"versionId": "7"}}})
    assert check("Observation/o-1", {"resourceType": "Observation", "id": "o-1"}, {})
    assert not check("Observation/o-2", {"resourceType": "Observation", "id": "o-2"}, {})
    assert [(w.resource_type, w.id, w.version, w.outcome.value) for w in check.left_out] == [
        ("Observation", "o-1", "7", "unchanged")
    ]


async def test_an_assessment_key_keeps_its_instrument(rig: Rig) -> None:
    """Issue 21: re-sending an assessment key with another instrument is a Conflict (409), nothing written."""
    await rig.engine.upsert([record("assessment", key="Q-9", session_key=None)])
    writes = len(rig.fake.transactions)
    madrs = record(
        "assessment", key="Q-9", session_key=None, instrument="madrs", items=[1] * 10, total=None, difficulty=None
    )
    with pytest.raises(Conflict, match="keeps its instrument"):
        await rig.engine.upsert([madrs])
    assert len(rig.fake.transactions) == writes
    await rig.engine.upsert(
        [record("assessment", key="Q-9", session_key=None, items=[0] * 7, total=None)]
    )  # same: fine
    assert len(rig.fake.transactions) == writes + 1


async def test_concurrent_positives_of_one_patient_open_one_flag_naming_both(rig: Rig) -> None:
    """Two writers of one process (the batch's workers, concurrent API calls) each reading "no active
    Flag" would open one each; the engine holds the patient from reading the Flags to the transaction's end."""
    rig.fake.transaction_turns = 25  # each transaction stays open: the other writer runs meanwhile
    items = [0, 0, 0, 0, 0, 0, 0, 0, 2]
    first = record("phq9_assessment", key="P-A", session_key=None, items=items, total=2)
    second = record("phq9_assessment", key="P-B", session_key=None, items=items, total=2)
    await rig.engine.upsert([record("vital_sign", key="V-0", session_key=None)])  # the Patient exists

    await asyncio.gather(rig.engine.upsert([first]), rig.engine.upsert([second]))

    (flag,) = rig.fake.of_type("Flag")
    panels = {resource_ref("phq9_assessment", k, "panel", rig.config) for k in ("P-A", "P-B")}
    assert flag["status"] == "active" and set(details(flag)) == panels
    assert len(rig.engine.flag_locks) == 0  # nothing held once both are done


async def test_a_write_that_changes_no_flag_is_not_held_behind_the_patients_flag_write(rig: Rig) -> None:
    """The Flag lock (H-36) holds only writes whose Bundle raises, joins or withdraws a Flag: a negative PHQ-9 or
    a reading of a patient whose Flag another writer holds is written meanwhile, not after it (issue 24: a
    batch's Bundles of one patient were sent one at a time)."""
    negative = record("phq9_assessment", key="P-N", session_key=None, items=[0] * 9, total=0)
    await rig.engine.upsert([record("vital_sign", key="V-0", session_key=None)])  # the Patient exists
    writes = len(transaction_posts(rig.fake))
    async with rig.engine.flag_locks.hold([negative.patient.mrn]):  # another writer's Flag step under way
        await asyncio.wait_for(
            rig.engine.upsert([negative, record("vital_sign", key="V-1", session_key=None)]), timeout=30
        )
        assert len(transaction_posts(rig.fake)) == writes + 1
    assert not rig.fake.of_type("Flag")


async def test_a_positive_waits_for_the_patients_flag_write(rig: Rig) -> None:
    """The other side of the narrower lock: a Bundle raising a Flag still reads the patient's Flags only once the
    writer holding them is done."""
    positive = record("phq9_assessment", key="P-P", session_key=None, items=[0] * 8 + [2], total=2)
    await rig.engine.upsert([record("vital_sign", key="V-0", session_key=None)])
    writes = len(transaction_posts(rig.fake))
    async with rig.engine.flag_locks.hold([positive.patient.mrn]):
        task = asyncio.create_task(rig.engine.upsert([positive]))
        for _ in range(1000):  # loop turns, until the write queues for the lock behind this holder
            if rig.engine.flag_locks.users(positive.patient.mrn) == 2:
                break
            await asyncio.sleep(0)
        assert rig.engine.flag_locks.users(positive.patient.mrn) == 2
        assert len(transaction_posts(rig.fake)) == writes and not task.done()
    await task
    (flag,) = rig.fake.of_type("Flag")
    assert flag["status"] == "active"
