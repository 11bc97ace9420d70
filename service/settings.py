"""The one settings class; nothing else in the service reads the environment."""

from __future__ import annotations

import json
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.instruments import DEFINITIONS, Override, ThresholdError, apply_overrides, parse_overrides
from service.mappers.config import MappingConfig
from service.monitoring import Protocol, load_protocol
from service.request_context import CALLER_NAME_PATTERN
from service.smart import DEFAULT_SMART_SCOPES, load_signing_key

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
    # SMART Backend Services (service/smart.py): on when the client id is set; instead of the bearer token.
    smart_client_id: str | None = Field(
        None, description="SMART Backend Services client id registered with the FHIR server's authorization server."
    )
    smart_private_key_file: str | None = Field(
        None, description="PEM or JWK (JSON) file of the RS384/ES384 private key (`infusion-fhir smart-keygen`)."
    )
    smart_key_id: str | None = Field(
        None, description="`kid` of the key as registered (default: the JWK's `kid`, else its RFC 7638 thumbprint)."
    )
    smart_scopes: str = Field(DEFAULT_SMART_SCOPES, description="Space-separated scopes asked for (SMART v2 system).")
    smart_token_url: str | None = Field(
        None, description="Token endpoint (default: from `{FHIR base}/.well-known/smart-configuration`)."
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
        description="The accepted API keys, comma-separated, each as `name=<SHA-256 hex digest>` (the name is what "
        "Provenance and the audit trail record as the caller, never the key) or a bare digest (named `key-<first 8 "
        "hex digits>`).",
    )
    # Inbound OAuth 2.0 (README "How an EHR authenticates"): JWT access tokens of this issuer, beside API keys.
    oauth_issuer: str | None = Field(
        None,
        description="Issuer whose JWT access tokens /v1 accepts, exactly as their `iss` "
        "(e.g. https://idp.example.org/realms/clinic); its keys come from {issuer}/.well-known/openid-configuration. "
        "Unset: API keys only.",
    )
    oauth_audience: str | None = Field(
        None, description="The audience (`aud`) access tokens must carry; required with oauth_issuer."
    )
    oauth_leeway_s: float = Field(30.0, ge=0, le=300, description="Clock skew allowed on `exp` and `nbf`.")
    oauth_jwks_min_refresh_s: float = Field(
        15.0, ge=0, description="At most one JWKS fetch per this many seconds for tokens with an unknown `kid`."
    )
    oauth_jwks_max_age_s: float = Field(3600.0, gt=0, description="Cached issuer keys are fetched again after this.")
    max_body_bytes: int = 5_000_000
    transaction_max_updates: int | None = Field(
        None,
        gt=3,  # room for a part's Provenances besides (service.sync.limits.PROVENANCE_ROOM)
        description="The most updates (PUTs) the FHIR server takes in one transaction (Medplum's engine: 50). Unset, "
        "it is learned from the server's refusal; a single record beyond it is split over several transactions, "
        "and the answer or the batch report says so (docs/compatibility.md, row 2).",
    )
    api_read_before_write: bool = Field(
        False,
        description="PUT reads the server's copies first and writes only what changed, as the batch does "
        "(chosen by measurement: BENCHMARKS.md, section Scale).",
    )
    log_level: str = "INFO"

    identifier_system_base: str = "https://infusion-fhir.example.org/fhir/sid"
    mrn_system: str = "https://infusion-fhir.example.org/fhir/sid/mrn"
    visit_system: str = Field(
        "https://infusion-fhir.example.org/fhir/sid/visit",
        description="Identifier system of the EHR's visit (encounter) numbers sent as `visit_id`.",
    )
    local_code_system_base: str = "https://infusion-fhir.example.org/fhir/CodeSystem"
    canonical_base: str = Field(
        "https://infusion-fhir.example.org/fhir",
        description="Base of the service's own canonical URLs, e.g. its Questionnaires (`{base}/Questionnaire/gad7`).",
    )
    practitioner_identifier_system: str = "https://infusion-fhir.example.org/fhir/sid/practitioner"
    medication_product_system: str | None = Field(
        None, description="System of an extra product code on the medication (e.g. NDC or RxNorm SCD)."
    )
    medication_product_code: str | None = None
    medication_product_display: str | None = None
    safety_thresholds: str = Field(
        "",
        description="The clinic's safety thresholds over the defaults of docs/clinical-mapping.md section 12, as a "
        'JSON list: `{"instrument": "madrs", "item": "10", "at_least": 1}` (item answers at or above `at_least` are '
        'positive) or `{"instrument": "cssrs_screen", "flag_at": "low"}` (the C-SSRS triage that raises the Flag). '
        'A more sensitive rule needs nothing more; a less sensitive one needs `"acknowledge_less_sensitive": true` '
        "and is logged at start and named in every trend answer that used it. A rule cannot be switched off.",
    )
    monitoring_protocol_file: str | None = Field(
        None,
        description="TOML file of the clinic's infusion monitoring protocol, the limits every reading is interpreted "
        "against (default: the shipped defaults, service/monitoring/default-protocol.toml). Its medical director "
        "owns the numbers. A bad file stops the service and the batch commands at start (exit 2), naming the field.",
    )
    monitoring_summaries: bool = Field(
        True,
        description="Write each infusion session's monitoring summary (DiagnosticReport, statistics Observations) and "
        "critical-episode Flag whenever the API or batch `sync` changes its readings, scores, adverse events or times. "
        "Off: only `POST .../$monitoring-summary` writes them (the GET computes the summary either way). A write "
        "that may raise the Flag, and every retraction, refreshes them before it is answered; any other write, "
        "right after it (its answer's `monitoring_summary.deferred` names the sessions).",
    )
    monitoring_charts: bool = Field(
        True,
        description="Each summary's DiagnosticReport presents the session's chart as a PNG (`presentedForm`); off: "
        "no chart in the report (`GET .../$monitoring-summary` with `Accept: image/png` draws it either way).",
    )
    monitoring_drain_seconds: float = Field(
        30.0,
        ge=0,
        description="At shutdown, how long the service waits for the summaries it is still refreshing after "
        "answered writes; those left are named (by session key) in the log, for a POST or a sync to redo.",
    )
    audit_log: str = Field(
        "var/audit/audit.jsonl",
        description="The audit log (docs/security.md): one AuditEvent per line (FHIR JSON) for every /v1 request and "
        "every patient of a batch job, in a file of its own created with mode 0600; a relative path is under the "
        "working directory. Empty: no audit log file.",
    )
    audit_log_max_bytes: int = Field(
        50_000_000, gt=0, description="The audit log is rotated (`.1`, `.2`, ...) before it grows past this size."
    )
    audit_log_keep: int = Field(
        10,
        ge=1,
        description="Rotated audit log files kept; the oldest beyond them is deleted (retention beyond "
        "this is the deploying organisation's: ship the files to its SIEM).",
    )
    audit_log_fsync: bool = Field(
        False,
        description="fsync the audit log after each line (survives a power cut, not only a crash of the service; "
        "costs a disk flush per request). Off: each line is written to the kernel before the answer is sent.",
    )
    audit_fhir_url: str | None = Field(
        None,
        description="Base URL of a FHIR server that keeps the AuditEvents (an audit store; may be the same HAPI), "
        "sent in transaction Bundles off the request path. Unset: no audit store.",
    )
    audit_fhir_bearer_token: SecretStr | None = Field(
        None,
        description="Bearer token sent to the audit store, if it needs one (never logged or shown). The FHIR "
        "server's credentials are never sent there: the store is a server of its own.",
    )
    audit_spool_dir: str = Field(
        "var/audit/spool",
        description="Where AuditEvents wait (one 0600 file each) until the audit store has them: none is lost while "
        "the store is down or the service restarts; what a run left is sent at the next start.",
    )
    audit_batch_size: int = Field(100, ge=1, le=1000, description="AuditEvents per Bundle sent to the audit store.")
    audit_drain_seconds: float = Field(
        10.0,
        ge=0,
        description="At shutdown, how long the service tries to send the spooled AuditEvents; the rest "
        "stays spooled for the next start.",
    )
    audit_balp_profiles: bool = Field(
        False,
        description="Each AuditEvent that meets an IHE BALP profile names it in `meta.profile` (a success of a read, "
        "create, update or delete of one record). Off by default: a FHIR server without the BALP package (the local "
        "HAPI among them) answers `$validate` of such a claim with an error; turn it on where the audit store holds it.",
    )
    audit_failure: Literal["refuse", "serve"] = Field(
        "refuse",
        description="When no audit sink can record a request's event: `refuse` answers 503 (OperationOutcome, "
        "Retry-After) instead of the answer (docs/security.md says what was still performed); `serve` answers as "
        "usual and logs `audit.sink_failed` (no PHI), counted in infusion_fhir_audit_sink_failures_total.",
    )
    provenance: bool = Field(
        True,
        description="Every write transaction carries one Provenance per patient and activity (docs/security.md, "
        "section Provenance): the service as assembler, the caller as transmitter, the clinic as author, the "
        "source records as entities. A DELETE (a retraction) rewrites the Provenances naming what it deletes.",
    )
    provenance_clinic_name: str = Field(
        "Infusion clinic", description="Name of the clinic, the Organization every Provenance names as its author."
    )
    provenance_clinic_identifier: str = Field(
        "https://infusion-fhir.example.org/fhir/sid/organization|clinic",
        description="The clinic Organization's identifier, as `system|value` (e.g. its NPI: "
        "`http://hl7.org/fhir/sid/us-npi|1234567893`); its resource id derives from it.",
    )
    _protocol: Protocol | None = PrivateAttr(None)

    @field_validator("audit_fhir_url")
    @classmethod
    def _audit_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("INFUSION_FHIR_AUDIT_FHIR_URL must be an absolute http(s) URL")
        return value.strip().rstrip("/")

    @field_validator("fhir_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        """An absolute http(s) URL without query or fragment: refused at start-up otherwise."""
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("FHIR_BASE_URL must be an absolute http(s) URL, e.g. https://fhir.example.org/r4")
        return value.strip().rstrip("/")

    @field_validator("monitoring_protocol_file")
    @classmethod
    def _blank_protocol_is_default(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None

    @field_validator("smart_client_id", "smart_private_key_file", "smart_key_id", "smart_token_url")
    @classmethod
    def _smart_blank_is_unset(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None

    @field_validator("smart_token_url")
    @classmethod
    def _smart_token_url(cls, value: str | None) -> str | None:
        parts = urlsplit(value or "")
        if value is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("INFUSION_FHIR_SMART_TOKEN_URL must be an absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _smart_usable(self) -> Settings:
        """SMART settings that cannot work are refused at start-up, each with what to set."""
        if self.smart_client_id is None:
            if self.smart_private_key_file:
                raise ValueError("INFUSION_FHIR_SMART_PRIVATE_KEY_FILE is set but INFUSION_FHIR_SMART_CLIENT_ID is not")
            return self
        if not self.smart_private_key_file:
            raise ValueError(
                "INFUSION_FHIR_SMART_CLIENT_ID is set but INFUSION_FHIR_SMART_PRIVATE_KEY_FILE is not: SMART Backend "
                "Services signs with a private key (`infusion-fhir smart-keygen` makes one)"
            )
        if self.fhir_bearer_token is not None:
            raise ValueError("set either INFUSION_FHIR_FHIR_BEARER_TOKEN or SMART (INFUSION_FHIR_SMART_CLIENT_ID)")
        if not self.smart_scopes.split():
            raise ValueError("INFUSION_FHIR_SMART_SCOPES is empty")
        load_signing_key(self.smart_private_key_file, self.smart_key_id)  # SmartKeyError (a ValueError) says why
        return self

    @field_validator("oauth_issuer", "oauth_audience")
    @classmethod
    def _oauth_blank_is_unset(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None

    @field_validator("oauth_issuer")
    @classmethod
    def _issuer_url(cls, value: str | None) -> str | None:
        """An absolute http(s) URL without query or fragment (kept exactly: it is compared with `iss`)."""
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("INFUSION_FHIR_OAUTH_ISSUER must be an absolute http(s) URL, e.g. https://idp.example.org")
        return value

    @model_validator(mode="after")
    def _oauth_audience_required(self) -> Settings:
        """Tokens are never accepted without an audience check."""
        if self.oauth_issuer and not self.oauth_audience:
            raise ValueError("INFUSION_FHIR_OAUTH_ISSUER is set: INFUSION_FHIR_OAUTH_AUDIENCE is required too")
        return self

    @field_validator("safety_thresholds")
    @classmethod
    def _safety_thresholds(cls, value: str) -> str:
        """Overrides that cannot apply (unacknowledged weakening, a rule switched off, a typo) stop the start."""
        try:
            apply_overrides(DEFINITIONS, _overrides(value))
        except ThresholdError as error:
            raise ValueError(f"INFUSION_FHIR_SAFETY_THRESHOLDS: {error}") from None
        return value

    def safety_overrides(self) -> tuple[Override, ...]:
        """The clinic's safety threshold overrides (checked when the settings were made)."""
        return _overrides(self.safety_thresholds)

    @field_validator("api_keys")
    @classmethod
    def _api_keys(cls, value: str) -> str:
        """A bad or repeated name stops the start (a digest that is not one matches no key, as before)."""
        named_api_keys(value)
        return value

    def api_key_digests(self) -> frozenset[str]:
        """The accepted API key digests, lower-cased, blanks dropped."""
        return frozenset(named_api_keys(self.api_keys))

    def api_key_names(self) -> dict[str, str]:
        """Digest -> the caller name it is recorded under (`name=<digest>`; a bare digest: `key-<first 8 hex>`)."""
        return named_api_keys(self.api_keys)

    def monitoring_protocol(self) -> Protocol:
        """The monitoring protocol, read once per settings object (`ProtocolError` naming the field when unusable)."""
        if self._protocol is None:
            self._protocol = load_protocol(self.monitoring_protocol_file)
        return self._protocol

    def mapping_config(self) -> MappingConfig:
        """The URIs and monitoring protocol the pure mappers need, taken from these settings."""
        return MappingConfig(
            identifier_system_base=self.identifier_system_base,
            mrn_system=self.mrn_system,
            visit_system=self.visit_system,
            local_code_system_base=self.local_code_system_base,
            canonical_base=self.canonical_base.rstrip("/"),
            practitioner_identifier_system=self.practitioner_identifier_system,
            medication_product_coding=self._product_coding(),
            fhir_base_url=self.fhir_base_url,
            safety_overrides=self.safety_overrides(),
            protocol=self.monitoring_protocol(),
        )

    def _product_coding(self) -> tuple[str, str, str] | None:
        if not (self.medication_product_system and self.medication_product_code):
            return None
        return (
            self.medication_product_system,
            self.medication_product_code,
            self.medication_product_display or self.medication_product_code,
        )


def named_api_keys(text: str) -> dict[str, str]:
    """INFUSION_FHIR_API_KEYS (`name=<sha256>` or a bare `<sha256>`, comma-separated) as digest -> name;
    ValueError naming the entry's position, never its digest."""
    out: dict[str, str] = {}
    for position, entry in enumerate((e.strip() for e in text.split(",") if e.strip()), start=1):
        name, named, digest = entry.rpartition("=")
        digest = digest.strip().lower()
        name = name.strip() if named else f"key-{digest[:8]}"
        if named and not CALLER_NAME_PATTERN.fullmatch(name):
            raise ValueError(f"INFUSION_FHIR_API_KEYS entry {position}: a name is 1-64 of A-Z a-z 0-9 . _ - @ :")
        if name in out.values() and out.get(digest) != name:
            raise ValueError(f"INFUSION_FHIR_API_KEYS entry {position}: the name {name} is given twice")
        out[digest] = name
    return out


def _overrides(text: str) -> tuple[Override, ...]:
    """The overrides in INFUSION_FHIR_SAFETY_THRESHOLDS (blank: none); ValueError saying what is wrong."""
    if not text.strip():
        return ()
    try:
        entries = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("INFUSION_FHIR_SAFETY_THRESHOLDS is not valid JSON") from None
    try:
        return parse_overrides(entries)
    except ValueError as error:
        raise ValueError(f"INFUSION_FHIR_SAFETY_THRESHOLDS: {error}") from None
