"""A key keeps its instrument, across the `assessment` and `phq9_assessment` kinds (issue 21: a 409).

An assessment's QuestionnaireResponse names the Questionnaire it answered: re-sending the key with
another instrument is refused (the version may change, the Questionnaire may not). A PHQ-9 is one
record under both kinds, written under the `phq9_assessment` ids (`schemas.phq9_kinds`), so a key is
also refused when it moves between PHQ-9 and another instrument: an `assessment` of another instrument
whose key holds a PHQ-9 (its panel, which PHQ-9s written before their QuestionnaireResponse have too),
and a PHQ-9 (sent as either kind, or embedded in a session) whose key holds an assessment of another
instrument (any `assessment`-kind response: a PHQ-9 never writes one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from schemas import Assessment, Phq9Assessment
from schemas.kinds import ASSESSMENT, PHQ9, embedded_children
from service.errors import Conflict
from service.mappers.config import MappingConfig
from service.mappers.ids import resource_ref
from service.mappers.questionnaire import questionnaire_url

Copies = Callable[[list[str]], Awaitable[dict[str, dict[str, Any]]]]
"""refs -> the server's current copies of those it holds."""
RESPONSE = "response"
PANEL = "panel"


def _forms(records: Sequence[Any]) -> list[Any]:
    """The assessments and PHQ-9s among the records, the embedded ones included."""
    return [r for record in records for r in (record, *embedded_children(record)) if r.kind in (ASSESSMENT, PHQ9)]


def _questionnaire(held: dict[str, Any]) -> str:
    return str(held.get("questionnaire", "")).split("|")[0]


def _checks(records: Sequence[Any], config: MappingConfig) -> list[tuple[Any, str, str | None]]:
    """(form, ref, the Questionnaire a held copy must name; None: any held copy refuses the form)."""
    checks: list[tuple[Any, str, str | None]] = []
    for record in _forms(records):
        if isinstance(record, Assessment):
            own = resource_ref(ASSESSMENT, record.key, RESPONSE, config)
            checks.append((record, own, questionnaire_url(config, record.instrument)))
            checks.append((record, resource_ref(PHQ9, record.key, PANEL, config), None))
        elif isinstance(record, Phq9Assessment):
            checks.append((record, resource_ref(ASSESSMENT, record.key, RESPONSE, config), None))
    return checks


def kept_refs(record: Any, config: MappingConfig) -> list[str]:
    """The refs `instruments_kept` reads for a record, so a caller can read them ahead with its own."""
    return [ref for _, ref, _ in _checks([record], config)]


async def instruments_kept(records: Sequence[Any], copies: Copies, config: MappingConfig) -> None:
    """Conflict naming the keys re-sent with another instrument than the one the server holds for them."""
    checks = _checks(records, config)
    if not checks:
        return
    held = await copies(list(dict.fromkeys(ref for _, ref, _ in checks)))
    changed = sorted(
        {record.key for record, ref, url in checks if ref in held and (url is None or _questionnaire(held[ref]) != url)}
    )
    if changed:
        raise Conflict(
            f"instrument: an assessment key keeps its instrument; re-sent with another: {', '.join(changed)}"
        )
