"""A client generated from docs/openapi.json by openapi-python-client covers and works against the service.

The client is generated into a temporary directory at test time, without a warning, and imported; it
then talks to the app (FastAPI's TestClient, an httpx client, handed to the generated client) on the
real FHIR server: a PUT, a GET, `$convert`, `$phq9-trend` and `$outcome-trend`, each checked for real results.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.openapi import DOC_PATH
from service.settings import Settings
from tests.integration.conftest import AUTH, track, track_deferred

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / ".venv-openapi-client" / "bin" / "openapi-python-client"
PACKAGE = "infusion_fhir_client"
PATIENT = {"mrn": "GEN-CLIENT-1", "family": "Generated", "birth_date": "1980-01-31", "sex": "female"}
PHQ9 = {
    "patient": PATIENT,
    "completed_at": "2026-03-02T09:30:00-05:00",
    "items": [2, 2, 1, 1, 2, 1, 1, 1, 1],
    "difficulty": "somewhat",
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated client package, imported from a temporary directory."""
    if not GENERATOR.exists():
        message = "openapi-python-client is not installed: run `make openapi-client-tool`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("generated")
    # The generator runs ruff on its output: the project's ruff, first on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(GENERATOR), "generate", "--path", str(DOC_PATH), "--meta", "none", "--output-path", PACKAGE]
    result = subprocess.run(command, cwd=out, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output  # every operation and schema parsed
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture
def client(generated: ModuleType, settings: Settings, fhir_cleanup) -> Iterator[Any]:
    """The generated AuthenticatedClient over the app; every resource a PUT reports is cleaned up."""

    def record_writes(response: Any) -> None:
        response.read()
        track(response, fhir_cleanup)

    with TestClient(create_app(settings), headers=AUTH) as http:
        track_deferred(http.app.state.summaries, fhir_cleanup)  # summaries written after the answers
        http.event_hooks = {"request": [], "response": [record_writes]}
        api = generated.AuthenticatedClient(base_url=str(http.base_url), token="unused: the httpx client has it")
        api.set_httpx_client(http)
        yield api


def test_every_operation_of_the_document_has_a_generated_function(generated: ModuleType) -> None:
    import json

    document = json.loads(DOC_PATH.read_text(encoding="utf-8"))
    operation_ids = {op["operationId"] for ops in document["paths"].values() for op in ops.values()}
    api_dir = Path(generated.__file__).parent / "api"
    modules = {path.stem for path in api_dir.glob("*/*.py") if path.stem != "__init__"}
    assert operation_ids <= modules, sorted(operation_ids - modules)
    assert "convert" in modules


def test_put_get_convert_and_trend_through_the_generated_client(client: Any) -> None:
    put = _module("api.phq9_assessments.put_phq9_assessment")
    get = _module("api.phq9_assessments.get_phq9_assessment")
    convert = _module("api.convert.convert")
    trend = _module("api.patients.phq9_trend")
    models = _module("models")

    written = put.sync_detailed("GEN-P-1", client=client, body=models.Phq9AssessmentPutBody.from_dict(PHQ9))
    assert written.status_code == 201, written.content
    assert isinstance(written.parsed, models.WriteResult)
    assert {r.resource_type for r in written.parsed.resources} >= {"Patient", "Observation"}

    read = get.sync("GEN-P-1", client=client)
    assert isinstance(read, models.Phq9Assessment), read
    assert (read.key, read.items, read.total, read.patient.mrn) == ("GEN-P-1", PHQ9["items"], 12, PATIENT["mrn"])

    vital = {"kind": "vital_sign", "key": "GEN-V-1", "patient": PATIENT, "measured_at": "2026-03-02T09:30:00-05:00"}
    vital |= {"type": "heart_rate", "value": 72}
    records = [
        models.VitalSign.from_dict(vital),
        models.Phq9Assessment.from_dict({**PHQ9, "kind": "phq9_assessment", "key": "GEN-P-2"}),
    ]
    bundle = convert.sync(client=client, body=records)
    assert isinstance(bundle, models.Bundle), bundle
    resources = [entry.resource.to_dict() for entry in bundle.entry]
    assert {r["resourceType"] for r in resources} >= {"Patient", "Observation"}
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    values = [r.get("valueQuantity", {}).get("value", r.get("valueInteger")) for r in observations]
    assert 72 in values and 12 in values  # the heart rate, the PHQ-9 total

    refused = convert.sync(client=client, body=[models.MonitoringScore.from_dict(_score(10))])
    assert isinstance(refused, models.OperationOutcome)
    assert [issue.expression for issue in refused.issue] == [["[0].score"]]

    points = trend.sync(client=client, body=models.Phq9TrendTrendRequest(mrn=PATIENT["mrn"]))
    assert isinstance(points, models.Phq9Trend), points
    assert [(p.key, p.total, p.item9) for p in points.points] == [("GEN-P-1", 12, 1)]
    assert points.baseline.total == 12
    assert [a.item9 for a in points.alerts] == [1]

    outcome = _module("api.patients.outcome_trend")
    body = models.OutcomeTrendOutcomeTrendRequest.from_dict({"mrn": PATIENT["mrn"], "instrument": "phq9"})
    phq9 = outcome.sync(client=client, body=body)
    assert isinstance(phq9, models.OutcomeTrend), phq9
    assert [(p.key, p.total, p.safety_positive) for p in phq9.points] == [("GEN-P-1", 12, True)]
    assert phq9.baseline.reason == "earliest" and phq9.rules.weakened == []
    assert [[i.item for i in a.positive] for a in phq9.alerts] == [["9"]]
    every = outcome.sync(client=client, body=models.OutcomeTrendOutcomeTrendRequest(mrn=PATIENT["mrn"]))
    assert isinstance(every, models.OutcomeTrendSummaries), every
    assert [s.instrument for s in every.summaries] == ["phq9"]


def _score(score: int) -> dict[str, Any]:
    return {
        "kind": "monitoring_score",
        "key": "GEN-M-1",
        "patient": PATIENT,
        "session_key": "GEN-S-1",
        "measured_at": "2026-03-02T09:30:00-05:00",
        "instrument": "rass",
        "score": score,
    }
