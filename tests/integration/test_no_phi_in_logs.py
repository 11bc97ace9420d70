"""Every API call, on success and on failure, with PHI-rich records: no MRN, name or note in any log."""

from __future__ import annotations

import logging

import orjson
from fastapi.testclient import TestClient

from service.app import create_app
from tests.integration.test_api_sync import session_body
from tests.integration.test_audit import API_KEY, audited_settings, closed_port, events_in, mrns_of

MRN = "PHI-MRN|77,31$\\Z"
FAMILY = "Zzyzxfamilyname"
GIVEN = "Qwertygivenname"
NOTE = "PHI-NOTE-secret-clinical-text"
AE_NOTE = "PHI-AE-NOTE-secret"
BIRTH = "1971-09-23"


def _phi_session(key: str) -> dict:
    body = session_body(key, MRN, note=NOTE)
    body["patient"].update({"family": FAMILY, "given": [GIVEN], "birth_date": BIRTH})
    body["adverse_events"][0]["note"] = AE_NOTE
    return body


def test_api_logs_carry_no_phi(api, caplog, run_id) -> None:
    caplog.set_level(logging.DEBUG)
    key = f"s-{run_id}"
    body = _phi_session(key)
    assert api.put(f"/v1/infusion-sessions/{key}", json=body).status_code == 201
    assert api.put(f"/v1/infusion-sessions/{key}", json=body).status_code == 200
    assert api.get(f"/v1/infusion-sessions/{key}").status_code == 200
    assert api.post("/v1/patients/$phq9-trend", json={"mrn": MRN}).status_code == 200
    assert api.post("/v1/patients/$outcome-trend", json={"mrn": MRN}).status_code == 200
    assert api.post("/v1/patients/$outcome-trend", json={"mrn": MRN, "instrument": "phq9"}).status_code == 200
    assert api.post("/v1/$convert", json=[{"kind": "infusion_session", **body}]).status_code == 200

    bad = _phi_session(f"bad-{run_id}")
    bad["vital_signs"][0]["diastolic"] = 300
    bad["patient"]["birth_date"] = "not-a-date"
    assert api.put(f"/v1/infusion-sessions/{bad['key']}", json=bad).status_code == 422
    orphan = {
        **body["vital_signs"][0],
        "key": f"o-{run_id}",
        "patient": body["patient"],
        "session_key": f"missing-{run_id}",
    }
    assert api.put(f"/v1/vital-signs/{orphan['key']}", json=orphan).status_code == 409
    assert api.post("/v1/patients/$phq9-trend", json={"mrn": MRN + "unknown"}).status_code == 404
    assert api.post("/v1/patients/$outcome-trend", json={"mrn": MRN + "unknown"}).status_code == 404
    assert api.post("/v1/patients/$outcome-trend", json={"mrn": MRN, "since": "x"}).status_code == 422
    assert api.put(f"/v1/vital-signs/x-{run_id}", content=b"{" + MRN.encode()).status_code == 422
    assert api.delete(f"/v1/infusion-sessions/{key}").status_code == 204

    assert caplog.records, "the API logged nothing; the test would prove nothing"
    logged = "\n".join(
        record.getMessage() + " " + orjson.dumps(vars(record), default=str).decode() for record in caplog.records
    )
    for secret in (MRN, "PHI-MRN", FAMILY, GIVEN, NOTE, AE_NOTE, BIRTH, "Dr. Example Clinician"):
        assert secret not in logged, f"{secret!r} appeared in the logs"


def test_the_audit_trail_names_the_patient_but_the_log_never_does(
    fhir_base_url, run_id, tmp_path, caplog, fhir_cleanup
) -> None:
    """The audit paths (file, spooled store, a store that is down, a sink that fails) write the MRN only into the
    0600 audit file and spool, never into the application log (H-65)."""
    caplog.set_level(logging.DEBUG)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    down = f"http://127.0.0.1:{closed_port()}/fhir"
    settings = audited_settings(fhir_base_url, run_id, tmp_path, store_url=down, audit_failure="serve")
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/patients/$phq9-trend", json={"mrn": MRN}, headers=auth).status_code == 404
        assert client.get(f"/v1/infusion-sessions/s-{run_id}", headers=auth).status_code == 404
    failing = tmp_path / "a-directory"
    failing.mkdir()
    settings = audited_settings(fhir_base_url, run_id, tmp_path / "b", store_url=None, audit_log=str(failing))
    with TestClient(create_app(settings)) as client:  # no sink can record: 503, and audit.sink_failed logged
        assert client.post("/v1/patients/$phq9-trend", json={"mrn": MRN}, headers=auth).status_code == 503

    audited = [e for e in events_in(tmp_path / "audit.jsonl") if MRN in mrns_of(e)]
    assert audited, "the audit file does not name the patient: the test would prove nothing"
    spooled = [p for p in (tmp_path / "spool").glob("*.json") if MRN in mrns_of(orjson.loads(p.read_bytes()))]
    assert spooled, "the spool does not name the patient: the test would prove nothing"
    events = [r.getMessage() for r in caplog.records]
    assert "audit.store_unavailable" in events or "audit.store_left_spooled" in events
    assert "audit.sink_failed" in events
    logged = "\n".join(
        record.getMessage() + " " + orjson.dumps(vars(record), default=str).decode() for record in caplog.records
    )
    assert MRN not in logged and "PHI-MRN" not in logged
