"""`$convert`: records in, the FHIR transaction Bundle out, with no FHIR server I/O."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from schemas import Issue, RecordInvalid, format_path, parse_record
from service.audit import involve_patient
from service.batch.source import parse_line
from service.deps import SettingsDep
from service.mappers import transaction_bundle
from service.media import FHIR_JSON, NDJSON
from service.routes.responses import CONVERT, FhirJsonResponse, convert_body

router = APIRouter(prefix="/v1", tags=["convert"])


def _records_from_body(body: bytes, content_type: str) -> list[Any]:
    """Records from a JSON array (or one object) or NDJSON; every bad record reported by index."""
    if NDJSON in content_type or "ndjson" in content_type:
        lines = [parse_line("body", n, raw) for n, raw in enumerate(r for r in body.splitlines() if r.strip())]
        issues = [_at(f"[{line.number}]", i) for line in lines for i in line.issues]
        if issues:
            raise _refused(issues)
        return [line.record for line in lines]
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RecordInvalid.single("", "request body is not valid JSON") from None
    items = parsed if isinstance(parsed, list) else [parsed]
    records, issues = [], []
    for index, item in enumerate(items):
        try:
            records.append(parse_record(item))
        except RecordInvalid as exc:
            issues.extend(_at(format_path((index,)), i) for i in exc.issues)
    if issues:
        raise _refused(issues)
    return records


def _at(record: str, issue: Issue) -> Issue:
    """The issue, its path under the record's place in the body."""
    return replace(issue, path=record + ("." + issue.path if issue.path else ""))


def _refused(issues: list[Issue]) -> RecordInvalid:
    """The refusal of the body: the positive safety answers of any record first (H-39), then the rest."""
    return RecordInvalid(sorted(issues, key=lambda issue: not issue.safety))


@router.post(
    "/$convert",
    operation_id="convert",
    openapi_extra=convert_body(),
    response_class=FhirJsonResponse,
    responses=CONVERT,
)
async def convert(request: Request, settings: SettingsDep) -> Response:
    """Map records (a JSON array, or NDJSON) to one FHIR transaction Bundle; nothing is written."""
    records = _records_from_body(await request.body(), request.headers.get("content-type", ""))
    for record in records:
        involve_patient(getattr(getattr(record, "patient", None), "mrn", None))
    bundle = transaction_bundle(records, settings.mapping_config())
    return Response(orjson.dumps(bundle), media_type=FHIR_JSON)
