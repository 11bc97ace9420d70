"""The committed JSON Schemas in schemas/json/ are exactly what the record models generate."""

from __future__ import annotations

import json

import pytest

from schemas import KINDS, record_json_schema
from schemas.export import JSON_DIR, schema_path, schema_text


@pytest.mark.parametrize("kind", KINDS)
def test_committed_schema_is_fresh(kind: str) -> None:
    path = schema_path(kind)
    assert path.exists(), f"{path.name} missing: run `python -m schemas.export`"
    assert path.read_text(encoding="utf-8") == schema_text(kind), (
        f"{path.name} differs from the models: run `python -m schemas.export` and commit the result"
    )


def test_no_stray_schema_files() -> None:
    assert sorted(p.name for p in JSON_DIR.glob("*.json")) == sorted(f"{kind}.schema.json" for kind in KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_schema_forbids_unknown_fields_and_names_its_kind(kind: str) -> None:
    schema = record_json_schema(kind)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["kind"]["const"] == kind
    assert {"key", "patient"} <= set(schema["required"])
    for definition in schema.get("$defs", {}).values():
        assert definition.get("additionalProperties") is False
    assert json.loads(json.dumps(schema)) == schema
