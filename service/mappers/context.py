"""What a child record's resources need to know of its session: patient, status, visit, infusion period.

A child embedded in a session gets the context from the session record itself. A child sent on its
own gets it from the sync engine, which reads the session's Procedure on the FHIR server (and
refuses a child of another patient's session before anything is written). Offline mapping of a
child alone (`map`, `$convert`) knows only the session key: `default_context` assumes the
service's own Encounter, an administered infusion, and no period (so no `partOf`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from schemas.kinds import SESSION, SESSION_ENTERED_IN_ERROR
from service.mappers.codes import EXT_EMBEDDED_IN_SESSION, EXT_SESSION, PROCEDURE_STATUS, local_system
from service.mappers.config import MappingConfig
from service.mappers.ids import parse_identifier, resource_ref, visit_urn

NOT_ADMINISTERED = ("planned", "not_done")  # no ketamine was given: nothing can be "during" it
PHASED = ("in_progress", "completed", "stopped")  # the infusion was given: its start and end place a reading


@dataclass(frozen=True)
class SessionContext:
    """A session as its children see it; `status` None means unknown (offline mapping)."""

    key: str
    encounter: str
    """Reference to the visit: `Encounter/<id>`, or the `urn:uuid:` of an EHR visit in the same Bundle."""
    mrn: str | None = None
    status: str | None = None
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    embedded: bool = False
    """The child came inside the session's own record (retracting the session retracts it)."""

    @property
    def administered(self) -> bool:
        """Whether the session has a MedicationAdministration for a dose that was given (unknown: yes)."""
        return self.status not in NOT_ADMINISTERED

    @property
    def retracts_children(self) -> bool:
        """An embedded child of a session sent as entered_in_error is entered-in-error too."""
        return self.embedded and self.status == SESSION_ENTERED_IN_ERROR

    def phase(self, when: dt.datetime) -> str | None:
        """`before`, `during` or `after` the infusion for the monitoring protocol, None when the session
        cannot place `when` (unknown status, as offline; planned, whose record may be stale once the
        infusion starts; entered in error). Not done: no infusion took place, so every reading is `before`.
        Instants are compared, so any UTC offsets on either side are fine."""
        if self.status == "not_done":
            return "before"
        if self.status not in PHASED or self.started_at is None:
            return None
        if when < self.started_at:
            return "before"
        return "during" if self.ended_at is None or when <= self.ended_at else "after"

    def during(self, when: dt.datetime) -> bool:
        """Whether `when` falls within the infusion (start and end inclusive; open while in progress)."""
        if self.status is None or not self.administered or self.started_at is None:
            return False
        return self.started_at <= when and (self.ended_at is None or when <= self.ended_at)


def own_encounter(session_key: str, visit_id: str | None, config: MappingConfig) -> str:
    """The visit a session's resources reference: the EHR's own (by visit id) or the service's."""
    if visit_id is not None:
        return visit_urn(visit_id, config)
    return resource_ref(SESSION, session_key, "encounter", config)


def default_context(session_key: str, config: MappingConfig) -> SessionContext:
    """All that is known of a session from its key alone (see the module docstring)."""
    return SessionContext(key=session_key, encounter=own_encounter(session_key, None, config))


def context_for(session_key: str | None, given: SessionContext | None, config: MappingConfig) -> SessionContext | None:
    """The context of the session a child names: the one given when it is that session's, else the default."""
    if session_key is None:
        return None
    if given is not None and given.key == session_key:
        return given
    return default_context(session_key, config)


# Procedure.status (R4 event-status) -> the session status it was written from.
_SESSION_STATUS = {fhir: record for record, fhir in PROCEDURE_STATUS.items()}


def _instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def context_from_procedure(
    session_key: str, procedure: dict[str, Any], mrn: str | None, config: MappingConfig
) -> SessionContext:
    """A session's context from its Procedure as the FHIR server holds it (JSON) and its patient's MRN."""
    period = procedure.get("performedPeriod") or {}
    encounter = (procedure.get("encounter") or {}).get("reference")
    return SessionContext(
        key=session_key,
        encounter=encounter or own_encounter(session_key, None, config),
        mrn=mrn,
        status=_SESSION_STATUS.get(procedure.get("status", "")),
        started_at=_instant(period.get("start")),
        ended_at=_instant(period.get("end")),
    )


def child_link(resource: dict[str, Any], config: MappingConfig) -> tuple[str | None, bool]:
    """(session key, came embedded) of a child resource as read back (JSON); (None, False) if it names none.

    The session extensions say it; resources written before them name it in partOf or suspectEntity.
    """
    base = config.local_code_system_base
    embedded_url = local_system(base, EXT_EMBEDDED_IN_SESSION)
    links = {local_system(base, EXT_SESSION): False, embedded_url: True}
    refs: list[tuple[dict[str, Any], bool]] = [
        (ext.get("valueReference") or {}, links[ext.get("url")])
        for ext in resource.get("extension", [])
        if ext.get("url") in links
    ]
    refs += [(ref, False) for ref in resource.get("partOf", [])]
    refs += [(s.get("instance") or {}, False) for s in resource.get("suspectEntity", [])]
    for ref, embedded in refs:
        ident = ref.get("identifier") or {}
        parsed = parse_identifier(ident.get("system"), ident.get("value"), config)
        if parsed and parsed[0] == SESSION:
            return parsed[1], embedded
    return None, False
