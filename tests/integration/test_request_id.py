"""Issue 23 point 5: the request id an EHR sends reaches the FHIR server, which keeps it in the `meta.source` of every
resource written for that request; a batch job's calls carry its job id the same way. On HAPI from the header and the
resource alike; on the Medplum bed, which ignores the header, from the resource (issue 24, row 7)."""

from __future__ import annotations

import json

import httpx

from service.request_context import HAPI_KEEPS
from tests.integration.batch_support import DEPENDENTS, Namespace
from tests.integration.test_api_sync import session_body

FHIR_JSON = {"Accept": "application/fhir+json"}


def _request_id_of(fhir_base_url: str, resource_type: str, resource_id: str) -> str:
    resource = httpx.get(f"{fhir_base_url}/{resource_type}/{resource_id}", headers=FHIR_JSON, timeout=30).json()
    return str(resource.get("meta", {}).get("source", "")).rpartition("#")[2]


def test_the_fhir_server_records_the_request_id_of_each_write(api, fhir_base_url, run_id) -> None:
    first_id, second_id = f"e{run_id[:12]}.1", f"e{run_id[:12]}.2"  # 16 characters: HAPI keeps them whole
    body = session_body(f"rid-{run_id}", f"MRN-rid-{run_id}")
    first = api.put(f"/v1/infusion-sessions/{body['key']}", json=body, headers={"X-Request-Id": first_id})
    assert first.status_code == 201, first.text
    assert first.headers["X-Request-Id"] == first_id
    written = first.json()["resources"]
    assert written
    assert {_request_id_of(fhir_base_url, r["resourceType"], r["id"]) for r in written} == {first_id}

    body["vital_signs"][0]["systolic"] += 4  # one reading changes: only its Observation is written again
    second = api.put(f"/v1/infusion-sessions/{body['key']}", json=body, headers={"X-Request-Id": second_id})
    assert second.status_code == 200, second.text
    updated = [r for r in second.json()["resources"] if r["outcome"] == "updated"]
    assert updated
    assert {_request_id_of(fhir_base_url, r["resourceType"], r["id"]) for r in updated} == {second_id}


def test_a_longer_request_id_is_found_on_the_server_by_its_first_16_characters(api, fhir_base_url, run_id) -> None:
    long_id = f"trace-{run_id}-" + "x" * 30
    body = session_body(f"ridl-{run_id}", f"MRN-ridl-{run_id}")
    response = api.put(f"/v1/infusion-sessions/{body['key']}", json=body, headers={"X-Request-Id": long_id})
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-Id"] == long_id  # the service itself keeps it whole
    kept = {_request_id_of(fhir_base_url, r["resourceType"], r["id"]) for r in response.json()["resources"]}
    assert kept == {long_id[:HAPI_KEEPS]}


def test_a_batch_job_names_itself_and_its_writes_carry_its_id(fhir_base_url, run_id, tmp_path) -> None:
    ns = Namespace(fhir_base_url, run_id)
    try:
        source = tmp_path / "clinic.ndjson"
        body = session_body(f"ridb-{run_id}", f"MRN-ridb-{run_id}")
        source.write_text(json.dumps({"kind": "infusion_session", **body}) + "\n")
        result = ns.cli(
            "sync", str(source), "--job-name", f"nightly-{run_id}", "--rejects", str(tmp_path / "rejects.ndjson"),
            "--report", str(tmp_path / "report.json"),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["job"]["name"] == f"nightly-{run_id}"
        written = [r for t in DEPENDENTS for r in ns.all_of(t)] + ns.patients()
        assert len(written) > 5
        assert {str(r["meta"].get("source", "")).rpartition("#")[2] for r in written} == {report["job"]["id"]}
    finally:
        ns.purge()
