"""What every route can answer, written once: named response sets and the schemas they name.

Each route decorator takes one set (`responses=record_put(kind)`, `responses=CONVERT`, ...); every
error answer is an `OperationOutcome` under `application/fhir+json`, as `service.http_edge` sends
it. The schemas referenced here (`#/components/schemas/...`) are put into the document by
`service.openapi`, from `component_schemas()`; the record JSON Schemas are taken from
`schemas.record_json_schema` with their `$defs` moved up into `components/schemas`, so every `$ref`
in the document resolves.

| status | when | sets |
|--------|------|------|
| 401 | no accepted API key or OAuth access token | every /v1 set |
| 403 | an OAuth access token without the operation's scope (`service.auth.accepted_scopes`) | every /v1 set |
| 404 | the record (or the MRN's patient, or the named baseline, or the session) is not on the FHIR server; no SMART key to publish | record_get, RECORD_DELETE, PHQ9_TREND, OUTCOME_TREND, MONITORING_SUMMARY, JWKS |
| 409 | a version conflict, or a session/visit that is missing or another patient's | record_put |
| 413 | body over `max_body_bytes` | record_put, CONVERT, PHQ9_TREND, OUTCOME_TREND |
| 422 | the key in the URL or the body breaks the record contract | every /v1 set |
| 502 | the FHIR server refused the data or the service's credentials, or holds data we cannot read | record_put, record_get, RECORD_DELETE, PHQ9_TREND, OUTCOME_TREND, MONITORING_SUMMARY |
| 503 | the FHIR server is unreachable, overloaded, or not a FHIR R4 server; or the OAuth issuer's keys cannot be fetched | every /v1 set, READYZ |
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, Response

from schemas import KINDS, record_json_schema
from service.media import FHIR_JSON, JSON, NDJSON
from service.routes.examples import CONVERT_EXAMPLE, RECORD_EXAMPLES
from service.routes.outcome_schemas import OUTCOME_TREND_EXAMPLE, SUMMARIES, TREND, outcome_components
from service.routes.summary_schemas import summary_answer, summary_components

Json = dict[str, Any]
COMPONENTS = "#/components/schemas/"
OUTCOME = "OperationOutcome"
WRITE_RESULT = "WriteResult"
MONITORING_SUMMARY_KEY = "monitoring_summary"


class FhirJsonResponse(JSONResponse):
    """A JSON response documented (and sent) as `application/fhir+json`."""

    media_type = FHIR_JSON


class PrometheusTextResponse(Response):
    """The Prometheus text exposition format, as `/metrics` sends it."""

    media_type = "text/plain"


def ref(name: str) -> Json:
    return {"$ref": COMPONENTS + name}


def record_title(kind: str) -> str:
    """The component name of a record kind's schema (the model's name, e.g. `VitalSign`)."""
    return str(record_json_schema(kind)["title"])


def put_body_title(kind: str) -> str:
    """The component name of a PUT body: the record without `key` (the URL names it)."""
    return record_title(kind) + "PutBody"


def outcome(description: str, **extra: Any) -> Json:
    """An error answer: an OperationOutcome under application/fhir+json."""
    return {"description": description, "content": {FHIR_JSON: {"schema": ref(OUTCOME)}}, **extra}


def _json(description: str, schema: Json, media_type: str = JSON) -> Json:
    return {"description": description, "content": {media_type: {"schema": schema}}}


UNAUTHORIZED: dict[int | str, Json] = {
    401: outcome(
        "No accepted API key or OAuth access token: send `Authorization: Bearer <key or token>` (issue code "
        "`login`). A token that was presented and refused (bad signature, expired, another issuer or audience, "
        "an algorithm not allowed) is named in `WWW-Authenticate` as `invalid_token`.",
        headers={
            "WWW-Authenticate": {
                "description": '`Bearer`, or `Bearer error="invalid_token"` for a refused access token.',
                "required": True,
                "schema": {"type": "string"},
            }
        },
    ),
    403: outcome(
        "The OAuth access token is valid but lacks the scope this operation needs (issue code `forbidden`); "
        "API keys may call every operation.",
        headers={
            "WWW-Authenticate": {
                "description": '`Bearer error="insufficient_scope", scope="<a scope that would do>"`.',
                "required": True,
                "schema": {"type": "string"},
            }
        },
    ),
}
INVALID: dict[int | str, Json] = {
    422: outcome(
        "The URL's record key or the body breaks the contract: one `invalid` issue per field, with its path. A "
        "refused body holding a positive safety answer says so first, one `business-rule` issue per answer naming "
        "the item (never its value): nothing was written."
    )
}
TOO_LARGE: dict[int | str, Json] = {413: outcome("The body is over the configured size limit (`too-long`).")}
NOT_FOUND: dict[int | str, Json] = {404: outcome("The record is not on the FHIR server (`not-found`).")}
CONFLICT: dict[int | str, Json] = {
    409: outcome(
        "A version conflict on the FHIR server, or `session_key`/`visit_id` names a session or visit that is missing "
        "or another patient's (`conflict`); nothing was written. A record holding a positive safety answer says so "
        "first (`business-rule`, as for a 422)."
    )
}
FHIR_SERVER: dict[int | str, Json] = {
    502: outcome(
        "The FHIR server refused the data (its issues follow ours; a record holding a positive safety answer says "
        "so first, `business-rule`) or the service's credentials, or holds data this service cannot read back."
    ),
    503: outcome(
        "The FHIR server is unreachable or kept failing after retries (`transient`), or is not a FHIR R4 server "
        "(`not-supported`), or the OAuth issuer's signing keys needed to check the access token cannot be fetched "
        "(`transient`): try again later."
    ),
}

RECORD_DELETE: dict[int | str, Json] = {
    204: {"description": "Retracted: its resources are entered-in-error (repeating it changes nothing)."},
    **UNAUTHORIZED,
    **NOT_FOUND,
    **INVALID,
    **FHIR_SERVER,
}
CONVERT: dict[int | str, Json] = {
    200: _json("The records as one FHIR R4 transaction Bundle; nothing was written.", ref("Bundle"), FHIR_JSON),
    **UNAUTHORIZED,
    **TOO_LARGE,
    **INVALID,
    503: outcome(
        "The OAuth issuer's signing keys needed to check the access token cannot be fetched (`transient`): "
        "try again later."
    ),
}
PHQ9_TREND: dict[int | str, Json] = {
    200: _json("The patient's PHQ-9 totals over time.", ref("Phq9Trend")),
    **UNAUTHORIZED,
    404: outcome("No Patient with this MRN on the FHIR server (`not-found`)."),
    **TOO_LARGE,
    **INVALID,
    **FHIR_SERVER,
}
OUTCOME_TREND: dict[int | str, Json] = {
    200: {
        "description": "The trend of the instrument asked for, or (without `instrument`) one per instrument the "
        "patient has.",
        "content": {
            JSON: {"schema": {"oneOf": [ref(TREND), ref(SUMMARIES)]}, "example": OUTCOME_TREND_EXAMPLE},
        },
    },
    **UNAUTHORIZED,
    404: outcome(
        "No Patient with this MRN on the FHIR server, or `baseline_key` names none of the patient's assessments "
        "of the instrument (with a result, in the window) (`not-found`)."
    ),
    **TOO_LARGE,
    **INVALID,
    **FHIR_SERVER,
}
MONITORING_SUMMARY: dict[int | str, Json] = {
    200: summary_answer(
        "The session's monitoring summary, computed from what the FHIR server holds now; with `Accept: image/png` "
        "or `application/pdf`, its chart."
    ),
    **UNAUTHORIZED,
    404: outcome(
        "The session is not on the FHIR server, or only retracted; or a chart was asked for and the infusion has "
        "no start time (`not-found`)."
    ),
    **INVALID,
    **FHIR_SERVER,
}
MONITORING_SUMMARY_WRITE: dict[int | str, Json] = {
    200: _json(
        "Written; nothing was created (updated, or already exactly so: then nothing was sent).", ref(WRITE_RESULT)
    ),
    201: _json("Written; at least one resource was created.", ref(WRITE_RESULT)),
    **UNAUTHORIZED,
    404: outcome("The session is not on the FHIR server, or only retracted (`not-found`)."),
    409: outcome("Another writer changed the summary or its Flag while it was written, twice (`conflict`): try again."),
    **INVALID,
    **FHIR_SERVER,
}
HEALTHZ: dict[int | str, Json] = {200: _json("The process is alive.", ref("Liveness"))}
READYZ: dict[int | str, Json] = {
    200: _json(
        "The FHIR server answers as FHIR R4 with transactions; `lacks` names the optional operations it does not declare.",
        ref("Readiness"),
    ),
    503: outcome(
        "The FHIR server is unreachable (`transient`), refuses our credentials (`security`) or is unfit (`not-supported`)."
    ),
}
METRICS: dict[int | str, Json] = {
    200: _json("Prometheus text exposition.", {"type": "string"}, "text/plain"),
}
JWKS: dict[int | str, Json] = {
    200: _json(
        "The public JWK Set of the service's SMART Backend Services key: register it, or this URL, with the EHR.",
        ref("JsonWebKeySet"),
    ),
    404: outcome("SMART Backend Services is not configured: no key to publish (`not-found`)."),
}


def record_put(kind: str) -> dict[int | str, Json]:
    """PUT of one record kind; a written record can then be read and retracted under the same key."""
    links = {
        "GetRecord": {"operationId": f"get_{kind}", "parameters": {"key": "$request.path.key"}},
        "RetractRecord": {"operationId": f"delete_{kind}", "parameters": {"key": "$request.path.key"}},
    }
    return {
        200: {
            **_json(
                "Written; nothing was created (the record was updated, or was already exactly so).", ref(WRITE_RESULT)
            ),
            "links": links,
        },
        201: {**_json("Written; at least one resource was created.", ref(WRITE_RESULT)), "links": links},
        **UNAUTHORIZED,
        **CONFLICT,
        **TOO_LARGE,
        **INVALID,
        **FHIR_SERVER,
    }


def record_get(kind: str) -> dict[int | str, Json]:
    """GET of one record kind: the record as the FHIR server holds it."""
    return {
        200: _json("The record as read back from the FHIR server.", ref(record_title(kind))),
        **UNAUTHORIZED,
        **NOT_FOUND,
        **INVALID,
        **FHIR_SERVER,
    }


def record_put_body(kind: str) -> Json:
    """`openapi_extra` of a PUT: the record, whose key is the URL's."""
    media = {"schema": ref(put_body_title(kind)), "example": RECORD_EXAMPLES[kind]}
    return {"requestBody": {"required": True, "content": {JSON: media}}}


def convert_body() -> Json:
    """`openapi_extra` of `$convert`: records of any kind, each naming its `kind`.

    NDJSON is accepted too but named in the description only, not as a second media type: client
    generators have no body type for it (openapi-python-client 0.29.1 warns, and with two media types
    for one body it generates a `$convert` that fails at run time: `isinstance` against `list[...]`)."""
    return {
        "requestBody": {
            "required": True,
            "description": (
                f"A JSON array of records. The same records are also accepted as NDJSON (`Content-Type: {NDJSON}`), "
                "one `Record` per line."
            ),
            "content": {
                JSON: {"schema": {"type": "array", "items": ref("Record")}, "example": CONVERT_EXAMPLE},
            },
        }
    }


# -- component schemas ------------------------------------------------------------------------

ISSUE_TYPES = (
    "invalid",
    "structure",
    "required",
    "value",
    "invariant",
    "security",
    "login",
    "unknown",
    "expired",
    "forbidden",
    "suppressed",
    "processing",
    "not-supported",
    "duplicate",
    "multiple-matches",
    "not-found",
    "deleted",
    "too-long",
    "code-invalid",
    "extension",
    "too-costly",
    "business-rule",
    "conflict",
    "transient",
    "lock-error",
    "no-store",
    "exception",
    "timeout",
    "incomplete",
    "throttled",
    "informational",
)  # FHIR R4 IssueType (required binding)

_OPERATION_OUTCOME: Json = {
    "title": OUTCOME,
    "description": "FHIR R4 OperationOutcome: why the request was not done. Diagnostics never carry PHI.",
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": OUTCOME},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"enum": ["fatal", "error", "warning", "information"]},
                    "code": {"enum": list(ISSUE_TYPES)},
                    "diagnostics": {"type": "string"},
                    "expression": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "The field the issue is about, e.g. `vital_signs[2].diastolic`.",
                    },
                },
                "description": "One issue; the FHIR server's own issues may carry more FHIR elements (details, location).",
            },
        },
    },
}
_WRITTEN: Json = {
    "resources": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["resourceType", "id", "version", "outcome"],
            "properties": {
                "resourceType": {"type": "string"},
                "id": {"type": "string"},
                "version": {"type": ["string", "null"]},
                "outcome": {"enum": ["created", "updated", "unchanged", "deleted"]},
            },
        },
    },
    "counts": {
        "type": "object",
        "description": "Resources by outcome.",
        "propertyNames": {"enum": ["created", "updated", "unchanged", "deleted"]},
        "additionalProperties": {"type": "integer", "minimum": 1},
    },
}
_WRITE_RESULT: Json = {
    "title": WRITE_RESULT,
    "description": "What the write did to each FHIR resource the record maps to.",
    "type": "object",
    "required": ["resources", "counts"],
    "properties": {
        **_WRITTEN,
        MONITORING_SUMMARY_KEY: {
            "type": "object",
            "description": "The monitoring summary and critical-episode Flag of the session the record belongs to "
            "(present when the record touches a session): refreshed before this answer when the write may raise "
            "the Flag (its resources and counts), else right after it (`deferred` names the sessions; `resources` "
            "is empty: GET or POST `.../$monitoring-summary` for the outcome).",
            "required": ["resources", "counts"],
            "properties": {
                **_WRITTEN,
                "deferred": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Keys of the sessions whose summary is refreshed right after this answer.",
                },
            },
        },
    },
}
_BUNDLE: Json = {
    "title": "Bundle",
    "description": "A FHIR R4 transaction Bundle (see docs/clinical-mapping.md for what each record becomes).",
    "type": "object",
    "required": ["resourceType", "type", "entry"],
    "properties": {
        "resourceType": {"const": "Bundle"},
        "type": {"const": "transaction"},
        "entry": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["resource", "request"],
                "properties": {
                    "fullUrl": {"type": "string"},
                    "resource": {"type": "object", "required": ["resourceType"]},
                    "request": {
                        "type": "object",
                        "required": ["method", "url"],
                        "properties": {"method": {"enum": ["POST", "PUT"]}, "url": {"type": "string"}},
                    },
                },
            },
        },
    },
}
_NULLABLE_INT = {"type": ["integer", "null"]}
_TREND_POINT: Json = {
    "type": "object",
    "required": [
        "key",
        "date",
        "total",
        "item9",
        "item9_positive",
        "change_from_baseline",
        "percent_change",
        "response",
        "remission",
    ],
    "properties": {
        "key": {"type": ["string", "null"], "description": "The assessment's record key (null when not ours)."},
        "date": {"type": "string", "description": "When it was taken (FHIR dateTime)."},
        "total": {"type": "integer"},
        "item9": {**_NULLABLE_INT, "description": "Item 9's answer 0-3; null when the server holds none."},
        "item9_positive": {"type": ["boolean", "null"]},
        "change_from_baseline": {"type": "integer"},
        "percent_change": {"type": ["number", "null"]},
        "response": {"type": "boolean", "description": "Total at least 50% below the baseline."},
        "remission": {"type": "boolean", "description": "Total below 5."},
    },
}
_PHQ9_TREND: Json = {
    "title": "Phq9Trend",
    "description": "PHQ-9 totals in time order; every assessment with item 9 > 0 is an alert, newest first.",
    "type": "object",
    "required": ["baseline", "points", "latest", "alerts"],
    "properties": {
        "baseline": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["date", "total"],
                    "properties": {"date": {"type": "string"}, "total": {"type": "integer"}},
                },
                {"type": "null"},
            ]
        },
        "points": {"type": "array", "items": {"$ref": COMPONENTS + "Phq9TrendPoint"}},
        "latest": {"oneOf": [{"$ref": COMPONENTS + "Phq9TrendPoint"}, {"type": "null"}]},
        "alerts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key", "date", "item9"],
                "properties": {
                    "key": {"type": ["string", "null"]},
                    "date": {"type": "string"},
                    "item9": {"type": "integer"},
                },
            },
        },
    },
}
_JWKS: Json = {
    "title": "JsonWebKeySet",
    "description": "RFC 7517 JWK Set: the public half of the key, with `kid`, `alg` (RS384 or ES384) and `use: sig`.",
    "type": "object",
    "required": ["keys"],
    "properties": {
        "keys": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kty", "kid", "alg", "use"],
                "properties": {
                    "kty": {"enum": ["RSA", "EC"]},
                    "kid": {"type": "string"},
                    "alg": {"enum": ["RS384", "ES384"]},
                    "use": {"const": "sig"},
                    "n": {"type": "string"},
                    "e": {"type": "string"},
                    "crv": {"const": "P-384"},
                    "x": {"type": "string"},
                    "y": {"type": "string"},
                },
            },
        }
    },
}
_LIVENESS: Json = {
    "title": "Liveness",
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"const": "ok"}},
}
_READINESS: Json = {
    "title": "Readiness",
    "type": "object",
    "required": ["status", "fhirVersion", "software", "lacks"],
    "properties": {
        "status": {"const": "ready"},
        "fhirVersion": {"type": "string"},
        "software": {"type": ["string", "null"]},
        "lacks": {
            "type": "array",
            "description": "Optional operations the server does not declare in its CapabilityStatement, and what "
            "their absence costs (empty: none).",
            "items": {
                "type": "object",
                "required": ["capability", "consequence"],
                "properties": {"capability": {"type": "string"}, "consequence": {"type": "string"}},
            },
        },
    },
}


def component_schemas() -> dict[str, Json]:
    """Every schema the response sets and request bodies name, by component name (sorted)."""
    out: dict[str, Json] = {
        OUTCOME: _OPERATION_OUTCOME,
        WRITE_RESULT: _WRITE_RESULT,
        "Bundle": _BUNDLE,
        "Phq9Trend": _PHQ9_TREND,
        "Phq9TrendPoint": _TREND_POINT,
        "Liveness": _LIVENESS,
        "Readiness": _READINESS,
        "JsonWebKeySet": _JWKS,
        **outcome_components(),
        **summary_components(),
    }
    # A discriminated oneOf of plain `$ref`s (the shape client generators parse); `required` beside it makes
    # `kind`, optional in each record schema (a PUT's URL names the kind), required here.
    out["Record"] = {
        "description": "A record of any kind, as in NDJSON files: `kind` is required.",
        "type": "object",
        "required": ["kind"],
        "oneOf": [ref(record_title(kind)) for kind in KINDS],
        "discriminator": {"propertyName": "kind", "mapping": {kind: COMPONENTS + record_title(kind) for kind in KINDS}},
    }
    for kind in KINDS:
        record, defs = _hoisted(record_json_schema(kind))
        for name, definition in {**defs, record_title(kind): record, put_body_title(kind): _put_body(record)}.items():
            if out.setdefault(name, definition) != definition:
                raise ValueError(f"two different schemas named {name!r} in the API document")
    return dict(sorted(out.items()))


def _hoisted(schema: Json) -> tuple[Json, dict[str, Json]]:
    """A record schema without `$schema`/`$id`/`$defs`, its `#/$defs/X` refs pointing at components."""
    schema = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
    defs = schema.pop("$defs", {})
    return _rewrite_refs(schema), {name: _rewrite_refs(d) for name, d in defs.items()}


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                COMPONENTS + v.removeprefix("#/$defs/")
                if k == "$ref" and v.startswith("#/$defs/")
                else _rewrite_refs(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def _put_body(record: Json) -> Json:
    """The record schema with `key` left out: a PUT's URL names the key (a body `key` must equal it)."""
    properties = {k: v for k, v in record["properties"].items() if k != "key"}
    return {
        **record,
        "title": record["title"] + "PutBody",
        "description": record.get("description", "") + " The record key is the one in the URL.",
        "properties": properties,
        "required": [name for name in record.get("required", []) if name != "key"],
    }
