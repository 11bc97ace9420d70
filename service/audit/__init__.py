"""The audit trail of every access (issue 23 point 4): AuditEvents (IHE BALP) of each `/v1` request and of each
patient of a batch job, recorded in an audit log file and/or a FHIR audit store; never in the application log."""

from service.audit.patients import involve_patient, patients_scope

__all__ = ["involve_patient", "patients_scope"]
