"""vital_sign <-> Observation with the base vital-sign profile (blood pressure as the 85354-9 panel)."""

from __future__ import annotations

from typing import Any

from schemas import kinds
from schemas.vital_sign import VitalSign
from service.mappers import codes, narrative
from service.mappers.build import (
    Json,
    Parts,
    concept,
    encounter_reference,
    from_decimal,
    has_code,
    linked_session_key,
    observation_links,
    profile,
    quantity,
    resource_head,
    reverse_mapper,
    session_link,
    subject,
    when,
)
from service.mappers.config import MappingConfig
from service.mappers.context import SessionContext, context_for
from service.mappers.fhir import Observation

KIND = kinds.VITAL_SIGN
PART = "observation"
BP_UNIT = "mm[Hg]"


def to_fhir_json(record: VitalSign, config: MappingConfig, session: SessionContext | None = None) -> list[Json]:
    """One Observation in the session's visit; `partOf` its Procedure when measured during the infusion."""
    vital = codes.VITALS[record.type]
    ctx = context_for(record.session_key, session, config)
    part_of, status = observation_links(record.measured_at, ctx, config)
    text = narrative.vital_sign(record, bool(part_of), status == codes.ENTERED_IN_ERROR)
    out = resource_head(
        KIND, record.key, PART, config, meta=profile(vital.profile), extension=session_link(ctx, config), text=text
    )
    if part_of:
        out["partOf"] = part_of
    out["status"] = status
    out["category"] = [concept((codes.CATEGORY_VITAL_SIGNS,), config)]
    out["code"] = concept(vital.codes, config, vital.text)
    out["subject"] = subject(record.patient.mrn, config)
    if ctx is not None:
        out["encounter"] = encounter_reference(ctx)
    out["effectiveDateTime"] = when(record.measured_at)
    if record.type == "blood_pressure":
        # The record's validators require systolic and diastolic for blood_pressure.
        assert record.systolic is not None and record.diastolic is not None
        out["component"] = [
            {"code": concept((code,), config), "valueQuantity": quantity(value, BP_UNIT)}
            for code, value in ((codes.BP_SYSTOLIC, record.systolic), (codes.BP_DIASTOLIC, record.diastolic))
        ]
    else:
        # The record's validators require value for the other types, and fill in unit when only one is allowed.
        assert record.value is not None and record.unit is not None
        out["valueQuantity"] = quantity(record.value, record.unit)
    return [out]


def observation_fields(observation: Observation, config: MappingConfig) -> dict[str, Any]:
    """The record fields (except key and patient) carried by a vital-sign Observation."""
    vital_type = next(
        (name for name, vital in codes.VITALS.items() if has_code(observation.code, vital.codes[0], config)),
        None,
    )
    if vital_type is None:
        raise ValueError("the Observation is not a vital sign this service writes")
    fields: dict[str, Any] = {"measured_at": observation.effectiveDateTime, "type": vital_type}
    session_key = linked_session_key(observation, config)
    if session_key is not None:
        fields["session_key"] = session_key
    if vital_type == "blood_pressure":
        for component in observation.component or []:
            for name, code in (("systolic", codes.BP_SYSTOLIC), ("diastolic", codes.BP_DIASTOLIC)):
                if has_code(component.code, code, config) and component.valueQuantity is not None:
                    fields[name] = from_decimal(component.valueQuantity.value)
                    fields["unit"] = component.valueQuantity.code
    elif observation.valueQuantity is not None:
        fields["value"] = from_decimal(observation.valueQuantity.value)
        fields["unit"] = observation.valueQuantity.code
    return fields


def record_fields(parts: Parts, key: str, config: MappingConfig) -> dict[str, Any]:
    """Record fields of the vital sign `key` among indexed resources (see `build.parts_of`)."""
    return {"key": key, **observation_fields(parts[(KIND, key, PART)], config)}


from_fhir = reverse_mapper(KIND, record_fields)
