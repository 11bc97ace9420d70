"""Pure Provenance builder: a transaction Bundle's entries in, one `Provenance` per patient and activity out.

No clock, no I/O: the caller gives the time (`Stamp.recorded`), the scope its id derives from and the agents.
See docs/security.md, section Provenance, for what each element holds and why.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.provenance import codes

Json = dict[str, Any]
PROVENANCE = "Provenance"
ID_NAMESPACE = uuid.UUID("6f1c2a39-5d3e-4b8e-9a51-0c7e2f4b8d11")
"""Namespace of the uuid5 Provenance ids (fixed: the same scope, patient and activity, the same id)."""


@dataclass(frozen=True)
class Source:
    """A source record as a Provenance entity names it: its kind and key (and for a batch, its file and line).

    `refs`: `Type/id` of the resources the record maps to (none: it belongs to every patient of the Bundle, as a
    retraction's or a monitoring summary's one record does)."""

    system: str
    key: str
    refs: frozenset[str] = frozenset()
    file: str | None = None
    line: int | None = None
    patient_urn: str | None = None


@dataclass(frozen=True)
class Agents:
    """Who takes part: the service (`Device/id`), the clinic (`Organization/id`), and the caller when known."""

    device: str
    organization: str
    caller_system: str
    caller: str | None = None


@dataclass(frozen=True)
class Stamp:
    """When and under what the Bundle was first built: `recorded` (an instant), `scope` (request or job id and
    Bundle sequence), reused as is when the same Bundle is sent again."""

    recorded: str
    scope: str


@dataclass(frozen=True)
class Deleted:
    """A resource a DELETE entry removes, as the server held it just before (type, id, version, subject)."""

    resource_type: str
    id: str
    version: str | None
    patient: str | None


def provenances(
    entries: Sequence[Json],
    sources: Sequence[Source],
    agents: Agents,
    stamp: Stamp,
    base_url: str,
    deleted: Sequence[Deleted] = (),
) -> list[Json]:
    """The Provenances of a transaction's `entries`: one per patient and activity, in a stable order."""
    groups: dict[tuple[str, str], list[Json]] = {}
    refs_of: dict[tuple[str, str], set[str]] = {}
    for entry in entries:
        resource = entry.get("resource")
        if resource is None or resource.get("resourceType") == PROVENANCE:
            continue
        patient = _patient_of(entry)
        if patient is None:
            continue
        group = (patient, _activity(entry))
        ref = _ref(entry)
        groups.setdefault(group, []).append({"reference": entry["fullUrl"] if ref is None else ref})
        refs_of.setdefault(group, set()).add(ref or entry["fullUrl"])
    removed: dict[tuple[str, str], list[Json]] = {}
    for gone in deleted:
        if gone.patient is not None:
            removed.setdefault((gone.patient, codes.DELETE), []).append(_deleted_ref(gone, base_url, versioned=False))
    out = []
    for group in sorted({*groups, *removed}):
        targets = groups.get(group, []) + removed.get(group, [])
        entities = [_source(s) for s in sources if _belongs(s, group, refs_of.get(group, set()))]
        entities += [
            {"role": codes.ROLE_REMOVAL, "what": _deleted_ref(gone, base_url, versioned=True)}
            for gone in deleted
            if (gone.patient, codes.DELETE) == group
        ]
        out.append(_provenance(group, targets, entities, agents, stamp))
    return out


def provenance_id(scope: str, patient: str, activity: str) -> str:
    """uuid5 of the scope (request or job id and Bundle sequence), patient and activity: a retried transaction
    writes it once, a later one anew."""
    return str(uuid.uuid5(ID_NAMESPACE, "|".join((scope, patient, activity))))


def entry(resource: Json, base_url: str) -> Json:
    """A PUT entry of a Provenance (or of the Device and Organization it names)."""
    url = f"{resource['resourceType']}/{resource['id']}"
    return {"fullUrl": f"{base_url.rstrip('/')}/{url}", "resource": resource, "request": {"method": "PUT", "url": url}}


def _provenance(
    group: tuple[str, str], targets: list[Json], entities: list[Json], agents: Agents, stamp: Stamp
) -> Json:
    patient, activity = group
    behalf = {"reference": agents.organization}
    agent: list[Json] = [
        {"type": codes.concept(codes.ASSEMBLER), "who": {"reference": agents.device}, "onBehalfOf": behalf},
        {"type": codes.concept(codes.AUTHOR), "who": {"reference": agents.organization}},
    ]
    if agents.caller is not None:
        who = {"type": "Device", "identifier": {"system": agents.caller_system, "value": agents.caller}}
        agent.append(
            {"type": codes.concept(codes.TRANSMITTER), "who": {**who, "display": agents.caller}, "onBehalfOf": behalf}
        )
    resource: Json = {
        "resourceType": PROVENANCE,
        "id": provenance_id(stamp.scope, patient, activity),
        "target": targets,
        "recorded": stamp.recorded,
        "activity": codes.concept(codes.ACTIVITIES[activity]),
        "agent": agent,
    }
    if entities:
        resource["entity"] = entities
    return resource


def _patient_of(entry: Json) -> str | None:
    """The patient an entry is of: the Patient's own fullUrl (urn) or ref, else its resource's `subject`."""
    resource = entry["resource"]
    if resource.get("resourceType") == "Patient":
        return _ref(entry) or str(entry.get("fullUrl"))
    reference = (resource.get("subject") or {}).get("reference")
    return str(reference) if reference and (reference.startswith("Patient/") or reference.startswith("urn:")) else None


def _activity(entry: Json) -> str:
    """CREATE for a (conditional) create, NULLIFY for a resource written entered-in-error, else UPDATE."""
    if entry.get("request", {}).get("method") == "POST":
        return codes.CREATE
    return codes.NULLIFY if entry["resource"].get("status") == codes.ENTERED_IN_ERROR else codes.UPDATE


def _ref(entry: Json) -> str | None:
    """`Type/id` of a PUT entry; None for a POST (its fullUrl, a urn, is the reference HAPI rewrites)."""
    request = entry.get("request", {})
    return str(request["url"]) if request.get("method") == "PUT" else None


def _deleted_ref(gone: Deleted, base_url: str, *, versioned: bool) -> Json:
    """A deleted resource named by its absolute URL as an identifier (a reference to it would stop the delete: HAPI
    keeps referential integrity); `versioned`: the URL of the version deleted, whose history HAPI keeps."""
    url = f"{base_url.rstrip('/')}/{gone.resource_type}/{gone.id}"
    if versioned and gone.version:
        url = f"{url}/_history/{gone.version}"
    return {"type": gone.resource_type, "identifier": {"system": codes.URI_SYSTEM, "value": url}}


def _belongs(source: Source, group: tuple[str, str], refs: set[str]) -> bool:
    """A record is a source of the group holding one of its resources (or its patient's conditional create); a
    record with no refs is a source of every group."""
    if not source.refs:
        return True
    return bool(source.refs & refs) or (group[1] == codes.CREATE and source.patient_urn == group[0])


def _source(source: Source) -> Json:
    what: Json = {"identifier": {"system": source.system, "value": source.key}}
    if source.file is not None:
        what["display"] = f"{source.file} line {source.line}"
    return {"role": codes.ROLE_SOURCE, "what": what}
