"""The codes and profile URLs of the audit trail (IHE Basic Audit Log Patterns, BALP 1.1, on FHIR R4), with their
sources; nothing else spells one.

Sources: FHIR R4 AuditEvent (http://hl7.org/fhir/R4/auditevent.html) and its code systems; DICOM PS3.16 CID 402
(role ids 110152/110153); IHE ITI BALP (https://profiles.ihe.net/ITI/BALP/), the profiles `IHE.BasicAudit.*`.
"""

from __future__ import annotations

from typing import Any

EVENT_TYPE_REST: dict[str, Any] = {
    "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
    "code": "rest",
    "display": "Restful Operation",
}
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
READ, VREAD, UPDATE, CREATE, DELETE, SEARCH_TYPE, OPERATION = (
    "read",
    "vread",
    "update",
    "create",
    "delete",
    "search-type",
    "operation",
)

DCM = "http://dicom.nema.org/resources/ontology/DCM"
SOURCE_ROLE = {"system": DCM, "code": "110153", "display": "Source Role ID"}
DESTINATION_ROLE = {"system": DCM, "code": "110152", "display": "Destination Role ID"}

NETWORK_TYPE_MACHINE_NAME = "1"
NETWORK_TYPE_IP = "2"
NETWORK_TYPE_URI = "5"

OUTCOME_SUCCESS = "0"
OUTCOME_MINOR_FAILURE = "4"
OUTCOME_SERIOUS_FAILURE = "8"

SECURITY_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
APPLICATION_SERVER = {"system": SECURITY_SOURCE_TYPE, "code": "4", "display": "Application Server"}

ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
PERSON = {"system": ENTITY_TYPE, "code": "1", "display": "Person"}
SYSTEM_OBJECT = {"system": ENTITY_TYPE, "code": "2", "display": "System Object"}
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ROLE_PATIENT = {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}
ROLE_DOMAIN_RESOURCE = {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}
ROLE_JOB = {"system": OBJECT_ROLE, "code": "20", "display": "Job"}
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
X_REQUEST_ID = {"system": BALP_ENTITY_TYPE, "code": "XrequestId", "display": "XrequestId"}

BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
PROFILES: dict[tuple[str, bool], str] = {
    # (interaction, a patient is named) -> the BALP profile a successful event of it meets
    (READ, False): BALP + "Read",
    (READ, True): BALP + "PatientRead",
    (CREATE, False): BALP + "Create",
    (CREATE, True): BALP + "PatientCreate",
    (UPDATE, False): BALP + "Update",
    (UPDATE, True): BALP + "PatientUpdate",
    (DELETE, False): BALP + "Delete",
    (DELETE, True): BALP + "PatientDelete",
}
"""BALP profiles need a `data` entity (the record, by identifier) and, for the Patient* ones, the patient. There is
no BALP profile of an operation (`$convert`, the trends, `$monitoring-summary`); the Query profiles need the raw
query in `entity.query`, which for a trend is a body naming the patient: those events name no profile."""
