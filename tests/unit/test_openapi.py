"""The OpenAPI document: committed fresh, every `$ref` resolvable, every status documented, 405s with `Allow`."""

from __future__ import annotations

import json

import httpx
import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from schemas import KINDS, parse_record, parse_record_of_kind, record_json_schema
from schemas.kinds import SEGMENTS
from service.app import create_app
from service.auth import key_digest
from service.openapi import DOC_PATH, document_text, documented_app, unresolved_refs
from service.routes.responses import put_body_title, record_title
from service.settings import Settings

AUTH = {"Authorization": "Bearer unit-key"}
FHIR_JSON = "application/fhir+json"
OUTCOME_REF = {"$ref": "#/components/schemas/OperationOutcome"}

PUT = {"200", "201", "401", "403", "409", "413", "422", "502", "503"}
GET = {"200", "401", "403", "404", "422", "502", "503"}
DELETE = {"204", "401", "403", "404", "422", "502", "503"}
EXPECTED_STATUSES: dict[tuple[str, str], set[str]] = {
    **{(f"/v1/{segment}/{{key}}", "put"): PUT for segment in SEGMENTS},
    **{(f"/v1/{segment}/{{key}}", "get"): GET for segment in SEGMENTS},
    **{(f"/v1/{segment}/{{key}}", "delete"): DELETE for segment in SEGMENTS},
    ("/v1/infusion-sessions/{key}/$monitoring-summary", "get"): GET,
    ("/v1/infusion-sessions/{key}/$monitoring-summary", "post"): {
        "200",
        "201",
        "401",
        "403",
        "404",
        "409",
        "422",
        "502",
        "503",
    },
    ("/v1/$convert", "post"): {"200", "401", "403", "413", "422", "503"},
    ("/v1/patients/$phq9-trend", "post"): {"200", "401", "403", "404", "413", "422", "502", "503"},
    ("/v1/patients/$outcome-trend", "post"): {"200", "401", "403", "404", "413", "422", "502", "503"},
    ("/healthz", "get"): {"200"},
    ("/readyz", "get"): {"200", "503"},
    ("/metrics", "get"): {"200"},
    ("/.well-known/jwks.json", "get"): {"200", "404"},
}


@pytest.fixture(scope="module")
def document() -> dict:
    return documented_app().openapi()


def test_committed_document_is_fresh() -> None:
    assert DOC_PATH.exists(), "docs/openapi.json missing: run `python -m service.openapi`"
    assert DOC_PATH.read_text(encoding="utf-8") == document_text(documented_app()), (
        "docs/openapi.json differs from the API: run `python -m service.openapi` and commit the result"
    )


def test_every_ref_resolves_within_the_document(document: dict) -> None:
    assert unresolved_refs(document) == []
    text = json.dumps(document)
    assert '"$defs"' not in text and '"$id"' not in text  # nothing left that re-bases or nests definitions
    # the check itself finds a dangling ref
    assert unresolved_refs({"a": {"$ref": "#/components/schemas/Nope"}}) == ["#/components/schemas/Nope"]


def test_every_operation_documents_exactly_its_statuses(document: dict) -> None:
    operations = {(path, method): op for path, ops in document["paths"].items() for method, op in ops.items()}
    assert set(operations) == set(EXPECTED_STATUSES)
    for key, operation in operations.items():
        assert set(operation["responses"]) == EXPECTED_STATUSES[key], key


def test_error_answers_are_operation_outcomes_under_fhir_json(document: dict) -> None:
    for path, ops in document["paths"].items():
        for method, operation in ops.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response["content"] == {FHIR_JSON: {"schema": OUTCOME_REF}}, (method, path, status)


def test_success_bodies_have_their_media_type_and_schema(document: dict) -> None:
    paths = document["paths"]
    for segment, kind in SEGMENTS.items():
        ops = paths[f"/v1/{segment}/{{key}}"]
        assert ops["get"]["responses"]["200"]["content"] == {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{record_title(kind)}"}}
        }
        for status in ("200", "201"):
            assert ops["put"]["responses"][status]["content"] == {
                "application/json": {"schema": {"$ref": "#/components/schemas/WriteResult"}}
            }
        assert "content" not in ops["delete"]["responses"]["204"]
        body = ops["put"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{put_body_title(kind)}"}
    assert paths["/v1/$convert"]["post"]["responses"]["200"]["content"] == {
        FHIR_JSON: {"schema": {"$ref": "#/components/schemas/Bundle"}}
    }
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]


@pytest.mark.parametrize("kind", KINDS)
def test_record_components_are_the_record_schemas(document: dict, kind: str) -> None:
    schemas = document["components"]["schemas"]
    record = record_json_schema(kind)
    component = schemas[record_title(kind)]
    assert set(component["properties"]) == set(record["properties"])
    assert component["required"] == record["required"]
    put_body = schemas[put_body_title(kind)]
    assert set(put_body["properties"]) == set(record["properties"]) - {"key"}
    assert put_body["additionalProperties"] is False
    for name in record.get("$defs", {}):
        assert name in schemas


READ, WRITE = "infusion-fhir.read", "infusion-fhir.write"


def test_every_v1_operation_names_the_api_key_or_an_oauth_token_with_its_scope(document: dict) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "http", "scheme": "bearer", "description": schemes["apiKey"]["description"]}
    assert schemes["oauthToken"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["oauthToken"]["description"],
    }
    for path, ops in document["paths"].items():
        for method, operation in ops.items():
            if not path.startswith("/v1/"):
                assert "security" not in operation, path
                continue
            if path == "/v1/$convert":
                scopes = [READ, WRITE]
            elif method == "get" or path in ("/v1/patients/$phq9-trend", "/v1/patients/$outcome-trend"):
                scopes = [READ]
            else:
                assert method in ("put", "delete") or path.endswith("/$monitoring-summary"), (method, path)
                scopes = [WRITE]
            assert operation["security"] == [{"apiKey": []}, *({"oauthToken": [s]} for s in scopes)], (method, path)


def _client(handler=None) -> TestClient:
    settings = Settings(FHIR_BASE_URL="http://fhir.test/fhir", api_keys=key_digest("unit-key"), retry_max_attempts=1)
    return TestClient(create_app(settings, transport=httpx.MockTransport(handler or (lambda r: httpx.Response(503)))))


@pytest.mark.parametrize("method", ["OPTIONS", "PATCH", "POST", "TRACE"])
def test_unsupported_methods_answer_405_allowing_every_method_of_the_path(document: dict, method: str) -> None:
    with _client() as api:
        for path, ops in document["paths"].items():
            documented = sorted(m.upper() for m in ops)
            if method in documented:
                continue
            url = path.replace("{key}", "k-1")
            response = api.request(method, url, headers=AUTH)
            assert response.status_code == 405, (method, url)
            assert response.headers["allow"] == ", ".join(documented), (method, url)
            assert response.headers["content-type"] == FHIR_JSON
            assert response.json()["issue"][0]["code"] == "not-supported"


def _validator(document: dict, name: str) -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}", "components": document["components"]})


def test_error_bodies_conform_to_the_operation_outcome_schema(document: dict) -> None:
    outcome = _validator(document, "OperationOutcome")

    def reject(request: httpx.Request) -> httpx.Response:
        issue = {"severity": "error", "code": "processing", "diagnostics": "HAPI-0001", "details": {"text": "x"}}
        return httpx.Response(400, json={"resourceType": "OperationOutcome", "issue": [issue]})

    vital = {"patient": {"mrn": "1"}, "measured_at": "2026-03-02T09:30:00-05:00", "type": "heart_rate", "value": 80}
    with _client(reject) as api:
        answers = [
            api.put("/v1/vital-signs/k-1", json=vital),  # 401
            api.put("/v1/vital-signs/bad%20key", json=vital, headers=AUTH),  # 422 (path)
            api.put("/v1/vital-signs/k-1", json={"type": "heart_rate"}, headers=AUTH),  # 422 (body)
            api.put("/v1/vital-signs/k-1", json=vital, headers=AUTH),  # 502 (the server's issues appended)
        ]
    assert [a.status_code for a in answers] == [401, 422, 422, 502]
    assert answers[0].headers["www-authenticate"] == "Bearer"
    for answer in answers:
        assert answer.headers["content-type"] == FHIR_JSON
        outcome.validate(answer.json())


def test_write_result_schema_describes_a_write(document: dict) -> None:
    _validator(document, "WriteResult").validate(
        {
            "resources": [
                {"resourceType": "Observation", "id": "vs-abc", "version": "1", "outcome": "created"},
                {"resourceType": "Patient", "id": "12", "version": None, "outcome": "unchanged"},
            ],
            "counts": {"created": 1, "unchanged": 1},
        }
    )


def test_request_examples_are_valid_records(document: dict) -> None:
    for segment, kind in SEGMENTS.items():
        media = document["paths"][f"/v1/{segment}/{{key}}"]["put"]["requestBody"]["content"]["application/json"]
        parse_record_of_kind(kind, media["example"], key="DEMO-1")
        _validator(document, put_body_title(kind)).validate(media["example"])
    convert = document["paths"]["/v1/$convert"]["post"]["requestBody"]["content"]["application/json"]
    for record in convert["example"]:
        parse_record(record)
        _validator(document, "Record").validate(record)
