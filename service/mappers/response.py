"""The QuestionnaireResponse of a completed rating scale, and the codings of its definition's answers.

instruments.md section 4: `questionnaire` = the service's own `url|version`, status `completed` (or
`entered-in-error` with a retracted session), `subject`, `encounter` with a session, `authored`, one
item per answered question (the difficulty item last when given), each answer a `valueCoding` with
the definition's answer code (choice and yes/no items) or a `valueInteger`. Shared by the `assessment`
and `phq9_assessment` mappers: a PHQ-9 has one response whichever kind it came as.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache

from service.instruments import Definition
from service.instruments.model import LOCAL_SYSTEM, Choice, Coding, Item, YesNo
from service.mappers import codes, narrative
from service.mappers.build import Json, encounter_reference, resource_head, session_link, subject, when
from service.mappers.config import MappingConfig
from service.mappers.context import SessionContext
from service.mappers.fhir import Coding as FhirCoding
from service.mappers.fhir import to_json
from service.mappers.questionnaire import questionnaire_canonical

PART = "response"
STATUS = "completed"
Answered = Sequence[tuple[Item, int | bool]]
"""(item, answer) of each answered question, in questionnaire order."""


@lru_cache(maxsize=1024)
def definition_coding(value: Coding, config: MappingConfig, system_path: str = LOCAL_SYSTEM) -> Json:
    """A Coding of a definition's code: LOINC, or the local system at `system_path` (no display if none)."""
    system = codes.local_system(config.local_code_system_base, system_path) if value.local else codes.LOINC
    return to_json(FhirCoding(system=system, code=value.code, display=value.display))


def answer_coding(item: Item, value: int | bool) -> Coding | None:
    """The answer code of a choice or yes/no answer; None for an integer item."""
    answer = item.answer
    if isinstance(answer, YesNo):
        return answer.yes if value is True else answer.no
    if isinstance(answer, Choice):
        return next(option.coding for option in answer.options if option.score == value)
    return None


def questionnaire_response(
    kind: str,
    key: str,
    defn: Definition,
    answered: Answered,
    difficulty: tuple[Item, int] | None,
    mrn: str,
    completed_at: dt.datetime,
    ctx: SessionContext | None,
    config: MappingConfig,
) -> Json:
    """The response of the record `kind`/`key` to the service's Questionnaire of `defn`."""
    status = codes.ENTERED_IN_ERROR if ctx is not None and ctx.retracts_children else STATUS
    out = resource_head(
        kind,
        key,
        PART,
        config,
        extension=session_link(ctx, config),
        text=narrative.assessment_response(
            defn.title, len(answered), narrative.at(completed_at), status == codes.ENTERED_IN_ERROR
        ),
    )
    out["identifier"] = out["identifier"][0]  # QuestionnaireResponse.identifier is 0..1 in R4
    out.update(questionnaire=questionnaire_canonical(config, defn.id), status=status, subject=subject(mrn, config))
    encounter = encounter_reference(ctx)
    if encounter is not None:
        out["encounter"] = encounter
    out["authored"] = when(completed_at)
    out["item"] = [_item(item, value, config) for item, value in [*answered, *([difficulty] if difficulty else [])]]
    return out


def _item(item: Item, value: int | bool, config: MappingConfig) -> Json:
    coding = answer_coding(item, value)
    answer = {"valueInteger": value} if coding is None else {"valueCoding": definition_coding(coding, config)}
    return {"linkId": item.link_id, "text": item.text, "answer": [answer]}
