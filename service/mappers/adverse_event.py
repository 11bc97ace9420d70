"""adverse_event <-> R4 AdverseEvent; the infusion's MedicationAdministration is the suspect entity.

R4 AdverseEvent has no note or action element: `note` and `action_taken` travel in local
extensions (see codes.EXT_AE_NOTE, codes.EXT_AE_ACTION); `description` is `event.text`.
"""

from __future__ import annotations

from typing import Any

from schemas.adverse_event import AdverseEvent as AdverseEventRecord
from service.mappers import codes
from service.mappers.build import (
    Json,
    concept,
    concept_with_text,
    extension_url,
    identifier,
    parts_of,
    pick,
    referenced_session_key,
    reverse_mapper,
    session_reference,
    subject,
    when,
)
from service.mappers.config import MappingConfig
from service.mappers.fhir import AdverseEvent, DomainResource, Extension
from service.mappers.ids import resource_id

KIND = "adverse_event"
PART = "adverse-event"


def _extensions(record: AdverseEventRecord, config: MappingConfig) -> list[Json]:
    out: list[Json] = []
    if record.action_taken is not None:
        action = codes.AE_ACTIONS[record.action_taken]
        out.append(
            {
                "url": extension_url(codes.EXT_AE_ACTION, config),
                "valueCodeableConcept": concept((action,), config, action.display),
            }
        )
    if record.note is not None:
        out.append({"url": extension_url(codes.EXT_AE_NOTE, config), "valueString": record.note})
    return out


def _event(record: AdverseEventRecord, config: MappingConfig) -> Json:
    """The event code; text is the clinician's description, else for local codes their display."""
    code = codes.AE_EVENTS[record.event]
    text = record.description
    if text is None and isinstance(code, codes.LocalCode):
        text = code.display
    return concept_with_text((code,), config, text)


def _suspect(session_key: str, record: AdverseEventRecord, config: MappingConfig) -> list[Json]:
    suspect: Json = {"instance": session_reference(session_key, "medication-administration", config)}
    if record.causality is not None:
        suspect["causality"] = [{"assessment": concept((codes.AE_CAUSALITIES[record.causality],), config)}]
    return [suspect]


def to_fhir_json(record: AdverseEventRecord, config: MappingConfig) -> list[Json]:
    """One AdverseEvent (actuality actual); suspectEntity when the session is known."""
    out: Json = {"resourceType": "AdverseEvent", "id": resource_id(KIND, record.key, PART, config)}
    extensions = _extensions(record, config)
    if extensions:
        out["extension"] = extensions
    out.update(
        identifier=identifier(KIND, record.key, PART, config),  # 0..1 in R4
        actuality=codes.AE_ACTUALITY,
        event=_event(record, config),
        subject=subject(record.patient.mrn, config),
        date=when(record.onset_at),
        recordedDate=when(record.recorded_at),
        seriousness=concept((codes.AE_SERIOUS[record.serious],), config),
        severity=concept((codes.AE_SEVERITIES[record.severity],), config),
        outcome=concept((codes.AE_OUTCOMES[record.outcome],), config),
    )
    if record.session_key is not None:
        out["suspectEntity"] = _suspect(record.session_key, record, config)
    return [out]


def _extension(resource: AdverseEvent, url: str) -> Extension | None:
    return next((ext for ext in resource.extension or [] if ext.url == url), None)


def record_fields(parts: dict, key: str, config: MappingConfig) -> dict[str, Any]:
    """Record fields of the adverse event `key` among indexed resources (see `build.parts_of`)."""
    resource = parts[(KIND, key, PART)]
    fields: dict[str, Any] = {
        "key": key,
        "onset_at": resource.date,
        "recorded_at": resource.recordedDate,
        "event": pick(resource.event, codes.AE_EVENTS, config),
        "severity": pick(resource.severity, codes.AE_SEVERITIES, config),
        "serious": pick(resource.seriousness, codes.AE_SERIOUS, config),
        "outcome": pick(resource.outcome, codes.AE_OUTCOMES, config),
    }
    text = resource.event.text if resource.event is not None else None
    code = codes.AE_EVENTS.get(fields["event"])
    # A local code's display as text means "no description" (a description equal to it reads back as none).
    if text is not None and not (isinstance(code, codes.LocalCode) and text == code.display):
        fields["description"] = text
    suspects = resource.suspectEntity or []
    session_key = referenced_session_key([s.instance for s in suspects], config)
    if session_key is not None:
        fields["session_key"] = session_key
    for suspect in suspects:
        for causality in suspect.causality or []:
            found = pick(causality.assessment, codes.AE_CAUSALITIES, config)
            if found is not None:
                fields["causality"] = found
    base = config.local_code_system_base
    action = _extension(resource, codes.local_system(base, codes.EXT_AE_ACTION))
    if action is not None:
        fields["action_taken"] = pick(action.valueCodeableConcept, codes.AE_ACTIONS, config)
    note = _extension(resource, codes.local_system(base, codes.EXT_AE_NOTE))
    if note is not None:
        fields["note"] = note.valueString
    return fields


from_fhir = reverse_mapper(KIND, record_fields)
