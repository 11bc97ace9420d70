"""The AuditEvent builder: each interaction and outcome, BALP's direction rules, a profile only on success."""

from __future__ import annotations

import pytest

from service.audit import codes
from service.audit.event import UNAUTHENTICATED, Access, AuditSystems, audit_event, balp_profile, outcome_of_status
from service.audit.middleware import interaction_of, record_of
from service.audit.patients import PatientRef, involve_patient, patients_scope
from service.request_context import Caller

SYSTEMS = AuditSystems(mrn="https://example.org/mrn", base="https://example.org/sid", claim_profiles=True)
EHR = Caller("api-key", "ehr-main")


def access(**overrides: object) -> Access:
    values: dict[str, object] = {
        "event_id": "audit-1",
        "recorded": "2026-03-02T09:30:00.000Z",
        "interaction": codes.READ,
        "action": "R",
        "outcome": "0",
        "outcome_desc": "HTTP 200",
        "caller": EHR,
        "client_address": "10.0.0.7",
        "server_name": "infusion-fhir",
        "server_address": "10.0.0.1",
        "request_id": "req-42",
        "record": ("vital_sign", "v-1"),
        "patients": (PatientRef(mrn="MRN-1"),),
    }
    values.update(overrides)
    return Access(**values)  # type: ignore[arg-type]


def roles(event: dict) -> tuple[str, str]:
    """(client's role code, server's role code)."""
    client, server = event["agent"]
    return client["type"]["coding"][0]["code"], server["type"]["coding"][0]["code"]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "0"),
        (201, "0"),
        (204, "0"),
        (401, "4"),
        (404, "4"),
        (409, "4"),
        (413, "4"),
        (422, "4"),
        (500, "8"),
        (502, "8"),
        (503, "8"),
    ],
)
def test_outcome_of_each_status(status: int, outcome: str) -> None:
    assert outcome_of_status(status) == outcome


@pytest.mark.parametrize(
    ("method", "route", "status", "expected"),
    [
        ("GET", "/v1/vital-signs/{key}", 200, ("read", "R")),
        ("PUT", "/v1/vital-signs/{key}", 201, ("create", "C")),
        ("PUT", "/v1/vital-signs/{key}", 200, ("update", "U")),
        ("PUT", "/v1/vital-signs/{key}", 422, ("update", "U")),
        ("DELETE", "/v1/vital-signs/{key}", 204, ("delete", "D")),
        ("POST", "/v1/$convert", 200, ("operation", "E")),
        ("POST", "/v1/patients/$phq9-trend", 200, ("operation", "E")),
        ("GET", "/v1/infusion-sessions/{key}/$monitoring-summary", 200, ("operation", "R")),
        ("POST", "/v1/infusion-sessions/{key}/$monitoring-summary", 201, ("operation", "C")),
        ("GET", None, 404, ("read", "R")),
    ],
)
def test_interaction_of_each_route(method: str, route: str | None, status: int, expected: tuple[str, str]) -> None:
    assert interaction_of(method, route, status) == expected


def test_record_of_a_route_names_kind_and_key() -> None:
    assert record_of("/v1/vital-signs/{key}", {"key": "v-1"}) == ("vital_sign", "v-1")
    assert record_of("/v1/infusion-sessions/{key}/$monitoring-summary", {"key": "s-1"}) == ("infusion_session", "s-1")
    assert record_of("/v1/$convert", {}) is None


@pytest.mark.parametrize(
    ("action", "client_role"), [("R", "110152"), ("E", "110153"), ("C", "110153"), ("U", "110153"), ("D", "110153")]
)
def test_direction_rules(action: str, client_role: str) -> None:
    """BALP: of a read the client is the destination; of a query, create, update, delete the source."""
    server_role = "110153" if client_role == "110152" else "110152"
    assert roles(audit_event(access(action=action), SYSTEMS)) == (client_role, server_role)


def test_agents_name_the_caller_and_both_networks() -> None:
    client, server = audit_event(access(), SYSTEMS)["agent"]
    assert client["who"] == {
        "identifier": {"system": "https://example.org/sid/caller/api-key", "value": "ehr-main"},
        "display": "ehr-main",
    }
    assert client["requestor"] is True and server["requestor"] is False
    assert client["network"] == {"address": "10.0.0.7", "type": "2"}
    assert server["network"] == {"address": "10.0.0.1", "type": "2"}


def test_a_refused_caller_is_unauthenticated_and_no_profile_is_named() -> None:
    event = audit_event(access(caller=None, outcome="4", outcome_desc="HTTP 401", patients=()), SYSTEMS)
    assert event["agent"][0]["who"] == {"display": UNAUTHENTICATED}
    assert "meta" not in event
    assert event["outcome"] == "4"


def test_entities_patient_by_identifier_record_and_request_id() -> None:
    entities = audit_event(access(), SYSTEMS)["entity"]
    assert {"what": {"identifier": {"value": "req-42"}}, "type": codes.X_REQUEST_ID} in entities
    patient = next(e for e in entities if e.get("role") == codes.ROLE_PATIENT)
    assert patient["what"] == {"type": "Patient", "identifier": {"system": "https://example.org/mrn", "value": "MRN-1"}}
    data = next(e for e in entities if e.get("role") == codes.ROLE_DOMAIN_RESOURCE)
    assert data["what"] == {"identifier": {"system": "https://example.org/sid/vital_sign", "value": "v-1"}}


@pytest.mark.parametrize(
    ("interaction", "action", "with_patient", "profile"),
    [
        ("read", "R", True, "PatientRead"),
        ("read", "R", False, "Read"),
        ("create", "C", True, "PatientCreate"),
        ("update", "U", True, "PatientUpdate"),
        ("delete", "D", True, "PatientDelete"),
        ("delete", "D", False, "Delete"),
    ],
)
def test_profiles_on_success(interaction: str, action: str, with_patient: bool, profile: str) -> None:
    patients = (PatientRef(mrn="MRN-1"),) if with_patient else ()
    event = audit_event(access(interaction=interaction, action=action, patients=patients), SYSTEMS)
    assert event["meta"]["profile"] == [codes.BALP + profile]


@pytest.mark.parametrize("outcome", ["4", "8"])
def test_no_profile_on_failure(outcome: str) -> None:
    assert balp_profile(access(outcome=outcome)) is None


def test_no_profile_for_operations_or_several_patients() -> None:
    assert balp_profile(access(interaction="operation", action="E")) is None
    assert balp_profile(access(patients=(PatientRef(mrn="A"), PatientRef(mrn="B")))) is None
    assert balp_profile(access(record=None)) is None


def test_patients_are_collected_only_within_a_scope() -> None:
    involve_patient("OUTSIDE")  # no scope: nothing happens
    with patients_scope() as involved:
        involve_patient("MRN-1")
        involve_patient("MRN-1")
        involve_patient(None)
    assert involved == [PatientRef(mrn="MRN-1")]


def test_no_profile_is_claimed_unless_the_setting_asks() -> None:
    """By default no `meta.profile`: a store without the BALP package (the local HAPI) refuses the claim."""
    unclaimed = AuditSystems(mrn=SYSTEMS.mrn, base=SYSTEMS.base)
    assert balp_profile(access()) is not None  # the event meets a profile...
    assert "meta" not in audit_event(access(), unclaimed)  # ...and does not claim it
