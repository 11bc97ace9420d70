"""`POST /v1/patients/$outcome-trend` through the app on an in-memory FHIR server: the body's rules (422
naming the field, before any FHIR call), 404s, every page of the search read, the MRN in no URL, one
summary per instrument without `instrument`, and a weakened threshold named in the answer."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import key_digest
from service.openapi import documented_app
from service.routes.outcome_schemas import OUTCOME_TREND_EXAMPLE
from service.settings import Settings
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, FakeFhir

AUTH = {"Authorization": "Bearer unit-key"}
MRN = "TREND|MRN,7"
URL = "/v1/patients/$outcome-trend"
PATIENT = {"mrn": MRN, "family": "Trendfamily"}


def client(fake: FakeFhir, **overrides: Any) -> TestClient:
    settings = Settings(FHIR_BASE_URL=BASE, api_keys=key_digest("unit-key"), retry_max_attempts=1, **overrides)
    return TestClient(create_app(settings, transport=fake.transport()))


def put_assessment(api: TestClient, key: str, instrument: str, at: str, items: list[Any]) -> None:
    body = {**copy.deepcopy(EXAMPLES["assessment"]), "patient": PATIENT, "instrument": instrument}
    body.update(completed_at=at, items=items)
    for name in ("session_key", "total", "difficulty", "key", "kind"):
        body.pop(name, None)
    response = api.put(f"/v1/assessments/{key}", json=body, headers=AUTH)
    assert response.status_code == 201, response.text


def put_phq9(api: TestClient, key: str, at: str, items: list[int]) -> None:
    body = {**copy.deepcopy(EXAMPLES["phq9_assessment"]), "patient": PATIENT, "completed_at": at, "items": items}
    for name in ("session_key", "total", "key", "kind"):
        body.pop(name, None)
    assert api.put(f"/v1/phq9-assessments/{key}", json=body, headers=AUTH).status_code == 201


def validator() -> jsonschema.Draft202012Validator:
    document = documented_app().openapi()
    media = document["paths"]["/v1/patients/$outcome-trend"]["post"]["responses"]["200"]["content"]
    schema = {**media["application/json"]["schema"], "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mrn": MRN, "instrument": "gad7", "since": "2024-01-01", "baseline_key": "k"}, "baseline_key"),
        ({"mrn": MRN, "baseline_key": "k"}, "instrument"),
        ({"mrn": MRN, "instrument": None}, "instrument"),
        ({"mrn": MRN, "instrument": "phq10"}, "instrument"),
        ({"mrn": MRN, "since": "2024-1-1"}, "since"),
        ({"mrn": MRN, "since": "2024-02-30"}, "since"),
        ({"mrn": MRN, "since": 20240101}, "since"),
        ({"mrn": MRN, "instrument": "gad7", "baseline_key": "a/b"}, "baseline_key"),
        ({"instrument": "gad7"}, "mrn"),
    ],
)
def test_a_body_breaking_the_rules_is_422_at_the_field_before_any_fhir_call(body: dict[str, Any], field: str) -> None:
    fake = FakeFhir()
    with client(fake) as api:
        response = api.post(URL, json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert field in {path for issue in response.json()["issue"] for path in issue.get("expression", [])}
    assert MRN not in response.text
    assert [r for r in fake.requests if "_search" in r.url.path] == []


def test_the_request_schema_states_the_body_rules() -> None:
    document = documented_app().openapi()
    schema = document["paths"][URL]["post"]["requestBody"]["content"]["application/json"]["schema"]
    check = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    assert not check.is_valid({"mrn": "m", "instrument": "gad7", "since": "2024-01-01", "baseline_key": "k"})
    assert not check.is_valid({"mrn": "m", "baseline_key": "k"})
    assert not check.is_valid({"mrn": "m", "instrument": None})
    assert check.is_valid({"mrn": "m", "instrument": "gad7", "baseline_key": "k"})
    assert check.is_valid({"mrn": "m", "since": "2024-01-01"})


def test_an_unknown_patient_is_404_and_the_mrn_is_in_no_url() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        response = api.post(URL, json={"mrn": MRN}, headers=AUTH)
    assert response.status_code == 404
    assert all(MRN not in str(r.url) and "TREND" not in str(r.url) for r in fake.requests)


def test_every_page_is_read_and_the_answer_fits_its_schema() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put_assessment(api, "g-1", "gad7", "2024-01-01T09:00:00Z", [3, 3, 3, 2, 2, 2, 1])
        put_assessment(api, "g-2", "gad7", "2024-02-01T09:00:00Z", [2, 2, 1, 1, 1, 1, 0])
        put_assessment(api, "g-3", "gad7", "2024-03-01T09:00:00Z", [1, 1, 0, 0, 0, 0, 0])
        forms: list[dict[str, str]] = []
        pages: list[int] = []

        def page(at: int) -> httpx.Response:
            """One Observation per page, `next` to the rest."""
            pages.append(at)
            matches = fake.matches("Observation", forms[-1])
            out: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
            out["entry"] = [{"resource": m, "search": {"mode": "match"}} for m in matches[at : at + 1]]
            if at + 1 < len(matches):
                out["link"] = [{"relation": "next", "url": f"{BASE}/Observation?page={at + 1}"}]
            return httpx.Response(200, json=out)

        def paged(request: httpx.Request, form: Any) -> httpx.Response | None:
            if request.url.path.endswith("Observation/_search") and "code" in (form or {}):
                forms.append(form)
                return page(0)
            if request.method == "GET" and request.url.path.endswith("/Observation"):
                return page(int(request.url.params["page"]))
            return None

        fake.intercept = paged
        response = api.post(URL, json={"mrn": MRN, "instrument": "gad7"}, headers=AUTH)
    assert response.status_code == 200, response.text
    trend = response.json()
    assert len(pages) > 3 and pages == list(range(len(pages)))  # one Observation per page, every page read
    assert [p["key"] for p in trend["points"]] == ["g-1", "g-2", "g-3"]
    assert [p["total"] for p in trend["points"]] == [16, 8, 2]
    assert trend["latest"]["response"] is True and trend["latest"]["remission"] is True
    validator().validate(trend)


def test_without_an_instrument_one_summary_per_instrument_the_patient_has() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put_phq9(api, "p-1", "2024-01-01T09:00:00Z", [2, 2, 2, 2, 2, 2, 2, 2, 1])
        put_assessment(api, "m-1", "madrs", "2024-01-02T09:00:00Z", [3] * 9 + [4])
        put_assessment(api, "c-1", "cssrs_screen", "2024-01-03T09:00:00Z", [True, False, None, None, None, False, None])
        response = api.post(URL, json={"mrn": MRN}, headers=AUTH)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [s["instrument"] for s in answer["summaries"]] == ["phq9", "cssrs_screen", "madrs"]
    by = {s["instrument"]: s for s in answer["summaries"]}
    assert by["phq9"]["alerts"][0]["positive"] == [{"item": "9", "answer": 1, "rule": "PHQ-9 item 9 >= 1"}]
    assert by["madrs"]["alerts"][0]["positive"][0]["answer"] == 4
    assert by["cssrs_screen"]["points"][0]["triage"]["code"] == "low"
    assert by["cssrs_screen"]["points"][0]["safety_positive"] is True
    validator().validate(answer)
    assert json.dumps(answer).find(MRN) == -1


def test_a_weakened_threshold_is_named_in_the_answer_that_used_it() -> None:
    fake = FakeFhir()
    weakened = [{"instrument": "madrs", "item": "10", "at_least": 3, "acknowledge_less_sensitive": True}]
    with client(fake, safety_thresholds=json.dumps(weakened)) as api:
        put_assessment(api, "m-1", "madrs", "2024-01-02T09:00:00Z", [3] * 9 + [2])
        trend = api.post(URL, json={"mrn": MRN, "instrument": "madrs"}, headers=AUTH).json()
        gad7 = api.post(URL, json={"mrn": MRN, "instrument": "gad7"}, headers=AUTH).json()
    (named,) = trend["rules"]["weakened"]
    assert (named["rule"], named["default"], named["configured"]) == ("10", 2, 3)
    assert trend["points"][0]["safety_answers"] == {"10": 2} and trend["points"][0]["safety_positive"] is False
    assert trend["alerts"] == []
    assert gad7["rules"]["weakened"] == [] and gad7["points"] == []


def test_a_baseline_key_not_among_the_patients_assessments_is_404() -> None:
    fake = FakeFhir()
    with client(fake) as api:
        put_assessment(api, "g-1", "gad7", "2024-01-01T09:00:00Z", [1] * 7)
        response = api.post(URL, json={"mrn": MRN, "instrument": "gad7", "baseline_key": "g-9"}, headers=AUTH)
        named = api.post(URL, json={"mrn": MRN, "instrument": "gad7", "baseline_key": "g-1"}, headers=AUTH)
    assert response.status_code == 404 and "baseline_key" in response.text
    assert named.json()["baseline"]["reason"] == "baseline_key"


def test_the_documented_example_is_what_the_computation_answers() -> None:
    from service.instruments import DEFINITIONS, defaults, definition
    from service.outcomes import Point, summarise

    points = [Point("gad7", p["key"], p["date"], p["total"], source=p["key"]) for p in OUTCOME_TREND_EXAMPLE["points"]]
    assert summarise(definition("gad7"), points, defaults(DEFINITIONS)) == OUTCOME_TREND_EXAMPLE
    validator().validate(OUTCOME_TREND_EXAMPLE)
