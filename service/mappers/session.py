"""infusion_session <-> Procedure + MedicationAdministration (+ dosing-weight Observation + children).

A planned session has no MedicationAdministration: R4 medication-admin-status has no planned
state and nothing has been given. Embedded children are mapped by their own kind modules.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from schemas.session import InfusionSession
from service.mappers import adverse_event, codes, monitoring_score, phq9, vital_sign
from service.mappers.build import (
    Json,
    concept,
    configured_system,
    extension_url,
    from_decimal,
    has_code,
    number,
    pick,
    primary_part,
    profile,
    quantity,
    resource_head,
    reverse_mapper,
    session_reference,
    subject,
    when,
)
from service.mappers.config import MappingConfig
from service.mappers.fhir import DomainResource, Procedure

KIND = "infusion_session"
CHILDREN = (  # (record field, kind module), in the order their resources follow the session's
    ("vital_signs", vital_sign),
    ("monitoring_scores", monitoring_score),
    ("phq9_assessments", phq9),
    ("adverse_events", adverse_event),
)
_INDICATIONS = {name: code for name, code in codes.INDICATIONS.items() if name != "trd"}


def _reason(indication: str, config: MappingConfig) -> Json:
    code = codes.INDICATIONS[indication]
    if indication == "trd":
        return concept((code, codes.TRD_LOCAL), config, codes.TRD_TEXT)
    return concept((code,), config, code.display)


def _clinician(record: InfusionSession, config: MappingConfig) -> Json | None:
    if record.clinician is None:
        return None
    system = configured_system(config.practitioner_identifier_system)
    actor: Json = {"identifier": {"system": system, "value": record.clinician.id}}
    if record.clinician.name is not None:
        actor["display"] = record.clinician.name
    return actor


def dosage_text(record: InfusionSession) -> str:
    """The human-readable dose line, e.g. `35 mg ketamine IV (0.5 mg/kg) at 0.5 mg/kg/h over 40 min`."""
    dose = record.dose
    text = f"{number(dose.total_mg)} mg ketamine IV"
    if dose.mg_per_kg is not None:
        text += f" ({number(dose.mg_per_kg)} mg/kg)"
    if dose.rate is not None:
        text += f" at {number(dose.rate.value)} {dose.rate.unit}"
    if record.ended_at is not None:
        text += f" over {round((record.ended_at - record.started_at).total_seconds() / 60)} min"
    return text


def _dosage(record: InfusionSession, config: MappingConfig) -> Json:
    dose = record.dose
    out: Json = {}
    if dose.mg_per_kg is not None:
        url = extension_url(codes.EXT_DOSE_PER_KG, config)
        out["extension"] = [{"url": url, "valueQuantity": quantity(dose.mg_per_kg, codes.UNIT_MG_PER_KG)}]
    out["text"] = dosage_text(record)
    out["route"] = concept((codes.ROUTE_INTRAVENOUS,), config)
    out["dose"] = quantity(dose.total_mg, codes.UNIT_MG)
    if dose.rate is not None:
        out["rateQuantity"] = quantity(dose.rate.value, dose.rate.unit)
    return out


@lru_cache(maxsize=16)
def _medication(config: MappingConfig) -> Json:
    items = codes.KETAMINE_CODINGS
    if config.medication_product_coding is not None:
        items = (*items, codes.Code(*config.medication_product_coding))
    return concept(items, config, codes.KETAMINE_TEXT)


def _period(record: InfusionSession) -> Json:
    if record.ended_at is None:
        return {"start": when(record.started_at)}
    return {"start": when(record.started_at), "end": when(record.ended_at)}


def _procedure(record: InfusionSession, config: MappingConfig, patient: Json, clinician: Json | None) -> Json:
    out = resource_head(KIND, record.key, "procedure", config)
    out["status"] = codes.PROCEDURE_STATUS[record.status]
    if record.stop_reason is not None:
        out["statusReason"] = {"text": record.stop_reason}
    out.update(
        category=concept((codes.PROCEDURE_CATEGORY,), config),
        code=concept((codes.PROCEDURE_CODE,), config, codes.PROCEDURE_TEXT),
        subject=patient,
        performedPeriod=_period(record),
    )
    if clinician is not None:
        out["performer"] = [{"actor": clinician}]
    out["reasonCode"] = [_reason(indication, config) for indication in record.indications]
    if record.note is not None:
        out["note"] = [{"text": record.note}]
    return out


def _administration(
    record: InfusionSession, config: MappingConfig, patient: Json, clinician: Json | None
) -> Json:
    out = resource_head(KIND, record.key, "medication-administration", config)
    out["partOf"] = [session_reference(record.key, "procedure", config)]
    out["status"] = codes.MED_ADMIN_STATUS[record.status]
    if record.stop_reason is not None:
        out["statusReason"] = [{"text": record.stop_reason}]
    out.update(
        category=concept((codes.MED_ADMIN_CATEGORY_OUTPATIENT,), config),
        medicationCodeableConcept=_medication(config),
        subject=patient,
        effectivePeriod=_period(record),
    )
    if clinician is not None:
        out["performer"] = [{"actor": clinician}]
    if record.dose is not None:
        out["dosage"] = _dosage(record, config)
    return out


def _dosing_weight(record: InfusionSession, config: MappingConfig, patient: Json) -> Json:
    weight = codes.VITALS["body_weight"]
    return {
        **resource_head(KIND, record.key, "dosing-weight", config, meta=profile(weight.profile)),
        "partOf": [session_reference(record.key, "procedure", config)],
        "status": codes.ENTERED_IN_ERROR if record.status == "entered_in_error" else codes.OBSERVATION_FINAL,
        "category": [concept((codes.CATEGORY_VITAL_SIGNS,), config)],
        "code": concept(weight.codes, config, codes.DOSING_WEIGHT_TEXT),
        "subject": patient,
        "effectiveDateTime": when(record.started_at),
        "valueQuantity": quantity(record.dose.weight_kg, codes.UNIT_KG),
    }


def to_fhir_json(record: InfusionSession, config: MappingConfig) -> list[Json]:
    """Procedure, MedicationAdministration (not when planned), dosing weight, then the children's."""
    patient = subject(record.patient.mrn, config)
    clinician = _clinician(record, config)
    out = [_procedure(record, config, patient, clinician)]
    if record.status in codes.MED_ADMIN_STATUS:
        out.append(_administration(record, config, patient, clinician))
    if record.dose is not None and record.dose.weight_kg is not None:
        out.append(_dosing_weight(record, config, patient))
    for field, module in CHILDREN:
        for child in getattr(record, field):
            out.extend(module.to_fhir_json(child, config))
    return out


def _dose_fields(parts: dict, key: str, config: MappingConfig) -> dict[str, Any] | None:
    found = parts.get((KIND, key, "medication-administration"))
    dosage = found.dosage if found is not None else None
    if dosage is None or dosage.dose is None:
        return None
    dose: dict[str, Any] = {"total_mg": from_decimal(dosage.dose.value)}
    url = codes.local_system(config.local_code_system_base, codes.EXT_DOSE_PER_KG)
    per_kg = next((e for e in dosage.extension or [] if e.url == url), None)
    if per_kg is not None:
        dose["mg_per_kg"] = from_decimal(per_kg.valueQuantity.value)
    weight = parts.get((KIND, key, "dosing-weight"))
    if weight is not None:
        dose["weight_kg"] = from_decimal(weight.valueQuantity.value)
    if dosage.rateQuantity is not None:
        dose["rate"] = {"value": from_decimal(dosage.rateQuantity.value), "unit": dosage.rateQuantity.code}
    return dose


def _procedure_fields(procedure: Procedure, config: MappingConfig) -> dict[str, Any]:
    if not has_code(procedure.code, codes.PROCEDURE_CODE, config):
        raise ValueError("the Procedure is not an infusion session this service writes")
    status = next((name for name, code in codes.PROCEDURE_STATUS.items() if code == procedure.status), None)
    fields: dict[str, Any] = {"status": status, "drug": "ketamine", "indications": []}
    if procedure.performedPeriod is not None:
        fields["started_at"] = procedure.performedPeriod.start
        if procedure.performedPeriod.end is not None:
            fields["ended_at"] = procedure.performedPeriod.end
    for reason in procedure.reasonCode or []:
        trd = has_code(reason, codes.TRD_LOCAL, config)
        fields["indications"].append("trd" if trd else pick(reason, _INDICATIONS, config))
    if procedure.statusReason is not None and procedure.statusReason.text is not None:
        fields["stop_reason"] = procedure.statusReason.text
    if procedure.note:
        fields["note"] = procedure.note[0].text
    for performer in procedure.performer or []:
        actor = performer.actor
        if actor.identifier is not None and actor.identifier.system == config.practitioner_identifier_system:
            fields["clinician"] = {"id": actor.identifier.value}
            if actor.display is not None:
                fields["clinician"]["name"] = actor.display
    return fields


def record_fields(parts: dict, key: str, config: MappingConfig) -> dict[str, Any]:
    """Record fields of the session `key`, with the children that reference it, from indexed resources."""
    fields: dict[str, Any] = {"key": key, **_procedure_fields(parts[(KIND, key, "procedure")], config)}
    dose = _dose_fields(parts, key, config)
    if dose is not None:
        fields["dose"] = dose
    for field, module in CHILDREN:
        primary = primary_part(module.KIND)
        child_keys = sorted(k for (kind, k, part) in parts if kind == module.KIND and part == primary)
        children = [module.record_fields(parts, child_key, config) for child_key in child_keys]
        fields[field] = [child for child in children if child.get("session_key") == key]
    return fields


from_fhir = reverse_mapper(KIND, record_fields)
