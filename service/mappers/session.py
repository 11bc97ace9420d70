"""infusion_session <-> Procedure + MedicationAdministration (+ dosing-weight Observation + children).

A planned session has no MedicationAdministration: R4 medication-admin-status has no planned
state and nothing has been given. Embedded children are mapped by their own kind modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.common import PatientInfo
from schemas.records import parse_record_of_kind
from schemas.session import InfusionSession
from service.mappers import adverse_event, codes, monitoring_score, phq9, vital_sign
from service.mappers.build import (
    coding,
    concept,
    from_decimal,
    has_code,
    number,
    parts_of,
    pick,
    primary_part,
    profile,
    quantity,
    record_key,
    resource_identity,
    session_reference,
    subject,
)
from service.mappers.config import MappingConfig
from service.mappers.fhir import (
    Annotation,
    CodeableConcept,
    DomainResource,
    Extension,
    Identifier,
    MedicationAdministration,
    MedicationAdministrationDosage,
    MedicationAdministrationPerformer,
    Observation,
    Period,
    Procedure,
    ProcedurePerformer,
    Reference,
)

KIND = "infusion_session"
CHILDREN = (  # (record field, kind module), in the order their resources follow the session's
    ("vital_signs", vital_sign),
    ("monitoring_scores", monitoring_score),
    ("phq9_assessments", phq9),
    ("adverse_events", adverse_event),
)
_INDICATIONS = {name: code for name, code in codes.INDICATIONS.items() if name != "trd"}


def _reason(indication: str, config: MappingConfig) -> CodeableConcept:
    code = codes.INDICATIONS[indication]
    if indication == "trd":
        return concept([code, codes.TRD_LOCAL], config, text=codes.TRD_TEXT)
    return concept([code], config, text=code.display)


def _clinician(record: InfusionSession, config: MappingConfig) -> Reference | None:
    if record.clinician is None:
        return None
    return Reference(
        identifier=Identifier(system=config.practitioner_identifier_system, value=record.clinician.id),
        display=record.clinician.name,
    )


def _dosage_text(record: InfusionSession) -> str:
    dose = record.dose
    text = f"{number(dose.total_mg)} mg ketamine IV"
    if dose.mg_per_kg is not None:
        text += f" ({number(dose.mg_per_kg)} mg/kg)"
    if dose.rate is not None:
        text += f" at {number(dose.rate.value)} {dose.rate.unit}"
    if record.ended_at is not None:
        text += f" over {round((record.ended_at - record.started_at).total_seconds() / 60)} min"
    return text


def _dosage(record: InfusionSession, config: MappingConfig) -> MedicationAdministrationDosage | None:
    dose = record.dose
    if dose is None:
        return None
    extension = None
    if dose.mg_per_kg is not None:
        url = codes.local_system(config.local_code_system_base, codes.EXT_DOSE_PER_KG)
        extension = [Extension(url=url, valueQuantity=quantity(dose.mg_per_kg, codes.UNIT_MG_PER_KG))]
    return MedicationAdministrationDosage(
        extension=extension,
        text=_dosage_text(record),
        route=concept([codes.ROUTE_INTRAVENOUS], config),
        dose=quantity(dose.total_mg, codes.UNIT_MG),
        rateQuantity=quantity(dose.rate.value, dose.rate.unit) if dose.rate is not None else None,
    )


def _medication(config: MappingConfig) -> CodeableConcept:
    medication = concept(codes.KETAMINE_CODINGS, config, text=codes.KETAMINE_TEXT)
    if config.medication_product_coding is not None:
        medication.coding.append(coding(codes.Code(*config.medication_product_coding), config))
    return medication


def _period(record: InfusionSession) -> Period:
    return Period(start=record.started_at, end=record.ended_at)


def to_fhir(record: InfusionSession, config: MappingConfig) -> list[DomainResource]:
    """Procedure, MedicationAdministration (not when planned), dosing weight, then the children's."""
    patient = subject(record.patient.mrn, config)
    status_reason = [CodeableConcept(text=record.stop_reason)] if record.stop_reason is not None else None
    clinician = _clinician(record, config)
    out: list[DomainResource] = [
        Procedure(
            **resource_identity(KIND, record.key, "procedure", config),
            status=codes.PROCEDURE_STATUS[record.status],
            statusReason=status_reason[0] if status_reason else None,
            category=concept([codes.PROCEDURE_CATEGORY], config),
            code=concept([codes.PROCEDURE_CODE], config, text=codes.PROCEDURE_TEXT),
            subject=patient,
            performedPeriod=_period(record),
            performer=[ProcedurePerformer(actor=clinician)] if clinician else None,
            reasonCode=[_reason(indication, config) for indication in record.indications],
            note=[Annotation(text=record.note)] if record.note is not None else None,
        )
    ]
    if record.status in codes.MED_ADMIN_STATUS:
        out.append(
            MedicationAdministration(
                **resource_identity(KIND, record.key, "medication-administration", config),
                partOf=[session_reference(record.key, "procedure", config)],
                status=codes.MED_ADMIN_STATUS[record.status],
                statusReason=status_reason,
                category=concept([codes.MED_ADMIN_CATEGORY_OUTPATIENT], config),
                medicationCodeableConcept=_medication(config),
                subject=patient,
                effectivePeriod=_period(record),
                performer=[MedicationAdministrationPerformer(actor=clinician)] if clinician else None,
                dosage=_dosage(record, config),
            )
        )
    if record.dose is not None and record.dose.weight_kg is not None:
        out.append(
            Observation(
                **resource_identity(KIND, record.key, "dosing-weight", config),
                meta=profile(codes.VITALS["body_weight"].profile),
                status=codes.ENTERED_IN_ERROR
                if record.status == "entered_in_error"
                else codes.OBSERVATION_FINAL,
                category=[concept([codes.CATEGORY_VITAL_SIGNS], config)],
                code=concept(codes.VITALS["body_weight"].codes, config, text=codes.DOSING_WEIGHT_TEXT),
                subject=patient,
                effectiveDateTime=record.started_at,
                partOf=[session_reference(record.key, "procedure", config)],
                valueQuantity=quantity(record.dose.weight_kg, codes.UNIT_KG),
            )
        )
    for field, module in CHILDREN:
        for child in getattr(record, field):
            out.extend(module.to_fhir(child, config))
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


def from_fhir(
    resources: Sequence[DomainResource | dict[str, Any]],
    patient: PatientInfo,
    config: MappingConfig,
    key: str | None = None,
) -> InfusionSession:
    """The session record (the one of `key` when several are given); children referencing it are embedded."""
    parts = parts_of(resources, config)
    key = record_key(parts, KIND, key)
    return parse_record_of_kind(KIND, {**record_fields(parts, key, config), "patient": patient})
