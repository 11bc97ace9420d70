"""BatchSync over a SyncEngine on an in-memory FHIR server (httpx.MockTransport): halving, orphans,
ordering with concurrency, interrupt and resume."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import io
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson
import pytest

from service.batch.report import Report
from service.batch.runner import BatchSync
from service.batch.source import Line, parse_line
from service.fhir_client import open_fhir_client
from service.mappers import parse_identifier
from service.settings import Settings
from service.sync import SyncEngine
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, FakeFhir, outcome

MRN = "BATCH-MRN-31"


def vital(key: str, session_key: str | None = None, mrn: str = MRN) -> dict[str, Any]:
    out = {**copy.deepcopy(EXAMPLES["vital_sign"]), "key": key, "patient": {"mrn": mrn, "family": "Batchley"}}
    if session_key is None:
        out.pop("session_key")
    else:
        out["session_key"] = session_key
    return out


def session(key: str, mrn: str = MRN) -> dict[str, Any]:
    out = {**copy.deepcopy(EXAMPLES["infusion_session"]), "key": key, "patient": {"mrn": mrn}}
    for children in ("vital_signs", "adverse_events"):
        out.pop(children)
    return out


def lines_of(records: Sequence[dict[str, Any]]) -> list[Line]:
    return [parse_line("in.ndjson", n, orjson.dumps(r)) for n, r in enumerate(records, start=1)]


def keys_in(bundle: dict[str, Any]) -> set[str]:
    """The record keys whose resources a transaction Bundle carries."""
    out = set()
    for entry in bundle["entry"]:
        resource = entry.get("resource") or {}
        idents = resource.get("identifier") or []
        for ident in idents if isinstance(idents, list) else [idents]:
            parsed = parse_identifier(
                ident.get("system"), ident.get("value"), Settings(FHIR_BASE_URL=BASE).mapping_config()
            )
            if parsed:
                out.add(parsed[1])
    return out


def rejects_of(report: Report) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in report.rejects.getvalue().splitlines()]


class RecordingEngine:
    """The real engine, noting each `upsert` call and whether the job was already stopped then."""

    def __init__(self, engine: SyncEngine) -> None:
        self.engine = engine
        self.config = engine.config
        self.job: BatchSync | None = None
        self.calls: list[tuple[list[str], bool]] = []

    async def upsert(self, records, *, known_sessions=None, **options):
        self.calls.append(([r.key for r in records], bool(self.job and self.job.stop.is_set())))
        return await self.engine.upsert(records, known_sessions=known_sessions, **options)

    async def read_ahead(self, records, readable, **options):
        return await self.engine.read_ahead(records, readable, **options)


@pytest.fixture
def fake() -> FakeFhir:
    return FakeFhir()


@pytest.fixture
async def engine(fake: FakeFhir) -> AsyncIterator[RecordingEngine]:
    settings = Settings(FHIR_BASE_URL=BASE)
    async with open_fhir_client(settings, transport=fake.transport()) as fhir:
        yield RecordingEngine(SyncEngine(fhir, settings.mapping_config()))


def job_for(engine: RecordingEngine, **kwargs: Any) -> BatchSync:
    job = BatchSync(engine, Report(io.BytesIO()), **kwargs)  # type: ignore[arg-type]
    engine.job = job
    return job


# -- halving ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [{"v05"}, {"v05", "v11"}, {"v00", "v15"}, {"v07", "v08"}])
async def test_halving_isolates_exactly_the_bad_lines(fake: FakeFhir, engine: RecordingEngine, bad: set[str]) -> None:
    records = [vital(f"v{n:02d}") for n in range(16)]

    def reject_bundles_with_a_bad_line(request: httpx.Request, body: Any) -> httpx.Response | None:
        if request.url.path.rstrip("/") == "/fhir" and keys_in(body) & bad:
            return httpx.Response(400, json=outcome(f"HAPI-1821: invalid value for patient {MRN}"))
        return None

    fake.intercept = reject_bundles_with_a_bad_line
    report = await job_for(engine, batch_size=16, concurrency=1).run(lines_of(records))

    rejected = rejects_of(report)
    assert {r["key"] for r in rejected} == bad
    assert all("HAPI-1821" in r["reason"] for r in rejected)
    assert all(r["line"] == int(r["key"][1:]) + 1 for r in rejected)
    assert MRN not in report.rejects.getvalue().decode()  # the server's diagnostics are scrubbed
    assert report.synced == 16 - len(bad) and report.rejected == len(bad)
    assert report.splits > 0 and report.exit_code() == 1
    stored = {o["identifier"][0]["value"] for o in fake.of_type("Observation")}
    assert stored == {f"v{n:02d}" for n in range(16)} - bad


# -- orphans ----------------------------------------------------------------------------------


async def test_lines_naming_a_missing_session_are_rejected_with_a_reason_and_the_rest_synced(
    fake: FakeFhir, engine: RecordingEngine
) -> None:
    records = [
        session("S-A"),
        vital("vM1", "S-MISSING"),
        vital("vA1", "S-A"),
        vital("vA2", "S-A"),
        vital("vM2", "S-MISSING"),
        vital("vG", "S-GONE"),
    ]

    report = await job_for(engine, batch_size=3, concurrency=2).run(lines_of(records))

    rejected = {r["key"]: r["reason"] for r in rejects_of(report)}
    assert rejected == {
        "vM1": "session S-MISSING not found on the FHIR server",
        "vM2": "session S-MISSING not found on the FHIR server",
        "vG": "session S-GONE not found on the FHIR server",
    }
    assert report.synced == 3 and report.rejected == 3
    assert report.as_dict(retries=0)["not_processed"] == 0
    stored = {o["identifier"][0]["value"] for o in fake.of_type("Observation")}
    assert {"vA1", "vA2"} <= stored and not {"vM1", "vM2", "vG"} & stored


# -- ordering ---------------------------------------------------------------------------------


def systolic(observation: dict[str, Any]) -> Any:
    return [c["valueQuantity"]["value"] for c in observation.get("component", [])][:1]


def stored_systolic(fake: FakeFhir, key: str) -> Any:
    (stored,) = [o for o in fake.of_type("Observation") if o["identifier"][0]["value"] == key]
    return systolic(stored)


def hold_open_the_transaction_writing(value: int):
    """An intercept keeping the transaction that writes systolic `value` open for 200 event-loop turns (no
    wall-clock wait), so that the job's later Bundles are taken up meanwhile."""

    async def hold(request: httpx.Request, body: Any) -> None:
        if request.url.path.rstrip("/") == "/fhir" and any(
            systolic(e.get("resource") or {}) == [value] for e in body["entry"]
        ):
            for _ in range(200):
                await asyncio.sleep(0)

    return hold


def only_identities(bundle: dict[str, Any]) -> bool:
    """A transaction creating Patients (or visits) first, and nothing else (`service.sync.identities`)."""
    return all("ifNoneExist" in e["request"] for e in bundle["entry"])


@pytest.mark.parametrize("diff", [False, True], ids=["always-write", "diff"])
async def test_a_record_sent_again_later_in_the_file_wins_however_the_bundles_overlap(
    fake: FakeFhir, engine: RecordingEngine, diff: bool
) -> None:
    """The same key twice (a correction further down an export): the later line's content is what stays,
    even when the earlier line's bundle is still open as the later one is taken up."""
    first, corrected, other = vital("V-9"), vital("V-9"), vital("V-10")
    first["systolic"], corrected["systolic"] = 131, 152

    fake.intercept = hold_open_the_transaction_writing(131)
    job = job_for(engine, batch_size=1, concurrency=3)
    job.diff = diff
    report = await job.run(lines_of([first, other, corrected]))

    assert report.synced == 3 and report.rejected == 0
    assert stored_systolic(fake, "V-9") == [152]
    starts = [e for e in fake.events if e[0] == "txn-start" and not only_identities(e[2])]
    assert len(starts) == 3  # every line was written: the wait orders them, it drops nothing


@pytest.mark.parametrize("read_ahead", [400, 2], ids=["one-read-ahead", "read-ahead-per-two-bundles"])
async def test_a_reverted_correction_is_written_though_its_copy_was_read_ahead_before_the_correction(
    fake: FakeFhir, engine: RecordingEngine, monkeypatch: pytest.MonkeyPatch, read_ahead: int
) -> None:
    """H-27: the server holds 131; the file says 152, then 131 again (the correction reverted). Read
    ahead before the 152 was written, the server's copy of the later line equals it; it must not be
    used, or the 131 line is skipped and 152 stays."""
    original, corrected, reverted = vital("V-9"), vital("V-9"), vital("V-9")
    original["systolic"], corrected["systolic"], reverted["systolic"] = 131, 152, 131
    await job_for(engine, batch_size=1, concurrency=1).run(lines_of([original]))

    monkeypatch.setattr("service.batch.runner.READ_AHEAD_RECORDS", read_ahead)
    fake.intercept = hold_open_the_transaction_writing(152)
    job = job_for(engine, batch_size=1, concurrency=3, diff=True)
    report = await job.run(lines_of([corrected, vital("V-10"), vital("V-11"), reverted]))

    assert report.synced == 4 and report.rejected == 0
    assert stored_systolic(fake, "V-9") == [131]


@pytest.mark.parametrize("short_answer", [False, True], ids=["read-ahead-finds-it", "read-ahead-misses-it"])
async def test_a_clinicians_inactive_flag_stays_inactive_when_the_batch_reads_it_ahead(
    fake: FakeFhir, engine: RecordingEngine, short_answer: bool
) -> None:
    """H-06 on the batch path: the read-ahead copy of a Flag counts as the server's, so it is kept; a
    read-ahead that missed it (an unanswered id) is no proof there is none: it is searched for again."""
    phq9 = {**copy.deepcopy(EXAMPLES["phq9_assessment"]), "patient": {"mrn": MRN}, "items": [1] * 9, "total": 9}
    phq9.pop("session_key")
    lines = [vital("v0"), phq9, vital("v1"), vital("v2")]
    await job_for(engine, batch_size=1, concurrency=2).run(lines_of(lines))
    (flag,) = fake.of_type("Flag")
    assert flag["status"] == "active"
    fake.put({**flag, "status": "inactive"})  # a clinician has reviewed the risk
    fake.events.clear()

    def without_flags(request: httpx.Request, body: Any) -> httpx.Response | None:
        if request.url.path.endswith("/Flag/_search") and request.headers.get("Cache-Control") == "no-store":
            return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": []})
        return None

    if short_answer:
        fake.intercept = without_flags
    report = await job_for(engine, batch_size=1, concurrency=2, diff=True).run(lines_of(lines))

    assert [f["status"] for f in fake.of_type("Flag")] == ["inactive"]
    assert report.rejected == 0
    flag_searches = [e[1] for e in fake.events if e[0] == "search"].count("Flag")
    if not short_answer:
        # read ahead by id, then the patient's Flags once (one Flag per patient); nothing written
        assert flag_searches == 2 and report.transactions == 0


async def test_a_read_ahead_serves_several_bundles_and_they_send_only_what_changed(
    fake: FakeFhir, engine: RecordingEngine
) -> None:
    lines = [vital(f"v{i}") for i in range(8)]
    await job_for(engine, batch_size=2, concurrency=2).run(lines_of(lines))
    lines[5]["systolic"] = 99
    fake.events.clear()
    report = await job_for(engine, batch_size=2, concurrency=2, diff=True).run(lines_of(lines))

    assert id_searches(fake) == ["Observation"]  # 8 records, 4 Bundles: one read for all
    (written,) = [b for e, _, b in fake.events if e == "txn-start"]
    assert keys_in(written) == {"v5"}
    assert report.transactions == 1 and report.resources["unchanged"] == 7 and report.resources["updated"] == 1


@pytest.mark.parametrize("ehr_visit", [False, True], ids=["own-encounter", "ehr-visit"])
async def test_with_concurrency_a_childs_bundle_never_starts_before_its_sessions_bundle_finished(
    fake: FakeFhir, engine: RecordingEngine, ehr_visit: bool
) -> None:
    """With an EHR visit the child's bundle reads the session back from the server (only the server
    knows the visit Encounter's id): that read too must come after the session's bundle."""
    records: list[dict[str, Any]] = []
    for s in range(4):
        records.append(session(f"S-{s}", mrn=f"M-{s}") | ({"visit_id": f"VISIT-{s}"} if ehr_visit else {}))
        records += [vital(f"S-{s}.v{n}", f"S-{s}", mrn=f"M-{s}") for n in range(3)]
    fake.transaction_turns = 25  # each transaction stays open for 25 loop turns: other workers run meanwhile
    engine.engine.fhir.tells_creates = True  # as HAPI after its first 201: no read before writing (outcomes.py)

    report = await job_for(engine, batch_size=1, concurrency=4).run(lines_of(records))

    assert report.rejected == 0 and report.synced == len(records)
    ended: set[str] = set()
    procedures_written: set[str] = set()
    open_now = max_open = 0
    for event in fake.events:
        if event[0] == "search":
            if event[1] == "Procedure":
                assert ehr_visit, "a child's bundle looked up a session this run had just synced"
                wanted = {ident for ident in event[2]["_id"].split(",")}
                assert wanted <= procedures_written, "a child's bundle looked for a session still in flight"
            continue
        keys = keys_in(event[2])
        if event[0] == "txn-start":
            open_now += 1
            max_open = max(max_open, open_now)
            for key in keys:
                if ".v" in key:
                    assert key.split(".")[0] in ended, f"{key} sent before its session's bundle finished"
        else:
            open_now -= 1
            ended |= keys
            procedures_written |= {
                e["request"]["url"].split("/")[1]
                for e in event[2]["entry"]
                if e["request"]["url"].startswith("Procedure/")
            }
    assert max_open >= 2  # the bundles really did overlap
    if ehr_visit:
        assert [e for e in fake.events if e[0] == "search" and e[1] == "Procedure"]  # the read-back path was taken


@pytest.mark.parametrize("diff", [False, True], ids=["always-write", "diff"])
async def test_a_session_starts_a_bundle_with_the_records_naming_it(engine: RecordingEngine, diff: bool) -> None:
    """Issue 24: Bundles cut at fixed counts each held the tail of the session before them, so each waited for
    the one before it. A session starts a Bundle once the one being filled is half full, or already waits for
    another (it holds a record naming a session it does not carry); below half it joins, and a session always
    joins a record before it that names it."""
    records = [vital(f"v{n}") for n in range(3)]
    records += [session("S-1"), *(vital(f"S-1.v{n}", "S-1") for n in range(10))]
    records += [session("S-2"), *(vital(f"S-2.v{n}", "S-2") for n in range(2))]
    records += [*(vital(f"w{n}") for n in range(3)), session("S-3"), vital("S-3.v0", "S-3")]
    records += [vital(f"x{n}") for n in range(4)] + [vital("S-4.v0", "S-4"), session("S-4")]

    report = await job_for(engine, batch_size=10, concurrency=1, diff=diff).run(lines_of(records))

    assert report.synced == len(records)
    assert [keys for keys, _ in engine.calls] == [
        ["v0", "v1", "v2", "S-1", *(f"S-1.v{n}" for n in range(6))],  # below half at S-1: it joins
        [f"S-1.v{n}" for n in range(6, 10)],  # the tail waits for S-1's Bundle: S-2 does not join it
        ["S-2", "S-2.v0", "S-2.v1", "w0", "w1", "w2"],  # ends at half full, before S-3
        ["S-3", "S-3.v0", "x0", "x1", "x2", "x3", "S-4.v0", "S-4"],  # S-4 stays with a reading before it
    ]


# -- interrupt and resume ---------------------------------------------------------------------


def interrupt_at_transaction(fake: FakeFhir, job_holder: list[BatchSync], n: int, moments: list[int]) -> None:
    """Interrupt the job when the n-th transaction arrives (that one still completes)."""

    def hook(request: httpx.Request, body: Any) -> httpx.Response | None:
        if request.url.path.rstrip("/") == "/fhir":
            arrived = sum(1 for r in fake.requests if r.url.path.rstrip("/") == "/fhir")
            if arrived == n:
                job_holder[0].interrupt("interrupted by test")
                moments.append(len(fake.requests))
        return None

    fake.intercept = hook


@pytest.mark.parametrize("diff", [False, True], ids=["always-write", "diff-reading-the-next-group-ahead"])
async def test_after_interrupt_no_new_bundle_is_sent_and_the_job_stops_with_exit_2(
    fake: FakeFhir, engine: RecordingEngine, monkeypatch: pytest.MonkeyPatch, diff: bool
) -> None:
    records = [vital(f"v{n:02d}") for n in range(40)]
    monkeypatch.setattr("service.batch.runner.READ_AHEAD_RECORDS", 4)  # groups of two Bundles
    job = job_for(engine, batch_size=2, concurrency=3, diff=diff)
    moments: list[int] = []
    interrupt_at_transaction(fake, [job], 3, moments)

    report = await job.run(lines_of(records))

    assert moments, "the interrupt fired"
    assert [stopped for _, stopped in engine.calls] == [False] * len(engine.calls)  # none begun after it
    assert len(engine.calls) < 20
    summary = report.as_dict(retries=0)
    assert summary["status"] == "stopped" and summary["exit_code"] == 2
    assert summary["stopped_reason"] == "interrupted by test"
    assert summary["rejected"] == 0 and summary["synced"] < len(records)
    assert summary["synced"] == 2 * len(engine.calls)


async def test_after_interrupt_a_bundle_being_halved_sends_no_further_halves(
    fake: FakeFhir, engine: RecordingEngine
) -> None:
    records = [vital(f"v{n:02d}") for n in range(8)]
    job = job_for(engine, batch_size=8, concurrency=1)

    def reject_and_interrupt(request: httpx.Request, body: Any) -> httpx.Response | None:
        if request.url.path.rstrip("/") == "/fhir" and "v07" in keys_in(body):
            job.interrupt("interrupted by test")
            return httpx.Response(400, json=outcome("HAPI-1821: bad"))
        return None

    fake.intercept = reject_and_interrupt
    await job.run(lines_of(records))

    assert [stopped for _, stopped in engine.calls] == [False] * len(engine.calls)


async def test_rerunning_the_same_input_after_an_interrupt_syncs_every_line(
    fake: FakeFhir, engine: RecordingEngine
) -> None:
    records: list[dict[str, Any]] = []
    for s in range(5):
        records.append(session(f"S-{s}", mrn=f"M-{s % 2}"))
        records += [vital(f"S-{s}.v{n}", f"S-{s}", mrn=f"M-{s % 2}") for n in range(3)]
    records += [vital(f"free{n}", mrn="M-0") for n in range(4)]
    first = job_for(engine, batch_size=2, concurrency=3)
    interrupt_at_transaction(fake, [first], 4, [])
    stopped = await first.run(lines_of(records))
    assert stopped.as_dict(retries=0)["status"] == "stopped"
    assert 0 < stopped.synced < len(records)

    fake.intercept = None
    second = job_for(engine, batch_size=2, concurrency=3)
    report = await second.run(lines_of(records))

    summary = report.as_dict(retries=0)
    assert summary["status"] == "completed" and summary["exit_code"] == 0
    assert summary["synced"] == len(records) and summary["rejected"] == 0 and summary["not_processed"] == 0
    assert report.rejects.getvalue() == b""
    assert sorted(p["identifier"][0]["value"] for p in fake.of_type("Patient")) == ["M-0", "M-1"]
    assert len(fake.of_type("Procedure")) == 5
    vitals = [o for o in fake.of_type("Observation") if o["id"].startswith("vs-")]
    assert len(vitals) == 5 * 3 + 4


# -- the diff on a first load -----------------------------------------------------------------


def id_searches(fake: FakeFhir) -> list[str]:
    """Types read by `_id` for the diff (Flags aside, which are always read)."""
    return [e[1] for e in fake.events if e[0] == "search" and "_id" in e[2] and e[1] != "Flag"]


async def test_a_first_diff_load_reads_nothing_back_and_a_rerun_reads_it_all_and_writes_nothing(
    fake: FakeFhir, engine: RecordingEngine
) -> None:
    lines = [vital(f"v{i}") for i in range(4)] + [vital(f"w{i}", mrn="BATCH-MRN-32") for i in range(4)]
    engine.engine.fhir.tells_creates = True  # as HAPI after its first 201: a fresh client reads its first Bundle

    first = await BatchSync(engine.engine, Report(io.BytesIO()), batch_size=2, concurrency=1, diff=True).run(
        lines_of(lines)
    )
    # Each patient's first batch finds no Patient, its later batches find the one this run created:
    # neither has anything older on the server to compare with.
    assert id_searches(fake) == []
    # Four Bundles, and before each patient's first one its Patient's own transaction (`identities.py`); the
    # second Bundle of each finds the Patient this run created, though its read-ahead predates it.
    assert first.transactions == 6 and first.resources["created"] == 10
    assert sum(only_identities(b) for b in fake.transactions) == 2

    fake.events.clear()
    again = await BatchSync(engine.engine, Report(io.BytesIO()), batch_size=2, concurrency=1, diff=True).run(
        lines_of(lines)
    )
    # The four Bundles' copies are read ahead together: one `_id` search, one Patient search.
    assert id_searches(fake) == ["Observation"]
    assert [e[1] for e in fake.events if e[0] == "search"].count("Patient") == 1
    assert again.transactions == 0 and again.resources["unchanged"] == 8


def test_the_report_states_the_jobs_own_cpu_time_not_the_processs() -> None:
    """`cpu_s` is CPU spent since the job began (bench and capacity figures use it), not since the interpreter
    started: CPU burnt before the Report exists is not in it, CPU burnt after is."""

    def burn(seconds: float) -> None:
        until = time.process_time() + seconds
        while time.process_time() < until:
            hashlib.sha256(b"x" * 4096).digest()

    burn(0.2)
    report = Report(io.BytesIO())  # type: ignore[arg-type]
    burn(0.1)
    cpu = report.as_dict(retries=0)["cpu_s"]
    assert 0.1 <= cpu < 0.2


def form(kind: str, key: str) -> dict[str, Any]:
    """A standalone PHQ-9 (`phq9_assessment`) or GAD-7 (`assessment`) of the batch patient."""
    out = {**copy.deepcopy(EXAMPLES[kind]), "key": key, "patient": {"mrn": MRN}}
    out.pop("session_key")
    return out


async def test_a_rerun_of_rating_scales_reads_the_instrument_check_ahead_with_the_rest(
    fake: FakeFhir, engine: RecordingEngine
) -> None:
    """Issue 21 (the unchanged re-sync fell from 3.5x to 2.4x): the check that a key keeps its
    instrument reads the other kind's copy (a GAD-7's PHQ-9 panel, a PHQ-9's assessment response).
    Read by each Bundle for itself, it cost every Bundle a search per type on the server."""
    lines = [form("phq9_assessment" if i % 2 else "assessment", f"F{i}") for i in range(8)]
    await job_for(engine, batch_size=1, concurrency=1).run(lines_of(lines))
    fake.events.clear()

    report = await job_for(engine, batch_size=2, concurrency=2, diff=True).run(lines_of(lines))

    searched = id_searches(fake)
    assert searched and sorted(searched) == sorted(set(searched)), searched  # 4 Bundles: one read per type
    assert report.transactions == 0 and report.rejected == 0 and report.resources["unchanged"] > 0


@pytest.mark.parametrize("held", ["phq9_assessment", "assessment"])
async def test_a_key_changing_instrument_is_refused_though_its_copy_was_read_ahead(
    fake: FakeFhir, engine: RecordingEngine, held: str
) -> None:
    """A key keeps its instrument on the read-ahead path too: the server holds it as one kind, the file
    sends it as the other (later in the file than the unchanged lines), and only that line is rejected."""
    other = "assessment" if held == "phq9_assessment" else "phq9_assessment"
    await job_for(engine, batch_size=1, concurrency=1).run(lines_of([form(held, "K-1")]))

    lines = [vital(f"v{i}") for i in range(3)] + [form(other, "K-1")]
    report = await job_for(engine, batch_size=1, concurrency=2, diff=True).run(lines_of(lines))

    (reject,) = rejects_of(report)
    assert reject["line"] == 4 and "keeps its instrument" in orjson.dumps(reject).decode()
    assert report.synced == 3
