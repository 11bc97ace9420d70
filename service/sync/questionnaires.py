"""The service's Questionnaires on the FHIR server: each written once, and again only when it differs.

instruments.md section 4: a Questionnaire is published before the first response that names it and
is never rewritten when unchanged. Its id follows its canonical `url|version`
(`service.mappers.questionnaire.questionnaire_id`), so a new version is a new resource and the old
one is left as it is. The server's copies are read in one `_id` search; the missing or different
ones are PUT in one transaction (idempotent, so the client's retry policy applies).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.kinds import ASSESSMENT, PHQ9, embedded_children
from service.fhir_client import FhirClient
from service.instruments import DEFINITIONS
from service.mappers.config import MappingConfig
from service.mappers.questionnaire import questionnaire_id, to_questionnaire_json

log = logging.getLogger("infusion_fhir.sync")
QUESTIONNAIRE = "Questionnaire"


@dataclass(frozen=True)
class QuestionnaireReport:
    """What `ensure_questionnaires` did, by Questionnaire id."""

    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]

    @property
    def written(self) -> int:
        """How many Questionnaires were PUT (0 when the server already held every one as it is)."""
        return len(self.created) + len(self.updated)

    def counts(self) -> dict[str, int]:
        return {"created": len(self.created), "updated": len(self.updated), "unchanged": len(self.unchanged)}


async def ensure_questionnaires(
    client: FhirClient, config: MappingConfig, instruments: Iterable[str] = DEFINITIONS
) -> QuestionnaireReport:
    """Make the server hold the Questionnaire of every instrument (default: all) exactly as the service
    publishes it: PUT the missing and the different ones, leave the unchanged ones alone."""
    ours = {questionnaire_id(config, i): to_questionnaire_json(config, i) for i in instruments}
    held = {resource.get("id"): resource for resource in await client.current(QUESTIONNAIRE, list(ours))}
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    for resource_id, questionnaire in ours.items():
        server = held.get(resource_id)
        if server is None:
            created.append(resource_id)
        elif _content(server) != _content(questionnaire):
            updated.append(resource_id)
        else:
            unchanged.append(resource_id)
    to_write = [*created, *updated]
    if to_write:
        base = config.fhir_base_url.rstrip("/")
        entries = [
            {
                "fullUrl": f"{base}/{QUESTIONNAIRE}/{resource_id}",
                "resource": ours[resource_id],
                "request": {"method": "PUT", "url": f"{QUESTIONNAIRE}/{resource_id}"},
            }
            for resource_id in sorted(to_write)
        ]
        await client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries}, idempotent=True)
    report = QuestionnaireReport(tuple(created), tuple(updated), tuple(unchanged))
    log.info("sync.questionnaires", extra={f"questionnaires_{k}": n for k, n in report.counts().items()})
    return report


def carry_questionnaire_responses(records: Iterable[Any]) -> bool:
    """Whether writing `records` writes a QuestionnaireResponse (an `assessment`, a PHQ-9, a session
    embedding one), so its Questionnaire must be on the server first."""
    return any(
        getattr(form, "kind", None) in (ASSESSMENT, PHQ9)
        for record in records
        for form in (record, *embedded_children(record))
    )


class QuestionnairesOnce:
    """`ensure_questionnaires` at most once per process, before the first write that needs it.

    Concurrent callers wait for the one check in flight; once it succeeded, `ensure` costs nothing.
    A failed check (the server down) raises to its caller and the next caller tries again.
    """

    def __init__(self, client: FhirClient, config: MappingConfig) -> None:
        self.client = client
        self.config = config
        self._lock = asyncio.Lock()
        self._done = False

    async def ensure(self) -> QuestionnaireReport | None:
        """The report of the check this call ran, or None when an earlier call already made sure."""
        if self._done:
            return None
        async with self._lock:
            if self._done:
                return None
            report = await ensure_questionnaires(self.client, self.config)
            self._done = True
            return report


def _content(resource: dict[str, Any]) -> bytes:
    """A Questionnaire for comparison: everything but the server's `meta`, as canonical JSON."""
    return orjson.dumps({k: v for k, v in resource.items() if k != "meta"}, option=orjson.OPT_SORT_KEYS)
