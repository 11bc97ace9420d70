"""Building blocks shared by the record models: strict base model, field types, patient, rule errors."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

from schemas.stated import (
    DATE_TIME_FROM_1900_OFFSET_WITHIN_14H,
    NO_EDGE_SPACE_NO_CONTROL_CHARS,
    NOT_BLANK_NO_CONTROL_CHARS,
    YEAR_FROM_1900,
    SchemaPattern,
)

KEY_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
MAX_OFFSET = dt.timedelta(hours=14)
EARLIEST_BIRTH_DATE = dt.date(1900, 1, 1)
KIND_NOTE = "The record kind: required in NDJSON files; optional where the caller (e.g. the URL) names it."


class StrictModel(BaseModel):
    """Base for every record model: unknown fields rejected, no NaN/inf, immutable."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


PHI: dict[str, Any] = {"x-phi": True}
"""`json_schema_extra` of a field that holds PHI: never logged, never echoed, scrubbed from server
diagnostics (`phi_strings`). The JSON Schemas show the mark to integrators."""


def phi_strings(value: Any) -> set[str]:
    """Every string held in a PHI-marked field of a record, its sub-models and lists (as text)."""
    out: set[str] = set()
    if isinstance(value, (list, tuple)):
        for item in value:
            out |= phi_strings(item)
        return out
    if not isinstance(value, BaseModel):
        return out
    for name, info in type(value).model_fields.items():
        field_value = getattr(value, name)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("x-phi") and field_value is not None:
            items = field_value if isinstance(field_value, list) else [field_value]
            out |= {str(item) for item in items}
        elif isinstance(field_value, (BaseModel, list)):
            out |= phi_strings(field_value)
    return out


def rule(message: str) -> PydanticCustomError:
    """A violated record rule; the message describes the rule, never the input value."""
    return PydanticCustomError("rule", message)


def required(message: str) -> PydanticCustomError:
    """A field that a rule makes required is missing."""
    return PydanticCustomError("missing", message)


def nested(issues: Sequence[tuple[tuple[str | int, ...], str]]) -> PydanticCustomError:
    """Several rule violations below the current field; `issues` hold (relative location, message)."""
    return PydanticCustomError("nested", "nested rule violations", {"issues": issues})


def _allowed_char(ch: str) -> bool:
    """FHIR strings: no control characters, and no whitespace but space, tab and line breaks."""
    code = ord(ch)
    if ch in " \t\n\r":
        return True
    return not (code < 32 or 127 <= code < 160 or 0xD800 <= code <= 0xDFFF or ch.isspace())


def _no_control_chars(value: str) -> str:
    if not all(map(_allowed_char, value)):
        raise rule("must not contain control characters or whitespace other than space, tab and line breaks")
    return value


def _no_edge_whitespace(value: str) -> str:
    if value != value.strip():
        raise rule("must not start or end with whitespace")
    return value


_ISO_DATE_START = re.compile("[0-9]{4}-")  # pydantic would read a string of digits as a Unix time


def _date_time_text(value: Any) -> Any:
    if (isinstance(value, str) and _ISO_DATE_START.match(value)) or isinstance(value, dt.datetime):
        return value
    raise PydanticCustomError("datetime_type", "must be an ISO 8601 date-time string with a UTC offset")


def _whole_minute_offset(value: dt.datetime) -> dt.datetime:
    offset = value.utcoffset()
    if offset is None or offset.seconds % 60 or offset.microseconds or abs(offset) > MAX_OFFSET:
        raise rule("UTC offset must be whole minutes between -14:00 and +14:00")
    if value.year < 1900:
        raise rule("must not be before the year 1900")
    return value


def _date_text(value: Any) -> Any:
    if isinstance(value, str) and len(value) == 10 and _ISO_DATE_START.match(value):
        return value
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raise PydanticCustomError("date_type", "must be an ISO 8601 date (YYYY-MM-DD)")


def _plausible_birth_date(value: dt.date) -> dt.date:
    if value < EARLIEST_BIRTH_DATE:
        raise rule("must not be before 1900-01-01")
    return value


Key = Annotated[
    str,
    StringConstraints(pattern=KEY_PATTERN),
    Field(description="The clinic's record key: 1-64 characters of A-Za-z0-9 . _ -"),
]
Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_date_time_text),
    AfterValidator(_whole_minute_offset),
    SchemaPattern(DATE_TIME_FROM_1900_OFFSET_WITHIN_14H),
    Field(description="ISO 8601 date-time with a UTC offset (Z or +hh:mm); a time without offset is an error"),
]
BirthDate = Annotated[
    dt.date, BeforeValidator(_date_text), AfterValidator(_plausible_birth_date), SchemaPattern(YEAR_FROM_1900)
]
Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(_no_control_chars),
    SchemaPattern(NOT_BLANK_NO_CONTROL_CHARS),
]
ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_no_control_chars),
    SchemaPattern(NOT_BLANK_NO_CONTROL_CHARS),
]
ExternalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_no_control_chars),
    AfterValidator(_no_edge_whitespace),
    SchemaPattern(NO_EDGE_SPACE_NO_CONTROL_CHARS),
]


def _whole_number(value: Any) -> Any:
    """JSON Schema's integer: a number with a zero fraction (`2.0`) is the integer 2. Anything else goes on
    unchanged to the strict int, which refuses `2.5`, `true` and `"2"` at the field."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = BeforeValidator(_whole_number)
"""Last in an int's `Annotated` (after its bounds, so that they stay `minimum`/`maximum` in the schema)."""
Number = Annotated[float, Strict()]
Integer = Annotated[int, Strict(), WholeNumber]

Sex = Literal["female", "male", "other", "unknown"]


class PatientInfo(StrictModel):
    """The patient a record is about, as the EHR knows them."""

    mrn: ExternalId = Field(
        json_schema_extra=PHI,
        description=(
            "Medical record number exactly as the EHR holds it: 1-64 characters, any punctuation; "
            "no control characters, no leading or trailing whitespace."
        ),
    )
    family: ShortText | None = Field(None, description="Family name.", json_schema_extra=PHI)
    given: list[ShortText] | None = Field(
        None, json_schema_extra=PHI, min_length=1, max_length=5, description="Given names, in order."
    )
    birth_date: BirthDate | None = Field(None, description="Date of birth, YYYY-MM-DD.", json_schema_extra=PHI)
    sex: Sex | None = Field(None, description="Administrative sex (FHIR AdministrativeGender).")


class Clinician(StrictModel):
    """The clinician responsible for an infusion session."""

    id: ExternalId = Field(description="The clinic's identifier for the clinician.")
    name: ShortText | None = Field(None, description="Display name.", json_schema_extra=PHI)


class RecordBase(StrictModel):
    """Fields every record kind has (each kind adds its `kind` literal, defaulted)."""

    embedded: ClassVar[bool] = False

    key: Key
    patient: PatientInfo = Field(description="The patient the record is about.")
