"""A session as the FHIR server holds it, read into what the summary judges: times, readings, adverse events.

Pure: the session's resources as read back (JSON: its Procedure and the children `SyncEngine` finds for it,
whichever way they arrived, embedded or on their own), nothing else. Values are read by the kind mappers'
own readers (`record_fields`), so the summary sees exactly what a GET of the record would; the phase of each
reading comes from the Procedure's period now (`SessionContext.phase`), not from when the reading was written.
Retracted (entered-in-error) readings are left out; a retracted adverse event is deleted, so never here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.kinds import ADVERSE_EVENT, MONITORING_SCORE, SESSION, VITAL_SIGN
from service.mappers import MappingConfig, adverse_event, codes, monitoring_score, vital_sign
from service.mappers.build import parts_of
from service.mappers.context import SessionContext, context_from_procedure
from service.monitoring.discharge import Event
from service.monitoring.readings import Reading, in_order, vital_values

Json = dict[str, Any]
_LEVELS = {code.code: level for level, code in codes.INTERPRETATIONS.items()}
_BP = (("systolic", codes.BP_SYSTOLIC), ("diastolic", codes.BP_DIASTOLIC))


@dataclass(frozen=True)
class HeldEvent:
    """An adverse event of the session, in the record's words (no free text: its description is the clinician's)."""

    ref: str
    key: str
    event: str
    onset_at: dt.datetime
    severity: str
    serious: bool
    outcome: str

    @property
    def as_event(self) -> Event:
        return Event(self.key, self.outcome)


@dataclass(frozen=True)
class HeldSession:
    """What the summary of one session is computed from."""

    key: str
    context: SessionContext
    """Status, infusion start and end, visit (from the Procedure)."""
    subject: str | None
    """`Patient/<id>` as the Procedure references it."""
    readings: tuple[Reading, ...]
    """Live vital signs and monitoring scores, in order."""
    events: tuple[HeldEvent, ...]

    @property
    def started_at(self) -> dt.datetime | None:
        return self.context.started_at

    @property
    def ended_at(self) -> dt.datetime | None:
        return self.context.ended_at

    @property
    def status(self) -> str | None:
        """The session's record status (`in_progress`, `completed`, ...; None when unreadable)."""
        return self.context.status


def read_session(key: str, resources: Iterable[Json], config: MappingConfig) -> HeldSession:
    """The session `key` from its Procedure and children as read back (ValueError without its Procedure)."""
    wanted = [r for r in resources if r.get("resourceType") in ("Procedure", "Observation", "AdverseEvent")]
    refs = {_identity(r): f"{r['resourceType']}/{r['id']}" for r in wanted}
    raw = {_identity(r): r for r in wanted}
    parts = parts_of(wanted, config)
    procedure = parts.get((SESSION, key, "procedure"))
    if procedure is None:
        raise ValueError("the session's Procedure is not among the resources")
    procedure_json = raw[("Procedure", str(procedure.id))]
    context = context_from_procedure(key, procedure_json, None, config)
    readings: list[Reading] = []
    events: list[HeldEvent] = []
    resource: Any
    for (kind, child, _part), resource in parts.items():
        if getattr(resource, "status", None) == codes.ENTERED_IN_ERROR:
            continue
        ref = refs[(resource.get_resource_type(), str(resource.id))]
        if kind == VITAL_SIGN:
            reading = _vital(vital_sign.record_fields(parts, child, config), resource, ref, context)
            if reading is not None:
                readings.append(reading)
        elif kind == MONITORING_SCORE:
            fields = monitoring_score.record_fields(parts, child, config)
            at = _aware(fields["measured_at"])
            values = {fields["instrument"]: float(fields["score"])}
            levels = _levels(resource.interpretation, fields["instrument"])
            readings.append(Reading(ref, at, fields["instrument"], values, context.phase(at), child, None, levels))
        elif kind == ADVERSE_EVENT:
            fields = adverse_event.record_fields(parts, child, config)
            events.append(
                HeldEvent(
                    ref, child, fields["event"], _aware(fields["onset_at"]), fields["severity"], bool(fields["serious"]),
                    fields["outcome"],
                )
            )  # fmt: skip
    subject = (procedure_json.get("subject") or {}).get("reference")
    events.sort(key=lambda e: (e.onset_at, e.ref))
    return HeldSession(key, context, subject, tuple(in_order(readings)), tuple(events))


def _identity(resource: Mapping[str, Any]) -> tuple[str, str]:
    return str(resource.get("resourceType")), str(resource.get("id"))


def _aware(value: Any) -> dt.datetime:
    """A time read back as an aware datetime (FHIR instants always carry an offset; UTC when not)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _levels(interpretation: Any, measure: str) -> dict[str, str]:
    for concept in interpretation or []:
        for coding in concept.coding or []:
            if coding.system == codes.V3_OBSERVATION_INTERPRETATION and coding.code in _LEVELS:
                return {measure: _LEVELS[coding.code]}
    return {}


def _vital(fields: Json, resource: Any, ref: str, context: SessionContext) -> Reading | None:
    at = _aware(fields["measured_at"])
    kind = fields["type"]
    if kind == "body_weight":
        return None  # not a monitoring reading
    values = vital_values(kind, fields.get("value"), fields.get("systolic"), fields.get("diastolic"))
    if values is None:
        return None
    levels: dict[str, str] = {}
    if kind == "blood_pressure":
        for component in resource.component or []:
            for measure, code in _BP:
                if any(c.system == code.system and c.code == code.code for c in component.code.coding or []):
                    levels.update(_levels(component.interpretation, measure))
    else:
        levels = _levels(resource.interpretation, kind)
    o2 = fields.get("supplemental_o2")
    return Reading(ref, at, kind, values, context.phase(at), fields["key"], o2, levels)
