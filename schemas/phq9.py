"""The `phq9_assessment` record: a PHQ-9 questionnaire, nine items scored 0-3."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, Strict, ValidationInfo, field_validator

from schemas.common import KIND_NOTE, Integer, Key, PatientInfo, RecordBase, Timestamp, WholeNumber, rule

Difficulty = Literal["not_difficult", "somewhat", "very", "extremely"]
ItemScore = Annotated[int, Strict(), Field(ge=0, le=3), WholeNumber]


class Phq9Assessment(RecordBase):
    """A completed PHQ-9; `total` is the sum of the items (filled in when omitted)."""

    kind: Literal["phq9_assessment"] = Field("phq9_assessment", description=KIND_NOTE)
    session_key: Key | None = Field(None, description="Key of the infusion session it belongs to.")
    completed_at: Timestamp
    items: list[ItemScore] = Field(
        min_length=9, max_length=9, description="Exactly 9 answers in questionnaire order, each 0-3."
    )
    difficulty: Difficulty | None = Field(None, description="Item 10, how difficult the problems made things.")
    total: Integer | None = Field(
        None, validate_default=True, description="Optional; must equal the sum of the items when given."
    )

    @field_validator("total")
    @classmethod
    def _total_is_sum(cls, total: int | None, info: ValidationInfo) -> int | None:
        items: list[int] | None = info.data.get("items")
        if items is None:
            return total
        if total is None:
            return sum(items)
        if total != sum(items):
            raise rule("must equal the sum of the 9 items")
        return total


class EmbeddedPhq9Assessment(Phq9Assessment):
    """A PHQ-9 inside an infusion session: `patient` and `session_key` come from the session."""

    embedded: ClassVar[bool] = True
    # Wider than the base field on purpose: optional on input; the session's validator (`_adopt`) always
    # fills it in, so a validated session never holds an embedded record with None here.
    patient: PatientInfo | None = Field(None, description="Omit, or give the session's patient (same mrn).")  # type: ignore[assignment]
