"""`$convert`: records in, the FHIR transaction Bundle out, with no FHIR server I/O."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from schemas import Issue, RecordInvalid, format_path, parse_record
from service.deps import SettingsDep
from service.mappers import transaction_bundle

router = APIRouter(prefix="/v1", tags=["convert"])


def _records_from_body(body: bytes, content_type: str) -> list[Any]:
    """Records from a JSON array (or one object) or NDJSON; every bad record reported by index."""
    if "ndjson" in content_type:
        raw = [line for line in body.splitlines() if line.strip()]
        items: list[Any] = []
        issues: list[Issue] = []
        for index, line in enumerate(raw):
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                issues.append(Issue(f"[{index}]", "line is not valid JSON"))
        if issues:
            raise RecordInvalid(issues)
    else:
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
            issues.extend(Issue(format_path((index,)) + ("." + i.path if i.path else ""), i.message) for i in exc.issues)
    if issues:
        raise RecordInvalid(issues)
    return records


@router.post(
    "/$convert",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}, "application/x-ndjson": {}},
        }
    },
)
async def convert(request: Request, settings: SettingsDep) -> Response:
    """Map records (a JSON array, or NDJSON) to one FHIR transaction Bundle; nothing is written."""
    records = _records_from_body(await request.body(), request.headers.get("content-type", ""))
    bundle = transaction_bundle(records, settings.mapping_config())
    return Response(orjson.dumps(bundle), media_type="application/fhir+json")
