"""The REST API and sync engine against the real HAPI server: exactly-once writes, reads, retraction."""

from __future__ import annotations

import asyncio
import copy

import httpx
import pytest

from schemas import parse_record
from service.mappers import resource_ids
from service.mappers.ids import identifier_system, identifier_value
from tests.integration.beds import deleted_status
from tests.integration.conftest import async_api, track

FHIR_JSON = {"Accept": "application/fhir+json"}


def session_body(key: str, mrn: str, *, note: str = "Tolerated well; PHI-NOTE-7781.") -> dict:
    """A completed session with typical embedded vitals, a score, an adverse event and a PHQ-9."""
    return {
        "key": key,
        "patient": {
            "mrn": mrn,
            "family": "Testperson",
            "given": ["Quinta"],
            "birth_date": "1979-04-12",
            "sex": "female",
        },
        "status": "completed",
        "started_at": "2026-03-02T09:00:00-05:00",
        "ended_at": "2026-03-02T09:40:00-05:00",
        "drug": "ketamine",
        "dose": {"total_mg": 35, "mg_per_kg": 0.5, "weight_kg": 70, "rate": {"value": 0.75, "unit": "mg/kg/h"}},
        "indications": ["trd", "suicidal_ideation"],
        "note": note,
        "clinician": {"id": "clin-42", "name": "Dr. Example Clinician"},
        "vital_signs": [
            {
                "key": f"{key}.bp1",
                "measured_at": "2026-03-02T09:00:00-05:00",
                "type": "blood_pressure",
                "systolic": 128,
                "diastolic": 82,
            },
            {
                "key": f"{key}.bp2",
                "measured_at": "2026-03-02T09:20:00-05:00",
                "type": "blood_pressure",
                "systolic": 146,
                "diastolic": 90,
            },
            {
                "key": f"{key}.hr1",
                "measured_at": "2026-03-02T09:20:00-05:00",
                "type": "heart_rate",
                "value": 88,
                "unit": "/min",
            },
            {"key": f"{key}.sp1", "measured_at": "2026-03-02T09:20:00-05:00", "type": "spo2", "value": 97, "unit": "%"},
        ],
        "monitoring_scores": [
            {"key": f"{key}.cadss1", "measured_at": "2026-03-02T09:20:00-05:00", "instrument": "cadss", "score": 14},
        ],
        "adverse_events": [
            {
                "key": f"{key}.ae1",
                "onset_at": "2026-03-02T09:15:00-05:00",
                "recorded_at": "2026-03-02T09:18:00-05:00",
                "event": "nausea",
                "severity": "mild",
                "serious": False,
                "outcome": "resolved",
                "causality": "probable",
                "action_taken": "medication_given",
                "note": "Ondansetron given; PHI-NOTE-7782.",
            }
        ],
        "phq9_assessments": [
            {
                "key": f"{key}.phq9",
                "completed_at": "2026-03-02T08:45:00-05:00",
                "items": [2, 2, 1, 2, 1, 2, 1, 1, 1],
                "difficulty": "very",
            }
        ],
    }


def expected_identifiers(body: dict, settings) -> list[tuple[str, str]]:
    """(system, value) of every resource a session body should produce (optional parts as applicable)."""
    config = settings.mapping_config()
    record = parse_record({"kind": "infusion_session", **body})
    out = []
    records = [record, *record.vital_signs, *record.monitoring_scores, *record.adverse_events, *record.phq9_assessments]
    for rec in records:
        for rid in resource_ids(rec.kind, rec.key, config):
            if rid.part == "difficulty" and rec.difficulty is None:
                continue
            if rid.part == "dosing-weight" and not (rec.dose and rec.dose.weight_kg):
                continue
            out.append(
                (
                    rid.resource_type,
                    identifier_system(rec.kind, config),
                    identifier_value(rec.kind, rec.key, rid.part),
                    rid.id,
                )
            )
    return out


def count_by_identifier(base_url: str, resource_type: str, system: str, value: str, resource_id: str = "") -> int:
    """How many resources hold this identifier (R4 AdverseEvent has no identifier search: by id)."""
    query = {"_id": resource_id} if resource_type == "AdverseEvent" else {"identifier": f"{system}|{value}"}
    response = httpx.post(
        f"{base_url}/{resource_type}/_search",
        data={**query, "_summary": "count"},
        headers=FHIR_JSON,
        timeout=60,
    )
    response.raise_for_status()
    return response.json()["total"]


def patients_holding(base_url: str, system: str, mrn: str) -> int:
    """How many Patients hold exactly this MRN. Read by the test's own MRN system alone and counted here: a token search
    for an MRN holding `,` or `|` relies on the server honouring search escaping, which Medplum's engine does not
    (docs/compatibility.md, row 17)."""
    response = httpx.post(
        f"{base_url}/Patient/_search", data={"identifier": f"{system}|", "_count": "100"}, headers=FHIR_JSON, timeout=60
    )
    response.raise_for_status()
    bundle = response.json()
    assert len(bundle.get("entry", [])) == bundle.get("total", len(bundle.get("entry", []))) < 100
    return sum(
        any(i.get("system") == system and i.get("value") == mrn for i in e["resource"].get("identifier", []))
        for e in bundle.get("entry", [])
    )


def versions(response: httpx.Response) -> dict[str, str]:
    return {f"{r['resourceType']}/{r['id']}": r["version"] for r in response.json()["resources"]}


def test_session_put_creates_exactly_the_expected_resources(api, settings, fhir_base_url, run_id) -> None:
    body = session_body(f"s-{run_id}", f"MRN,{run_id}|x")
    response = api.put(f"/v1/infusion-sessions/{body['key']}", json=body)
    assert response.status_code == 201, response.text
    written = response.json()["resources"]
    expected = expected_identifiers(body, settings)
    assert len(written) == len(expected) + 1  # + the Patient
    assert {r["outcome"] for r in written} == {"created"}
    for resource_type, system, value, resource_id in expected:
        assert count_by_identifier(fhir_base_url, resource_type, system, value, resource_id) == 1, (
            resource_type,
            value,
        )
    assert patients_holding(fhir_base_url, settings.mrn_system, body["patient"]["mrn"]) == 1


@pytest.mark.needs("unchanged-put-keeps-version")
def test_resend_changes_nothing_and_an_edit_versions_only_what_changed(api, run_id) -> None:
    body = session_body(f"s-{run_id}", f"MRN-{run_id}")
    url = f"/v1/infusion-sessions/{body['key']}"
    first = api.put(url, json=body)
    assert first.status_code == 201, first.text

    again = api.put(url, json=body)
    assert again.status_code == 200, again.text
    assert {r["outcome"] for r in again.json()["resources"]} == {"unchanged"}
    # the Patient is reported by the write that created it (its own transaction first: service.sync.identities)
    assert versions(again) == {ref: v for ref, v in versions(first).items() if not ref.startswith("Patient/")}

    edited = copy.deepcopy(body)
    edited["vital_signs"][2]["value"] = 91
    changed = api.put(url, json=edited)
    assert changed.status_code == 200, changed.text
    outcomes = {(r["resourceType"], r["outcome"]) for r in changed.json()["resources"]}
    updated = [r for r in changed.json()["resources"] if r["outcome"] == "updated"]
    assert len(updated) == 1 and updated[0]["resourceType"] == "Observation", outcomes
    assert updated[0]["version"] == "2"
    before = versions(first)
    for ref, version in versions(changed).items():
        if ref != f"Observation/{updated[0]['id']}":
            assert version == before[ref]


async def test_concurrent_first_syncs_of_one_mrn_make_one_patient(
    settings, fhir_cleanup, fhir_base_url, run_id
) -> None:
    mrn = f"RACE|{run_id}"
    bodies = [session_body(f"s{i}-{run_id}", mrn) for i in range(8)]
    async with async_api(settings, fhir_cleanup) as client:
        responses = await asyncio.gather(*(client.put(f"/v1/infusion-sessions/{b['key']}", json=b) for b in bodies))
    for response in responses:
        track(response, fhir_cleanup)
    assert [r.status_code for r in responses] == [201] * 8, [r.text[:300] for r in responses if r.status_code != 201]
    patient_ids = {r["id"] for resp in responses for r in resp.json()["resources"] if r["resourceType"] == "Patient"}
    assert len(patient_ids) == 1
    assert patients_holding(fhir_base_url, settings.mrn_system, mrn) == 1


def test_get_returns_the_record_and_delete_retracts_everything(api, fhir_base_url, run_id) -> None:
    body = session_body(f"s-{run_id}", f"MRN-{run_id}")
    url = f"/v1/infusion-sessions/{body['key']}"
    written = api.put(url, json=body)
    assert written.status_code == 201, written.text

    got = api.get(url)
    assert got.status_code == 200, got.text
    assert parse_record({"kind": "infusion_session", **got.json()}) == parse_record(
        {"kind": "infusion_session", **body}
    )

    child = api.get(f"/v1/vital-signs/{body['key']}.bp2")
    assert child.status_code == 200
    assert child.json()["systolic"] == 146 and child.json()["session_key"] == body["key"]

    assert api.delete(url).status_code == 204
    for item in written.json()["resources"]:
        if item["resourceType"] == "Patient":
            continue
        response = httpx.get(f"{fhir_base_url}/{item['resourceType']}/{item['id']}", headers=FHIR_JSON, timeout=60)
        if item["resourceType"] == "AdverseEvent":
            assert response.status_code == deleted_status()
        else:
            assert response.json()["status"] == "entered-in-error", item
    assert api.get(url).status_code == 404
    assert api.delete(url).status_code == 204
    # a repeated retraction is harmless (204) where the server tells a deleted resource from one it never had (410);
    # the Medplum bed forgets a deleted one entirely, history and all (404), so the service cannot (compatibility row 11)
    repeated = 204 if deleted_status() == 410 else 404
    assert api.delete(f"/v1/adverse-events/{body['key']}.ae1").status_code == repeated


def test_unknown_record_is_404(api, run_id) -> None:
    response = api.get(f"/v1/phq9-assessments/none-{run_id}")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert api.delete(f"/v1/phq9-assessments/none-{run_id}").status_code == 404


def test_invalid_record_is_422_with_paths_and_writes_nothing(api, settings, fhir_base_url, run_id) -> None:
    body = session_body(f"s-{run_id}", f"MRN-{run_id}")
    body["vital_signs"][1]["diastolic"] = 190
    body["phq9_assessments"][0]["items"] = [1, 1, 1]
    body["unexpected"] = True
    response = api.put(f"/v1/infusion-sessions/{body['key']}", json=body)
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    paths = {e for issue in outcome["issue"] for e in issue.get("expression", [])}
    assert {"vital_signs[1].diastolic", "phq9_assessments[0].items", "unexpected"} <= paths, paths
    for resource_type, system, value, resource_id in expected_identifiers(
        session_body(f"s-{run_id}", f"MRN-{run_id}"), settings
    ):
        assert count_by_identifier(fhir_base_url, resource_type, system, value, resource_id) == 0
    assert count_by_identifier(fhir_base_url, "Patient", settings.mrn_system, f"MRN-{run_id}") == 0


def test_child_of_a_missing_session_is_409_until_the_session_exists(api, settings, fhir_base_url, run_id) -> None:
    session_key = f"s-{run_id}"
    vital = {
        "key": f"{session_key}.hr9",
        "patient": {"mrn": f"MRN-{run_id}"},
        "session_key": session_key,
        "measured_at": "2026-03-02T09:30:00-05:00",
        "type": "heart_rate",
        "value": 80,
        "unit": "/min",
    }
    refused = api.put(f"/v1/vital-signs/{vital['key']}", json=vital)
    assert refused.status_code == 409
    assert session_key in refused.json()["issue"][0]["diagnostics"]
    config = settings.mapping_config()
    assert count_by_identifier(fhir_base_url, "Observation", identifier_system("vital_sign", config), vital["key"]) == 0

    session = session_body(session_key, f"MRN-{run_id}")
    assert api.put(f"/v1/infusion-sessions/{session_key}", json=session).status_code == 201
    accepted = api.put(f"/v1/vital-signs/{vital['key']}", json=vital)
    assert accepted.status_code == 201, accepted.text


def test_phq9_trend_reports_baseline_response_and_remission(api, run_id) -> None:
    mrn = f"TREND${run_id}"
    totals = [[3, 3, 2, 2, 2, 2, 2, 2, 1], [2, 2, 1, 1, 1, 1, 1, 1, 0], [1, 0, 0, 1, 0, 1, 0, 0, 0]]
    for n, items in enumerate(totals):
        record = {
            "key": f"q{n}-{run_id}",
            "patient": {"mrn": mrn},
            "completed_at": f"2026-03-0{n + 2}T08:45:00-05:00",
            "items": items,
        }
        assert api.put(f"/v1/phq9-assessments/{record['key']}", json=record).status_code == 201
    response = api.post("/v1/patients/$phq9-trend", json={"mrn": mrn})
    assert response.status_code == 200, response.text
    trend = response.json()
    assert trend["baseline"]["total"] == 19
    assert [p["total"] for p in trend["points"]] == [19, 10, 3]
    assert [p["response"] for p in trend["points"]] == [False, False, True]
    assert [p["remission"] for p in trend["points"]] == [False, False, True]
    assert trend["points"][2]["change_from_baseline"] == -16


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic dGVzdDp0ZXN0"}, {"Authorization": "Bearer "}],
)
def test_no_v1_request_without_a_valid_key_succeeds(settings, headers) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app

    calls = [
        ("PUT", "/v1/infusion-sessions/k1"),
        ("GET", "/v1/infusion-sessions/k1"),
        ("DELETE", "/v1/infusion-sessions/k1"),
        ("PUT", "/v1/vital-signs/k1"),
        ("GET", "/v1/monitoring-scores/k1"),
        ("DELETE", "/v1/adverse-events/k1"),
        ("PUT", "/v1/phq9-assessments/k1"),
        ("POST", "/v1/$convert"),
        ("POST", "/v1/patients/$phq9-trend"),
    ]
    with TestClient(create_app(settings)) as client:
        for method, url in calls:
            response = client.request(method, url, headers=headers, json={"mrn": "x"})
            assert response.status_code == 401, (method, url)
            assert response.json()["resourceType"] == "OperationOutcome"
        assert client.get("/healthz").status_code == 200
