"""JSON Schema export of every record kind into schemas/json/ (run `python -m schemas.export`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas.records import MODELS

JSON_DIR = Path(__file__).resolve().parent / "json"
SCHEMA_ID_BASE = "https://infusion-fhir.example.org/schemas"


def record_json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) a record of `kind` must satisfy, as pydantic generates it."""
    schema = MODELS[kind].model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_ID_BASE}/{kind}.schema.json",
        **schema,
    }


def schema_text(kind: str) -> str:
    """The committed file's exact text for `kind`."""
    return json.dumps(record_json_schema(kind), indent=2, ensure_ascii=False) + "\n"


def schema_path(kind: str) -> Path:
    return JSON_DIR / f"{kind}.schema.json"


def main() -> int:
    JSON_DIR.mkdir(exist_ok=True)
    for kind in MODELS:
        schema_path(kind).write_text(schema_text(kind), encoding="utf-8")
        print(f"wrote {schema_path(kind)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
