"""The batch CLI against servers it cannot use: it stops (exit 2) and says why, and blames no record.

Each of these was a defect (issue 11): a 401 made `sync` halve every bundle and reject all 550
records as bad data; a 404 base URL rejected every line as "internal error"; `validate` never sent
the configured bearer token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.stub_fhir import stub_server
from tests.unit.examples import BASE

CLI = str(Path(sys.executable).parent / "infusion-fhir")
CAPABILITY = orjson.dumps(
    {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [{"mode": "server", "interaction": [{"code": "transaction"}]}],
    }
)
OUTCOME = orjson.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]})


@pytest.fixture
def records(tmp_path: Path) -> Path:
    path = tmp_path / "in.ndjson"
    lines = []
    for n in range(30):
        vital = {**BASE["vital_sign"], "key": f"v{n}"}
        vital.pop("session_key")
        lines.append(json.dumps(vital))
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "FHIR_BASE_URL": url, "INFUSION_FHIR_RETRY_BACKOFF_BASE_S": "0.01", **env}
    return subprocess.run([CLI, *args], env=environment, capture_output=True, text=True, timeout=120)


def test_sync_against_a_server_refusing_our_credentials_stops_with_exit_2_and_rejects_nothing(
    records, tmp_path
) -> None:
    def refuse(method: str, path: str) -> tuple[int, str, bytes]:
        return 401, "application/fhir+json", OUTCOME

    with stub_server(refuse) as stub:
        rejects = tmp_path / "rejects.ndjson"
        result = _run(stub.url, "sync", str(records), "--rejects", str(rejects), "--batch-size", "5")
    report = json.loads(result.stdout)
    assert result.returncode == 2
    assert report["rejected"] == 0 and rejects.read_text() == ""
    assert "credentials" in report["stopped_reason"]
    assert len(stub.seen) <= 2  # the probe, at most one retry: not 1,089 requests


def test_sync_mid_run_401_stops_the_job_and_the_lines_are_not_rejected(records, tmp_path) -> None:
    def metadata_then_refuse(method: str, path: str) -> tuple[int, str, bytes]:
        if path.endswith("/metadata"):
            return 200, "application/fhir+json", CAPABILITY
        return 403, "application/fhir+json", OUTCOME

    with stub_server(metadata_then_refuse) as stub:
        rejects = tmp_path / "rejects.ndjson"
        result = _run(
            stub.url, "sync", str(records), "--rejects", str(rejects), "--batch-size", "5", "--concurrency", "1"
        )
    report = json.loads(result.stdout)
    assert result.returncode == 2 and report["status"] == "stopped"
    assert report["rejected"] == 0 and rejects.read_text() == ""
    assert report["bundle_splits"] == 0
    assert sum(1 for s in stub.seen if s.method == "POST") <= 2


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (404, "text/html", b"<html>Not Found</html>"),
        (200, "text/html", b"<html>Welcome</html>"),
        (200, "application/fhir+json", orjson.dumps({"resourceType": "CapabilityStatement", "fhirVersion": "5.0.0"})),
    ],
    ids=["404", "not-fhir", "wrong-version"],
)
def test_sync_against_a_base_url_that_is_not_fhir_r4_stops_before_reading_input(
    records, tmp_path, status, content_type, body
) -> None:
    with stub_server(lambda method, path: (status, content_type, body)) as stub:
        rejects = tmp_path / "rejects.ndjson"
        result = _run(stub.url, "sync", str(records), "--rejects", str(rejects))
    report = json.loads(result.stdout)
    assert result.returncode == 2
    assert report["lines"] == 0 and report["rejected"] == 0
    assert "misconfigured" in report["stopped_reason"]
    assert [s.path for s in stub.seen] == ["/fhir/metadata"]


def test_validate_sends_the_configured_bearer_token(records) -> None:
    def answer(method: str, path: str) -> tuple[int, str, bytes]:
        if path.endswith("/metadata"):
            return 200, "application/fhir+json", CAPABILITY
        return 200, "application/fhir+json", orjson.dumps({"resourceType": "OperationOutcome", "issue": []})

    with stub_server(answer) as stub:
        result = _run(stub.url, "validate", str(records), INFUSION_FHIR_FHIR_BEARER_TOKEN="s3cret-token")
    assert result.returncode == 0, result.stderr
    assert stub.seen and all(s.headers.get("authorization") == "Bearer s3cret-token" for s in stub.seen)
    assert "s3cret-token" not in result.stdout + result.stderr


def test_validate_against_a_server_refusing_our_credentials_exits_2(records) -> None:
    with stub_server(lambda method, path: (401, "application/fhir+json", OUTCOME)) as stub:
        result = _run(stub.url, "validate", str(records))
    assert result.returncode == 2
    assert "credentials" in result.stderr
