"""infusion_session <-> Procedure + MedicationAdministration (+ dosing-weight Observation + children).

A planned session has no MedicationAdministration: R4 medication-admin-status has no planned
state and nothing has been given. A not-done one has one without `dosage` (its intended dose, if
sent, is in the intended-dosage extension) and a Procedure without a performed period. Every
resource references the visit: the EHR's Encounter when the session names its `visit_id`, else one
the service writes. Embedded children are mapped by their own kind modules, with the session's
context (they are marked as embedded, and are entered-in-error when the session is).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from schemas import kinds
from schemas.session import Dose, InfusionSession
from service.mappers import adverse_event, assessment, codes, monitoring_score, narrative, phq9, vital_sign
from service.mappers.build import (
    VISIT,
    Json,
    Parts,
    coding,
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
from service.mappers.context import NOT_ADMINISTERED, SessionContext, child_link, own_encounter
from service.mappers.fhir import Procedure
from service.mappers.ids import match_identifier, resource_ref

KIND = kinds.SESSION
_MODULES = {module.KIND: module for module in (vital_sign, monitoring_score, phq9, assessment, adverse_event)}
CHILDREN = tuple((field, _MODULES[kind]) for field, kind in kinds.CHILD_LISTS.items())
"""(record field, kind module), in the order their resources follow the session's."""
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


def dosage_text(record: InfusionSession, dose: Dose) -> str:
    """The human-readable dose line, e.g. `35 mg ketamine IV (0.5 mg/kg) at 0.5 mg/kg/h over 40 min`."""
    text = f"{number(dose.total_mg)} mg ketamine IV"
    if dose.mg_per_kg is not None:
        text += f" ({number(dose.mg_per_kg)} mg/kg)"
    if dose.rate is not None:
        text += f" at {number(dose.rate.value)} {dose.rate.unit}"
    if record.ended_at is not None:
        text += f" over {round((record.ended_at - record.started_at).total_seconds() / 60)} min"
    return text


def _per_kg(dose: Dose, config: MappingConfig) -> list[Json]:
    if dose.mg_per_kg is None:
        return []
    url = extension_url(codes.EXT_DOSE_PER_KG, config)
    return [{"url": url, "valueQuantity": quantity(dose.mg_per_kg, codes.UNIT_MG_PER_KG)}]


def _dosage(record: InfusionSession, dose: Dose, config: MappingConfig) -> Json:
    """MedicationAdministration.dosage: the dose given (never for a not-done session)."""
    out: Json = {}
    per_kg = _per_kg(dose, config)
    if per_kg:
        out["extension"] = per_kg
    out["text"] = dosage_text(record, dose)
    out["route"] = concept((codes.ROUTE_INTRAVENOUS,), config)
    out["dose"] = quantity(dose.total_mg, codes.UNIT_MG)
    if dose.rate is not None:
        out["rateQuantity"] = quantity(dose.rate.value, dose.rate.unit)
    return out


def _intended_dosage(record: InfusionSession, dose: Dose, config: MappingConfig) -> Json:
    """The intended-dosage extension of a not-done administration: a Dosage labelled as not given."""
    dosage: Json = {}
    per_kg = _per_kg(dose, config)
    if per_kg:
        dosage["extension"] = per_kg
    dosage["text"] = codes.INTENDED_DOSAGE_PREFIX + dosage_text(record, dose)
    dosage["route"] = concept((codes.ROUTE_INTRAVENOUS,), config)
    dose_and_rate: Json = {"doseQuantity": quantity(dose.total_mg, codes.UNIT_MG)}
    if dose.rate is not None:
        dose_and_rate["rateQuantity"] = quantity(dose.rate.value, dose.rate.unit)
    dosage["doseAndRate"] = [dose_and_rate]
    return {"url": extension_url(codes.EXT_INTENDED_DOSAGE, config), "valueDosage": dosage}


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


def session_context(record: InfusionSession, config: MappingConfig, *, embedded: bool = False) -> SessionContext:
    """The context the session gives its children (see service.mappers.context)."""
    return SessionContext(
        key=record.key,
        encounter=own_encounter(record.key, record.visit_id, config),
        mrn=record.patient.mrn,
        status=record.status,
        started_at=record.started_at,
        ended_at=record.ended_at,
        embedded=embedded,
    )


def _reasons(record: InfusionSession, config: MappingConfig) -> list[Json]:
    return [_reason(indication, config) for indication in record.indications]


def _encounter_body(record: InfusionSession, config: MappingConfig, patient: Json) -> Json:
    """Encounter elements after identifier: status from the session, class AMB, period, reasons."""
    out: Json = {
        "status": codes.ENCOUNTER_STATUS[record.status],
        "class": coding(codes.ENCOUNTER_CLASS, config),
        "type": [{"text": codes.ENCOUNTER_TEXT}],
        "subject": patient,
    }
    if record.status != "not_done":  # a cancelled visit has no period that reads as one that took place
        out["period"] = _period(record)
    out["reasonCode"] = _reasons(record, config)
    return out


def _encounter(record: InfusionSession, config: MappingConfig, patient: Json) -> Json:
    """The service's own Encounter for a session without the EHR's visit id (deterministic id, PUT)."""
    head = resource_head(KIND, record.key, "encounter", config, text=narrative.encounter(record))
    return {**head, **_encounter_body(record, config, patient)}


def visit_encounter(record: InfusionSession, config: MappingConfig) -> Json:
    """The EHR's visit as an Encounter to create if the server has none with `visit_id` (never written over)."""
    ident = {"system": configured_system(config.visit_system), "value": record.visit_id}
    key = match_identifier(config.visit_system, record.visit_id or "", config)
    patient = subject(record.patient.mrn, config)
    return {
        "resourceType": "Encounter",
        "text": narrative.encounter(record),
        "identifier": [ident] if key is None else [ident, key],
        **_encounter_body(record, config, patient),
    }


def _procedure(record: InfusionSession, config: MappingConfig, patient: Json, clinician: Json | None) -> Json:
    out = resource_head(KIND, record.key, "procedure", config, text=narrative.procedure(record))
    out["status"] = codes.PROCEDURE_STATUS[record.status]
    if record.stop_reason is not None:
        out["statusReason"] = {"text": record.stop_reason}
    out.update(
        category=concept((codes.PROCEDURE_CATEGORY,), config),
        code=concept((codes.PROCEDURE_CODE,), config, codes.PROCEDURE_TEXT),
        subject=patient,
        encounter={"reference": own_encounter(record.key, record.visit_id, config)},
    )
    if record.status != "not_done":  # not done: no performed period that reads as an infusion that happened
        out["performedPeriod"] = _period(record)
    if clinician is not None:
        out["performer"] = [{"actor": clinician}]
    out["reasonCode"] = _reasons(record, config)
    if record.note is not None:
        out["note"] = [{"text": record.note}]
    return out


def _administration(record: InfusionSession, config: MappingConfig, patient: Json, clinician: Json | None) -> Json:
    not_done = record.status == "not_done"
    extension = [_intended_dosage(record, record.dose, config)] if not_done and record.dose is not None else None
    text = narrative.administration(record, None if record.dose is None else dosage_text(record, record.dose))
    out = resource_head(KIND, record.key, "medication-administration", config, extension=extension, text=text)
    out["partOf"] = [session_reference(record.key, "procedure", config)]
    out["status"] = codes.MED_ADMIN_STATUS[record.status]
    if record.stop_reason is not None:
        out["statusReason"] = [{"text": record.stop_reason}]
    out.update(
        category=concept((codes.MED_ADMIN_CATEGORY_OUTPATIENT,), config),
        medicationCodeableConcept=_medication(config),
        subject=patient,
        context={"reference": own_encounter(record.key, record.visit_id, config)},
        # R4: the time the administration took place, "or did not take place" when not done.
        effectivePeriod=_period(record),
    )
    if clinician is not None:
        out["performer"] = [{"actor": clinician}]
    if record.dose is not None and not not_done:
        out["dosage"] = _dosage(record, record.dose, config)
    return out


def _dosing_weight(record: InfusionSession, weight_kg: float, config: MappingConfig, patient: Json) -> Json:
    weight = codes.VITALS["body_weight"]
    retracted = record.status == kinds.SESSION_ENTERED_IN_ERROR
    text = narrative.dosing_weight(weight_kg, record.started_at, retracted)
    out = resource_head(KIND, record.key, "dosing-weight", config, meta=profile(weight.profile), text=text)
    if record.status not in NOT_ADMINISTERED:
        out["partOf"] = [session_reference(record.key, "procedure", config)]
    out.update(
        status=codes.ENTERED_IN_ERROR if retracted else codes.OBSERVATION_FINAL,
        category=[concept((codes.CATEGORY_VITAL_SIGNS,), config)],
        code=concept(weight.codes, config, codes.DOSING_WEIGHT_TEXT),
        subject=patient,
        encounter={"reference": own_encounter(record.key, record.visit_id, config)},
        effectiveDateTime=when(record.started_at),
        valueQuantity=quantity(weight_kg, codes.UNIT_KG),
    )
    return out


def to_fhir_json(record: InfusionSession, config: MappingConfig, session: SessionContext | None = None) -> list[Json]:
    """Procedure, MedicationAdministration (not when planned), dosing weight, the service's Encounter
    (without a `visit_id`), then the embedded children's resources."""
    patient = subject(record.patient.mrn, config)
    clinician = _clinician(record, config)
    out = [_procedure(record, config, patient, clinician)]
    if record.status in codes.MED_ADMIN_STATUS:
        out.append(_administration(record, config, patient, clinician))
    if record.dose is not None and record.dose.weight_kg is not None:
        out.append(_dosing_weight(record, record.dose.weight_kg, config, patient))
    if record.visit_id is None:
        out.append(_encounter(record, config, patient))
    children = session_context(record, config, embedded=True)
    for field, module in CHILDREN:
        for child in getattr(record, field):
            out.extend(module.to_fhir_json(child, config, children))
    return out


def stale_parts(record: InfusionSession) -> tuple[str, ...]:
    """Parts an earlier version of this session may have written and this one does not (the transaction
    deletes them): the administration of a session sent again as planned, the dosing weight of one sent
    again without a weight. Left on the server they would read back into the record and show the EHR a dose."""
    if record.status == kinds.SESSION_ENTERED_IN_ERROR:
        return ()  # a retraction marks what the server holds; it removes nothing
    stale = [] if record.status in codes.MED_ADMIN_STATUS else ["medication-administration"]
    if record.dose is None or record.dose.weight_kg is None:
        stale.append("dosing-weight")
    return tuple(stale)


def _given_or_intended(administration: Any, config: MappingConfig) -> tuple[Any, Any, Any] | None:
    """(dosage, dose quantity, rate quantity): the dose given, or a not-done one's intended dose."""
    if administration is None:
        return None
    dosage = administration.dosage
    if dosage is not None and dosage.dose is not None:
        return dosage, dosage.dose, dosage.rateQuantity
    url = codes.local_system(config.local_code_system_base, codes.EXT_INTENDED_DOSAGE)
    intended = next((e.valueDosage for e in administration.extension or [] if e.url == url and e.valueDosage), None)
    if intended is None or not intended.doseAndRate:
        return None
    first = intended.doseAndRate[0]
    return intended, first.doseQuantity, first.rateQuantity


def _dose_fields(parts: Parts, key: str, config: MappingConfig) -> dict[str, Any] | None:
    found = _given_or_intended(parts.get((KIND, key, "medication-administration")), config)
    if found is None or found[1] is None:
        return None
    dosage, given, rate = found
    dose: dict[str, Any] = {"total_mg": from_decimal(given.value)}
    url = codes.local_system(config.local_code_system_base, codes.EXT_DOSE_PER_KG)
    per_kg = next((e for e in dosage.extension or [] if e.url == url), None)
    if per_kg is not None:
        dose["mg_per_kg"] = from_decimal(per_kg.valueQuantity.value)
    weight = parts.get((KIND, key, "dosing-weight"))
    if weight is not None:
        dose["weight_kg"] = from_decimal(weight.valueQuantity.value)
    if rate is not None:
        dose["rate"] = {"value": from_decimal(rate.value), "unit": rate.code}
    return dose


def _visit_id(parts: Parts, procedure: Procedure) -> str | None:
    """The EHR visit id, when the Procedure's Encounter is an EHR visit among the resources read."""
    reference = procedure.encounter.reference if procedure.encounter is not None else None
    for (kind, value, _), resource in parts.items():
        if kind == VISIT and reference == f"Encounter/{resource.id}":
            return value
    return None


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


def record_fields(parts: Parts, key: str, config: MappingConfig) -> dict[str, Any]:
    """Record fields of the session `key`, with the children that reference it, from indexed resources."""
    procedure = parts[(KIND, key, "procedure")]
    fields: dict[str, Any] = {"key": key, **_procedure_fields(procedure, config)}
    administration = parts.get((KIND, key, "medication-administration"))
    if "started_at" not in fields and administration is not None and administration.effectivePeriod is not None:
        fields["started_at"] = administration.effectivePeriod.start  # not done: the time it did not take place
        if administration.effectivePeriod.end is not None:
            fields["ended_at"] = administration.effectivePeriod.end
    visit_id = _visit_id(parts, procedure)
    if visit_id is not None:
        fields["visit_id"] = visit_id
    dose = _dose_fields(parts, key, config)
    if dose is not None:
        fields["dose"] = dose
    for field, module in CHILDREN:
        primary = primary_part(module.KIND)
        child_keys = sorted(k for (kind, k, part) in parts if kind == module.KIND and part == primary)
        children = [module.record_fields(parts, child_key, config) for child_key in child_keys]
        fields[field] = [child for child in children if child.get("session_key") == key]
    return fields


def child_searches(key: str, procedure: dict[str, Any], config: MappingConfig) -> list[tuple[str, dict[str, str]]]:
    """(resource type, search parameters) that find the children of the session `key` on a server.

    By the session's visit (Encounter: Observations, and the QuestionnaireResponses of assessments), by
    `partOf` (also resources written before visits were referenced) and, for AdverseEvents (R4 has no
    encounter search on them), by suspect entity.
    A search may find more than the session's children: keep those `is_child_of` accepts.
    """
    procedure_ref = f"Procedure/{procedure['id']}"
    searches: list[tuple[str, dict[str, str]]] = [("Observation", {"part-of": procedure_ref})]
    encounter = (procedure.get("encounter") or {}).get("reference")
    if encounter:
        searches.append(("Observation", {"encounter": encounter}))
        searches.append(("QuestionnaireResponse", {"encounter": encounter}))
    administration = resource_ref(KIND, key, "medication-administration", config)
    searches.append(("AdverseEvent", {"substance": f"{administration},{procedure_ref}"}))
    return searches


def is_child_of(resource: dict[str, Any], key: str, procedure: dict[str, Any], config: MappingConfig) -> bool:
    """Whether a resource read back is a child of the session `key`: it names the session and is of
    the session's patient (a resource of any other patient never is, whatever it references)."""
    same_patient = (resource.get("subject") or {}).get("reference") == (procedure.get("subject") or {}).get("reference")
    return same_patient and child_link(resource, config)[0] == key


from_fhir = reverse_mapper(KIND, record_fields)
