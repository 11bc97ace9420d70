"""The `assessment` kind on the real HAPI: every instrument PUT via the API, read back equal, each resource
passing `$validate` without errors; a positive C-SSRS answer raises an active Flag; retraction as PHQ-9's.

The API writes the service's Questionnaires before the first QuestionnaireResponse, so HAPI checks each
response against its stored Questionnaire: no "questionnaire ... could not be resolved / not found"
warning, and a wrong answer code is an error (issue 21).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas import parse_record
from service.instruments import DEFINITIONS
from service.mappers import resource_ids
from service.mappers.ids import resource_ref
from service.mappers.questionnaire import questionnaire_id
from service.settings import Settings

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "assessment"
FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.json").is_file())
UNRESOLVED = re.compile(r"questionnaire .* (could not be resolved|not found)", re.IGNORECASE)


@pytest.fixture
def settings(settings: Settings, run_id: str, fhir_cleanup) -> Iterator[Settings]:
    """The integration settings with a canonical base of this test's own: the Questionnaires the API writes
    are this test's (so it sees them written, not left by an earlier run), deleted after it."""
    ours = settings.model_copy(update={"canonical_base": f"https://test.infusion-fhir.example/{run_id}/fhir"})
    config = ours.mapping_config()
    fhir_cleanup.track(*(f"Questionnaire/{questionnaire_id(config, i)}" for i in DEFINITIONS))
    yield ours


def _body(case: str, run_id: str) -> dict[str, Any]:
    """The golden input of `case` as a PUT body for a fresh key and patient (no session: none is written)."""
    record = json.loads((GOLDEN / case / "input.json").read_text(encoding="utf-8"))
    record.pop("session_key", None)
    record["key"] = f"{case}-{run_id}"
    record["patient"] = {**record["patient"], "mrn": f"A-{run_id}"}
    return record


def _held(fhir_base_url: str, refs: list[str]) -> list[dict[str, Any]]:
    out = []
    for ref in refs:
        response = httpx.get(f"{fhir_base_url}/{ref}", headers=FHIR_JSON, timeout=60)
        if response.status_code == 200:
            out.append(response.json())
    return out


def _issues(fhir_base_url: str, resource: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{fhir_base_url}/{resource['resourceType']}/$validate", json=resource, headers=FHIR_JSON, timeout=120
    )
    outcome = response.json()
    assert outcome.get("resourceType") == "OperationOutcome", response.status_code
    return [{**issue, "where": f"{resource['resourceType']}/{resource['id']}"} for issue in outcome.get("issue", [])]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.needs("$validate")
def test_each_instrument_round_trips_and_validates(
    case: str, api, settings, fhir_base_url, run_id, capsys: pytest.CaptureFixture
) -> None:
    body = _body(case, run_id)
    url = f"/v1/assessments/{body['key']}"
    written = api.put(url, json=body)
    assert written.status_code == 201, written.text
    got = api.get(url)
    assert got.status_code == 200, got.text
    assert parse_record({"kind": "assessment", **got.json()}) == parse_record(body)

    config = settings.mapping_config()
    held = _held(fhir_base_url, [rid.ref for rid in resource_ids("assessment", body["key"], config)])
    types = {r["resourceType"] for r in held}
    assert {"QuestionnaireResponse", "Observation"} <= types
    issues = [issue for resource in held for issue in _issues(fhir_base_url, resource)]
    errors = [i for i in issues if i.get("severity") in ("error", "fatal")]
    warnings = sorted(
        {
            f"{i['where'].split('/')[0]}: {i.get('diagnostics', '')[:160]}"
            for i in issues
            if i.get("severity") == "warning"
        }
    )
    with capsys.disabled():
        print(
            f"\n$validate {case}: {len(held)} resources, {len(errors)} errors, {sum(1 for i in issues if i.get('severity') == 'warning')} warnings"
        )
        for warning in warnings:
            print(f"  warning: {warning}")
    assert errors == [], errors
    unresolved = [i for i in issues if UNRESOLVED.search(i.get("diagnostics", ""))]
    assert unresolved == [], unresolved  # each response was checked against its stored Questionnaire

    assert api.put(url, json=body).status_code == 200  # re-sent: unchanged
    assert api.delete(url).status_code == 204
    retracted = _held(fhir_base_url, [f"{r['resourceType']}/{r['id']}" for r in held])
    assert {r["status"] for r in retracted} == {"entered-in-error"}


def test_a_positive_cssrs_answer_raises_an_active_flag_kept_for_clinicians(
    api, settings, fhir_base_url, run_id
) -> None:
    body = _body("cssrs-screen-slc-moderate", run_id)
    url = f"/v1/assessments/{body['key']}"
    assert api.put(url, json=body).status_code == 201
    config = settings.mapping_config()
    flag_ref = resource_ref("assessment", body["key"], "flag", config)
    flag = httpx.get(f"{fhir_base_url}/{flag_ref}", headers=FHIR_JSON, timeout=60).json()
    assert flag["status"] == "active"
    assert flag["extension"][0]["valueReference"]["reference"] == resource_ref(
        "assessment", body["key"], "panel", config
    )

    flag["status"] = "inactive"  # a clinician has reviewed the risk
    assert httpx.put(f"{fhir_base_url}/{flag_ref}", json=flag, headers=FHIR_JSON, timeout=60).status_code == 200
    assert api.put(url, json=body).status_code == 200
    assert httpx.get(f"{fhir_base_url}/{flag_ref}", headers=FHIR_JSON, timeout=60).json()["status"] == "inactive"

    assert api.delete(url).status_code == 204
    assert (
        httpx.get(f"{fhir_base_url}/{flag_ref}", headers=FHIR_JSON, timeout=60).json()["status"] == "entered-in-error"
    )


def test_a_negative_cssrs_screen_raises_no_flag(api, settings, fhir_base_url, run_id) -> None:
    body = {**_body("cssrs-screen-low", run_id), "items": [False, False, None, None, None, False, None]}
    assert api.put(f"/v1/assessments/{body['key']}", json=body).status_code == 201
    flag_ref = resource_ref("assessment", body["key"], "flag", settings.mapping_config())
    assert httpx.get(f"{fhir_base_url}/{flag_ref}", headers=FHIR_JSON, timeout=60).status_code == 404


def test_a_bad_answer_is_a_422_naming_the_field(api, run_id) -> None:
    body = {**_body("cssrs-screen-low", run_id), "items": [True, False, True, None, None, False, None]}
    response = api.put(f"/v1/assessments/{body['key']}", json=body)
    assert response.status_code == 422, response.text
    assert "items[2]" in response.text


def test_a_key_keeps_its_instrument(api, run_id) -> None:
    body = _body("gad7-moderate-difficulty", run_id)
    url = f"/v1/assessments/{body['key']}"
    assert api.put(url, json=body).status_code == 201
    other = {**_body("madrs-moderate-no-flag", run_id), "key": body["key"]}
    response = api.put(url, json=other)
    assert response.status_code == 409, response.text
    assert "keeps its instrument" in response.text
    got = api.get(url)
    assert got.status_code == 200 and got.json()["instrument"] == "gad7"


@pytest.mark.parametrize(("case", "link_id"), [("gad7-moderate-difficulty", "3"), ("cssrs-screen-high", "S1")])
@pytest.mark.needs("$validate")
def test_a_response_with_a_wrong_answer_code_fails_validate(
    case: str, link_id: str, api, settings, fhir_base_url, run_id
) -> None:
    """The stored Questionnaire is what $validate checks against: an answer outside its options is an error."""
    body = _body(case, run_id)
    assert api.put(f"/v1/assessments/{body['key']}", json=body).status_code == 201, case
    qr_ref = resource_ref("assessment", body["key"], "response", settings.mapping_config())
    (response,) = _held(fhir_base_url, [qr_ref])
    assert not [i for i in _issues(fhir_base_url, response) if i.get("severity") in ("error", "fatal")]
    (item,) = [i for i in response["item"] if i["linkId"] == link_id]
    item["answer"][0]["valueCoding"]["code"] = "LA9999-9"
    errors = [i for i in _issues(fhir_base_url, response) if i.get("severity") in ("error", "fatal")]
    assert errors and any("LA9999-9" in i.get("diagnostics", "") for i in errors), errors


def _errors(issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in issues if i.get("severity") in ("error", "fatal")]


@pytest.mark.needs("$validate")
def test_a_phq9_sent_as_either_kind_is_one_record(api, settings, fhir_base_url, run_id) -> None:
    """Issue 21 (H-33): one key sent as `assessment` and as `phq9_assessment` writes the same resources under
    the PHQ-9's ids (nothing under the assessment kind's), reads back equal under both kinds, passes $validate
    with the QuestionnaireResponse checked against the stored PHQ-9 Questionnaire, raises one Flag, and keeps
    its instrument across the two kinds."""
    key = f"phq9-both-{run_id}"
    fields = {
        "patient": {"mrn": f"A-{run_id}"},
        "completed_at": "2026-03-02T09:10:00-05:00",
        "items": [2, 1, 1, 2, 1, 0, 1, 0, 1],
        "difficulty": "somewhat",
    }
    config = settings.mapping_config()
    phq9_refs = [rid.ref for rid in resource_ids("phq9_assessment", key, config)]

    first = api.put(f"/v1/assessments/{key}", json={**fields, "instrument": "phq9"})
    assert first.status_code == 201, first.text
    held = _held(fhir_base_url, phq9_refs)
    written = {f"{r['resourceType']}/{r['id']}" for r in first.json()["resources"] if r["resourceType"] != "Patient"}
    assert written == {f"{r['resourceType']}/{r['id']}" for r in held}, "the PHQ-9's own ids, every one"
    assert [r["resourceType"] for r in held].count("QuestionnaireResponse") == 1
    assert [r["resourceType"] for r in held].count("Flag") == 1  # item 9 = 1: one Flag, not one per kind
    assert _held(fhir_base_url, [rid.ref for rid in resource_ids("assessment", key, config)]) == []

    second = api.put(f"/v1/phq9-assessments/{key}", json=fields)
    assert second.status_code == 200, second.text
    assert {f"{r['resourceType']}/{r['id']}" for r in second.json()["resources"]} - {
        f"{r['resourceType']}/{r['id']}" for r in first.json()["resources"]
    } == set()
    without_meta = [{k: v for k, v in r.items() if k != "meta"} for r in _held(fhir_base_url, phq9_refs)]
    assert without_meta == [{k: v for k, v in r.items() if k != "meta"} for r in held], "the same resources"

    as_phq9 = api.get(f"/v1/phq9-assessments/{key}")
    as_assessment = api.get(f"/v1/assessments/{key}")
    assert as_phq9.status_code == as_assessment.status_code == 200, as_assessment.text
    assert as_assessment.json()["instrument"] == "phq9"
    expected = parse_record({"kind": "phq9_assessment", "key": key, **fields})
    assert parse_record({"kind": "phq9_assessment", **as_phq9.json()}) == expected
    assert parse_record({"kind": "assessment", **as_assessment.json()}) == expected

    issues = [issue for resource in held for issue in _issues(fhir_base_url, resource)]
    assert _errors(issues) == [], _errors(issues)
    assert [i for i in issues if UNRESOLVED.search(i.get("diagnostics", ""))] == []
    (response,) = [r for r in held if r["resourceType"] == "QuestionnaireResponse"]
    assert response["questionnaire"].startswith(f"{settings.canonical_base}/Questionnaire/phq9|")
    assert all(
        o["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{response['id']}"}]
        for o in held
        if o["resourceType"] == "Observation"
    )
    response["item"][8]["answer"][0]["valueCoding"]["code"] = "LA9999-9"
    wrong = _errors(_issues(fhir_base_url, response))
    assert wrong and any("LA9999-9" in i.get("diagnostics", "") for i in wrong), wrong

    gad7 = {**_body("gad7-moderate-difficulty", run_id), "key": key}
    refused = api.put(f"/v1/assessments/{key}", json=gad7)
    assert refused.status_code == 409 and "keeps its instrument" in refused.text, refused.text
    other = f"gad7-then-phq9-{run_id}"
    assert api.put(f"/v1/assessments/{other}", json={**gad7, "key": other}).status_code == 201
    refused = api.put(f"/v1/phq9-assessments/{other}", json=fields)
    assert refused.status_code == 409 and "keeps its instrument" in refused.text, refused.text

    assert api.delete(f"/v1/assessments/{key}").status_code == 204  # the PHQ-9, retracted under either kind
    assert {r["status"] for r in _held(fhir_base_url, phq9_refs)} == {"entered-in-error"}
    assert api.get(f"/v1/phq9-assessments/{key}").status_code == 404


def test_a_session_with_assessments_of_every_instrument_reads_back(api, run_id) -> None:
    """An assessment names its session's Encounter; the session read must leave its resources alone."""
    session = json.loads(
        (GOLDEN.parent / "infusion_session" / "completed-weight-based" / "input.json").read_text(encoding="utf-8")
    )
    session = {k: v for k, v in session.items() if k not in ("kind", "visit_id")}
    session_key = f"S-{run_id}"
    session["key"] = session_key
    session["patient"] = {**session["patient"], "mrn": f"A-{run_id}"}
    assert api.put(f"/v1/infusion-sessions/{session_key}", json=session).status_code == 201
    for case in CASES:
        body = {**_body(case, run_id), "session_key": session_key, "patient": session["patient"]}
        written = api.put(f"/v1/assessments/{body['key']}", json=body)
        assert written.status_code == 201, (case, written.text)
        got = api.get(f"/v1/infusion-sessions/{session_key}")
        assert got.status_code == 200, (case, got.text)
