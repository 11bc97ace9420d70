"""The Medplum FHIR engine test bed (tools/medplum, issue 24): it starts and stops cleanly, and its listener
answers like a FHIR server: metadata, create, read, a search by form body, a transaction, and the two
transaction limits of Medplum's engine that docs/compatibility.md reports.

The bed of `make medplum-up` is used when it answers on MEDPLUM_PORT (default 8093); otherwise one is started
here in a private run directory on a free port and stopped afterwards. A bed that cannot start is a failure,
never a skip. Node.js and npm are needed (and, for the first `npm ci`, the npm registry).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from service.fhir_client import capability_problem
from tests.integration.medplum_support import MEDPLUMCTL, medplumctl, private_env

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
MEDPLUM_MAX_UPDATES = 50  # updates in one transaction (Medplum's fhir-router 5.2.13)
MEDPLUM_MAX_STRICT_ENTRIES = 8  # entries in a transaction that holds a conditional entry (idem)


def _patient(mrn: str) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": mrn}], "gender": "unknown"}


def test_up_and_down_are_clean_from_a_private_directory(tmp_path: Path) -> None:
    env = private_env(tmp_path / "private clone")
    run_dir = Path(env["MEDPLUM_RUN_DIR"])
    try:
        up = medplumctl(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        pid = int((run_dir / "medplum.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert str(MEDPLUMCTL.parent / "server.mjs").encode() in cmdline
        assert medplumctl(env, "status").returncode == 0

        again = medplumctl(env, "up")
        assert again.returncode == 0
        assert f"already up at http://127.0.0.1:{env['MEDPLUM_PORT']}/fhir (pid {pid})" in again.stdout

        down = medplumctl(env, "down")
        assert down.returncode == 0, down.stderr
        assert not Path(f"/proc/{pid}").exists()
        assert not (run_dir / "medplum.pid").exists()
        assert not (run_dir / "medplum.port").exists()
        assert medplumctl(env, "status").returncode == 3
        assert "not running" in medplumctl(env, "down").stdout
    finally:
        medplumctl(env, "down")


def test_metadata_is_an_r4_capability_statement_with_transactions_that_the_service_accepts(
    medplum: httpx.Client,
) -> None:
    response = medplum.get("/metadata", headers=FHIR_JSON)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    capability = response.json()
    assert capability["software"]["version"] == "5.2.13"
    assert capability_problem(capability) is None


def test_create_then_read(medplum: httpx.Client) -> None:
    created = medplum.post("/Patient", json=_patient(uuid.uuid4().hex), headers=FHIR_JSON)
    assert created.status_code == 201, created.text
    patient = created.json()
    version = patient["meta"]["versionId"]
    assert created.headers["etag"] == f'W/"{version}"'
    assert created.headers["location"].endswith(f"/fhir/Patient/{patient['id']}/_history/{version}")
    try:
        read = medplum.get(f"/Patient/{patient['id']}", headers=FHIR_JSON)
        assert read.status_code == 200
        assert read.json() == patient
        assert medplum.get("/Patient/no-such-id", headers=FHIR_JSON).status_code == 404
    finally:
        medplum.delete(f"/Patient/{patient['id']}")


def test_search_by_form_body(medplum: httpx.Client) -> None:
    mrns = [uuid.uuid4().hex for _ in range(3)]
    ids = [medplum.post("/Patient", json=_patient(mrn), headers=FHIR_JSON).json()["id"] for mrn in mrns]
    try:
        one = medplum.post(
            "/Patient/_search",
            data={"identifier": f"urn:test:mrn|{mrns[1]}", "_total": "accurate"},
            headers={"Accept": "application/fhir+json"},
        )
        assert one.status_code == 200, one.text
        bundle = one.json()
        assert (bundle["type"], bundle["total"]) == ("searchset", 1)
        assert [e["resource"]["id"] for e in bundle["entry"]] == [ids[1]]

        two = medplum.post("/Patient/_search", data={"_id": f"{ids[0]},{ids[2]}", "_count": "5"})
        assert sorted(e["resource"]["id"] for e in two.json()["entry"]) == sorted([ids[0], ids[2]])
    finally:
        for patient_id in ids:
            medplum.delete(f"/Patient/{patient_id}")


def test_a_transaction_with_a_conditional_patient_and_a_reference_to_it(medplum: httpx.Client) -> None:
    mrn, observation_id = uuid.uuid4().hex, uuid.uuid4().hex
    full_url = f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": full_url,
                "resource": _patient(mrn),
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier=urn:test:mrn|{mrn}"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": observation_id,
                    "status": "final",
                    "code": {"text": "bed check"},
                    "subject": {"reference": full_url},
                },
                "request": {"method": "PUT", "url": f"Observation/{observation_id}"},
            },
        ],
    }
    answer = medplum.post("", json=bundle, headers=FHIR_JSON)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["type"] == "transaction-response"
    patient, observation = (entry["resource"] for entry in body["entry"])
    try:
        assert [entry["response"]["status"] for entry in body["entry"]] == ["201", "200"]  # a PUT that creates: 200
        assert observation["subject"]["reference"] == f"Patient/{patient['id']}"
        again = medplum.post("", json=bundle, headers=FHIR_JSON).json()
        assert again["entry"][0]["resource"]["id"] == patient["id"]  # the conditional create found it
        assert again["entry"][0]["response"]["status"] == "200"
    finally:
        medplum.delete(f"/Observation/{observation_id}")
        medplum.delete(f"/Patient/{patient['id']}")


def _observation_puts(count: int) -> list[dict]:
    entries = []
    for _ in range(count):
        oid = uuid.uuid4().hex
        resource = {"resourceType": "Observation", "id": oid, "status": "final", "code": {"text": "bed check"}}
        entries.append({"resource": resource, "request": {"method": "PUT", "url": f"Observation/{oid}"}})
    return entries


def test_medplums_transaction_limits_are_those_docs_compatibility_reports(medplum: httpx.Client) -> None:
    def transaction(entries: list[dict]) -> httpx.Response:
        return medplum.post(
            "", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}, headers=FHIR_JSON
        )

    too_many = transaction(_observation_puts(MEDPLUM_MAX_UPDATES + 1))
    assert too_many.status_code == 400
    assert "more update operations than allowed" in too_many.text

    mrn = uuid.uuid4().hex
    conditional = {
        "resource": _patient(mrn),
        "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier=urn:test:mrn|{mrn}"},
    }
    strict = transaction([conditional, *_observation_puts(MEDPLUM_MAX_STRICT_ENTRIES)])
    assert strict.status_code == 400
    assert "requires strict isolation but has too many entries" in strict.text
    assert medplum.post("/Patient/_search", data={"identifier": f"urn:test:mrn|{mrn}"}).json()["total"] == 0

    fits = transaction(_observation_puts(MEDPLUM_MAX_UPDATES))
    assert fits.status_code == 200, fits.text
    for entry in fits.json()["entry"]:
        medplum.delete(f"/Observation/{entry['resource']['id']}")


def test_validate_is_a_clear_501(medplum: httpx.Client) -> None:
    answer = medplum.post("/Patient/$validate", json=_patient("x"), headers=FHIR_JSON)
    assert answer.status_code == 501
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-supported"
