"""Patient-level views computed from the FHIR server (MRNs travel in bodies, never in URLs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas import RecordInvalid
from schemas.records import issues_from
from service.deps import FhirClientDep, SettingsDep
from service.routes.examples import TREND_EXAMPLE
from service.routes.records import read_json_body
from service.routes.responses import PHQ9_TREND
from service.sync.trend import phq9_trend

router = APIRouter(prefix="/v1", tags=["patients"])


class TrendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mrn: str = Field(min_length=1, max_length=64, description="The patient's MRN exactly as the EHR holds it.")


@router.post(
    "/patients/$phq9-trend",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": TrendRequest.model_json_schema(), "example": TREND_EXAMPLE}},
        }
    },
    operation_id="phq9_trend",
    response_model=None,
    responses=PHQ9_TREND,
)
async def phq9_trend_route(request: Request, fhir: FhirClientDep, settings: SettingsDep) -> dict[str, Any]:
    """The patient's PHQ-9 totals over time: baseline, change, response (>= 50% drop), remission (< 5),
    item 9 on every point, and an alert for every assessment with item 9 > 0 (newest first)."""
    body = await read_json_body(request)
    try:
        query = TrendRequest.model_validate(body)
    except ValidationError as error:
        raise RecordInvalid(issues_from(error)) from None
    return await phq9_trend(fhir, settings.mapping_config(), query.mrn)
