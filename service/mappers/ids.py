"""Deterministic resource ids and business identifiers for every resource a record produces.

Scheme (stable; the sync engine relies on it):

* id = `<prefix>-<h>`: `prefix` names the resource's role (e.g. `pr` Procedure of a session,
  `pi` a PHQ-9 item); `h` is the first 26 characters of the lower-case, unpadded base32 SHA-256
  of `identifier_system_base|kind|key|part`. Always 29 characters of `[a-z0-9-]`, never numeric.
* identifier.system = `<identifier_system_base>/<kind with dashes>` (e.g. `.../infusion-session`);
  identifier.value = the record key for the record's primary resource, else `<key>/<part>`
  (e.g. `s-1/medication-administration`, `p-7/item-3`, `p-7/total`). Keys never contain `/`.
* The Patient has no deterministic id: it is created conditionally on its MRN identifier and
  referenced as `urn:uuid:<uuid5>` of the escaped `mrn_system|mrn` token (see `patient_urn`).
  The EHR's own visit (a session's `visit_id`) is an Encounter handled the same way (`visit_urn`).
* An MRN or visit id holding a character FHIR search must escape (`\\ , $ |`) is never matched by that value: some
  servers do not honour the escapes (Medplum's engine splits a token at every `,` and `|`, so `MRN|` matched the
  Patient of MRN `MRN`; docs/compatibility.md, row 17). Its Patient or Encounter also carries a match key,
  identifier `<identifier_system_base>/match-key` = hex SHA-256 of the system and value, which the conditional
  create matches on and every search adds (`match_identifier`, `patient_tokens`); what a search returns is kept
  only when it holds exactly the MRN or visit id.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from schemas.kinds import embedded_children
from service.instruments import DEFINITIONS
from service.mappers.config import MappingConfig
from service.monitoring.model import STATISTIC_MEASURES

MONITORING_SUMMARY = "monitoring_summary"
"""Not a record kind: the resources the service derives for a session (its summary and critical-episode Flag),
under the session's key."""


@dataclass(frozen=True)
class Slot:
    """One resource a record kind can produce."""

    resource_type: str
    part: str
    prefix: str
    optional: bool = False
    primary: bool = False


@dataclass(frozen=True)
class ResourceId:
    """A resource a record of some kind and key produces (or may produce, when `optional`)."""

    resource_type: str
    id: str
    part: str
    optional: bool

    @property
    def ref(self) -> str:
        return f"{self.resource_type}/{self.id}"


SLOTS: dict[str, tuple[Slot, ...]] = {
    "infusion_session": (
        Slot("Procedure", "procedure", "pr", primary=True),
        Slot("MedicationAdministration", "medication-administration", "ma", optional=True),  # not when planned
        Slot("Observation", "dosing-weight", "bw", optional=True),  # only with dose.weight_kg
        Slot("Encounter", "encounter", "en", optional=True),  # only without the EHR's own visit_id
    ),
    "vital_sign": (Slot("Observation", "observation", "vs", primary=True),),
    "monitoring_score": (Slot("Observation", "observation", "ms", primary=True),),
    "adverse_event": (Slot("AdverseEvent", "adverse-event", "ae", primary=True),),
    "phq9_assessment": (
        Slot("Observation", "panel", "pq", primary=True),
        Slot("QuestionnaireResponse", "response", "qr"),  # since issue 21: PHQ-9s written before have none
        *(Slot("Observation", f"item-{n}", "pi") for n in range(1, 10)),
        Slot("Observation", "difficulty", "pd", optional=True),  # only with difficulty
        Slot("Observation", "total", "pt"),
        Slot("Flag", "flag", "fl", optional=True),  # only when item 9 > 0
    ),
}


def _assessment_slots() -> tuple[Slot, ...]:
    """The parts any instrument's assessment can produce: the union over the definitions, in mapping order.

    Item parts are named by linkId (`item-3`, `item-S6b`), subscales by their id (`score-cluster-b`), so
    an instrument added to the definitions brings its parts with it and no existing id changes.
    """
    item_ids = dict.fromkeys(item.link_id for d in DEFINITIONS.values() for item in d.items)
    subscale_ids = dict.fromkeys(rule.id for d in DEFINITIONS.values() for rule in d.subscales)
    return (
        Slot("QuestionnaireResponse", "response", "qr", primary=True),
        *(Slot("Observation", f"item-{link_id}", "ai", optional=True) for link_id in item_ids),  # answered only
        Slot("Observation", "difficulty", "ad", optional=True),  # PHQ-9, GAD-7 with difficulty
        Slot("Observation", "total", "at", optional=True),  # every instrument with a total (not C-SSRS)
        *(Slot("Observation", f"score-{score_id}", "as", optional=True) for score_id in subscale_ids),
        Slot("Observation", "triage", "ac", optional=True),  # C-SSRS
        Slot("Observation", "panel", "ap"),
        Slot("Flag", "flag", "fl", optional=True),  # a safety answer that raises the Flag
    )


SLOTS["assessment"] = _assessment_slots()
SLOTS[MONITORING_SUMMARY] = (
    Slot("DiagnosticReport", "report", "mr", primary=True),
    *(Slot("Observation", f"statistics-{measure}", "mt", optional=True) for measure in STATISTIC_MEASURES),
    Slot("Flag", "flag", "mf", optional=True),  # only while a confirmed rule fired
)
_SLOT_BY_PART = {(kind, slot.part): slot for kind, slots in SLOTS.items() for slot in slots}
_KIND_BY_SYSTEM_SUFFIX = {kind.replace("_", "-"): kind for kind in SLOTS}
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648, lower-cased
_BASE32_PAIRS = [a + b for a in _BASE32 for b in _BASE32]
_PAIR_SHIFTS = tuple(range(120, -1, -10))  # 13 pairs of 5-bit digits: the first 130 bits of the digest


def _slot(kind: str, part: str) -> Slot:
    try:
        return _SLOT_BY_PART[(kind, part)]
    except KeyError:
        raise ValueError(f"no resource part {part!r} for kind {kind!r}") from None


@lru_cache(maxsize=4096)  # a batch's ids are asked for again when it is accounted for (bounded: memory stays flat)
def resource_id(kind: str, key: str, part: str, config: MappingConfig) -> str:
    """The deterministic FHIR id of one part of a record."""
    slot = _slot(kind, part)
    seed = f"{config.identifier_system_base}|{kind}|{key}|{part}".encode()
    return f"{slot.prefix}-{base32_prefix(hashlib.sha256(seed).digest())}"


def base32_prefix(digest: bytes) -> str:
    """The first 26 characters of the lower-case RFC 4648 base32 of `digest` (>= 17 bytes).

    Equal to `base64.b32encode(digest).decode().lower()[:26]`, at a third of its cost.
    """
    bits = int.from_bytes(digest[:17], "big") >> 6
    return "".join([_BASE32_PAIRS[(bits >> shift) & 1023] for shift in _PAIR_SHIFTS])


def resource_type(kind: str, part: str) -> str:
    """The FHIR resource type of one part of a record."""
    return _slot(kind, part).resource_type


def resource_ref(kind: str, key: str, part: str, config: MappingConfig) -> str:
    """`Type/id` of one part of a record."""
    return f"{resource_type(kind, part)}/{resource_id(kind, key, part, config)}"


def resource_ids(kind: str, key: str, config: MappingConfig) -> list[ResourceId]:
    """Every (resourceType, id) a record of `kind` and `key` can produce, in dependency order.

    Parts marked optional exist only for some records (see `SLOTS`). A session's embedded
    children are records of their own kinds: list them with their own kind and key.
    """
    if kind not in SLOTS:
        raise ValueError(f"unknown record kind {kind!r}")
    return [
        ResourceId(slot.resource_type, resource_id(kind, key, slot.part, config), slot.part, slot.optional)
        for slot in SLOTS[kind]
    ]


def record_refs(record: Any, config: MappingConfig) -> list[str]:
    """`Type/id` of every resource a record can produce, its embedded children's included."""
    refs = [rid.ref for rid in resource_ids(record.kind, record.key, config)]
    for child in embedded_children(record):
        refs += [rid.ref for rid in resource_ids(child.kind, child.key, config)]
    return refs


def identifier_system(kind: str, config: MappingConfig) -> str:
    """The business-identifier system of a record kind."""
    return f"{config.identifier_system_base.rstrip('/')}/{kind.replace('_', '-')}"


def identifier_value(kind: str, key: str, part: str) -> str:
    """The record key for the primary part, else `<key>/<part>`."""
    return key if _slot(kind, part).primary else f"{key}/{part}"


def parse_identifier(system: str | None, value: str | None, config: MappingConfig) -> tuple[str, str, str] | None:
    """(kind, key, part) from a business identifier this service wrote, else None."""
    base = config.identifier_system_base.rstrip("/") + "/"
    if not system or not value or not system.startswith(base):
        return None
    kind = _KIND_BY_SYSTEM_SUFFIX.get(system[len(base) :])
    if kind is None:
        return None
    key, _, part = value.partition("/")
    if not part:
        part = next(slot.part for slot in SLOTS[kind] if slot.primary)
    if (kind, part) not in _SLOT_BY_PART:
        return None
    return kind, key, part


def search_escape(value: str) -> str:
    r"""FHIR search escaping of a token part: `\` -> `\\`, `,` -> `\,`, `$` -> `\$`, `|` -> `\|`."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("$", "\\$").replace("|", "\\|")


def mrn_of(patient: dict[str, Any], config: MappingConfig) -> str | None:
    """The MRN a Patient (JSON) holds under the configured system, if any."""
    return _value_under(patient, config.mrn_system)


def visit_of(encounter: dict[str, Any], config: MappingConfig) -> str | None:
    """The EHR visit id an Encounter (JSON) holds under the configured visit system, if any."""
    return _value_under(encounter, config.visit_system)


def _value_under(resource: dict[str, Any], system: str) -> str | None:
    return next((i.get("value") for i in resource.get("identifier", []) if i.get("system") == system), None)


def token(system: str, value: str) -> str:
    """The escaped `system|value` token search value of an identifier."""
    return f"{search_escape(system)}|{search_escape(value)}"


ESCAPED = frozenset("\\,$|")
"""The characters FHIR search escapes in a token (search.html#escaping)."""


def needs_match_key(value: str) -> bool:
    """Whether a token search for `value` would rely on the server honouring FHIR search escaping."""
    return not ESCAPED.isdisjoint(value)


def match_key_system(config: MappingConfig) -> str:
    return f"{config.identifier_system_base}/match-key"


def match_identifier(system: str, value: str, config: MappingConfig) -> dict[str, str] | None:
    """The match-key identifier (`use` secondary) of an identifier whose value needs escaping, else None.

    Its value is hex only, so a search for it needs no escaping on any server."""
    if not needs_match_key(value):
        return None
    digest = hashlib.sha256(f"{len(system)}:{system}|{value}".encode()).hexdigest()
    return {"use": "secondary", "system": match_key_system(config), "value": digest}


def match_keys(value: str, config: MappingConfig) -> list[str]:
    """The match-key values `value` has as an MRN and as a visit id (none when it needs no escaping)."""
    keys = (match_identifier(system, value, config) for system in (config.mrn_system, config.visit_system))
    return [key["value"] for key in keys if key is not None]


def _match_token(system: str, value: str, config: MappingConfig) -> str | None:
    ident = match_identifier(system, value, config)
    return None if ident is None else f"{search_escape(ident['system'])}|{ident['value']}"


def match_param(system: str, value: str, config: MappingConfig) -> str:
    """The `identifier` search value a conditional create matches on: the match key when there is one, else the
    escaped `system|value` token."""
    return _match_token(system, value, config) or token(system, value)


def patient_tokens(mrns: Iterable[str], config: MappingConfig) -> str:
    """The `identifier` search value finding the Patients of `mrns`: each MRN's token, and its match key when it
    has one. Keep only what holds exactly the MRN (`mrn_of`): a server may answer others (see the module)."""
    return ",".join(_tokens(config.mrn_system, mrns, config))


def visit_tokens(visit_ids: Iterable[str], config: MappingConfig) -> str:
    """`patient_tokens` for the EHR's visits (Encounters in `config.visit_system`)."""
    return ",".join(_tokens(config.visit_system, visit_ids, config))


def _tokens(system: str, values: Iterable[str], config: MappingConfig) -> Iterator[str]:
    for value in values:
        yield token(system, value)
        key = _match_token(system, value, config)
        if key is not None:
            yield key


def ids_by_type(refs: Iterable[str]) -> dict[str, list[str]]:
    """`Type/id` refs as {Type: [id, ...]}, in their order."""
    by_type: dict[str, list[str]] = {}
    for ref in refs:
        resource_type, _, resource_id = ref.partition("/")
        by_type.setdefault(resource_type, []).append(resource_id)
    return by_type


def patient_token(mrn: str, config: MappingConfig) -> str:
    """The escaped `system|value` token search value of a patient's MRN identifier."""
    return token(config.mrn_system, mrn)


@lru_cache(maxsize=4096)
def patient_urn(mrn: str, config: MappingConfig) -> str:
    """The deterministic `urn:uuid:` the mappers reference a patient by (uuid5 of its MRN token)."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, patient_token(mrn, config))}"


def visit_token(visit_id: str, config: MappingConfig) -> str:
    """The escaped `system|value` token search value of an EHR visit identifier."""
    return token(config.visit_system, visit_id)


@lru_cache(maxsize=4096)
def visit_urn(visit_id: str, config: MappingConfig) -> str:
    """The deterministic `urn:uuid:` an EHR visit's Encounter is referenced by inside a transaction."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'visit|' + visit_token(visit_id, config))}"
