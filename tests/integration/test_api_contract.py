"""The API keeps its OpenAPI contract: Schemathesis, every check, against the app on the real FHIR server.

The app runs under uvicorn on a free port, on the FHIR server the integration tests use, with
identifier, MRN and visit systems of its own (as `settings` in conftest.py), so whatever the
generated requests write is confined to this run; it is deleted and expunged afterwards.
`schemathesis run --checks all` then sends at least 50 generated requests per operation (plus its
coverage and stateful phases) and must report no failure. tests/integration/schemathesis.toml holds
the one narrowed check and why.

It runs twice: with the fixed seed (reproducible) and with one random seed per session (new cases
every run). Each seed is in the test id, the line printed after the run, the session's terminal
summary and the failure message; `SCHEMATHESIS_RANDOM_SEED=<seed>` replays a random run.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.auth import key_digest
from tests.conftest import provenances_naming
from tests.integration.run_report import report_line
from tests.integration.served import served

API_KEY = "schemathesis-contract-key"
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "50"))
# A fixed seed, so that a CI run is reproducible (SCHEMATHESIS_SEED sets another), and a random one that
# explores new cases each run (SCHEMATHESIS_RANDOM_SEED replays one).
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261128")
RANDOM_SEED = os.environ.get("SCHEMATHESIS_RANDOM_SEED") or str(random.SystemRandom().randrange(2**32))
SEEDS = {"fixed": SEED, "random": RANDOM_SEED}
FHIR_JSON = "application/fhir+json"
# Every resource the service writes names its patient as `subject`.
PATIENT_OWNED = (
    "DiagnosticReport",  # a session's monitoring summary
    "Flag",
    "Observation",
    "QuestionnaireResponse",
    "AdverseEvent",
    "MedicationAdministration",
    "Procedure",
    "Encounter",
)


def _systems(run_id: str) -> dict[str, str]:
    base = f"https://test.infusion-fhir.example/{run_id}"
    return {
        "INFUSION_FHIR_IDENTIFIER_SYSTEM_BASE": f"{base}/sid",
        "INFUSION_FHIR_MRN_SYSTEM": f"{base}/mrn",
        "INFUSION_FHIR_VISIT_SYSTEM": f"{base}/visit",
        "INFUSION_FHIR_PRACTITIONER_IDENTIFIER_SYSTEM": f"{base}/practitioner",
    }


@pytest.fixture
def api_url(fhir_base_url: str, run_id: str, tmp_path: Path) -> Iterator[str]:
    """The service under uvicorn on a free port; its FHIR writes are removed after the test."""
    env = {
        **os.environ,
        "FHIR_BASE_URL": fhir_base_url,
        "INFUSION_FHIR_API_KEYS": key_digest(API_KEY),
        "INFUSION_FHIR_LOG_LEVEL": "WARNING",
        **_systems(run_id),
    }

    def uvicorn(port: int) -> list[str]:
        factory = ["service.app:create_app", "--factory", "--no-access-log"]
        return [sys.executable, "-m", "uvicorn", *factory, "--host", "127.0.0.1", "--port", str(port)]

    try:
        with served(uvicorn, env, tmp_path / "uvicorn.log") as url:
            yield url
    finally:
        remove_run_data(fhir_base_url, _systems(run_id)["INFUSION_FHIR_MRN_SYSTEM"])


def remove_run_data(fhir_base_url: str, mrn_system: str) -> None:
    """Delete and expunge the run's Patients and every resource naming one of them; assert none is left."""
    with httpx.Client(base_url=fhir_base_url, timeout=120, headers={"Accept": FHIR_JSON}) as http:
        patients = _search_all(http, "Patient", {"identifier": f"{mrn_system}|", "_elements": "id"})
        refs = []
        for at in range(0, len(patients), 40):
            subjects = ",".join(f"Patient/{p['id']}" for p in patients[at : at + 40])
            for resource_type in PATIENT_OWNED:
                found = _search_all(http, resource_type, {"subject": subjects, "_elements": "id"})
                refs += [f"{resource_type}/{r['id']}" for r in found]
        refs += [f"Patient/{p['id']}" for p in patients]
        if not refs:
            return
        refs = [*provenances_naming(http, refs), *refs]  # deleted in the same transaction as what they name
        # One transaction: resources that reference each other go together.
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": ref}} for ref in refs],
        }
        answer = http.post("/", json=bundle, headers={"Content-Type": FHIR_JSON})
        assert answer.status_code == 200, answer.text[:2000]
        expunge = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "expungeDeletedResources", "valueBoolean": True},
                {"name": "expungePreviousVersions", "valueBoolean": True},
            ],
        }
        for ref in refs:
            http.post(f"/{ref}/$expunge", json=expunge, headers={"Content-Type": FHIR_JSON})
        left = _search_all(http, "Patient", {"identifier": f"{mrn_system}|", "_elements": "id"})
        assert not left, f"{len(left)} patients of this run are still on the FHIR server"


def _search_all(http: httpx.Client, resource_type: str, params: dict[str, str]) -> list[dict]:
    out: list[dict] = []
    response = http.get(f"/{resource_type}", params={**params, "_count": "500"})
    while True:
        assert response.status_code == 200, response.text[:2000]
        page = response.json()
        out += [e["resource"] for e in page.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]
        next_url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
        if not next_url:
            return out
        response = http.get(next_url)


def _schemathesis() -> list[str]:
    executable = Path(sys.executable).with_name("schemathesis")
    if executable.exists():
        return [str(executable)]
    found = shutil.which("schemathesis")
    assert found, "schemathesis is not installed: `pip install -c constraints.txt -e '.[dev]'`"
    return [found]


@pytest.mark.parametrize(("which", "seed"), list(SEEDS.items()), ids=[f"{n}-seed-{s}" for n, s in SEEDS.items()])
def test_api_keeps_its_openapi_contract(
    api_url: str,
    which: str,
    seed: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    command = [
        *_schemathesis(),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{api_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        seed,
        "--wait-for-schema",
        "30",
        "-H",
        f"Authorization: Bearer {API_KEY}",
    ]
    replay = f"replay: SCHEMATHESIS_{'RANDOM_' if which == 'random' else ''}SEED={seed}"
    started = time.monotonic()
    # Run in tmp_path: Schemathesis keeps a crash cache (.schemathesis/) in its working directory.
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    summary = re.search(r"^\s*(\d+) generated, .*$", output, re.MULTILINE)
    operations = re.search(r"Operations:\s+(\d+) selected", output)
    line = (
        f"schemathesis {which} seed {seed}: {operations.group(1) if operations else '?'} operations, "
        f"{summary.group(0).strip() if summary else 'no summary'}, {elapsed:.0f} s, "
        f"exit {result.returncode} ({replay})"
    )
    report_line(request.config, line)
    with capsys.disabled():  # the case count and seed belong in CI's output
        print(f"\n{line}")
    assert result.returncode == 0, f"{line}\n{output[-20000:]}"
    assert summary and int(summary.group(1)) >= MAX_EXAMPLES, f"{line}\n{output[-5000:]}"
