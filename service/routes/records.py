"""PUT / GET / DELETE of one clinic record per kind, under `/v1/<kind>/{key}`."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from schemas import RecordInvalid, parse_record_of_kind, safety_issues
from schemas.common import KEY_PATTERN
from schemas.kinds import SEGMENTS
from service.audit import involve_patient
from service.deps import QuestionnairesDep, SettingsDep, SummariesDep, SyncEngineDep
from service.errors import Conflict, FhirRejected, NotFound
from service.routes.responses import (
    MONITORING_SUMMARY_KEY,
    RECORD_DELETE,
    record_get,
    record_put,
    record_put_body,
)
from service.sync import SyncEngine
from service.sync.questionnaires import carry_questionnaire_responses
from service.sync.same_phq9 import read_record, retract_record

RecordKey = Annotated[str, Path(pattern=KEY_PATTERN, description="The clinic's record key.")]

router = APIRouter(prefix="/v1")


async def read_json_body(request: Request) -> Any:
    """The request body as JSON, or a 422 saying it is not JSON (the body is never echoed)."""
    body = await request.body()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RecordInvalid.single("", "request body is not valid JSON") from None


def _mrn(record: Any) -> str | None:
    """The MRN a record names (the audit's patient; records sent under their session may name none)."""
    patient = getattr(record, "patient", None)
    return getattr(patient, "mrn", None)


async def _involve_patient_of(engine: SyncEngine, kind: str, key: str) -> None:
    """Tell the audit whose record a retraction is about (one read; none when the server has no such record)."""
    with contextlib.suppress(NotFound):
        involve_patient(_mrn(await read_record(engine, kind, key)))


def _record_routes(segment: str, kind: str) -> None:
    tag = segment

    @router.put(
        f"/{segment}/{{key}}",
        tags=[tag],
        name=f"put_{kind}",
        operation_id=f"put_{kind}",
        openapi_extra=record_put_body(kind),
        responses=record_put(kind),
    )
    async def put_record(
        key: RecordKey,
        request: Request,
        engine: SyncEngineDep,
        settings: SettingsDep,
        questionnaires: QuestionnairesDep,
        summaries: SummariesDep,
    ) -> JSONResponse:
        body = await read_json_body(request)
        record = parse_record_of_kind(kind, body, key=key)
        involve_patient(_mrn(record))
        if carry_questionnaire_responses([record]):  # the form is on the server before any response to it
            await questionnaires.ensure()
        try:
            result = await engine.upsert([record], diff=settings.api_read_before_write)
        except (Conflict, FhirRejected) as refused:  # nothing written: say so of a safety answer it holds
            refused.safety = tuple(safety_issues(kind, record))
            raise
        answer = result.as_dict()
        # its session's monitoring summary and critical-episode Flag: refreshed now, or right after the answer
        summary = (await summaries.after_write([record], result.resources)).as_dict()
        if summary is not None:
            answer[MONITORING_SUMMARY_KEY] = summary
        return JSONResponse(answer, status_code=201 if result.created_any else 200)

    put_record.__doc__ = f"Map and sync one {kind} record (idempotent; re-sending changes nothing)."

    @router.get(
        f"/{segment}/{{key}}", tags=[tag], name=f"get_{kind}", operation_id=f"get_{kind}", responses=record_get(kind)
    )
    async def get_record(key: RecordKey, engine: SyncEngineDep) -> Response:
        record = await read_record(engine, kind, key)
        involve_patient(_mrn(record))
        return Response(record.model_dump_json(exclude_none=True), media_type="application/json")

    get_record.__doc__ = f"The {kind} record as read back from the FHIR server (404 when absent)."

    @router.delete(
        f"/{segment}/{{key}}",
        tags=[tag],
        status_code=204,
        name=f"delete_{kind}",
        operation_id=f"delete_{kind}",
        responses=RECORD_DELETE,
    )
    async def delete_record(key: RecordKey, engine: SyncEngineDep, summaries: SummariesDep) -> Response:
        await _involve_patient_of(engine, kind, key)
        session = await summaries.before_retract(kind, key)
        await retract_record(engine, kind, key)
        await summaries.after_retract(session)
        return Response(status_code=204)

    delete_record.__doc__ = f"Retract the {kind} record: its resources become entered-in-error (repeatable)."


for _segment, _kind in SEGMENTS.items():
    _record_routes(_segment, _kind)
