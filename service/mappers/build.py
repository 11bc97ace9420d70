"""Small builders and readers shared by the kind mappers (codings, quantities, references, identity)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from service.mappers import codes
from service.mappers.codes import Code, LocalCode
from service.mappers.config import MappingConfig
from service.mappers.fhir import (
    CodeableConcept,
    Coding,
    DomainResource,
    Identifier,
    Meta,
    Quantity,
    Reference,
    as_resource,
)
from service.mappers.ids import (
    SLOTS,
    identifier_system,
    identifier_value,
    parse_identifier,
    patient_urn,
    resource_id,
    resource_ref,
)

SESSION = "infusion_session"


def coding(code: Code | LocalCode, config: MappingConfig) -> Coding:
    """A Coding of a published or a local code."""
    if isinstance(code, LocalCode):
        system = codes.local_system(config.local_code_system_base, code.system_path)
        return Coding(system=system, code=code.code, display=code.display)
    return Coding(system=code.system, code=code.code, display=code.display)


def concept(
    items: Iterable[Code | LocalCode], config: MappingConfig, text: str | None = None
) -> CodeableConcept:
    """A CodeableConcept of one or more codes, with optional text."""
    return CodeableConcept(coding=[coding(item, config) for item in items], text=text)


def has_code(value: CodeableConcept | None, code: Code | LocalCode, config: MappingConfig) -> bool:
    """Whether a CodeableConcept carries `code`."""
    wanted = coding(code, config)
    return any(
        c.system == wanted.system and c.code == wanted.code for c in (value.coding or [] if value else [])
    )


def pick(value: CodeableConcept | None, table: dict[Any, Code | LocalCode], config: MappingConfig) -> Any:
    """The key of the first table entry whose code `value` carries, else None."""
    for name, code in table.items():
        if has_code(value, code, config):
            return name
    return None


def number(value: float) -> int | float:
    """A measurement as JSON shows it best: integral values without a trailing `.0`."""
    return int(value) if float(value).is_integer() else value


def from_decimal(value: Decimal | float | int) -> float:
    """A FHIR decimal back as the record's float."""
    return float(value)


def quantity(value: float, ucum: str) -> Quantity:
    """A UCUM Quantity with value, unit, system and code all present."""
    return Quantity(value=number(value), unit=codes.UNIT_TEXT[ucum], system=codes.UCUM, code=ucum)


def identifier(kind: str, key: str, part: str, config: MappingConfig) -> Identifier:
    """The business identifier of one part of a record."""
    return Identifier(system=identifier_system(kind, config), value=identifier_value(kind, key, part))


def resource_identity(kind: str, key: str, part: str, config: MappingConfig) -> dict[str, Any]:
    """`id` and `identifier` (as a list) for a resource model's constructor."""
    return {"id": resource_id(kind, key, part, config), "identifier": [identifier(kind, key, part, config)]}


def profile(name: str) -> Meta:
    """meta.profile with one base vital-sign profile (`bp`, `heartrate`, ...)."""
    return Meta(profile=[codes.VITAL_PROFILE_BASE + name])


def subject(mrn: str, config: MappingConfig) -> Reference:
    """The patient reference every resource carries (resolved by the server in a transaction)."""
    return Reference(reference=patient_urn(mrn, config))


def session_reference(session_key: str, part: str, config: MappingConfig) -> Reference:
    """A literal reference to a session's resource, also carrying that resource's business identifier."""
    return Reference(
        reference=resource_ref(SESSION, session_key, part, config),
        identifier=identifier(SESSION, session_key, part, config),
    )


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
    """Resources indexed by the (kind, key, part) of the business identifier this service gave them."""
    out: dict[tuple[str, str, str], DomainResource] = {}
    for value in resources:
        resource = as_resource(value)
        idents = resource.identifier
        if idents is not None and not isinstance(idents, list):  # AdverseEvent.identifier is 0..1 in R4
            idents = [idents]
        for ident in idents or []:
            parsed = parse_identifier(ident.system, ident.value, config)
            if parsed:
                out[parsed] = resource
                break
    return out


def primary_part(kind: str) -> str:
    """The part whose identifier value is the bare record key (e.g. a session's `procedure`)."""
    return next(slot.part for slot in SLOTS[kind] if slot.primary)


def record_key(parts: dict[tuple[str, str, str], DomainResource], kind: str, key: str | None) -> str:
    """The key of the record of `kind` among `parts`: `key` if given and present, else the only one."""
    primary = primary_part(kind)
    found = sorted(
        {k for (kind_, k, part) in parts if kind_ == kind and part == primary and key in (None, k)}
    )
    if not found:
        raise ValueError(f"no {kind} {primary} resource given")
    if len(found) > 1:
        raise ValueError(f"resources of more than one {kind} given: name the key")
    return found[0]


def fhir_datetime(value: Any) -> dt.datetime:
    """A FHIR dateTime as read back (a datetime with offset); partial dates are not ours."""
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValueError("expected a dateTime with a UTC offset")
    return value
