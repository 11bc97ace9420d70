"""Prometheus exposition of the service's metrics (no PHI in any label)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.metrics import CONTENT_TYPE_LATEST
from service.routes.responses import METRICS, PrometheusTextResponse

router = APIRouter(tags=["health"])


@router.get("/metrics", operation_id="metrics", response_class=PrometheusTextResponse, responses=METRICS)
async def metrics(request: Request) -> Response:
    """Requests by route and status, FHIR calls by outcome, latency histograms, retries."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
