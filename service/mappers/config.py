"""Configurable URIs the mappers stamp on resources (identifier systems, local code systems)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MappingConfig:
    """Clinic-specific URIs; the defaults sit under the service's own canonical base."""

    identifier_system_base: str = "https://infusion-fhir.example.org/fhir/sid"
    mrn_system: str = "https://infusion-fhir.example.org/fhir/sid/mrn"
    local_code_system_base: str = "https://infusion-fhir.example.org/fhir/CodeSystem"
