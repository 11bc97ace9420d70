"""Configurable URIs the mappers stamp on resources (identifier systems, local code systems)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MappingConfig:
    """Clinic-specific URIs; the defaults sit under the service's own canonical base."""

    identifier_system_base: str = "https://infusion-fhir.example.org/fhir/sid"
    mrn_system: str = "https://infusion-fhir.example.org/fhir/sid/mrn"
    visit_system: str = "https://infusion-fhir.example.org/fhir/sid/visit"
    """System of the EHR's visit identifiers (`visit_id`): its Encounters are matched on it, never written over."""
    local_code_system_base: str = "https://infusion-fhir.example.org/fhir/CodeSystem"
    canonical_base: str = "https://infusion-fhir.example.org/fhir"
    """Base of the service's own canonical URLs (its Questionnaires: `{canonical_base}/Questionnaire/{id}`)."""
    practitioner_identifier_system: str = "https://infusion-fhir.example.org/fhir/sid/practitioner"
    """System of the clinician ids carried as logical references (Procedure.performer.actor)."""
    medication_product_coding: tuple[str, str, str] | None = None
    """An extra (system, code, display) on the medication, e.g. the clinic's NDC or RxNorm SCD."""
    fhir_base_url: str = "http://localhost:8080/fhir"
    """The FHIR server's base: transaction entries carry absolute `fullUrl`s under it (R4 Bundle rules)."""
