"""Clinical safety against the real HAPI: each hazard of docs/clinical-safety.md and the test proving its control.

Wrong patient, hidden suicide-risk signal, retractions that reach too far, status that does not
carry, dangling references, dose misstated, not-done read as given. Every test here failed on the
code before issue 10 (see the hazard log for which defect each one covers).
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from schemas import parse_record
from schemas.kinds import CHILD_LISTS
from service.mappers import resource_ids
from service.mappers.ids import identifier_system, identifier_value, resource_ref
from tests.integration.beds import deleted_status, written_once
from tests.integration.test_api_sync import count_by_identifier, session_body

FHIR_JSON = {"Accept": "application/fhir+json"}
ITEM9_POSITIVE = [0, 0, 0, 0, 0, 0, 0, 0, 3]


def fhir_get(base_url: str, ref: str) -> httpx.Response:
    return httpx.get(f"{base_url}/{ref}", headers=FHIR_JSON, timeout=60)


def fhir_search(base_url: str, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
    response = httpx.post(f"{base_url}/{resource_type}/_search", data=params, headers=FHIR_JSON, timeout=60)
    response.raise_for_status()
    return [e["resource"] for e in response.json().get("entry", [])]


def phq9(key: str, mrn: str, items: list[int], when: str = "2026-03-02T08:45:00-05:00", **extra: Any) -> dict:
    return {"key": key, "patient": {"mrn": mrn}, "completed_at": when, "items": items, **extra}


def children_of_kind(kind: str, key: str, mrn: str, session_key: str) -> tuple[str, dict]:
    """A record of `kind` for patient `mrn` naming `session_key` (URL segment, body)."""
    base = {"key": key, "patient": {"mrn": mrn}, "session_key": session_key}
    if kind == "phq9_assessment":  # item 9 = 3: the worst answer, on the wrong patient
        return "phq9-assessments", {**base, "completed_at": "2026-03-02T09:10:00-05:00", "items": ITEM9_POSITIVE}
    if kind == "vital_sign":
        return "vital-signs", {**base, "measured_at": "2026-03-02T09:20:00-05:00", "type": "heart_rate", "value": 91}
    if kind == "monitoring_score":
        return "monitoring-scores", {
            **base,
            "measured_at": "2026-03-02T09:20:00-05:00",
            "instrument": "rass",
            "score": -1,
        }
    return "adverse-events", {
        **base,
        "onset_at": "2026-03-02T09:15:00-05:00",
        "recorded_at": "2026-03-02T09:16:00-05:00",
        "event": "headache",
        "severity": "mild",
        "serious": False,
        "outcome": "resolved",
        "causality": "possible",
    }


def own_resource_count(base_url: str, settings, kind: str, key: str) -> int:
    """How many of the record's own resources the server holds (AdverseEvent by id: R4 has no identifier search)."""
    config = settings.mapping_config()
    return sum(
        count_by_identifier(
            base_url, rid.resource_type, identifier_system(kind, config), identifier_value(kind, key, rid.part), rid.id
        )
        for rid in resource_ids(kind, key, config)
    )


# -- H1 wrong patient ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["phq9_assessment", "vital_sign", "monitoring_score", "adverse_event"])
def test_a_record_naming_another_patients_session_is_409_and_nothing_is_written(
    api, settings, fhir_base_url, run_id, kind
) -> None:
    mrn_a, mrn_b = f"A-{run_id}-PHI", f"B-{run_id}-PHI"
    session = session_body(f"sb-{run_id}", mrn_b)
    assert api.put(f"/v1/infusion-sessions/{session['key']}", json=session).status_code == 201
    before = api.get(f"/v1/infusion-sessions/{session['key']}").json()

    segment, body = children_of_kind(kind, f"x-{run_id}", mrn_a, session["key"])
    refused = api.put(f"/v1/{segment}/{body['key']}", json=body)

    assert refused.status_code == 409, refused.text
    outcome = refused.json()
    assert outcome["resourceType"] == "OperationOutcome"
    (conflict,) = [issue for issue in outcome["issue"] if issue["code"] == "conflict"]
    assert {"session_key", "patient.mrn"} <= set(conflict["expression"])
    if kind == "phq9_assessment":  # H-39: the item-9 answer nothing wrote is said first, in its own issue
        assert [(i["code"], i.get("expression")) for i in outcome["issue"][:1]] == [("business-rule", ["items[8]"])]
    assert mrn_a not in refused.text and mrn_b not in refused.text
    assert own_resource_count(fhir_base_url, settings, kind, body["key"]) == 0
    assert count_by_identifier(fhir_base_url, "Patient", settings.mrn_system, mrn_a) == 0
    assert api.get(f"/v1/infusion-sessions/{session['key']}").json() == before


def test_a_session_reads_back_only_children_of_its_own_patient(
    api, settings, fhir_base_url, run_id, fhir_cleanup
) -> None:
    """Even if another writer put another patient's Observation into the session's visit, it is not the session's."""
    session = session_body(f"sb-{run_id}", f"B-{run_id}")
    written = api.put(f"/v1/infusion-sessions/{session['key']}", json=session)
    assert written.status_code == 201, written.text
    before = api.get(f"/v1/infusion-sessions/{session['key']}").json()
    other = api.put(
        f"/v1/vital-signs/o-{run_id}",
        json={
            "patient": {"mrn": f"A-{run_id}"},
            "measured_at": "2026-03-02T09:20:00-05:00",
            "type": "heart_rate",
            "value": 70,
        },
    )
    assert other.status_code == 201
    stray_ref = next(
        f"{r['resourceType']}/{r['id']}" for r in other.json()["resources"] if r["resourceType"] == "Observation"
    )
    stray = fhir_get(fhir_base_url, stray_ref).json()
    procedure = fhir_get(
        fhir_base_url, resource_ref("infusion_session", session["key"], "procedure", settings.mapping_config())
    ).json()
    # As another writer could: the other patient's Observation claiming B's session and visit.
    stray["encounter"] = procedure["encounter"]
    stray["partOf"] = [{"reference": f"Procedure/{procedure['id']}", "identifier": procedure["identifier"][0]}]
    put = httpx.put(
        f"{fhir_base_url}/{stray_ref}",
        json=stray,
        headers={**FHIR_JSON, "Content-Type": "application/fhir+json"},
        timeout=60,
    )
    assert put.status_code == 200, put.text

    assert api.get(f"/v1/infusion-sessions/{session['key']}").json() == before


def test_batch_rejects_only_the_line_naming_another_patients_session(tmp_path, fhir_base_url, run_id) -> None:
    import json

    from tests.integration.batch_support import Namespace

    ns = Namespace(fhir_base_url, run_id)
    try:
        session = {"kind": "infusion_session", **session_body(f"sb-{run_id}", f"B-{run_id}")}
        _, wrong = children_of_kind("phq9_assessment", f"wrong-{run_id}", f"A-{run_id}", session["key"])
        _, right = children_of_kind("vital_sign", f"right-{run_id}", f"B-{run_id}", session["key"])
        path = tmp_path / "in.ndjson"
        path.write_text(
            "\n".join(
                json.dumps(x) for x in (session, {"kind": "phq9_assessment", **wrong}, {"kind": "vital_sign", **right})
            )
            + "\n"
        )
        rejects = tmp_path / "rejects.ndjson"
        result = ns.cli("sync", str(path), "--rejects", str(rejects), "--batch-size", "1", "--concurrency", "1")
        assert result.returncode == 1, result.stderr
        lines = [json.loads(line) for line in rejects.read_text().splitlines()]
        assert [(r["line"], r["key"]) for r in lines] == [(2, wrong["key"])]
        assert "session_key" in lines[0]["reason"] and "patient.mrn" in lines[0]["reason"]
        assert f"A-{run_id}" not in rejects.read_text() and f"B-{run_id}" not in rejects.read_text()
        assert (
            count_by_identifier(fhir_base_url, "Observation", f"{ns.identifier_base}/phq9-assessment", wrong["key"])
            == 0
        )
        assert count_by_identifier(fhir_base_url, "Observation", f"{ns.identifier_base}/vital-sign", right["key"]) == 1
    finally:
        ns.purge()


def test_a_visit_id_of_another_patients_visit_is_409(api, run_id) -> None:
    first = session_body(f"s1-{run_id}", f"B-{run_id}")
    first["visit_id"] = f"V-{run_id}"
    assert api.put(f"/v1/infusion-sessions/{first['key']}", json=first).status_code == 201
    second = session_body(f"s2-{run_id}", f"A-{run_id}")
    second["visit_id"] = f"V-{run_id}"
    refused = api.put(f"/v1/infusion-sessions/{second['key']}", json=second)
    assert refused.status_code == 409, refused.text
    issues = refused.json()["issue"]  # its embedded PHQ-9's positive item 9 is said first (H-39)
    assert [(i["code"], i["expression"]) for i in issues[:-1]] == [("business-rule", ["phq9_assessments[0].items[8]"])]
    assert issues[-1]["code"] == "conflict" and {"visit_id", "patient.mrn"} <= set(issues[-1]["expression"])
    assert api.get(f"/v1/infusion-sessions/{second['key']}").status_code == 404


# -- H2 hidden suicide-risk signal ---------------------------------------------------------------


def test_trend_shows_item_9_on_every_point_and_alerts_newest_first(api, run_id) -> None:
    mrn = f"T-{run_id}"
    sent = [
        phq9(f"q0-{run_id}", mrn, [3, 3, 2, 2, 2, 2, 2, 2, 1], "2026-03-01T08:45:00-05:00"),
        phq9(f"q1-{run_id}", mrn, [2, 2, 1, 1, 1, 1, 1, 1, 0], "2026-03-08T08:45:00-05:00"),
        phq9(f"q2-{run_id}", mrn, [0, 0, 0, 0, 0, 0, 0, 0, 2], "2026-03-15T08:45:00-05:00"),  # total 2, item 9 = 2
    ]
    for body in sent:
        assert api.put(f"/v1/phq9-assessments/{body['key']}", json=body).status_code == 201
    trend = api.post("/v1/patients/$phq9-trend", json={"mrn": mrn}).json()
    assert [(p["item9"], p["item9_positive"]) for p in trend["points"]] == [(1, True), (0, False), (2, True)]
    latest = trend["latest"]
    assert latest["remission"] is True and latest["item9"] == 2 and latest["item9_positive"] is True
    assert [(a["key"], a["item9"]) for a in trend["alerts"]] == [(sent[2]["key"], 2), (sent[0]["key"], 1)]


def test_trend_orders_by_instant_across_utc_offsets(api, run_id) -> None:
    mrn = f"T-{run_id}"
    later = phq9(f"late-{run_id}", mrn, [1] * 9, "2026-10-01T23:30:00-05:00")  # 2026-10-02T04:30Z
    earlier = phq9(f"early-{run_id}", mrn, [2] * 9, "2026-10-02T01:00:00+00:00")  # sorts after it as text
    for body in (later, earlier):
        assert api.put(f"/v1/phq9-assessments/{body['key']}", json=body).status_code == 201
    trend = api.post("/v1/patients/$phq9-trend", json={"mrn": mrn}).json()
    assert [p["key"] for p in trend["points"]] == [earlier["key"], later["key"]]
    assert trend["baseline"]["total"] == 18


async def test_trend_counts_more_than_200_assessments(settings, fhir_cleanup, run_id) -> None:
    from tests.integration.conftest import async_api, track

    mrn = f"T-{run_id}"
    bodies = [
        phq9(
            f"m{n:03d}-{run_id}",
            mrn,
            [n % 4] + [0] * 7 + [n % 2],
            f"2025-01-01T{n // 60 % 24:02d}:{n % 60:02d}:00+00:00",
        )
        for n in range(205)
    ]
    for n, body in enumerate(bodies):  # spread over days so that each has its own instant
        body["completed_at"] = f"2025-{1 + n // 28:02d}-{1 + n % 28:02d}T08:00:00+00:00"
    async with async_api(settings) as client:
        for body in bodies:
            response = await client.put(f"/v1/phq9-assessments/{body['key']}", json=body)
            track(response, fhir_cleanup)
            assert response.status_code == 201, response.text
        trend = (await client.post("/v1/patients/$phq9-trend", json={"mrn": mrn})).json()
    assert len(trend["points"]) == 205
    assert len(trend["alerts"]) == sum(1 for b in bodies if b["items"][8])


def test_a_positive_item_9_raises_a_flag_the_sync_never_writes_over(api, settings, fhir_base_url, run_id) -> None:
    body = phq9(f"q-{run_id}", f"F-{run_id}", ITEM9_POSITIVE)
    assert api.put(f"/v1/phq9-assessments/{body['key']}", json=body).status_code == 201
    config = settings.mapping_config()
    flag_ref = resource_ref("phq9_assessment", body["key"], "flag", config)
    flag = fhir_get(fhir_base_url, flag_ref).json()
    panel_ref = resource_ref("phq9_assessment", body["key"], "panel", config)
    assert flag["status"] == "active"
    assert flag["extension"][0]["valueReference"]["reference"] == panel_ref
    total = fhir_search(
        fhir_base_url,
        "Observation",
        {"identifier": f"{identifier_system('phq9_assessment', config)}|{body['key']}/total"},
    )[0]
    assert any(c["code"] == "POS" for i in total["interpretation"] for c in i["coding"])

    flag["status"] = "inactive"  # a clinician has reviewed the risk
    put = httpx.put(
        f"{fhir_base_url}/{flag_ref}",
        json=flag,
        headers={**FHIR_JSON, "Content-Type": "application/fhir+json"},
        timeout=60,
    )
    assert put.status_code == 200
    resent = api.put(f"/v1/phq9-assessments/{body['key']}", json=body)
    assert resent.status_code == 200
    assert fhir_get(fhir_base_url, flag_ref).json()["status"] == "inactive"

    assert api.delete(f"/v1/phq9-assessments/{body['key']}").status_code == 204
    assert fhir_get(fhir_base_url, flag_ref).json()["status"] == "entered-in-error"
    assert api.put(f"/v1/phq9-assessments/{body['key']}", json=body).status_code == 200  # sent again: flagged again
    assert fhir_get(fhir_base_url, flag_ref).json()["status"] == "active"


# -- H3 retraction reaching too far ----------------------------------------------------------------


def test_deleting_a_session_retracts_only_what_came_embedded_in_it(api, settings, fhir_base_url, run_id) -> None:
    mrn = f"R-{run_id}"
    session = session_body(f"s-{run_id}", mrn)
    written = api.put(f"/v1/infusion-sessions/{session['key']}", json=session)
    assert written.status_code == 201, written.text
    _, own_ae = children_of_kind("adverse_event", f"ae-own-{run_id}", mrn, session["key"])
    own_phq9 = phq9(f"q-own-{run_id}", mrn, [1, 1, 1, 1, 1, 1, 1, 1, 0], session_key=session["key"])
    assert api.put(f"/v1/adverse-events/{own_ae['key']}", json=own_ae).status_code == 201
    assert api.put(f"/v1/phq9-assessments/{own_phq9['key']}", json=own_phq9).status_code == 201

    assert api.delete(f"/v1/infusion-sessions/{session['key']}").status_code == 204

    for item in written.json()["resources"]:
        response = fhir_get(fhir_base_url, f"{item['resourceType']}/{item['id']}")
        if item["resourceType"] == "Patient":
            assert response.status_code == 200
        elif item["resourceType"] == "AdverseEvent":
            assert response.status_code == deleted_status()  # the embedded one: R4 AdverseEvent has no status
        else:
            assert response.json()["status"] == "entered-in-error", item
    got_ae = api.get(f"/v1/adverse-events/{own_ae['key']}")
    got_phq9 = api.get(f"/v1/phq9-assessments/{own_phq9['key']}")
    assert got_ae.status_code == 200 and got_ae.json()["session_key"] == session["key"]
    assert got_phq9.status_code == 200 and got_phq9.json()["session_key"] == session["key"]
    trend = api.post("/v1/patients/$phq9-trend", json={"mrn": mrn}).json()
    assert [p["key"] for p in trend["points"]] == [own_phq9["key"]]  # the embedded PHQ-9 is retracted


def test_an_entered_in_error_session_marks_its_embedded_children(api, settings, fhir_base_url, run_id) -> None:
    session = session_body(f"s-{run_id}", f"E-{run_id}")
    session["phq9_assessments"][0]["items"] = ITEM9_POSITIVE
    assert api.put(f"/v1/infusion-sessions/{session['key']}", json=session).status_code == 201
    retracted = copy.deepcopy(session)
    retracted["status"] = "entered_in_error"
    del retracted["adverse_events"]
    response = api.put(f"/v1/infusion-sessions/{session['key']}", json=retracted)
    assert response.status_code == 200, response.text
    config = settings.mapping_config()
    children = [*session["vital_signs"], *session["monitoring_scores"]]
    for child in children:
        kind = "vital_sign" if child in session["vital_signs"] else "monitoring_score"
        held = fhir_get(fhir_base_url, resource_ref(kind, child["key"], "observation", config)).json()
        assert held["status"] == "entered-in-error", child["key"]
    phq9_key = session["phq9_assessments"][0]["key"]
    for part in ("panel", "total", "item-9"):
        assert (
            fhir_get(fhir_base_url, resource_ref("phq9_assessment", phq9_key, part, config)).json()["status"]
            == "entered-in-error"
        )
    assert (
        fhir_get(fhir_base_url, resource_ref("phq9_assessment", phq9_key, "flag", config)).json()["status"]
        == "entered-in-error"
    )


def test_an_entered_in_error_session_with_adverse_events_is_422(api, run_id) -> None:
    session = session_body(f"s-{run_id}", f"E-{run_id}")
    session["status"] = "entered_in_error"
    refused = api.put(f"/v1/infusion-sessions/{session['key']}", json=session)
    assert refused.status_code == 422
    assert ["adverse_events"] in [i.get("expression") for i in refused.json()["issue"]]


# -- H4 dangling references, H5 dose misstated, H6 not done read as given --------------------------------


@pytest.mark.parametrize("status", ["planned", "not_done"])
def test_an_adverse_event_of_a_session_where_nothing_was_given_suspects_the_procedure(
    api, settings, fhir_base_url, run_id, status
) -> None:
    session = session_body(f"s-{run_id}", f"P-{run_id}")
    session.update(status=status, vital_signs=[], monitoring_scores=[], phq9_assessments=[])
    session.pop("ended_at")
    session.pop("dose") if status == "planned" else session["dose"].pop("rate")
    if status == "not_done":
        session["stop_reason"] = "Blood pressure too high before start"
    response = api.put(f"/v1/infusion-sessions/{session['key']}", json=session)
    assert response.status_code == 201, response.text
    config = settings.mapping_config()
    ae = fhir_get(
        fhir_base_url, resource_ref("adverse_event", session["adverse_events"][0]["key"], "adverse-event", config)
    ).json()
    suspect = ae["suspectEntity"][0]
    assert suspect["instance"]["reference"] == resource_ref("infusion_session", session["key"], "procedure", config)
    assert suspect["causality"][0]["assessment"]["coding"][0]["code"] == "Probably-Likely"
    got = api.get(f"/v1/infusion-sessions/{session['key']}")
    assert got.status_code == 200
    assert parse_record({"kind": "infusion_session", **got.json()}) == parse_record(
        {"kind": "infusion_session", **session}
    )


def test_a_total_that_disagrees_with_mg_per_kg_times_weight_is_422_and_nothing_is_written(
    api, settings, fhir_base_url, run_id
) -> None:
    session = session_body(f"s-{run_id}", f"D-{run_id}")
    session["dose"] = {"total_mg": 500, "mg_per_kg": 0.5, "weight_kg": 100}  # a tenfold slip
    refused = api.put(f"/v1/infusion-sessions/{session['key']}", json=session)
    assert refused.status_code == 422
    # Refused for its dose; its embedded PHQ-9's positive item 9, written nowhere, is said first (H-39).
    assert [(i["code"], i.get("expression")) for i in refused.json()["issue"]] == [
        ("business-rule", ["phq9_assessments[0].items[8]"]),
        ("invalid", ["dose.total_mg"]),
    ]
    assert own_resource_count(fhir_base_url, settings, "infusion_session", session["key"]) == 0


def test_a_not_done_infusion_states_no_dose_given_and_no_performed_period(api, settings, fhir_base_url, run_id) -> None:
    session = session_body(f"s-{run_id}", f"N-{run_id}")
    session.update(status="not_done", stop_reason="Pre-infusion blood pressure 182/110")
    for name in CHILD_LISTS:
        session[name] = []
    response = api.put(f"/v1/infusion-sessions/{session['key']}", json=session)
    assert response.status_code == 201, response.text
    config = settings.mapping_config()
    administration = fhir_get(
        fhir_base_url, resource_ref("infusion_session", session["key"], "medication-administration", config)
    ).json()
    procedure = fhir_get(fhir_base_url, resource_ref("infusion_session", session["key"], "procedure", config)).json()
    assert administration["status"] == "not-done" and "dosage" not in administration
    intended = administration["extension"][0]["valueDosage"]
    assert intended["text"].startswith("Intended, not administered: ")
    assert "performedPeriod" not in procedure and "performedDateTime" not in procedure
    got = api.get(f"/v1/infusion-sessions/{session['key']}")
    assert parse_record({"kind": "infusion_session", **got.json()}) == parse_record(
        {"kind": "infusion_session", **session}
    )


# -- H7 the visit ------------------------------------------------------------------------------------


def test_every_resource_of_a_session_references_one_encounter_and_part_of_only_during_the_infusion(
    api, settings, fhir_base_url, run_id
) -> None:
    session = session_body(f"s-{run_id}", f"V-{run_id}")
    written = api.put(f"/v1/infusion-sessions/{session['key']}", json=session)
    assert written.status_code == 201
    config = settings.mapping_config()
    encounter_ref = resource_ref("infusion_session", session["key"], "encounter", config)
    encounter = fhir_get(fhir_base_url, encounter_ref).json()
    assert encounter["status"] == "finished" and encounter["class"]["code"] == "AMB"
    for item in written.json()["resources"]:
        resource = fhir_get(fhir_base_url, f"{item['resourceType']}/{item['id']}").json()
        if item["resourceType"] in ("Patient", "Encounter"):
            continue
        link = (
            resource.get("context") if item["resourceType"] == "MedicationAdministration" else resource.get("encounter")
        )
        assert link == {"reference": encounter_ref}, item
    phq9_panel = fhir_get(
        fhir_base_url, resource_ref("phq9_assessment", session["phq9_assessments"][0]["key"], "panel", config)
    ).json()
    assert "partOf" not in phq9_panel  # completed 08:45, before the 09:00 start
    during = fhir_get(
        fhir_base_url, resource_ref("vital_sign", session["vital_signs"][1]["key"], "observation", config)
    ).json()
    assert during["partOf"][0]["reference"].startswith("Procedure/")


def test_the_ehrs_own_visit_is_referenced_and_never_written_over(
    api, settings, fhir_base_url, run_id, fhir_cleanup
) -> None:
    mrn = f"V-{run_id}"
    session = session_body(f"s-{run_id}", mrn)
    first = api.put(
        f"/v1/vital-signs/pre-{run_id}",
        json={
            "patient": session["patient"],
            "measured_at": "2026-03-02T08:30:00-05:00",
            "type": "heart_rate",
            "value": 72,
        },
    )
    patient_ref = next(f"Patient/{r['id']}" for r in first.json()["resources"] if r["resourceType"] == "Patient")
    visit = {
        "resourceType": "Encounter",
        "status": "arrived",
        "identifier": [{"system": settings.visit_system, "value": f"VISIT-{run_id}"}],
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": patient_ref},
        "serviceType": {"text": "EHR's own wording"},
    }
    created = httpx.post(
        f"{fhir_base_url}/Encounter",
        json=visit,
        headers={**FHIR_JSON, "Content-Type": "application/fhir+json"},
        timeout=60,
    )
    assert created.status_code == 201
    visit_ref = f"Encounter/{created.json()['id']}"
    fhir_cleanup.track(visit_ref)
    session["visit_id"] = f"VISIT-{run_id}"
    written = api.put(f"/v1/infusion-sessions/{session['key']}", json=session)
    assert written.status_code == 201, written.text
    config = settings.mapping_config()
    procedure = fhir_get(fhir_base_url, resource_ref("infusion_session", session["key"], "procedure", config)).json()
    assert procedure["encounter"]["reference"] == visit_ref
    held = fhir_get(fhir_base_url, visit_ref).json()
    assert (
        written_once(fhir_base_url, held)
        and held["status"] == "arrived"
        and held["serviceType"]["text"] == "EHR's own wording"
    )
    assert (
        fhir_get(fhir_base_url, resource_ref("infusion_session", session["key"], "encounter", config)).status_code
        == 404
    )
    got = api.get(f"/v1/infusion-sessions/{session['key']}")
    assert got.json()["visit_id"] == session["visit_id"]
    assert parse_record({"kind": "infusion_session", **got.json()}) == parse_record(
        {"kind": "infusion_session", **session}
    )


# -- smaller defects found in review -------------------------------------------------------------


def test_an_adverse_event_whose_description_is_the_local_display_reads_back(api, run_id) -> None:
    body = {
        "patient": {"mrn": f"M-{run_id}"},
        "onset_at": "2026-03-02T09:15:00-05:00",
        "recorded_at": "2026-03-02T09:16:00-05:00",
        "event": "other",
        "description": "Other adverse event",
        "severity": "mild",
        "serious": False,
        "outcome": "resolved",
    }
    assert api.put(f"/v1/adverse-events/ae-{run_id}", json=body).status_code == 201
    got = api.get(f"/v1/adverse-events/ae-{run_id}")
    assert got.status_code == 200, got.text
    assert got.json()["description"] == "Other adverse event"
