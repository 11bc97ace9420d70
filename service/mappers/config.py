"""Clinic-specific configuration the mappers read: URIs (identifier systems, local code systems), the safety
thresholds in force, and the clinic's monitoring protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from service.instruments import DEFINITIONS, Override, Thresholds, apply_overrides
from service.monitoring import Protocol, default_protocol


@dataclass(frozen=True)
class MappingConfig:
    """Clinic-specific URIs, safety thresholds and monitoring protocol; the URI defaults sit under the service's own
    canonical base."""

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
    safety_overrides: tuple[Override, ...] = ()
    """The clinic's safety thresholds over the sheet's defaults (settings `safety_thresholds`, checked there)."""
    protocol: Protocol = field(default_factory=default_protocol, repr=False, hash=False)
    """The monitoring protocol every vital sign and MOAA/S or CADSS score is interpreted against
    (`service.monitoring`; default: the shipped defaults). Compared but left out of the hash: the mappers'
    caches hash a config on every call, and configs differing only in their protocol are rare."""

    @property
    def thresholds(self) -> Thresholds:
        """The safety rules in force per instrument (`POS`, the Flag, the trend) and the weakened ones.

        ThresholdError if the overrides cannot apply; Settings refuses such overrides at start."""
        return _thresholds(self.safety_overrides)


@lru_cache(maxsize=16)
def _thresholds(overrides: tuple[Override, ...]) -> Thresholds:
    return apply_overrides(DEFINITIONS, overrides)
