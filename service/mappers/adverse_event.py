"""adverse_event <-> R4 AdverseEvent; the infusion's MedicationAdministration is the suspect entity.

R4 AdverseEvent has no note or action element: `note` and `action_taken` travel in local
extensions (see codes.EXT_AE_NOTE, codes.EXT_AE_ACTION); `description` is `event.text`. An event of
a planned or not-done session suspects the Procedure instead (nothing was administered).
"""

from __future__ import annotations

from typing import Any

from schemas import kinds
from schemas.adverse_event import AdverseEvent as AdverseEventRecord
from service.mappers import codes, narrative
from service.mappers.build import (
    Json,
    Parts,
    concept,
    concept_with_text,
    encounter_reference,
    extension_url,
    has_code,
    identifier,
    linked_session_key,
    pick,
    referenced_session_key,
    reverse_mapper,
    session_link,
    session_reference,
    subject,
    when,
)
from service.mappers.config import MappingConfig
from service.mappers.context import SessionContext, context_for
from service.mappers.fhir import AdverseEvent, Extension
from service.mappers.ids import resource_id

KIND = kinds.ADVERSE_EVENT
PART = "adverse-event"


def _extensions(record: AdverseEventRecord, ctx: SessionContext | None, config: MappingConfig) -> list[Json]:
    out: list[Json] = session_link(ctx, config)
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


def _suspect(record: AdverseEventRecord, ctx: SessionContext, config: MappingConfig) -> list[Json]:
    """The infusion as suspect: its MedicationAdministration, or its Procedure when nothing was given.

    A planned or not-done session has no administered dose to suspect (a planned one has no
    MedicationAdministration at all), so the Procedure is named and a causality assessment is made
    against it (R4 allows Procedure in suspectEntity.instance). So does a retracted one: its dose is
    withdrawn, and its administration may never have been written (retracted while planned) or may
    have been deleted (sent again as planned first), while its Procedure always exists.
    """
    given = ctx.administered and ctx.status != kinds.SESSION_ENTERED_IN_ERROR
    part = "medication-administration" if given else "procedure"
    suspect: Json = {"instance": session_reference(ctx.key, part, config)}
    if record.causality is not None:
        suspect["causality"] = [{"assessment": concept((codes.AE_CAUSALITIES[record.causality],), config)}]
    return [suspect]


def _seriousness(record: AdverseEventRecord) -> codes.Code:
    return codes.AE_SERIOUS_FATAL if record.outcome == "fatal" else codes.AE_SERIOUS[record.serious]


def to_fhir_json(
    record: AdverseEventRecord, config: MappingConfig, session: SessionContext | None = None
) -> list[Json]:
    """One AdverseEvent (actuality actual) in the session's visit; suspectEntity when the session is known."""
    ctx = context_for(record.session_key, session, config)
    out: Json = {
        "resourceType": "AdverseEvent",
        "id": resource_id(KIND, record.key, PART, config),
        "text": narrative.adverse_event(record, _seriousness(record)),
    }
    extensions = _extensions(record, ctx, config)
    if extensions:
        out["extension"] = extensions
    out.update(
        identifier=identifier(KIND, record.key, PART, config),  # 0..1 in R4
        actuality=codes.AE_ACTUALITY,
        event=concept_with_text((codes.AE_EVENTS[record.event],), config, record.description),
        subject=subject(record.patient.mrn, config),
    )
    if ctx is not None:
        out["encounter"] = encounter_reference(ctx)
    out.update(
        date=when(record.onset_at),
        recordedDate=when(record.recorded_at),
        seriousness=concept((_seriousness(record),), config),
        severity=concept((codes.AE_SEVERITIES[record.severity],), config),
        outcome=concept((codes.AE_OUTCOMES[record.outcome],), config),
    )
    if ctx is not None:
        out["suspectEntity"] = _suspect(record, ctx, config)
    return [out]


def _extension(resource: AdverseEvent, url: str) -> Extension | None:
    return next((ext for ext in resource.extension or [] if ext.url == url), None)


def record_fields(parts: Parts, key: str, config: MappingConfig) -> dict[str, Any]:
    """Record fields of the adverse event `key` among indexed resources (see `build.parts_of`)."""
    resource = parts[(KIND, key, PART)]
    fields: dict[str, Any] = {
        "key": key,
        "onset_at": resource.date,
        "recorded_at": resource.recordedDate,
        "event": pick(resource.event, codes.AE_EVENTS, config),
        "severity": pick(resource.severity, codes.AE_SEVERITIES, config),
        # A death (SeriousResultsInDeath) reads back as serious.
        "serious": has_code(resource.seriousness, codes.AE_SERIOUS_FATAL, config)
        or pick(resource.seriousness, codes.AE_SERIOUS, config),
        "outcome": pick(resource.outcome, codes.AE_OUTCOMES, config),
    }
    text = resource.event.text if resource.event is not None else None
    if text is not None:  # the event text is the clinician's description and nothing else
        fields["description"] = text
    suspects = resource.suspectEntity or []
    session_key = linked_session_key(resource, config) or referenced_session_key([s.instance for s in suspects], config)
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
