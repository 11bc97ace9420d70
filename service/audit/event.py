"""The AuditEvent builder (pure): one access, as told by the edge that saw it, in, one R4 AuditEvent (IHE BALP) out."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from service.audit import codes
from service.audit.patients import PatientRef
from service.request_context import Caller

UNAUTHENTICATED = "unauthenticated"
"""Who a refused caller is recorded as: nothing it sent (never its key or token) names it."""


@dataclass(frozen=True)
class Access:
    """One access: what was asked (a RESTful interaction and its action), by whom, about whom, and how it ended."""

    event_id: str
    recorded: str
    """When the outcome was known, as a FHIR instant (UTC)."""
    interaction: str
    action: str
    outcome: str
    outcome_desc: str
    caller: Caller | None
    client_address: str | None
    server_name: str
    server_address: str | None
    request_id: str | None = None
    record: tuple[str, str] | None = None
    """The record accessed: (kind, key), recorded by identifier."""
    patients: tuple[PatientRef, ...] = ()
    """The patients the access involved."""
    record_is_job: bool = False


@dataclass(frozen=True)
class AuditSystems:
    """The identifier systems an AuditEvent names things under (from the settings)."""

    mrn: str
    base: str
    claim_profiles: bool = False
    """Name the BALP profile an event meets (`INFUSION_FHIR_AUDIT_BALP_PROFILES`): only where the store knows them."""

    def caller(self, kind: str) -> str:
        return f"{self.base}/caller/{kind}"

    def record(self, kind: str) -> str:
        return f"{self.base}/{kind}"


def outcome_of_status(status: int) -> str:
    """AuditEvent.outcome of an HTTP answer: 0 success, 4 minor failure (refused, 4xx), 8 serious failure (5xx)."""
    if status >= 500:
        return codes.OUTCOME_SERIOUS_FAILURE
    if status >= 400:
        return codes.OUTCOME_MINOR_FAILURE
    return codes.OUTCOME_SUCCESS


def client_is_destination(action: str) -> bool:
    """BALP's direction rule: of a read the data flows to the client (the destination, 110152); of a query,
    create, update, delete or operation, the request flows from the client (the source, 110153)."""
    return action == "R"


def audit_event(access: Access, systems: AuditSystems) -> dict[str, Any]:
    """The AuditEvent of one access (FHIR R4 JSON)."""
    event: dict[str, Any] = {"resourceType": "AuditEvent", "id": access.event_id}
    profile = balp_profile(access) if systems.claim_profiles else None
    if profile is not None:
        event["meta"] = {"profile": [profile]}
    event.update(
        {
            "type": codes.EVENT_TYPE_REST,
            "subtype": [
                {"system": codes.RESTFUL_INTERACTION, "code": access.interaction, "display": access.interaction}
            ],
            "action": access.action,
            "recorded": access.recorded,
            "outcome": access.outcome,
            "outcomeDesc": access.outcome_desc,
            "agent": _agents(access, systems),
            "source": {"observer": {"display": access.server_name}, "type": [codes.APPLICATION_SERVER]},
        }
    )
    entities = _entities(access, systems)
    if entities:
        event["entity"] = entities
    return event


def balp_profile(access: Access) -> str | None:
    """The BALP profile the event meets, if any: only a success (the profiles fix outcome 0) of a read, create,
    update or delete of one named record, with at most one patient."""
    if access.outcome != codes.OUTCOME_SUCCESS or access.record is None or len(access.patients) > 1:
        return None
    return codes.PROFILES.get((access.interaction, bool(access.patients)))


def _agents(access: Access, systems: AuditSystems) -> list[dict[str, Any]]:
    to_client = client_is_destination(access.action)
    client: dict[str, Any] = {
        "type": {"coding": [codes.DESTINATION_ROLE if to_client else codes.SOURCE_ROLE]},
        "who": _caller_reference(access.caller, systems),
        "requestor": True,
    }
    if access.caller is not None:
        client["name"] = access.caller.name
    client["network"] = _network(access.client_address)
    server: dict[str, Any] = {
        "type": {"coding": [codes.SOURCE_ROLE if to_client else codes.DESTINATION_ROLE]},
        "who": {"display": access.server_name},
        "requestor": False,
        "network": _network(access.server_address),
    }
    return [client, server]


def _caller_reference(caller: Caller | None, systems: AuditSystems) -> dict[str, Any]:
    if caller is None:
        return {"display": UNAUTHENTICATED}
    return {"identifier": {"system": systems.caller(caller.kind), "value": caller.name}, "display": caller.name}


def _network(address: str | None) -> dict[str, Any]:
    """`agent.network`: an IP address (type 2), a URL (5), else a machine name (1); `unknown` when not known."""
    if not address:
        return {"address": "unknown", "type": codes.NETWORK_TYPE_MACHINE_NAME}
    if "://" in address:
        return {"address": address, "type": codes.NETWORK_TYPE_URI}
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return {"address": address, "type": codes.NETWORK_TYPE_MACHINE_NAME}
    return {"address": address, "type": codes.NETWORK_TYPE_IP}


def _entities(access: Access, systems: AuditSystems) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if access.request_id:
        entities.append({"what": {"identifier": {"value": access.request_id}}, "type": codes.X_REQUEST_ID})
    if access.record is not None:
        kind, key = access.record
        entities.append(
            {
                "what": {"identifier": {"system": systems.record(kind), "value": key}},
                "type": codes.SYSTEM_OBJECT,
                "role": codes.ROLE_JOB if access.record_is_job else codes.ROLE_DOMAIN_RESOURCE,
            }
        )
    for patient in access.patients:
        entities.append(
            {
                "what": {"type": "Patient", "identifier": {"system": systems.mrn, "value": patient.mrn}},
                "type": codes.PERSON,
                "role": codes.ROLE_PATIENT,
            }
        )
    return entities
