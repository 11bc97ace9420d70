"""Operations on one infusion session beyond its record: its monitoring summary (`$monitoring-summary`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from schemas.kinds import SEGMENT_OF, SESSION
from service.deps import SyncEngineDep
from service.monitoring.store import read_held
from service.monitoring.summary import summarise
from service.monitoring.summary_json import as_json
from service.routes.records import RecordKey
from service.routes.responses import MONITORING_SUMMARY

SESSIONS = SEGMENT_OF[SESSION]
router = APIRouter(prefix="/v1", tags=[SESSIONS])
SUMMARY_PATH = f"/{SESSIONS}/{{key}}/$monitoring-summary"


@router.get(SUMMARY_PATH, operation_id="get_monitoring_summary", response_model=None, responses=MONITORING_SUMMARY)
async def get_monitoring_summary(key: RecordKey, engine: SyncEngineDep) -> dict[str, Any]:
    """The session's monitoring summary, computed from what the FHIR server holds for it now: baseline, peak
    and trough of each vital, readings by level, the confirmed rules that fired, the session fields modelled on
    the esketamine REMS patient monitoring form, adverse events and the discharge criteria (documentation, not
    an alarm)."""
    held = await read_held(engine.fhir, engine.config, key)
    return as_json(summarise(held, engine.config.protocol))
