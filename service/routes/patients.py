"""Patient-level views computed from the FHIR server (MRNs travel in bodies, never in URLs)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from schemas import RecordInvalid
from schemas.common import Key, nested
from schemas.records import issues_from
from service.audit import involve_patient
from service.deps import FhirClientDep, SettingsDep
from service.outcomes import outcome_trend
from service.routes.examples import OUTCOME_TREND_EXAMPLES, TREND_EXAMPLE
from service.routes.records import read_json_body
from service.routes.responses import OUTCOME_TREND, PHQ9_TREND
from service.sync.trend import phq9_trend

router = APIRouter(prefix="/v1", tags=["patients"])

Instrument = Literal["phq9", "gad7", "pcl5", "cssrs_screen", "cssrs_screen_slc", "qids_sr16", "madrs", "ybocs"]
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class TrendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mrn: str = Field(min_length=1, max_length=64, description="The patient's MRN exactly as the EHR holds it.")


def _date_text(value: Any) -> Any:
    if isinstance(value, str) and _DATE.match(value):
        return value
    raise PydanticCustomError("date_type", "must be an ISO 8601 date (YYYY-MM-DD)")


Since = Annotated[dt.date, BeforeValidator(_date_text), Field(json_schema_extra={"pattern": _DATE.pattern})]


class OutcomeTrendRequest(TrendRequest):
    """`$outcome-trend`: whose trend, of which instrument (all when left out), over which window."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "not": {"required": ["since", "baseline_key"]},
            "dependentRequired": {"baseline_key": ["instrument"]},
        },
    )
    instrument: Instrument | SkipJsonSchema[None] = Field(
        None, description="The instrument; left out: one summary per instrument the patient has."
    )
    since: Since | SkipJsonSchema[None] = Field(
        None, description="Only assessments on or after this date (as each was recorded); not with baseline_key."
    )
    baseline_key: Key | SkipJsonSchema[None] = Field(
        None,
        description="The record key of the assessment to use as baseline (the window starts there); needs "
        "`instrument`; not with `since`.",
    )

    @field_validator("instrument", "since", "baseline_key", mode="wrap")
    @classmethod
    def _one_issue(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """An optional field is left out, never null; a bad value is one issue at the field (not one per
        branch of `X | None`)."""
        if value is None:
            raise PydanticCustomError("null", "leave the field out rather than sending null")
        try:
            return handler(value)
        except ValidationError as error:
            messages = [e["msg"] for e in error.errors(include_url=False) if e["type"] != "none_required"]
            raise PydanticCustomError("value_error", "{message}", {"message": (messages or ["invalid"])[0]}) from None

    @model_validator(mode="after")
    def _one_window(self) -> OutcomeTrendRequest:
        if self.since is not None and self.baseline_key is not None:
            raise nested([(("baseline_key",), "give either since or baseline_key, not both")])
        if self.baseline_key is not None and self.instrument is None:
            raise nested([(("instrument",), "baseline_key names an assessment of one instrument: name it")])
        return self


def _query(model: type[TrendRequest], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise RecordInvalid(issues_from(error)) from None


def _body(model: type[BaseModel], examples: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema(), **examples}},
        }
    }


@router.post(
    "/patients/$phq9-trend",
    openapi_extra=_body(TrendRequest, {"example": TREND_EXAMPLE}),
    operation_id="phq9_trend",
    response_model=None,
    responses=PHQ9_TREND,
)
async def phq9_trend_route(request: Request, fhir: FhirClientDep, settings: SettingsDep) -> dict[str, Any]:
    """The patient's PHQ-9 totals over time: baseline, change, response (>= 50% drop), remission (< 5),
    item 9 on every point, and an alert for every assessment with item 9 > 0 (newest first)."""
    query = _query(TrendRequest, await read_json_body(request))
    involve_patient(query.mrn)
    return await phq9_trend(fhir, settings.mapping_config(), query.mrn)


@router.post(
    "/patients/$outcome-trend",
    openapi_extra=_body(OutcomeTrendRequest, {"examples": OUTCOME_TREND_EXAMPLES}),
    operation_id="outcome_trend",
    response_model=None,
    responses=OUTCOME_TREND,
)
async def outcome_trend_route(request: Request, fhir: FhirClientDep, settings: SettingsDep) -> dict[str, Any]:
    """Any instrument's trend: points in time order with band, change, response and remission by the
    instrument's named rules, the safety answers and whether positive, the baseline and why, alerts newest
    first, and the rules in force (a weakened safety threshold named). Without `instrument`: every one the
    patient has."""
    query = _query(OutcomeTrendRequest, await read_json_body(request))
    involve_patient(query.mrn)
    return await outcome_trend(
        fhir,
        settings.mapping_config(),
        query.mrn,
        query.instrument,
        since=query.since,
        baseline_key=query.baseline_key,
    )
