"""Operations on one infusion session beyond its record: its monitoring summary (`$monitoring-summary`), read
(GET, computed, nothing written: JSON, or its chart as PNG or PDF by `Accept`) or written (POST)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from schemas.kinds import SEGMENT_OF, SESSION
from service.deps import SummariesDep, SyncEngineDep
from service.errors import NotFound
from service.media import JSON, negotiate
from service.monitoring.chart import PDF, PNG
from service.monitoring.store import read_held
from service.monitoring.summary import summarise
from service.monitoring.summary_chart import draw_summary
from service.monitoring.summary_json import as_json
from service.routes.records import RecordKey
from service.routes.responses import MONITORING_SUMMARY, MONITORING_SUMMARY_WRITE
from service.sync import SyncResult

SESSIONS = SEGMENT_OF[SESSION]
router = APIRouter(prefix="/v1", tags=[SESSIONS])
SUMMARY_PATH = f"/{SESSIONS}/{{key}}/$monitoring-summary"


@router.get(SUMMARY_PATH, operation_id="get_monitoring_summary", response_model=None, responses=MONITORING_SUMMARY)
async def get_monitoring_summary(key: RecordKey, request: Request, engine: SyncEngineDep) -> Response:
    """The session's monitoring summary, computed from what the FHIR server holds for it now: baseline, peak
    and trough of each vital, readings by level, the confirmed rules that fired, the session fields modelled on
    the esketamine REMS patient monitoring form, adverse events and the discharge criteria (documentation, not
    an alarm). With `Accept: image/png` or `application/pdf`: its chart (blood pressure, heart rate and SpO2 over
    time, the infusion shaded, the protocol's limits drawn, out-of-limit readings marked)."""
    media = negotiate(request.headers.get("accept"), (JSON, PNG, PDF))
    held = await read_held(engine.fhir, engine.config, key)
    summary = summarise(held, engine.config.protocol)
    if media == JSON:
        return JSONResponse(as_json(summary))
    drawn = await draw_summary(summary, media)  # in the chart worker: the event loop keeps serving
    if drawn is None:
        raise NotFound(f"{SESSION} {key} has no chart: its infusion has no start time")
    return Response(drawn, media_type=media)


@router.post(
    SUMMARY_PATH, operation_id="write_monitoring_summary", response_model=None, responses=MONITORING_SUMMARY_WRITE
)
async def write_monitoring_summary(key: RecordKey, summaries: SummariesDep) -> JSONResponse:
    """Compute the session's monitoring summary and write it: a DiagnosticReport (preliminary, final or amended)
    with a statistics Observation per monitored vital, and the session's critical-episode Flag when a confirmed
    rule fired (never written over once a clinician changed it). What did not change is not written again."""
    result = SyncResult(await summaries.refresh(key, required=True), transactions=0)
    return JSONResponse(result.as_dict(), status_code=201 if result.created_any else 200)
