"""`$outcome-trend` on the real HAPI: courses of GAD-7, PCL-5, QIDS-SR16, MADRS, Y-BOCS and the C-SSRS
screener PUT through the API (and PHQ-9 as `phq9_assessment`), then each trend: totals in time order,
change, response and remission by the instrument's rule, a retracted assessment left out, positive safety
answers as alerts newest first, another system's copy of one of ours counted once, the `since` window and a
named baseline; without `instrument`, one summary per instrument."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from service.instruments import DEFINITIONS
from service.mappers.questionnaire import questionnaire_id
from service.openapi import documented_app
from service.settings import Settings

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
URL = "/v1/patients/$outcome-trend"

# (instrument, day, items): a course per instrument, improving, with safety answers where the scale has them.
COURSES: list[tuple[str, int, list[Any]]] = [
    ("gad7", 1, [3, 3, 3, 2, 2, 2, 2]),  # 17
    ("gad7", 15, [2, 2, 1, 1, 1, 1, 1]),  # 9
    ("gad7", 29, [1, 1, 0, 0, 1, 0, 0]),  # 3
    ("pcl5", 1, [3] * 15 + [2] * 5),  # 55
    ("pcl5", 29, [2] * 15 + [1] * 5),  # 35: 20 points lower
    ("qids_sr16", 1, [3, 2, 1, 0, 2, 3, 0, 0, 0, 2, 2, 1, 2, 2, 2, 1]),  # 3+2+3+(2+2+1+2+2)+2 = 19; item 12 = 1
    ("qids_sr16", 29, [1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]),  # 1+1+1+1+1 = 5
    ("madrs", 1, [4, 4, 3, 3, 3, 3, 3, 3, 2, 2]),  # 30, item 10 = 2
    ("madrs", 15, [3, 3, 2, 2, 2, 2, 2, 2, 1, 1]),  # 20
    ("madrs", 29, [1, 1, 1, 1, 1, 1, 1, 1, 1, 0]),  # 9
    ("ybocs", 1, [3, 3, 3, 3, 3, 3, 3, 3, 3, 3]),  # 30
    ("ybocs", 29, [2, 2, 2, 2, 1, 2, 2, 2, 2, 1]),  # 18: 40% lower
    ("cssrs_screen", 1, [True, True, True, False, False, False, None]),  # moderate
    ("cssrs_screen", 29, [False, False, None, None, None, False, None]),  # negative
]


def at(day: int) -> str:
    return f"2025-03-{day:02d}T09:30:00-05:00"


@pytest.fixture
def settings(settings: Settings, run_id: str, fhir_cleanup) -> Iterator[Settings]:
    """The integration settings with a canonical base of this test's own, so its Questionnaires are removed after it."""
    ours = settings.model_copy(update={"canonical_base": f"https://test.infusion-fhir.example/{run_id}/fhir"})
    fhir_cleanup.track(*(f"Questionnaire/{questionnaire_id(ours.mapping_config(), i)}" for i in DEFINITIONS))
    yield ours


def _put(api, key: str, instrument: str, completed_at: str, items: list[Any], mrn: str) -> None:
    body = {"patient": {"mrn": mrn}, "instrument": instrument, "completed_at": completed_at, "items": items}
    response = api.put(f"/v1/assessments/{key}", json=body)
    assert response.status_code == 201, response.text


def _schema() -> jsonschema.Draft202012Validator:
    document = documented_app().openapi()
    media = document["paths"][URL]["post"]["responses"]["200"]["content"]["application/json"]
    return jsonschema.Draft202012Validator({**media["schema"], "components": document["components"]})


def _trend(api, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(URL, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    _schema().validate(answer)
    return answer


def _rows(trend: dict[str, Any], *names: str) -> list[tuple[Any, ...]]:
    return [tuple(point[n] for n in names) for point in trend["points"]]


def test_every_instrument_trends_with_its_rules_safety_alerts_and_retraction(
    api, settings, fhir_base_url, run_id, fhir_cleanup
) -> None:
    mrn = f"T-{run_id}"
    keys: dict[str, list[str]] = {}
    for n, (instrument, day, items) in enumerate(COURSES):
        key = f"{instrument}-{n}-{run_id}"
        keys.setdefault(instrument, []).append(key)
        _put(api, key, instrument, at(day), items, mrn)
    phq9 = {"patient": {"mrn": mrn}, "completed_at": at(2), "items": [2, 2, 2, 2, 2, 2, 2, 2, 2]}
    assert api.put(f"/v1/phq9-assessments/phq9-{run_id}", json=phq9).status_code == 201
    # A GAD-7 retracted: left out of the trend (it would otherwise be the baseline, and a high one).
    retracted = f"gad7-retracted-{run_id}"
    _put(api, retracted, "gad7", "2025-02-20T09:30:00-05:00", [3, 3, 3, 3, 3, 3, 3], mrn)
    assert api.delete(f"/v1/assessments/{retracted}").status_code == 204

    gad7 = _trend(api, {"mrn": mrn, "instrument": "gad7"})
    assert _rows(gad7, "key", "total") == [(k, t) for k, t in zip(keys["gad7"], [17, 9, 3], strict=True)]
    assert gad7["baseline"]["key"] == keys["gad7"][0] and gad7["baseline"]["reason"] == "earliest"
    assert _rows(gad7, "percent_change", "response", "remission") == [
        (0.0, False, False),
        (-47.1, False, False),
        (-82.4, True, True),
    ]
    assert [p["band"]["code"] for p in gad7["points"]] == ["severe", "mild", "minimal"]
    assert gad7["rules"]["response"]["published"] is False  # the service's rule, labelled as such

    pcl5 = _trend(api, {"mrn": mrn, "instrument": "pcl5"})
    assert _rows(pcl5, "total", "change_from_baseline", "response", "remission") == [
        (55, 0, False, None),
        (35, -20, True, None),
    ]

    qids = _trend(api, {"mrn": mrn, "instrument": "qids_sr16"})
    assert _rows(qids, "total", "response", "remission", "safety_positive") == [
        (19, False, False, True),
        (5, True, True, False),
    ]
    assert qids["alerts"] == [
        {
            "key": keys["qids_sr16"][0],
            "date": at(1),
            "positive": [{"item": "12", "answer": 1, "rule": "QIDS-SR16 item 12 >= 1"}],
        }
    ]

    madrs = _trend(api, {"mrn": mrn, "instrument": "madrs"})
    assert _rows(madrs, "total", "safety_answers", "remission") == [
        (30, {"10": 2}, False),
        (20, {"10": 1}, False),
        (9, {"10": 0}, True),
    ]
    assert [a["key"] for a in madrs["alerts"]] == [keys["madrs"][0]]

    ybocs = _trend(api, {"mrn": mrn, "instrument": "ybocs"})
    assert _rows(ybocs, "total", "percent_change", "response", "remission") == [
        (30, 0.0, False, False),
        (18, -40.0, True, False),  # >= 35% drop; remission needs <= 12
    ]

    cssrs = _trend(api, {"mrn": mrn, "instrument": "cssrs_screen"})
    assert [(p["triage"]["code"], p["total"], p["safety_positive"]) for p in cssrs["points"]] == [
        ("moderate", None, True),
        ("negative", None, False),
    ]
    assert [[i["item"] for i in a["positive"]] for a in cssrs["alerts"]] == [["S1", "S2", "S3"]]

    summaries = _trend(api, {"mrn": mrn})["summaries"]
    assert [s["instrument"] for s in summaries] == [
        "phq9",
        "gad7",
        "pcl5",
        "cssrs_screen",
        "qids_sr16",
        "madrs",
        "ybocs",
    ]
    assert summaries[0]["alerts"][0]["key"] == f"phq9-{run_id}"  # item 9 = 2 of the phq9_assessment
    assert next(s for s in summaries if s["instrument"] == "gad7") == gad7

    since = _trend(api, {"mrn": mrn, "instrument": "gad7", "since": "2025-03-15"})
    assert since["baseline"]["key"] == keys["gad7"][1] and since["baseline"]["reason"] == "earliest_since"
    assert _rows(since, "total", "response") == [(9, False), (3, True)]  # 3 is 67% below 9
    named = _trend(api, {"mrn": mrn, "instrument": "madrs", "baseline_key": keys["madrs"][1]})
    assert _rows(named, "total", "percent_change") == [(20, 0.0), (9, -55.0)]
    assert api.post(URL, json={"mrn": mrn, "instrument": "gad7", "baseline_key": retracted}).status_code == 404


def test_another_systems_copy_of_our_assessment_counts_once_and_its_own_total_counts(
    api, settings, fhir_base_url, run_id, fhir_cleanup
) -> None:
    mrn = f"T-{run_id}"
    ours = f"gad7-{run_id}"
    _put(api, ours, "gad7", at(1), [2, 2, 2, 2, 2, 2, 2], mrn)  # 14
    patient = httpx.get(
        f"{fhir_base_url}/Patient",
        params={"identifier": f"{settings.mrn_system}|{mrn}"},
        headers=FHIR_JSON,
        timeout=60,
    ).json()["entry"][0]["resource"]

    def foreign(effective: str, total: int) -> None:
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": "70274-6"}]},
            "subject": {"reference": f"Patient/{patient['id']}"},
            "effectiveDateTime": effective,
            "valueInteger": total,
        }
        created = httpx.post(f"{fhir_base_url}/Observation", json=observation, headers=FHIR_JSON, timeout=60)
        assert created.status_code == 201, created.text
        fhir_cleanup.track(f"Observation/{created.json()['id']}")

    foreign("2025-03-01T14:30:00Z", 14)  # the same instant as ours (in UTC) and the same total: a copy
    foreign("2025-03-20T10:00:00-04:00", 6)  # its own assessment, written by the other system alone

    trend = _trend(api, {"mrn": mrn, "instrument": "gad7"})
    assert _rows(trend, "key", "total", "safety_positive") == [(ours, 14, None), (None, 6, None)]
    assert trend["latest"]["percent_change"] == -57.1 and trend["latest"]["response"] is True
    assert json.dumps(trend).find(mrn) == -1
