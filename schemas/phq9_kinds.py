"""One PHQ-9, two kinds: an `assessment` with `instrument: "phq9"` is the `phq9_assessment` of its key.

Issue 21: a PHQ-9 sent as `assessment` and one sent as `phq9_assessment` with the same key are the
same record, with the same resource ids and resources. Parsing makes them one (`one_record`): the
assessment is checked by the PHQ-9 definition (its own errors, at its own fields) and handed on as the
`phq9_assessment` it is, so every mapper, id, sync and read sees one kind. `as_assessment` goes back,
for a caller who reads the record under the `assessment` kind.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from schemas import kinds
from schemas.assessment import Assessment
from schemas.phq9 import Phq9Assessment

PHQ9_INSTRUMENT = "phq9"
R = TypeVar("R", bound=BaseModel)


def one_record(record: R) -> R | Phq9Assessment:
    """The record as the one kind it is recorded under: a PHQ-9 `assessment` becomes its `phq9_assessment`."""
    if isinstance(record, Assessment) and record.instrument == PHQ9_INSTRUMENT:
        fields = record.model_dump(exclude={"kind", "instrument"}, exclude_none=True)
        return Phq9Assessment.model_validate({**fields, "kind": kinds.PHQ9})
    return record


def as_assessment(record: Phq9Assessment) -> Assessment:
    """The PHQ-9 as an `assessment` record (`instrument: "phq9"`), as the `assessment` kind reads it back."""
    fields = record.model_dump(exclude={"kind"}, exclude_none=True)
    return Assessment.model_validate({**fields, "kind": kinds.ASSESSMENT, "instrument": PHQ9_INSTRUMENT})
