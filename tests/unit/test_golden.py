"""Golden files: tests/data/golden/<kind>/<case>/input.json -> expected.json (FHIR JSON, compared parsed).

Regenerate with `UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py`, then review every diff by eye
against ../shared/clinical-coding.md before committing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import parse_record
from service.mappers import MappingConfig, mapper_for, transaction_bundle
from service.mappers.fhir import RESOURCE_CLASSES, to_json

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
CASES = sorted(p.parent for p in GOLDEN.glob("*/*/input.json"))
BUNDLE_CASES = sorted(p.parent for p in GOLDEN.glob("bundle/*/input.ndjson"))
CONFIG = MappingConfig()


def _check(case: Path, actual: Any) -> None:
    expected_path = case / "expected.json"
    actual = orjson.loads(orjson.dumps(actual))
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert json.loads(expected_path.read_text(encoding="utf-8")) == actual


def test_there_are_at_least_three_cases_per_kind() -> None:
    kinds = [case.parent.name for case in CASES]
    for kind in (
        "infusion_session",
        "vital_sign",
        "monitoring_score",
        "adverse_event",
        "phq9_assessment",
        "assessment",
    ):
        assert kinds.count(kind) >= 3, kind


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_record_maps_to_the_expected_resources(case: Path) -> None:
    record = parse_record(json.loads((case / "input.json").read_text(encoding="utf-8")))
    assert record.kind == case.parent.name
    _check(case, [to_json(resource) for resource in mapper_for(record.kind).to_fhir(record, CONFIG)])


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_expected_resources_parse_with_r4b_and_map_back_to_the_record(case: Path) -> None:
    record = parse_record(json.loads((case / "input.json").read_text(encoding="utf-8")))
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    for resource in expected:
        RESOURCE_CLASSES[resource["resourceType"]].model_validate(resource)
    assert mapper_for(record.kind).from_fhir(expected, record.patient, CONFIG) == record


@pytest.mark.parametrize("case", BUNDLE_CASES, ids=lambda p: p.name)
def test_records_map_to_the_expected_transaction_bundle(case: Path) -> None:
    lines = (case / "input.ndjson").read_text(encoding="utf-8").splitlines()
    records = [parse_record(json.loads(line)) for line in lines if line.strip()]
    _check(case, transaction_bundle(records, CONFIG))
