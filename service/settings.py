"""The one settings class; nothing else in the service reads the environment."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.mappers.config import MappingConfig

DEFAULT_FHIR_BASE_URL = "http://localhost:8080/fhir"


class Settings(BaseSettings):
    """Runtime configuration, from `INFUSION_FHIR_*` variables (plus `FHIR_BASE_URL`)."""

    model_config = SettingsConfigDict(env_prefix="INFUSION_FHIR_", extra="ignore")

    fhir_base_url: str = Field(
        DEFAULT_FHIR_BASE_URL,
        validation_alias=AliasChoices("FHIR_BASE_URL", "INFUSION_FHIR_FHIR_BASE_URL"),
        description="Base URL of the FHIR R4 server records are synced with.",
    )
    fhir_bearer_token: SecretStr | None = Field(
        None, description="Bearer token sent to the FHIR server, if it needs one (never logged or shown)."
    )
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    max_connections: int = 32
    retry_max_attempts: int = 5
    retry_max_total_s: float = 60.0
    retry_backoff_base_s: float = 0.25
    retry_backoff_cap_s: float = 8.0
    retry_after_cap_s: float = 30.0

    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: str = Field(
        "",
        description="Comma-separated SHA-256 hex digests of the accepted API keys.",
    )
    max_body_bytes: int = 5_000_000
    log_level: str = "INFO"

    identifier_system_base: str = "https://infusion-fhir.example.org/fhir/sid"
    mrn_system: str = "https://infusion-fhir.example.org/fhir/sid/mrn"
    visit_system: str = Field(
        "https://infusion-fhir.example.org/fhir/sid/visit",
        description="Identifier system of the EHR's visit (encounter) numbers sent as `visit_id`.",
    )
    local_code_system_base: str = "https://infusion-fhir.example.org/fhir/CodeSystem"
    practitioner_identifier_system: str = "https://infusion-fhir.example.org/fhir/sid/practitioner"
    medication_product_system: str | None = Field(
        None, description="System of an extra product code on the medication (e.g. NDC or RxNorm SCD)."
    )
    medication_product_code: str | None = None
    medication_product_display: str | None = None

    @field_validator("fhir_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        """An absolute http(s) URL without query or fragment: refused at start-up otherwise."""
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("FHIR_BASE_URL must be an absolute http(s) URL, e.g. https://fhir.example.org/r4")
        return value.strip().rstrip("/")

    def api_key_digests(self) -> frozenset[str]:
        """The accepted API key digests, lower-cased, blanks dropped."""
        return frozenset(d.strip().lower() for d in self.api_keys.split(",") if d.strip())

    def mapping_config(self) -> MappingConfig:
        """The URIs the pure mappers need, taken from these settings."""
        return MappingConfig(
            identifier_system_base=self.identifier_system_base,
            mrn_system=self.mrn_system,
            visit_system=self.visit_system,
            local_code_system_base=self.local_code_system_base,
            practitioner_identifier_system=self.practitioner_identifier_system,
            medication_product_coding=self._product_coding(),
            fhir_base_url=self.fhir_base_url,
        )

    def _product_coding(self) -> tuple[str, str, str] | None:
        if not (self.medication_product_system and self.medication_product_code):
            return None
        return (
            self.medication_product_system,
            self.medication_product_code,
            self.medication_product_display or self.medication_product_code,
        )
