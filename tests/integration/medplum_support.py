"""The Medplum FHIR engine test bed for the tests (tools/medplum, issue 24): the running one, else one of their own."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.served import free_port

MEDPLUMCTL = Path(__file__).resolve().parents[2] / "tools" / "medplum" / "medplumctl"


def medplumctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MEDPLUMCTL), *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def private_env(directory: Path) -> dict[str, str]:
    """medplumctl's environment for an instance of its own: a run directory under a 0700 directory whose name
    holds a space (as `mktemp -d` and a clone into "$d/p q" give), on a free port."""
    directory.mkdir(mode=0o700)
    directory.chmod(0o700)
    return {**os.environ, "MEDPLUM_RUN_DIR": str(directory / "run dir"), "MEDPLUM_PORT": str(free_port())}


def medplum_bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client on a running bed's /fhir: the one on MEDPLUM_PORT, else one started here (and stopped after)."""
    port = os.environ.get("MEDPLUM_PORT", "8093")
    env = {**os.environ, "MEDPLUM_PORT": port}
    started = False
    if medplumctl(env, "status").returncode != 0:
        env = private_env(tmp_path_factory.mktemp("medplum") / "private bed")
        up = medplumctl(env, "up")
        if up.returncode != 0:
            pytest.fail(f"the Medplum bed did not start: {up.stdout[-1500:]} {up.stderr[-1500:]}")
        started = True
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{env['MEDPLUM_PORT']}/fhir", timeout=30) as client:
            yield client
    finally:
        if started:
            medplumctl(env, "down")
