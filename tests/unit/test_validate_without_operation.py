"""`infusion-fhir validate` on a server without `$validate` (Medplum's router answers 501): a clear stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock
from typer.testing import CliRunner

from service.batch.source import parse_line
from service.batch.validate import validate_lines
from service.cli import app
from service.errors import FhirLacksCapability
from service.exit_codes import ExitCode
from service.fhir_client import open_fhir_client
from service.settings import Settings
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, CAPABILITY

NOT_SUPPORTED = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]}


def server_without_validate(status: int):  # noqa: ANN201 (a pytest-httpx callback)
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            return httpx.Response(200, json=CAPABILITY)
        return httpx.Response(status, json=NOT_SUPPORTED)

    return answer


@pytest.mark.parametrize("status", [501, 404])
async def test_a_missing_validate_operation_stops_with_its_name_and_leaves_no_request_running(
    status: int, httpx_mock: HTTPXMock
) -> None:
    never = asyncio.Event()  # a request after the first stays in flight until cancelled

    async def answer(request: httpx.Request) -> httpx.Response:
        if len([r for r in httpx_mock.get_requests() if r.url.path.endswith("/$validate")]) > 1:
            await never.wait()
        return httpx.Response(status, json=NOT_SUPPORTED)

    httpx_mock.add_callback(answer, is_reusable=True)
    session = parse_line("in.ndjson", 1, orjson.dumps(EXAMPLES["infusion_session"]))
    async with open_fhir_client(Settings(FHIR_BASE_URL=BASE)) as fhir:
        with pytest.raises(FhirLacksCapability, match=r"has no \$validate operation"):
            await validate_lines([session], fhir, Settings(FHIR_BASE_URL=BASE).mapping_config(), concurrency=2)
        # the request in flight and the resources waiting their turn: none may outlive the client (it did, and
        # the closing event loop warned "coroutine 'connect_tcp.<locals>.try_connect' was never awaited")
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    validates = [r for r in httpx_mock.get_requests() if r.url.path.endswith("/$validate")]
    assert 1 <= len(validates) <= 2  # at most the two sent at once: nothing asked after the stop, nothing retried


def test_the_command_exits_2_naming_the_missing_operation(tmp_path: Path, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_callback(server_without_validate(501), is_reusable=True)
    path = tmp_path / "in.ndjson"
    path.write_bytes(orjson.dumps(EXAMPLES["infusion_session"]) + b"\n")

    result = CliRunner().invoke(app, ["validate", str(path), "--fhir-url", BASE])

    assert result.exit_code == ExitCode.STOPPED == 2
    assert "stopped: POST Patient/$validate: the FHIR server has no $validate operation" in result.stderr
    assert "unavailable" not in result.stderr
