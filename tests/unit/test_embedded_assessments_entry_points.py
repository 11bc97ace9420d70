"""A session embedding assessments through every way in: `$convert`, `map`, `validate` and batch `sync`.

Mirrors what the batch tests do for embedded PHQ-9s: the embedded records' resources are in the Bundle
(the QuestionnaireResponse before the Observations derived from it), `validate` sends each of them to
`$validate`, and a batch re-run with its read-ahead keeps a Flag a clinician closed.
"""

from __future__ import annotations

import copy
import io
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from pytest_httpx import HTTPXMock
from typer.testing import CliRunner

from service.app import create_app
from service.auth import key_digest
from service.batch.command import _validate
from service.batch.report import Report
from service.batch.runner import BatchSync
from service.batch.source import parse_line
from service.cli import app
from service.fhir_client import open_fhir_client
from service.mappers import MappingConfig, resource_ids
from service.mappers.ids import resource_ref
from service.settings import Settings
from service.sync import SyncEngine
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, CAPABILITY, FakeFhir

AUTH = {"Authorization": "Bearer unit-key"}
CONFIG = MappingConfig()
CSSRS = {  # S1, S2, S3 yes: triage moderate, a Flag
    "key": "Q-CSSRS",
    "instrument": "cssrs_screen",
    "completed_at": "2024-04-12T08:45:00-04:00",
    "items": [True, True, True, False, False, False, None],
}
GAD7 = {
    "key": "Q-GAD",
    "instrument": "gad7",
    "completed_at": "2024-04-12T08:40:00-04:00",
    "items": [1, 2, 1, 0, 1, 2, 1],
}


def session(key: str = "S-1", mrn: str = "MRN-1") -> dict[str, Any]:
    out = {
        k: v
        for k, v in copy.deepcopy(EXAMPLES["infusion_session"]).items()
        if k not in ("vital_signs", "adverse_events")
    }
    out.update(key=key, patient={"mrn": mrn}, assessments=[{**GAD7, "key": f"{key}.gad"}, {**CSSRS, "key": f"{key}.c"}])
    return out


def refs_of(key: str) -> set[str]:
    return {rid.ref for rid in resource_ids("assessment", key, CONFIG)}


def types_in_order(bundle: dict[str, Any]) -> list[str]:
    return [e["request"]["url"].split("/")[0].split("?")[0] for e in bundle["entry"]]


def assert_carries_the_assessments(bundle: dict[str, Any], key: str = "S-1") -> None:
    urls = {e["request"]["url"] for e in bundle["entry"]}
    assert resource_ref("assessment", f"{key}.gad", "response", CONFIG) in urls
    assert resource_ref("assessment", f"{key}.c", "triage", CONFIG) in urls
    assert resource_ref("assessment", f"{key}.c", "flag", CONFIG) in urls
    types = types_in_order(bundle)
    assert types.index("Observation") > max(i for i, t in enumerate(types) if t == "QuestionnaireResponse")


def test_convert_maps_a_session_with_its_assessments_without_server_io() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no FHIR call expected")

    settings = Settings(FHIR_BASE_URL=BASE, api_keys=key_digest("unit-key"))
    with TestClient(create_app(settings, transport=httpx.MockTransport(never))) as api:
        response = api.post("/v1/$convert", json=[session()], headers=AUTH)
        refused = api.post(
            "/v1/$convert", json=[{**session(), "assessments": [{**GAD7, "items": [1, 2]}]}], headers=AUTH
        )
    assert response.status_code == 200, response.text
    assert_carries_the_assessments(response.json())
    assert refused.status_code == 422
    assert [i["expression"] for i in refused.json()["issue"]] == [["[0].assessments[0].items"]]


def test_map_prints_the_session_bundle_with_its_assessments(tmp_path: Path) -> None:
    path = tmp_path / "in.ndjson"
    path.write_bytes(orjson.dumps(session()) + b"\n")
    result = CliRunner().invoke(app, ["map", str(path)])
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if line.strip()]
    assert_carries_the_assessments(orjson.loads(line))


async def test_validate_sends_every_embedded_assessment_resource_to_validate(
    tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            return httpx.Response(200, json=CAPABILITY)
        return httpx.Response(200, json={"resourceType": "OperationOutcome", "issue": []})

    httpx_mock.add_callback(server, is_reusable=True)
    path = tmp_path / "in.ndjson"
    path.write_bytes(orjson.dumps(session()) + b"\n")

    validation = await _validate(str(path), Settings(FHIR_BASE_URL=BASE), concurrency=2, all_issues=False)

    assert validation.counts["records"] == 1 and validation.counts["records_with_errors"] == 0
    sent = [orjson.loads(r.content) for r in httpx_mock.get_requests() if r.url.path.endswith("/$validate")]
    ids = {f"{r['resourceType']}/{r['id']}" for r in sent if "id" in r}
    produced = (refs_of("S-1.gad") | refs_of("S-1.c")) & ids
    assert Counter(ref.split("/")[0] for ref in produced) == {"QuestionnaireResponse": 2, "Observation": 17, "Flag": 1}


@pytest.fixture
async def engine() -> AsyncIterator[tuple[FakeFhir, SyncEngine]]:
    fake = FakeFhir()
    settings = Settings(FHIR_BASE_URL=BASE)
    async with open_fhir_client(settings, transport=fake.transport()) as fhir:
        yield fake, SyncEngine(fhir, settings.mapping_config())


async def test_batch_sync_writes_embedded_assessments_and_a_rerun_keeps_a_flag_a_clinician_closed(
    engine: tuple[FakeFhir, SyncEngine],
) -> None:
    fake, sync = engine
    lines = [parse_line("in.ndjson", n, orjson.dumps(session(f"S-{n}", f"M-{n}"))) for n in (1, 2)]
    report = await BatchSync(sync, Report(io.BytesIO()), batch_size=1, concurrency=2).run(lines)
    assert report.synced == 2 and report.rejected == 0
    parts = ("response", "item-S3", "triage", "panel", "flag")
    assert all(resource_ref("assessment", f"S-{n}.c", part, CONFIG) in fake.store for n in (1, 2) for part in parts)
    flag = fake.store[resource_ref("assessment", "S-1.c", "flag", CONFIG)]
    fake.put({**flag, "status": "inactive"})  # a clinician has reviewed the risk

    again = await BatchSync(sync, Report(io.BytesIO()), batch_size=1, concurrency=2, diff=True).run(lines)

    assert again.rejected == 0 and again.transactions == 0  # nothing changed, nothing sent
    assert fake.store[resource_ref("assessment", "S-1.c", "flag", CONFIG)]["status"] == "inactive"
    assert fake.store[resource_ref("assessment", "S-2.c", "flag", CONFIG)]["status"] == "active"
