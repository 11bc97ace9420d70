"""Writing a session's monitoring summary and critical-episode Flag, through the app on an in-memory FHIR server.

`POST .../$monitoring-summary` writes a DiagnosticReport with statistics Observations (deterministic ids, status
preliminary / final / amended, nothing written again when nothing changed), and the session's Flag when a
confirmed rule fired; every API write or retraction of a reading, score, adverse event or the session refreshes
them; the Flag is never written over once a clinician changed it, and is retracted when no trigger remains.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import key_digest
from service.mappers import MappingConfig, codes
from service.mappers.fhir import as_resource
from service.mappers.monitoring_report import part_ref
from service.monitoring import summary_chart
from service.monitoring.chart import render
from service.settings import Settings
from tests.monitoring_sessions import END, START, at, bp, hypertensive, session, vital
from tests.unit.fake_fhir import BASE, FakeFhir

AUTH = {"Authorization": "Bearer unit-key"}
MRN = "MRN-WRITE"
CONFIG = MappingConfig(fhir_base_url=BASE)
LOINC = codes.LOINC


def client(fake: FakeFhir, **overrides: Any) -> TestClient:
    settings = Settings(FHIR_BASE_URL=BASE, api_keys=key_digest("unit-key"), retry_max_attempts=1, **overrides)
    return TestClient(create_app(settings, transport=fake.transport()))


def settle(api: TestClient) -> None:
    """Wait for the summaries the app refreshes right after its answers (`deferred.py`)."""
    assert api.portal is not None
    api.portal.call(api.app.state.summaries.deferred.settled)  # type: ignore[attr-defined]


def put(api: TestClient, segment: str, key: str, body: dict[str, Any]) -> Any:
    body = {k: v for k, v in body.items() if k not in ("key", "kind")}
    response = api.put(f"/v1/{segment}/{key}", json=body, headers=AUTH)
    assert response.status_code in (200, 201), response.text
    settle(api)
    return response.json()


def put_unsettled(api: TestClient, session_key: str, reading: dict[str, Any]) -> Any:
    """PUT a vital sign of the session and return the answer at once: what the app refreshes after it may be
    still running."""
    body = {**reading, "patient": {"mrn": MRN}, "session_key": session_key}
    return api.put(
        f"/v1/vital-signs/{reading['key']}", json={k: v for k, v in body.items() if k != "key"}, headers=AUTH
    )


def put_vital(api: TestClient, session_key: str, reading: dict[str, Any]) -> None:
    put(api, "vital-signs", reading["key"], {**reading, "patient": {"mrn": MRN}, "session_key": session_key})


def post(api: TestClient, key: str) -> Any:
    return api.post(f"/v1/infusion-sessions/{key}/$monitoring-summary", headers=AUTH)


def stored(fake: FakeFhir, key: str, part: str) -> dict[str, Any] | None:
    return fake.store.get(part_ref(key, part, CONFIG))


def details(flag: dict[str, Any]) -> list[str]:
    return [e["valueReference"]["reference"] for e in flag.get("extension", []) if e["url"] == codes.EXT_FLAG_DETAIL]


def observation_of(fake: FakeFhir, key: str) -> str:
    found = [r for r in fake.of_type("Observation") if r["identifier"][0]["value"] == key]
    assert len(found) == 1, key
    return f"Observation/{found[0]['id']}"


def test_a_hypertensive_session_gets_its_report_statistics_and_flag_with_its_first_write() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put(api, "infusion-sessions", "S-W", {**session("S-W", MRN), **hypertensive("W")})
    report = stored(fake, "S-W", "report")
    assert report is not None and report["status"] == "final"
    as_resource({k: v for k, v in report.items() if k != "meta"})  # a valid R4 DiagnosticReport
    assert report["code"]["coding"][0]["code"] == "infusion-monitoring-summary"
    assert report["encounter"] == fake.store[f"Procedure/{_procedure_id('S-W')}"]["encounter"]
    assert report["effectivePeriod"] == {"start": START.isoformat(), "end": END.isoformat()}
    (chart,) = report["presentedForm"]  # the session's chart, drawn from what the server holds
    assert chart["contentType"] == "image/png" and chart["title"] == "Infusion monitoring chart"
    png = base64.b64decode(chart["data"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and chart["size"] == len(png)
    results = [r["reference"] for r in report["result"]]
    assert results[0] == observation_of(fake, "W-bp0") and observation_of(fake, "W-c2") == results[-1]
    stats = {
        m: stored(fake, "S-W", f"statistics-{m}")
        for m in ("systolic", "diastolic", "heart_rate", "respiratory_rate", "spo2")
    }
    for measure, stat in stats.items():
        assert stat is not None and stat["status"] == "final", measure
        assert f"Observation/{stat['id']}" in results
        assert all(c["system"] != LOINC for c in stat["code"]["coding"]), measure  # never the vital's LOINC code
        assert [c["code"]["coding"][0]["code"] for c in stat["component"]] == ["maximum", "minimum", "count"]
        as_resource({k: v for k, v in stat.items() if k != "meta"})
    systolic = stats["systolic"]
    assert systolic is not None
    assert [c.get("valueQuantity", {}).get("value", c.get("valueInteger")) for c in systolic["component"]] == [
        212,
        135,
        9,
    ]
    assert systolic["derivedFrom"][0]["reference"] == observation_of(fake, "W-bp2")  # the peak first
    assert systolic["derivedFrom"][1]["reference"] == observation_of(fake, "W-bp8")  # then the trough
    flag = stored(fake, "S-W", "flag")
    assert flag is not None and flag["status"] == "active"
    assert flag["category"][0]["coding"][0]["code"] == "safety"
    assert details(flag) == [observation_of(fake, k) for k in ("W-bp2", "W-bp3", "W-bp4")]
    assert dt.datetime.fromisoformat(flag["period"]["start"]) == START + dt.timedelta(minutes=20)
    assert dt.datetime.fromisoformat(flag["period"]["end"]) == END + dt.timedelta(hours=24)
    as_resource({k: v for k, v in flag.items() if k != "meta"})


def _procedure_id(key: str) -> str:
    from service.mappers.ids import resource_id

    return resource_id("infusion_session", key, "procedure", CONFIG)


def test_a_summary_that_did_not_change_is_not_written_again() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put(api, "infusion-sessions", "S-W", {**session("S-W", MRN), **hypertensive("W")})
        sent = len(fake.transactions)
        again = post(api, "S-W")
        put(api, "infusion-sessions", "S-W", {**session("S-W", MRN), **hypertensive("W")})  # the same record again
    assert again.status_code == 200
    assert set(again.json()["counts"]) == {"unchanged"} and again.json()["counts"]["unchanged"] == 7
    assert all(
        not any(e["request"]["url"].startswith(("DiagnosticReport", "Flag")) for e in t["entry"])
        for t in fake.transactions[sent:]
    )


def test_preliminary_while_in_progress_final_when_it_ends_amended_after_a_correction() -> None:
    fake = FakeFhir()
    children = {"vital_signs": [bp("A-0", -10, 130, 80), bp("A-1", 10, 150, 90)]}
    with client(fake) as api:
        put(api, "infusion-sessions", "S-A", {**session("S-A", MRN, status="in_progress", ended_at=None), **children})
        assert stored(fake, "S-A", "report")["status"] == "preliminary"  # type: ignore[index]
        assert stored(fake, "S-A", "statistics-systolic")["status"] == "preliminary"  # type: ignore[index]
        put(api, "infusion-sessions", "S-A", {**session("S-A", MRN), **children})
        assert stored(fake, "S-A", "report")["status"] == "final"  # type: ignore[index]
        put_vital(api, "S-A", {**bp("A-1", 10, 155, 90)})  # a correction of an embedded reading, sent on its own
        report = stored(fake, "S-A", "report")
        assert report is not None and report["status"] == "amended"
        assert stored(fake, "S-A", "statistics-systolic")["status"] == "amended"  # type: ignore[index]
        assert stored(fake, "S-A", "statistics-heart_rate") is None  # no heart rate: no statistics of it
        put_vital(api, "S-A", vital("A-2", 20, "heart_rate", 90))
        assert stored(fake, "S-A", "statistics-heart_rate")["status"] == "final"  # type: ignore[index]
        assert stored(fake, "S-A", "statistics-diastolic")["status"] == "final"  # type: ignore[index]  # unchanged


def test_a_rise_alone_raises_no_flag() -> None:
    fake = FakeFhir()
    children = {"vital_signs": [bp("R-0", -10, 110, 70), bp("R-1", 10, 170, 100), bp("R-2", 20, 175, 105)]}
    with client(fake) as api:
        put(api, "infusion-sessions", "S-R", {**session("S-R", MRN), **children})
    assert stored(fake, "S-R", "report") is not None
    assert stored(fake, "S-R", "flag") is None
    assert not fake.of_type("Flag")


@pytest.mark.parametrize(
    "trigger",
    [
        bp("T-1", 10, 212, 124),
        vital("T-1", 10, "spo2", 86),
        bp("T-1", 10, 76, 50),
        vital("T-1", 10, "heart_rate", 38),
    ],
    ids=["212/124", "SpO2 86", "SBP 76", "HR 38"],
)
def test_each_single_critical_reading_raises_the_flag_and_its_retraction_retracts_it(trigger: dict[str, Any]) -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put(api, "infusion-sessions", "S-T", {**session("S-T", MRN), "vital_signs": [bp("T-0", -10, 120, 80)]})
        assert stored(fake, "S-T", "flag") is None
        put_vital(api, "S-T", trigger)
        flag = stored(fake, "S-T", "flag")
        assert flag is not None and flag["status"] == "active"
        assert details(flag) == [observation_of(fake, "T-1")]
        assert api.delete("/v1/vital-signs/T-1", headers=AUTH).status_code == 204
    flag = stored(fake, "S-T", "flag")
    assert flag is not None and flag["status"] == codes.ENTERED_IN_ERROR
    assert details(flag) == [observation_of(fake, "T-1")]  # it keeps what it was raised on
    assert stored(fake, "S-T", "report")["conclusion"].count("Critical episode") == 0  # type: ignore[index]


def test_a_moaas_of_1_raises_the_flag() -> None:
    fake = FakeFhir()
    scores = [{"key": "M-1", "measured_at": at(20), "instrument": "moaas", "score": 1}]
    with client(fake) as api:
        put(api, "infusion-sessions", "S-M", {**session("S-M", MRN), "monitoring_scores": scores})
    assert stored(fake, "S-M", "flag")["status"] == "active"  # type: ignore[index]


def _clinician(fake: FakeFhir, key: str, **changes: Any) -> None:
    flag = copy.deepcopy(stored(fake, key, "flag"))
    assert flag is not None
    flag.update(changes)
    flag["meta"] = {"versionId": str(int(flag["meta"]["versionId"]) + 1)}
    fake.put(flag)


@pytest.mark.parametrize(
    "change",
    [{"status": "inactive"}, {"code": {"text": "Reviewed: hypertension, treated"}}],
    ids=["closed", "text edited"],
)
def test_a_flag_a_clinician_changed_is_never_written_over(change: dict[str, Any]) -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put(api, "infusion-sessions", "S-C", {**session("S-C", MRN), "vital_signs": [bp("C-1", 10, 212, 124)]})
        _clinician(fake, "S-C", **change)
        before = copy.deepcopy(stored(fake, "S-C", "flag"))
        put_vital(api, "S-C", vital("C-2", 15, "spo2", 85))  # a new trigger
        assert stored(fake, "S-C", "flag") == before
        assert api.delete("/v1/vital-signs/C-1", headers=AUTH).status_code == 204
        assert api.delete("/v1/vital-signs/C-2", headers=AUTH).status_code == 204  # no trigger left
        assert stored(fake, "S-C", "flag") == before
        assert len(fake.of_type("Flag")) == 1  # one per session: never a second one
        report = stored(fake, "S-C", "report")
    assert report is not None and "Critical episode" not in report["conclusion"]


def test_an_active_flag_of_ours_gains_and_loses_evidence_with_if_match() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put(api, "infusion-sessions", "S-G", {**session("S-G", MRN), "vital_signs": [bp("G-1", 10, 212, 124)]})
        put_vital(api, "S-G", vital("G-2", 5, "spo2", 85))  # earlier than the first trigger
        flag = stored(fake, "S-G", "flag")
        assert flag is not None
        assert details(flag) == [observation_of(fake, "G-2"), observation_of(fake, "G-1")]
        assert dt.datetime.fromisoformat(flag["period"]["start"]) == START + dt.timedelta(minutes=5)
        last = fake.transactions[-1]
        entry = next(e for e in last["entry"] if e["request"]["url"].startswith("Flag/"))
        assert entry["request"]["ifMatch"] == 'W/"1"'
        assert api.delete("/v1/vital-signs/G-2", headers=AUTH).status_code == 204
    flag = stored(fake, "S-G", "flag")
    assert flag is not None and flag["status"] == "active" and details(flag) == [observation_of(fake, "G-1")]


def test_retracting_the_session_retracts_its_summary_and_flag() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put(api, "infusion-sessions", "S-X", {**session("S-X", MRN), **hypertensive("X")})
        assert api.delete("/v1/infusion-sessions/S-X", headers=AUTH).status_code == 204
        assert post(api, "S-X").status_code == 404
    assert stored(fake, "S-X", "report")["status"] == codes.ENTERED_IN_ERROR  # type: ignore[index]
    assert stored(fake, "S-X", "statistics-systolic")["status"] == codes.ENTERED_IN_ERROR  # type: ignore[index]
    assert stored(fake, "S-X", "flag")["status"] == codes.ENTERED_IN_ERROR  # type: ignore[index]


def test_with_summaries_off_only_the_post_writes_them() -> None:
    fake = FakeFhir()
    with client(fake, monitoring_summaries=False) as api:
        put(api, "infusion-sessions", "S-O", {**session("S-O", MRN), **hypertensive("O")})
        assert stored(fake, "S-O", "report") is None
        answer = post(api, "S-O")
    assert answer.status_code == 201
    assert stored(fake, "S-O", "report") is not None and stored(fake, "S-O", "flag") is not None
    assert answer.json()["counts"] == {"created": 7}


def test_an_unknown_session_is_404_for_the_post() -> None:
    with client(FakeFhir()) as api:
        response = post(api, "S-NONE")
    assert response.status_code == 404 and response.json()["resourceType"] == "OperationOutcome"


def test_a_session_without_readings_gets_no_summary() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put(api, "infusion-sessions", "S-N", session("S-N", MRN))
        assert post(api, "S-N").json() == {"resources": [], "counts": {}}
    assert not fake.of_type("DiagnosticReport")


@pytest.mark.parametrize("opaque", [False, True], ids=["numbered-versions", "uuid-versions"])
def test_readings_added_after_the_end_complete_a_final_report_and_a_correction_amends_it(opaque: bool) -> None:
    """With UUID versions (Medplum) a reading added after the end read as rewritten, and amended the report."""
    fake = FakeFhir()
    fake.opaque_versions = opaque
    with client(fake) as api:
        put(api, "infusion-sessions", "S-F", session("S-F", MRN))
        put_vital(api, "S-F", bp("F-0", -10, 130, 80))
        assert stored(fake, "S-F", "report")["status"] == "final"  # type: ignore[index]
        put_vital(api, "S-F", bp("F-1", 10, 150, 90))  # one more reading: the report is completed, not amended
        assert stored(fake, "S-F", "report")["status"] == "final"  # type: ignore[index]
        assert stored(fake, "S-F", "statistics-systolic")["status"] == "final"  # type: ignore[index]
        put_vital(api, "S-F", bp("F-1", 10, 152, 90))  # a correction
        assert stored(fake, "S-F", "report")["status"] == "amended"  # type: ignore[index]
        assert stored(fake, "S-F", "statistics-systolic")["status"] == "amended"  # type: ignore[index]


def test_a_retracted_reading_or_a_corrected_adverse_event_amends_a_final_report() -> None:
    event = {
        "key": "E-AE",
        "onset_at": at(20),
        "recorded_at": at(25),
        "event": "nausea",
        "severity": "mild",
        "serious": False,
        "outcome": "ongoing",
    }
    for change in ("retract", "event"):
        fake = FakeFhir()
        key = f"S-{change}"
        with client(fake) as api:
            put(
                api,
                "infusion-sessions",
                key,
                {**session(key, MRN), "vital_signs": [bp("E-0", -10, 130, 80), bp("E-1", 10, 150, 90)]},
            )
            put(api, "adverse-events", "E-AE", {**event, "patient": {"mrn": MRN}, "session_key": key})
            assert stored(fake, key, "report")["status"] == "final"  # type: ignore[index]
            if change == "retract":
                assert api.delete("/v1/vital-signs/E-1", headers=AUTH).status_code == 204
            else:
                put(
                    api,
                    "adverse-events",
                    "E-AE",
                    {**event, "outcome": "resolved", "patient": {"mrn": MRN}, "session_key": key},
                )
            assert stored(fake, key, "report")["status"] == "amended", change  # type: ignore[index]


def test_a_summary_that_cannot_be_written_after_the_record_says_so_and_a_resend_writes_it() -> None:
    import httpx

    fake = FakeFhir()
    refuse = {"on": True}

    def summaries_down(request: httpx.Request, body: Any) -> httpx.Response | None:
        entries = body.get("entry", []) if isinstance(body, dict) and body.get("resourceType") == "Bundle" else []
        if refuse["on"] and any(e["request"]["url"].startswith("DiagnosticReport") for e in entries):
            return httpx.Response(503, json={"resourceType": "OperationOutcome", "issue": []})
        return None

    fake.intercept = summaries_down
    body = {**session("S-D", MRN), "vital_signs": [bp("D-1", 10, 212, 124)]}
    with client(fake) as api:
        failed = api.put("/v1/infusion-sessions/S-D", json={k: v for k, v in body.items() if k != "key"}, headers=AUTH)
        assert failed.status_code == 503
        said = " ".join(i.get("diagnostics", "") for i in failed.json()["issue"])
        assert (
            "written, but the monitoring summary of session S-D was not" in said
            and "send the same request again" in said
        )
        assert f"Procedure/{_procedure_id('S-D')}" in fake.store  # the record is written
        assert stored(fake, "S-D", "flag") is None
        refuse["on"] = False
        put(api, "infusion-sessions", "S-D", body)  # the same request again
    assert stored(fake, "S-D", "flag")["status"] == "active"  # type: ignore[index]


def test_a_refused_summary_passes_on_none_of_the_servers_diagnostics() -> None:
    """The server's diagnostics may quote the summary's text (values): the answer names the session only."""
    import httpx

    fake = FakeFhir()

    def refuse(request: httpx.Request, body: Any) -> httpx.Response | None:
        entries = body.get("entry", []) if isinstance(body, dict) and body.get("resourceType") == "Bundle" else []
        if any(e["request"]["url"].startswith("DiagnosticReport") for e in entries):
            outcome = {"severity": "error", "code": "processing", "diagnostics": "bad conclusion: 212/124 mmHg"}
            return httpx.Response(400, json={"resourceType": "OperationOutcome", "issue": [outcome]})
        return None

    fake.intercept = refuse
    body = {**session("S-Q", MRN), "vital_signs": [bp("Q-1", 10, 212, 124)]}
    with client(fake) as api:
        answer = api.put("/v1/infusion-sessions/S-Q", json={k: v for k, v in body.items() if k != "key"}, headers=AUTH)
    assert answer.status_code == 502
    assert "212" not in answer.text and "monitoring summary of session S-Q" in answer.text


def test_a_reading_that_may_raise_the_flag_is_answered_only_once_the_flag_is_written() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put(api, "infusion-sessions", "S-U", session("S-U", MRN))
        answer = put_unsettled(api, "S-U", bp("U-1", 20, 212, 124))
        flag = stored(fake, "S-U", "flag")  # read before anything else runs: no settle
        assert flag is not None and flag["status"] == "active"
        summary = answer.json()["monitoring_summary"]
        assert "deferred" not in summary
        assert f"Flag/{flag['id']}" in {f"{r['resourceType']}/{r['id']}" for r in summary["resources"]}


def test_a_calm_reading_is_answered_first_and_its_summary_follows_right_after() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put(api, "infusion-sessions", "S-C", session("S-C", MRN))
        answer = put_unsettled(api, "S-C", bp("C-1", 20, 150, 92))
        assert answer.status_code == 201
        assert answer.json()["monitoring_summary"] == {"resources": [], "counts": {}, "deferred": ["S-C"]}
        settle(api)
        report = stored(fake, "S-C", "report")
        assert report is not None and [r["reference"] for r in report["result"]][0] == observation_of(fake, "C-1")
        assert stored(fake, "S-C", "flag") is None
        put_unsettled(api, "S-C", bp("C-2", 30, 155, 95))
    # not settled by the test: the app's shutdown waits for the refresh it still owes
    report = stored(fake, "S-C", "report")
    assert report is not None and observation_of(fake, "C-2") in [r["reference"] for r in report["result"]]


def test_the_chart_is_drawn_only_when_what_it_shows_may_have_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[str] = []

    async def counting(chart: Any, media_type: str) -> bytes:
        drawn.append(chart.session_key)
        return render(chart, media_type)  # (in this process: the count is what is checked)

    monkeypatch.setattr(summary_chart, "draw", counting)
    fake = FakeFhir()
    children = {"vital_signs": [bp("G-0", -10, 130, 80), bp("G-1", 10, 150, 90), bp("G-2", 20, 140, 85)]}
    with client(fake) as api:
        put(api, "infusion-sessions", "S-G", {**session("S-G", MRN), **children})
        first = stored(fake, "S-G", "report")["presentedForm"]  # type: ignore[index]
        assert len(drawn) == 1
        post(api, "S-G")
        put(api, "infusion-sessions", "S-G", {**session("S-G", MRN), **children})  # the same again
        assert len(drawn) == 1  # nothing changed: the server's chart is kept, not drawn again
        put_vital(api, "S-G", bp("G-2", 20, 141, 85))  # neither peak nor trough: only the chart shows it
        assert len(drawn) == 2
        corrected = stored(fake, "S-G", "report")
        assert corrected is not None and corrected["presentedForm"] != first and corrected["status"] == "amended"
        post(api, "S-G")
        assert len(drawn) == 2  # the corrected chart is on the server now: not drawn again
    with client(fake, monitoring_charts=False) as api:
        put_vital(api, "S-G", bp("G-3", 30, 139, 85))
    assert "presentedForm" not in stored(fake, "S-G", "report")  # type: ignore[operator]  # no stale chart kept


def test_the_summary_answers_as_json_or_as_its_chart_by_accept() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put(api, "infusion-sessions", "S-P", {**session("S-P", MRN), **hypertensive("P")})
        url = "/v1/infusion-sessions/S-P/$monitoring-summary"
        answers = {
            accept: api.get(url, headers={**AUTH, "Accept": accept})
            for accept in ("application/json", "*/*", "image/png", "application/pdf", "image/*;q=0.9, */*;q=0.1")
        }
        unknown = api.get("/v1/infusion-sessions/S-X/$monitoring-summary", headers={**AUTH, "Accept": "image/png"})
    assert answers["application/json"].json() == answers["*/*"].json() and answers["*/*"].json()["session_key"] == "S-P"
    assert answers["image/png"].headers["content-type"] == "image/png"
    assert answers["image/png"].content.startswith(b"\x89PNG\r\n\x1a\n")
    assert answers["image/png"].content == base64.b64decode(stored(fake, "S-P", "report")["presentedForm"][0]["data"])  # type: ignore[index]
    assert answers["application/pdf"].content.startswith(b"%PDF-")
    assert answers["image/*;q=0.9, */*;q=0.1"].headers["content-type"] == "image/png"
    assert unknown.status_code == 404 and unknown.json()["resourceType"] == "OperationOutcome"
