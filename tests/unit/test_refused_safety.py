"""A refused record never hides a safety answer (issue 21, H-39): the 422 or 409 says so in its own issue
first, the batch's rejects line says so, the report counts `safety_rejects`, the terminal summary leads
with it. The thresholds below are instruments.md section 3's, spelled here on purpose: an independent
reading of the sheet against the definitions the code reads."""

from __future__ import annotations

import copy
import io
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from schemas import RecordInvalid, parse_record, parse_record_of_kind
from service.app import create_app
from service.auth import key_digest
from service.batch.report import Report
from service.batch.runner import BatchSync
from service.batch.source import parse_line
from service.batch.terminal import sync_summary
from service.cli import app
from service.fhir_client import open_fhir_client
from service.settings import Settings
from service.sync import SyncEngine
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, FakeFhir

AUTH = {"Authorization": "Bearer unit-key"}
T0 = "2026-03-02T09:30:00-05:00"
NOTE = "it was not written; correct and re-send it, or record the risk another way"


def phq9(items: list[Any], **fields: Any) -> dict[str, Any]:
    record = {k: v for k, v in EXAMPLES["phq9_assessment"].items() if k not in ("session_key", "total", "difficulty")}
    return {**record, "items": items, **fields}


def assessment(instrument: str, items: list[Any], **fields: Any) -> dict[str, Any]:
    record = {"kind": "assessment", "key": "Q-9", "patient": {"mrn": "MRN-9"}, "completed_at": T0}
    return {**record, "instrument": instrument, "items": items, **fields}


def refusal(record: dict[str, Any]) -> RecordInvalid:
    with pytest.raises(RecordInvalid) as refused:
        parse_record(record)
    return refused.value


def safety_of(refused: RecordInvalid) -> list[tuple[str, str]]:
    return [(i.path, i.message) for i in refused.issues if i.safety]


def said(label: str, wrong_count: bool = False) -> str:
    position = " (read at its position: the list has the wrong number of answers)" if wrong_count else ""
    return f"this refused record holds a positive safety answer ({label}){position}: {NOTE}"


# -- what a refusal detects -------------------------------------------------------------------

NO = [0] * 9
CSSRS_ALL_NO = [False, False, None, None, None, False, None]  # recent screener: S3-S5, S6b unasked

POSITIVE_REFUSED = {
    "phq9 item 9 = 1, total disagrees": (phq9([0] * 8 + [1], total=5), [("items[8]", said("PHQ-9 item 9"))]),
    "phq9 item 9 = 3, another item out of range": (
        phq9([7, 0, 0, 0, 0, 0, 0, 0, 3]),
        [("items[8]", said("PHQ-9 item 9"))],
    ),
    "phq9 item 9 = 2.0, patient missing": (
        {k: v for k, v in phq9([0] * 8 + [2.0]).items() if k != "patient"},
        [("items[8]", said("PHQ-9 item 9"))],
    ),
    "phq9 item 9 as the text '2'": (phq9([0] * 8 + ["2"]), [("items[8]", said("PHQ-9 item 9"))]),
    "phq9 item 9 above the range (a form scored from 1)": (phq9([1] * 8 + [4]), [("items[8]", said("PHQ-9 item 9"))]),
    "phq9 ten answers": (phq9([0] * 8 + [1, 0]), [("items[8]", said("PHQ-9 item 9", wrong_count=True))]),
    "phq9 sent as assessment, total disagrees": (
        assessment("phq9", [0] * 8 + [2], total=0),
        [("items[8]", said("PHQ-9 item 9"))],
    ),
    "qids_sr16 item 12 = 1, total disagrees": (
        assessment("qids_sr16", [0] * 11 + [1, 0, 0, 0, 0], total=9),
        [("items[11]", said("QIDS-SR16 item 12"))],
    ),
    "madrs item 10 = 2, item 1 out of range": (
        assessment("madrs", [9] + [0] * 8 + [2]),
        [("items[9]", said("MADRS item 10"))],
    ),
    "cssrs S3 yes though S2 no (unasked)": (
        assessment("cssrs_screen", [False, False, True, None, None, False, None]),
        [("items[2]", said("C-SSRS screener Q3"))],
    ),
    "cssrs S1 yes, S2 yes with S3-S5 null": (
        assessment("cssrs_screen", [True, True, None, None, None, False, None]),
        [("items[0]", said("C-SSRS screener Q1")), ("items[1]", said("C-SSRS screener Q2"))],
    ),
    "cssrs since last contact S6 sent as 'yes', with a total": (
        assessment("cssrs_screen_slc", [False, False, None, None, None, "yes"], total=0),
        [("items[5]", said("C-SSRS screener since last contact Q6"))],
    ),
    "session refused for its dose, its embedded PHQ-9 valid and positive": (
        {
            **copy.deepcopy(EXAMPLES["infusion_session"]),
            "dose": {"total_mg": 350, "mg_per_kg": 0.5, "weight_kg": 70},
            "phq9_assessments": [
                {"key": "P-0", "completed_at": T0, "items": NO},
                {"key": "P-1", "completed_at": T0, "items": [0] * 8 + [1]},
            ],
        },
        [("phq9_assessments[1].items[8]", said("PHQ-9 item 9"))],
    ),
}


@pytest.mark.parametrize(("record", "expected"), POSITIVE_REFUSED.values(), ids=POSITIVE_REFUSED.keys())
def test_a_refused_record_names_each_positive_safety_answer_first_never_its_value(
    record: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    refused = refusal(record)

    assert safety_of(refused) == expected
    assert [i.safety for i in refused.issues] == [True] * len(expected) + [False] * (
        len(refused.issues) - len(expected)
    ), "the safety issues come first, and the record's own problems are still all there"
    assert len(refused.issues) > len(expected)


NOTHING_TO_SAY = {
    "phq9 item 9 = 0, total disagrees": phq9(NO, total=3),
    "madrs item 10 = 1 (below the rule's 2)": assessment("madrs", [0] * 9 + [1], total=4),
    "qids_sr16 item 12 = 0, others positive-looking": assessment("qids_sr16", [3] * 11 + [0, 3, 3, 3, 3], total=1),
    "gad7 has no safety item": assessment("gad7", [3] * 7, total=1),
    "cssrs all no, total given": assessment("cssrs_screen", CSSRS_ALL_NO, total=0),
    "phq9 eight answers: too short to hold item 9": phq9([3] * 8),
    "phq9 item 9 not a number": phq9([0] * 8 + [True]),
    "unknown instrument": assessment("bdi", [3] * 21),
    "assessment without instrument": {k: v for k, v in assessment("phq9", [3] * 9).items() if k != "instrument"},
}


@pytest.mark.parametrize("record", NOTHING_TO_SAY.values(), ids=NOTHING_TO_SAY.keys())
def test_a_refused_record_without_a_detectable_positive_answer_says_nothing_of_safety(record: dict[str, Any]) -> None:
    assert safety_of(refusal(record)) == []


def test_a_kind_named_by_the_url_is_read_the_same_and_a_valid_record_is_not_refused() -> None:
    body = {k: v for k, v in phq9([0] * 8 + [2]).items() if k != "kind"}
    with pytest.raises(RecordInvalid) as refused:
        parse_record_of_kind("phq9_assessment", {**body, "key": "P-1"}, key="P-other")  # key mismatch
    assert safety_of(refused.value) == [("items[8]", said("PHQ-9 item 9"))]
    assert parse_record(phq9([0] * 8 + [2])).items[8] == 2  # a positive answer alone refuses nothing


# -- the API ----------------------------------------------------------------------------------


def api_on(fake: FakeFhir) -> TestClient:
    settings = Settings(FHIR_BASE_URL=BASE, api_keys=key_digest("unit-key"), retry_max_attempts=2)
    return TestClient(create_app(settings, transport=fake.transport()))


def test_the_api_422_says_in_its_own_issue_first_that_the_refused_record_holds_a_safety_answer() -> None:
    fake = FakeFhir()
    body = phq9([0] * 8 + [3], total=2)  # item 9 "nearly every day", total wrong

    with api_on(fake) as api:
        answer = api.put("/v1/phq9-assessments/P-1", json=body, headers=AUTH)

    assert answer.status_code == 422
    first, *rest = answer.json()["issue"]
    assert first == {
        "severity": "error",
        "code": "business-rule",
        "diagnostics": said("PHQ-9 item 9"),
        "expression": ["items[8]"],
    }
    assert [(i["code"], i["expression"]) for i in rest] == [("invalid", ["total"])]
    assert not fake.transactions, "nothing was written"


def test_convert_puts_the_safety_answer_of_any_record_first() -> None:
    good = {**EXAMPLES["vital_sign"], "key": "V-9"}
    good.pop("session_key")
    bad_vital = {**good, "key": "V-10", "value": 999}
    bad_phq9 = phq9([0] * 8 + [1], total=9)

    with api_on(FakeFhir()) as api:
        answer = api.post("/v1/$convert", json=[bad_vital, good, bad_phq9], headers=AUTH)

    assert answer.status_code == 422
    issues = answer.json()["issue"]
    assert issues[0]["code"] == "business-rule" and issues[0]["expression"] == ["[2].items[8]"]
    assert {tuple(i["expression"]) for i in issues[1:]} >= {("[2].total",)}
    assert all(i["code"] == "invalid" for i in issues[1:])


def test_a_409_of_a_record_holding_a_safety_answer_says_so_first() -> None:
    fake = FakeFhir()
    session = {k: v for k, v in EXAMPLES["infusion_session"].items() if k != "kind"}
    session = {**session, "key": "S-B", "patient": {"mrn": "MRN-B"}}
    positive = {k: v for k, v in phq9([0] * 8 + [1]).items() if k != "kind"}
    positive = {**positive, "key": "P-A", "patient": {"mrn": "MRN-A"}, "session_key": "S-B"}

    with api_on(fake) as api:
        assert api.put("/v1/infusion-sessions/S-B", json=session, headers=AUTH).status_code == 201
        refused = api.put("/v1/phq9-assessments/P-A", json=positive, headers=AUTH)
        other = api.put("/v1/phq9-assessments/P-A", json={**positive, "items": [0] * 9}, headers=AUTH)

    assert refused.status_code == 409
    first, second = refused.json()["issue"]
    assert (first["code"], first["expression"], first["diagnostics"]) == (
        "business-rule",
        ["items[8]"],
        said("PHQ-9 item 9"),
    )
    assert second["code"] == "conflict" and second["expression"] == ["session_key", "patient.mrn"]
    assert other.status_code == 409 and [i["code"] for i in other.json()["issue"]] == ["conflict"]


def test_a_409_for_another_instrument_on_a_key_says_so_of_a_safety_answer() -> None:
    fake = FakeFhir()
    gad7 = {"patient": {"mrn": "MRN-9"}, "instrument": "gad7", "completed_at": T0, "items": [1] * 7}
    madrs = {**gad7, "instrument": "madrs", "items": [0] * 9 + [4]}

    with api_on(fake) as api:
        assert api.put("/v1/assessments/Q-9", json=gad7, headers=AUTH).status_code == 201
        refused = api.put("/v1/assessments/Q-9", json=madrs, headers=AUTH)

    assert refused.status_code == 409
    assert [(i["code"], i.get("expression")) for i in refused.json()["issue"]] == [
        ("business-rule", ["items[9]"]),
        ("conflict", None),
    ]


# -- the batch --------------------------------------------------------------------------------


def rejects_of(report: Report) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in report.rejects.getvalue().splitlines()]  # type: ignore[attr-defined]


def test_the_rejects_line_says_so_the_report_counts_it_and_the_reason_stays_the_field() -> None:
    report = Report(io.BytesIO())
    positive = parse_line("in.ndjson", 4, orjson.dumps(phq9([0] * 8 + [2], total=9)))
    negative = parse_line("in.ndjson", 5, orjson.dumps(phq9(NO, total=9)))

    report.record_rejected(positive, "invalid record", positive.issues)
    report.record_rejected(negative, "invalid record", negative.issues)

    first, second = rejects_of(report)
    assert first["safety_answer"] is True and "safety_answer" not in second
    assert first["issues"][0] == {"path": "items[8]", "message": said("PHQ-9 item 9"), "safety": True}
    assert (
        first["issues"][1:] == second["issues"] == [{"path": "total", "message": "must equal the sum of the 9 items"}]
    )
    assert report.as_dict(retries=0)["safety_rejects"] == 1
    assert report.reasons == Counter({"invalid record: total: must equal the sum of the 9 items": 2})


async def test_a_line_refused_at_sync_holding_a_safety_answer_is_marked_too() -> None:
    fake = FakeFhir()
    settings = Settings(FHIR_BASE_URL=BASE)
    orphan = {**phq9([0] * 8 + [1]), "key": "P-ORPHAN", "session_key": "S-MISSING"}
    fine = {**phq9([0] * 8 + [1]), "key": "P-FINE"}
    lines = [parse_line("in.ndjson", n, orjson.dumps(r)) for n, r in enumerate([orphan, fine], start=1)]

    async with open_fhir_client(settings, transport=fake.transport()) as fhir:
        report = await BatchSync(SyncEngine(fhir, settings.mapping_config()), Report(io.BytesIO())).run(lines)

    (rejected,) = rejects_of(report)
    assert (rejected["key"], rejected["reason"]) == ("P-ORPHAN", "session S-MISSING not found on the FHIR server")
    assert rejected["safety_answer"] is True
    assert rejected["issues"] == [{"path": "items[8]", "message": said("PHQ-9 item 9"), "safety": True}]
    assert report.synced == 1 and report.as_dict(retries=0)["safety_rejects"] == 1


def test_the_terminal_summary_shows_safety_rejects_first() -> None:
    summary = {
        "status": "completed",
        "stopped_reason": None,
        "exit_code": 1,
        "lines": 10,
        "synced": 7,
        "rejected": 3,
        "safety_rejects": 2,
        "not_processed": 0,
        "by_kind": {"phq9_assessment": {"created": 7, "rejected": 3}},
        "duration_s": 1.0,
        "records_per_s": 7.0,
        "rejects_file": "rejects.ndjson",
    }

    lines = sync_summary(summary, Counter({"invalid record: total: must equal the sum of the 9 items": 3}), None)

    assert lines[0] == (
        'SAFETY: 2 rejected lines hold a positive safety answer, not written (rejects.ndjson: "safety_answer": true): '
        "correct and re-send, or record the risk another way"
    )
    assert lines[1].startswith("sync completed: 10 lines")
    assert not any("SAFETY" in line for line in sync_summary({**summary, "safety_rejects": 0}, Counter(), None))


def test_a_dry_run_reports_safety_rejects_end_to_end(tmp_path: Path) -> None:
    records = tmp_path / "in.ndjson"
    records.write_bytes(
        b"\n".join(orjson.dumps(r) for r in (phq9([0] * 8 + [1], total=0), phq9(NO), phq9(NO, total=1))) + b"\n"
    )
    rejects = tmp_path / "rejects.ndjson"

    result = CliRunner().invoke(app, ["sync", str(records), "--dry-run", "--rejects", str(rejects), "--json"])

    assert result.exit_code == 1
    report = orjson.loads(result.stdout)
    assert (report["rejected"], report["safety_rejects"]) == (2, 1)
    marked = [orjson.loads(line).get("safety_answer", False) for line in rejects.read_bytes().splitlines()]
    assert marked == [True, False]


def test_the_api_answers_no_answer_value_in_its_safety_issue() -> None:
    """The issue names the item only: the same diagnostics whatever the positive answer was."""
    answers = []
    with api_on(FakeFhir()) as api:
        for value in (1, 2, 3):
            body = phq9([0] * 8 + [value], total=27)
            answers.append(api.put("/v1/phq9-assessments/P-1", json=body, headers=AUTH).json()["issue"][0])
    assert answers[0] == answers[1] == answers[2]
