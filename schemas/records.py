"""Parsing API: one entry point per caller, every problem reported as (field path, plain message)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from schemas import kinds
from schemas.adverse_event import AdverseEvent
from schemas.assessment import Assessment
from schemas.monitoring_score import MonitoringScore
from schemas.phq9 import Phq9Assessment
from schemas.phq9_kinds import one_record
from schemas.refused import positive_safety_answers
from schemas.session import InfusionSession
from schemas.vital_sign import VitalSign

MODELS: dict[str, type[InfusionSession | VitalSign | MonitoringScore | AdverseEvent | Phq9Assessment | Assessment]] = {
    kinds.SESSION: InfusionSession,
    kinds.VITAL_SIGN: VitalSign,
    kinds.MONITORING_SCORE: MonitoringScore,
    kinds.ADVERSE_EVENT: AdverseEvent,
    kinds.PHQ9: Phq9Assessment,
    kinds.ASSESSMENT: Assessment,
}
KINDS = kinds.KINDS
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
_Model = TypeVar("_Model", bound=BaseModel)

Record = Annotated[
    InfusionSession | VitalSign | MonitoringScore | AdverseEvent | Phq9Assessment | Assessment,
    Field(discriminator="kind"),
]
"""Any record; the models' `kind` literal discriminates."""


@dataclass(frozen=True)
class Issue:
    """One validation problem. `path` is dotted with [i] indexes ("" for the record itself).

    `safety`: not a problem with the field but a positive safety answer the refused record holds
    (`safety_issues`): the edges show it first and apart (API issue code `business-rule`, the batch's
    `safety_answer` and `safety_rejects`).
    """

    path: str
    message: str
    safety: bool = False

    def __str__(self) -> str:
        return f"{self.path or '(record)'}: {self.message}"


class RecordInvalid(ValueError):
    """A record was rejected; `issues` says where and why, never echoing input values."""

    def __init__(self, issues: list[Issue] | tuple[Issue, ...]) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))

    @classmethod
    def single(cls, path: str, message: str) -> RecordInvalid:
        """A rejection with one issue."""
        return cls([Issue(path, message)])

    def holding(self, kind: object, obj: object) -> RecordInvalid:
        """This rejection, its issues led by the positive safety answers of `obj` (a record of `kind`)."""
        found = safety_issues(kind, obj)
        return RecordInvalid([*found, *self.issues]) if found else self


def safety_issues(kind: object, record: object) -> list[Issue]:
    """An issue per positive safety answer in a refused record: its JSON as sent, or a parsed record
    refused at sync. Each names the item, never its value (schemas/refused.py says what is detectable)."""
    if isinstance(record, BaseModel):
        record = record.model_dump(mode="json")
    return [Issue(found.path, found.message, safety=True) for found in positive_safety_answers(kind, record)]


def format_path(loc: tuple[str | int, ...]) -> str:
    """`("vital_signs", 2, "diastolic")` -> `vital_signs[2].diastolic`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def issues_from(error: ValidationError) -> list[Issue]:
    """Translate pydantic errors into issues; inputs and pydantic's own URLs are left out."""
    issues: list[Issue] = []
    for err in error.errors(include_url=False, include_input=False):
        loc = tuple(err["loc"])
        if err["type"] == "nested":
            for sub_loc, message in err["ctx"]["issues"]:
                issues.append(Issue(format_path(loc + tuple(sub_loc)), message))
        elif err["type"] == "extra_forbidden" and loc and not _FIELD_NAME.match(str(loc[-1])):
            # An unknown field is named only when its name looks like a field name (names are input too).
            issues.append(Issue(format_path((*loc[:-1], "(unknown field)")), err["msg"]))
        else:
            issues.append(Issue(format_path(loc), err["msg"]))
    return issues


def _unknown_kind() -> RecordInvalid:
    return RecordInvalid([Issue("kind", f"unknown record kind; expected one of: {', '.join(KINDS)}")])


def _validate(model: type[_Model], obj: Any) -> _Model:
    try:
        return model.model_validate(obj)
    except ValidationError as error:
        raise RecordInvalid(issues_from(error)) from None


def parse_record(
    obj: Any,
) -> InfusionSession | VitalSign | MonitoringScore | AdverseEvent | Phq9Assessment | Assessment:
    """Validate a record whose kind is named by its `"kind"` field; a refusal names its safety answers.

    A PHQ-9 sent as `assessment` comes back as the `phq9_assessment` it is (`schemas.phq9_kinds`)."""
    try:
        return _parse_record(obj)
    except RecordInvalid as invalid:
        raise invalid.holding(obj.get("kind") if isinstance(obj, dict) else None, obj) from None


def _parse_record(
    obj: Any,
) -> InfusionSession | VitalSign | MonitoringScore | AdverseEvent | Phq9Assessment | Assessment:
    if not isinstance(obj, dict):
        raise RecordInvalid([Issue("", "a record must be a JSON object")])
    if "kind" not in obj:
        raise RecordInvalid([Issue("kind", f"Field required; one of: {', '.join(KINDS)}")])
    kind = obj["kind"]
    if not isinstance(kind, str) or kind not in MODELS:
        raise _unknown_kind()
    return _one(_validate(MODELS[kind], obj))


def parse_record_of_kind(
    kind: str, obj: Any, key: str | None = None
) -> InfusionSession | VitalSign | MonitoringScore | AdverseEvent | Phq9Assessment | Assessment:
    """Validate a record of a kind named by the caller; `"kind"` in `obj` is optional but must match.

    With `key` (e.g. from the URL) the body's `"key"` is optional too, but must match when present. A
    refusal names the positive safety answers the body holds. A PHQ-9 sent as `assessment` comes back as
    the `phq9_assessment` it is (`schemas.phq9_kinds`).
    """
    try:
        return _parse_record_of_kind(kind, obj, key)
    except RecordInvalid as invalid:
        raise invalid.holding(kind, obj) from None


def _parse_record_of_kind(
    kind: str, obj: Any, key: str | None
) -> InfusionSession | VitalSign | MonitoringScore | AdverseEvent | Phq9Assessment | Assessment:
    if kind not in MODELS:
        raise _unknown_kind()
    if not isinstance(obj, dict):
        raise RecordInvalid([Issue("", "a record must be a JSON object")])
    if key is not None:
        if "key" in obj and obj["key"] != key:
            raise RecordInvalid([Issue("key", "must match the record key the request names")])
        obj = {**obj, "key": key}
    return _one(_validate(MODELS[kind], obj))


def _one(record: _Model) -> _Model | Phq9Assessment:
    """The record as the one kind it is recorded under (a PHQ-9 `assessment` is its `phq9_assessment`)."""
    try:
        return one_record(record)
    except ValidationError as error:  # not expected: the PHQ-9 definition checked the same rules
        raise RecordInvalid(issues_from(error)) from None
