"""Builders of FHIR JSON fragments and readers of R4B models, shared by the kind mappers.

Builders return JSON-ready dicts with keys in the element order fhir.resources serialises, so a
mapper's JSON equals `to_json` of the R4B model validated from it (tests/unit/test_fast_path.py).
Fragments made only of codes.py constants and configured URIs are built once per config through the
R4B models, hence validated, then cached and shared: treat mapped JSON as read-only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from schemas.kinds import SESSION
from service.mappers import codes
from service.mappers.codes import Code, LocalCode
from service.mappers.config import MappingConfig
from service.mappers.context import SessionContext
from service.mappers.fhir import (
    CodeableConcept,
    Coding,
    DomainResource,
    Extension,
    Identifier,
    Meta,
    Quantity,
    Reference,
    as_resource,
    to_json,
)
from service.mappers.ids import (
    SLOTS,
    identifier_system,
    identifier_value,
    parse_identifier,
    patient_urn,
    resource_id,
    resource_ref,
    resource_type,
)

if TYPE_CHECKING:
    from schemas import Record

VISIT = "visit"  # parts_of's kind for an EHR visit Encounter (identified in config.visit_system)
Json = dict[str, Any]
Parts = dict[tuple[str, str, str], Any]
"""Resources read back, indexed by `parts_of`. The resource type of each part is the one ids.SLOTS
names, but nothing checks it on the way in: the kind mappers read these models duck-typed (Any)."""
K = TypeVar("K")


@lru_cache(maxsize=1024)
def coding(code: Code | LocalCode, config: MappingConfig) -> Json:
    """A Coding of a published or a local code (validated once, then cached)."""
    if isinstance(code, LocalCode):
        system = codes.local_system(config.local_code_system_base, code.system_path)
        return to_json(Coding(system=system, code=code.code, display=code.display))
    return to_json(Coding(system=code.system, code=code.code, display=code.display))


@lru_cache(maxsize=1024)
def concept(items: tuple[Code | LocalCode, ...], config: MappingConfig, text: str | None = None) -> Json:
    """A CodeableConcept of codes.py codes and constant text (cached: never pass record text)."""
    return to_json(CodeableConcept(coding=[Coding(**coding(item, config)) for item in items], text=text))


def concept_with_text(items: tuple[Code | LocalCode, ...], config: MappingConfig, text: str | None) -> Json:
    """A CodeableConcept of codes with free (record) text, if any."""
    out = concept(items, config)
    return out if text is None else {"coding": out["coding"], "text": text}


def has_code(value: CodeableConcept | None, code: Code | LocalCode, config: MappingConfig) -> bool:
    """Whether a CodeableConcept carries `code`."""
    wanted = coding(code, config)
    system, code_ = wanted["system"], wanted["code"]
    return any(c.system == system and c.code == code_ for c in (value.coding or [] if value else []))


def pick(value: CodeableConcept | None, table: Mapping[K, Code | LocalCode], config: MappingConfig) -> K | None:
    """The key of the first table entry whose code `value` carries, else None."""
    for name, code in table.items():
        if has_code(value, code, config):
            return name
    return None


def number(value: float) -> int | float:
    """A measurement as JSON shows it best: integral values without a trailing `.0`."""
    return int(value) if float(value).is_integer() else value


def from_decimal(value: Decimal | float | int | None) -> float:
    """A FHIR decimal back as the record's float (ValueError when absent: data we cannot read back)."""
    if value is None:
        raise ValueError("a FHIR decimal is missing")
    return float(value)


@lru_cache(maxsize=64)
def _unit(ucum: str) -> Json:
    """unit, system and code of a UCUM Quantity (validated once)."""
    return to_json(Quantity(unit=codes.UNIT_TEXT[ucum], system=codes.UCUM, code=ucum))


def quantity(value: float, ucum: str) -> Json:
    """A UCUM Quantity with value, unit, system and code all present."""
    return {"value": number(value), **_unit(ucum)}


@lru_cache(maxsize=256)
def configured_system(uri: str) -> str:
    """An identifier system from the settings, validated once."""
    system = Identifier(system=uri).system
    assert system is not None  # just set from a str
    return system


def identifier(kind: str, key: str, part: str, config: MappingConfig) -> Json:
    """The business identifier of one part of a record."""
    system = configured_system(identifier_system(kind, config))
    return {"system": system, "value": identifier_value(kind, key, part)}


def resource_head(
    kind: str,
    key: str,
    part: str,
    config: MappingConfig,
    meta: Json | None = None,
    extension: list[Json] | None = None,
    text: Json | None = None,
) -> Json:
    """resourceType, id, meta, text and extension (when given) and the identifier list of one part, in JSON order."""
    out: Json = {"resourceType": resource_type(kind, part), "id": resource_id(kind, key, part, config)}
    if meta is not None:
        out["meta"] = meta
    if text is not None:
        out["text"] = text
    if extension:
        out["extension"] = extension
    out["identifier"] = [identifier(kind, key, part, config)]
    return out


def suicide_risk_flag(
    kind: str,
    key: str,
    mrn: str,
    completed_at: dt.datetime,
    ctx: SessionContext | None,
    config: MappingConfig,
    code: tuple[Code | LocalCode, ...],
    text: str,
    narrative_text: Callable[[bool], Json],
) -> Json:
    """The suicide-risk Flag of a positive safety answer, pointing at the record's panel (core flag-detail).

    Written active once and then left to clinicians: the sync engine never writes over an existing
    Flag, and marks it entered-in-error only when the assessment itself is retracted. `narrative_text`
    takes whether the Flag is entered in error.
    """
    panel = resource_ref(kind, key, "panel", config)
    status = codes.ENTERED_IN_ERROR if ctx is not None and ctx.retracts_children else codes.FLAG_ACTIVE
    out = resource_head(
        kind,
        key,
        "flag",
        config,
        extension=[{"url": codes.EXT_FLAG_DETAIL, "valueReference": {"reference": panel}}],
        text=narrative_text(status == codes.ENTERED_IN_ERROR),
    )
    out.update(
        status=status,
        category=[concept((codes.FLAG_CATEGORY_SAFETY,), config)],
        code=concept(code, config, text),
        subject=subject(mrn, config),
        period={"start": when(completed_at)},
    )
    if ctx is not None:
        out["encounter"] = encounter_reference(ctx)
    return out


def session_link(session: SessionContext | None, config: MappingConfig) -> list[Json]:
    """The extension naming the session a child belongs to, and whether it came embedded in it."""
    if session is None:
        return []
    path = codes.EXT_EMBEDDED_IN_SESSION if session.embedded else codes.EXT_SESSION
    return [{"url": extension_url(path, config), "valueReference": session_reference(session.key, "procedure", config)}]


def linked_session_key(resource: DomainResource, config: MappingConfig) -> str | None:
    """The session key a child's resource names (session extension; `partOf` as written before it)."""
    base = config.local_code_system_base
    urls = {codes.local_system(base, codes.EXT_SESSION), codes.local_system(base, codes.EXT_EMBEDDED_IN_SESSION)}
    refs = [ext.valueReference for ext in resource.extension or [] if ext.url in urls and ext.valueReference]
    return referenced_session_key(refs, config) or referenced_session_key(getattr(resource, "partOf", None), config)


def observation_links(
    when_: dt.datetime, session: SessionContext | None, config: MappingConfig
) -> tuple[list[Json] | None, str]:
    """(partOf, status) of a child Observation: partOf the Procedure only when measured during the infusion."""
    status = codes.ENTERED_IN_ERROR if session is not None and session.retracts_children else codes.OBSERVATION_FINAL
    if session is not None and session.during(when_):
        return [session_reference(session.key, "procedure", config)], status
    return None, status


def encounter_reference(session: SessionContext | None) -> Json | None:
    """The reference to the session's visit (None for a record outside any session)."""
    return None if session is None else {"reference": session.encounter}


@lru_cache(maxsize=64)
def extension_url(path: str, config: MappingConfig) -> str:
    """The URL of one of the service's own extensions (validated once per config)."""
    url = Extension(url=codes.local_system(config.local_code_system_base, path)).url
    assert url is not None  # just set from a str
    return url


@lru_cache(maxsize=64)
def profile(name: str) -> Json:
    """meta.profile with one base vital-sign profile (`bp`, `heartrate`, ...)."""
    return to_json(Meta(profile=[codes.VITAL_PROFILE_BASE + name]))


def subject(mrn: str, config: MappingConfig) -> Json:
    """The patient reference every resource carries (resolved by the server in a transaction)."""
    return {"reference": patient_urn(mrn, config)}


@lru_cache(maxsize=256)
def session_reference(session_key: str, part: str, config: MappingConfig) -> Json:
    """A literal reference to a session's resource, also carrying that resource's business identifier."""
    return {
        "reference": resource_ref(SESSION, session_key, part, config),
        "identifier": identifier(SESSION, session_key, part, config),
    }


def when(value: dt.datetime | dt.date) -> str:
    """A FHIR dateTime or date as fhir.resources writes it: ISO 8601, offset kept, UTC as `Z`."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def referenced_session_key(refs: Sequence[Reference] | None, config: MappingConfig) -> str | None:
    """The session key a (list of) reference(s) written by `session_reference` points at."""
    for ref in refs or []:
        ident = ref.identifier
        parsed = parse_identifier(ident.system, ident.value, config) if ident else None
        if parsed and parsed[0] == SESSION:
            return parsed[1]
    return None


def parts_of(
    resources: Iterable[DomainResource | dict[str, Any]], config: MappingConfig
) -> dict[tuple[str, str, str], DomainResource]:
    """Resources indexed by the (kind, key, part) of the business identifier this service gave them.

    An EHR visit's Encounter is indexed as (VISIT, visit id, "encounter").
    """
    out: dict[tuple[str, str, str], DomainResource] = {}
    for value in resources:
        resource = as_resource(value)
        # Every type in RESOURCE_CLASSES has `identifier`; DomainResource itself does not declare it.
        idents: list[Identifier] | Identifier | None = getattr(resource, "identifier")  # noqa: B009
        if idents is not None and not isinstance(idents, list):  # AdverseEvent.identifier is 0..1 in R4
            idents = [idents]
        for ident in idents or []:
            parsed = parse_identifier(ident.system, ident.value, config)
            if parsed:
                out[parsed] = resource
                break
            if ident.system == config.visit_system and ident.value and resource.get_resource_type() == "Encounter":
                out[(VISIT, ident.value, "encounter")] = resource
                break
    return out


def primary_part(kind: str) -> str:
    """The part whose identifier value is the bare record key (e.g. a session's `procedure`)."""
    return next(slot.part for slot in SLOTS[kind] if slot.primary)


def record_key(parts: dict[tuple[str, str, str], DomainResource], kind: str, key: str | None) -> str:
    """The key of the record of `kind` among `parts`: `key` if given and present, else the only one."""
    primary = primary_part(kind)
    found = sorted({k for (kind_, k, part) in parts if kind_ == kind and part == primary and key in (None, k)})
    if not found:
        raise ValueError(f"no {kind} {primary} resource given")
    if len(found) > 1:
        raise ValueError(f"resources of more than one {kind} given: name the key")
    return found[0]


def reverse_mapper(kind: str, record_fields: Callable[..., dict[str, Any]]) -> Callable[..., Record]:
    """The `from_fhir` of a kind: its record (the one of `key` when several) from resources read back."""

    def from_fhir(
        resources: Sequence[DomainResource | dict[str, Any]],
        patient: Any,
        config: MappingConfig,
        key: str | None = None,
    ) -> Record:
        from schemas import parse_record_of_kind

        parts = parts_of(resources, config)
        record = record_key(parts, kind, key)
        return parse_record_of_kind(kind, {**record_fields(parts, record, config), "patient": patient})

    from_fhir.__doc__ = f"The {kind} record from its resources as read back (the one of `key` when several are given)."
    return from_fhir
