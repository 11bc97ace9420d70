"""Retraction: copies of a record's resources marked `entered-in-error`, for a PUT that withdraws them.

R4 AdverseEvent has no status element, so it cannot be marked: `retract` leaves AdverseEvents
(and Patients, which are never retracted) out, and the sync engine DELETEs AdverseEvents instead.
Use `not_retractable` to list what must be deleted. A retracted copy's narrative says so: our
generated narrative gets the `Entered in error: ` lead a mapped entered-in-error resource has; any
other (or none) becomes a narrative of just that.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, TypeVar

from service.mappers.codes import ENTERED_IN_ERROR, NARRATIVE_ENTERED_IN_ERROR, NARRATIVE_RETRACTED
from service.mappers.fhir import DomainResource, Narrative
from service.mappers.narrative import DIV_OPEN, GENERATED, escape, narrative

# Each has entered-in-error in its R4 status value set. The service's own Encounter is retracted
# with its session; an EHR visit's Encounter is never passed here (the service never writes over it).
RETRACTABLE = (
    "Encounter",
    "Procedure",
    "MedicationAdministration",
    "QuestionnaireResponse",
    "Observation",
    "Flag",
    "DiagnosticReport",  # a session's monitoring summary (service.monitoring.write)
)
RETRACTED_STATUS = ENTERED_IN_ERROR
Resource = TypeVar("Resource", DomainResource, dict[str, Any])
"""Models or JSON as read back: each function returns the kind it is given."""


def _type_of(resource: DomainResource | dict[str, Any]) -> str:
    if isinstance(resource, dict):
        return str(resource.get("resourceType"))
    return resource.get_resource_type()


def retracted_div(div: str | None) -> str:
    """The div of a retracted copy: ours with the entered-in-error lead (once), else a narrative of just that."""
    lead = escape(NARRATIVE_ENTERED_IN_ERROR)
    if div is None or not div.startswith(DIV_OPEN):
        return str(narrative(NARRATIVE_RETRACTED)["div"])
    rest = div[len(DIV_OPEN) :]
    return div if rest.startswith(lead) else DIV_OPEN + lead + rest


def retract(resources: Iterable[Resource]) -> list[Resource]:
    """Copies of the retractable resources with status `entered-in-error`, each once (a resource found twice, as a
    session's child and as its PHQ-9's response, is one PUT); inputs are not changed."""
    out: list[Resource] = []
    seen: set[tuple[str, object]] = set()
    for resource in resources:
        ident = (_type_of(resource), resource.get("id") if isinstance(resource, dict) else resource.id)
        if ident[0] not in RETRACTABLE or ident in seen:
            continue
        seen.add(ident)
        if isinstance(resource, dict):
            retracted = copy.deepcopy(resource)
            retracted["status"] = RETRACTED_STATUS
            retracted["text"] = {"status": GENERATED, "div": retracted_div((resource.get("text") or {}).get("div"))}
            out.append(retracted)
        else:
            text = Narrative(status=GENERATED, div=retracted_div(resource.text.div if resource.text else None))
            out.append(resource.model_copy(update={"status": RETRACTED_STATUS, "text": text}, deep=True))
    return out


def not_retractable(resources: Iterable[Resource]) -> list[Resource]:
    """The resources `retract` leaves out that the sync engine must delete (AdverseEvents)."""
    return [resource for resource in resources if _type_of(resource) == "AdverseEvent"]
