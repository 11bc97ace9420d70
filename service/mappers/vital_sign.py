"""vital_sign <-> Observation with the base vital-sign profile (blood pressure as the 85354-9 panel)."""

from __future__ import annotations

from typing import Any

from schemas import kinds
from schemas.vital_sign import VitalSign
from service.mappers import codes, interpretation, narrative
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


def _measured(record: VitalSign, phase: str | None, config: MappingConfig) -> tuple[Json, str | None]:
    """The value elements (valueQuantity, or blood pressure's components) with their interpretation and
    reference ranges in `phase`, and the interpretation in words for the narrative."""
    levels: list[tuple[str, str]] = []
    if record.type == "blood_pressure":
        # The record's validators require systolic and diastolic for blood_pressure.
        assert record.systolic is not None and record.diastolic is not None
        components = []
        for measure, code, value in (
            ("systolic", codes.BP_SYSTOLIC, record.systolic),
            ("diastolic", codes.BP_DIASTOLIC, record.diastolic),
        ):
            component = {"code": concept((code,), config), "valueQuantity": quantity(value, BP_UNIT)}
            judged = interpretation.judged(config.protocol, measure, phase, value)
            if judged is not None:
                component.update(judged[0])
                if judged[1] is not None:
                    levels.append((measure, judged[1]))
            components.append(component)
        return {"component": components}, interpretation.words(levels)
    # The record's validators require value for the other types, and fill in unit when only one is allowed.
    assert record.value is not None and record.unit is not None
    out: Json = {"valueQuantity": quantity(record.value, record.unit)}
    judged = interpretation.judged(config.protocol, record.type, phase, record.value)
    if judged is not None:
        out.update(judged[0])
        if judged[1] is not None:
            levels.append(("", judged[1]))
    if record.supplemental_o2 is not None:
        out["component"] = [
            {
                "code": concept((codes.SUPPLEMENTAL_O2,), config, codes.SUPPLEMENTAL_O2_TEXT),
                "valueBoolean": record.supplemental_o2,
            }
        ]
    return out, interpretation.words(levels)


def to_fhir_json(record: VitalSign, config: MappingConfig, session: SessionContext | None = None) -> list[Json]:
    """One Observation in the session's visit; `partOf` its Procedure when measured during the infusion;
    interpreted against the monitoring protocol in the reading's phase (`interpretation.py`)."""
    vital = codes.VITALS[record.type]
    ctx = context_for(record.session_key, session, config)
    part_of, status = observation_links(record.measured_at, ctx, config)
    measured, said = _measured(record, None if ctx is None else ctx.phase(record.measured_at), config)
    text = narrative.vital_sign(record, bool(part_of), status == codes.ENTERED_IN_ERROR, said)
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
    out.update(measured)
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
        for component in observation.component or []:
            if has_code(component.code, codes.SUPPLEMENTAL_O2, config) and component.valueBoolean is not None:
                fields["supplemental_o2"] = component.valueBoolean
    return fields


def record_fields(parts: Parts, key: str, config: MappingConfig) -> dict[str, Any]:
    """Record fields of the vital sign `key` among indexed resources (see `build.parts_of`)."""
    return {"key": key, **observation_fields(parts[(KIND, key, PART)], config)}


from_fhir = reverse_mapper(KIND, record_fields)
