"""The local HAPI FHIR server does what the sync engine relies on, and /readyz sees it."""

from __future__ import annotations

import uuid

import httpx
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}


def _http(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=FHIR_JSON, timeout=60)


def test_put_with_client_assigned_id_then_read_back(fhir_base_url, fhir_cleanup, run_id) -> None:
    patient_id = f"it-{run_id}"
    patient = {"resourceType": "Patient", "id": patient_id, "gender": "female", "birthDate": "1980-02-03"}
    with _http(fhir_base_url) as http:
        created = http.put(f"/Patient/{patient_id}", json=patient)
        fhir_cleanup.track(f"Patient/{patient_id}")
        assert created.status_code == 201, created.text
        read = http.get(f"/Patient/{patient_id}")
    assert read.status_code == 200
    body = read.json()
    assert (body["id"], body["gender"], body["birthDate"]) == (patient_id, "female", "1980-02-03")
    assert body["meta"]["versionId"] == "1"


def test_transaction_resolves_an_internal_urn_uuid_reference(fhir_base_url, fhir_cleanup, run_id) -> None:
    patient_urn = f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_urn,
                "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": run_id}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": f"Observation/obs-{run_id}",
                "resource": {
                    "resourceType": "Observation",
                    "id": f"obs-{run_id}",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": patient_urn},
                    "valueQuantity": {
                        "value": 72,
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                },
                "request": {"method": "PUT", "url": f"Observation/obs-{run_id}"},
            },
        ],
    }
    with _http(fhir_base_url) as http:
        response = http.post("/", json=bundle)
        assert response.status_code == 200, response.text
        locations = [e["response"]["location"] for e in response.json()["entry"]]
        patient_ref = "/".join(locations[0].split("/")[:2])
        fhir_cleanup.track(patient_ref, f"Observation/obs-{run_id}")
        observation = http.get(f"/Observation/obs-{run_id}").json()
    assert patient_ref.startswith("Patient/")
    assert observation["subject"]["reference"] == patient_ref


def test_validate_reports_errors_for_an_invalid_observation(fhir_base_url) -> None:
    invalid = {"resourceType": "Observation", "status": "bogus", "valueQuantity": {"value": "not-a-number"}}
    with _http(fhir_base_url) as http:
        response = http.post("/Observation/$validate", json=invalid)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    errors = [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
    assert errors, outcome


def test_readyz_is_200_against_hapi(fhir_base_url) -> None:
    with TestClient(create_app(Settings(FHIR_BASE_URL=fhir_base_url))) as api:
        response = api.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["fhirVersion"] == "4.0.1"


def test_readyz_is_503_against_an_unreachable_url() -> None:
    with TestClient(create_app(Settings(FHIR_BASE_URL="http://127.0.0.1:9/fhir", connect_timeout_s=1))) as api:
        response = api.get("/readyz")
    assert response.status_code == 503
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "not reachable" in outcome["issue"][0]["diagnostics"]
