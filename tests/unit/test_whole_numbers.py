"""An integer field takes what JSON Schema calls an integer: `2.0` is 2; `2.5` is refused at its field."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi.testclient import TestClient

from schemas import RecordInvalid, parse_record, record_json_schema
from service.app import create_app
from service.auth import key_digest
from service.settings import Settings
from tests.unit.examples import mutated

AUTH = {"Authorization": "Bearer unit-key"}
FHIR_JSON = "application/fhir+json"
M, P = "monitoring_score", "phq9_assessment"

# (kind, changes with a zero-fraction number, the field path, the integer it stands for)
WHOLE = [
    (M, {"score": 2.0}, "score", 2),
    (M, {"instrument": "rass", "score": -3.0}, "score", -3),
    (P, {"items[4]": 0.0, "total": 7}, "items[4]", 0),
    (P, {"total": 8.0}, "total", 8),
]
FRACTION = [
    (M, {"score": 2.5}, "score"),
    (P, {"items[0]": 1.5}, "items[0]"),
    (P, {"total": 8.5}, "total"),
]


def _value(record: Any, path: str) -> Any:
    if path.startswith("items["):
        return record.items[int(path[6:-1])]
    return getattr(record, path)


@pytest.mark.parametrize(("kind", "changes", "path", "expected"), WHOLE)
def test_a_zero_fraction_is_an_integer_for_the_model_and_the_schema(
    kind: str, changes: dict[str, Any], path: str, expected: int
) -> None:
    body = mutated(kind, changes)
    jsonschema.Draft202012Validator(record_json_schema(kind)).validate(body)
    value = _value(parse_record(body), path)
    assert value == expected and type(value) is int


@pytest.mark.parametrize(("kind", "changes", "path"), FRACTION)
def test_a_fraction_is_refused_by_the_model_and_the_schema_at_its_field(
    kind: str, changes: dict[str, Any], path: str
) -> None:
    body = mutated(kind, changes)
    assert not jsonschema.Draft202012Validator(record_json_schema(kind)).is_valid(body)
    with pytest.raises(RecordInvalid) as caught:
        parse_record(body)
    assert [issue.path for issue in caught.value.issues] == [path]
    assert "integer" in caught.value.issues[0].message


def _client() -> TestClient:
    settings = Settings(FHIR_BASE_URL="http://fhir.test/fhir", api_keys=key_digest("unit-key"))
    return TestClient(create_app(settings, transport=httpx.MockTransport(lambda r: httpx.Response(503))))


def test_the_api_converts_a_zero_fraction_score_and_refuses_a_fraction_naming_the_field() -> None:
    put_body = {k: v for k, v in mutated(M, {"score": 4.5}).items() if k != "key"}
    with _client() as api:
        whole = api.post("/v1/$convert", content=json.dumps([mutated(M, {"score": 4.0})]), headers=AUTH)
        fraction = api.post("/v1/$convert", content=json.dumps([mutated(M, {"score": 4.5})]), headers=AUTH)
        put = api.put("/v1/monitoring-scores/M-1", content=json.dumps(put_body), headers=AUTH)
    assert whole.status_code == 200, whole.text
    observations = [e["resource"] for e in whole.json()["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert [o["valueInteger"] for o in observations] == [4]
    for answer, field in ((fraction, "[0].score"), (put, "score")):
        assert answer.status_code == 422
        assert answer.headers["content-type"] == FHIR_JSON
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert [(i["code"], i["expression"], i["diagnostics"]) for i in outcome["issue"]] == [
            ("invalid", [field], "Input should be a valid integer")
        ]
