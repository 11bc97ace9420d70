"""Which FHIR server a pass of the integration suite runs on, and the tests it leaves out there, each with its reason.

`make test` runs the suite on HAPI (H2, then PostgreSQL), and its FHIR-semantics files once more on the Medplum engine
bed (`INFUSION_FHIR_TEST_BED=medplum`, issue 24). A test that relies on what a bed lacks says so with
`@pytest.mark.needs("<capability>")`; on that bed it is deselected, never skipped silently, and the terminal
summary names each one with the reason (docs/compatibility.md, "The integration tests on the Medplum engine").
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from tests.integration.run_report import report_line

LACKS: dict[str, dict[str, str]] = {
    "medplum": {
        "$validate": "the bed has no $validate (docs/compatibility.md, row 6); the test's own check of what was "
        "written, or of the validate command, needs it",
        "unchanged-put-keeps-version": "the bed writes a new version of an unchanged PUT (Medplum's server keeps "
        "it: not measured); the test asserts that a re-send leaves the version as it was",
        "hapictl": "the test stops and starts the server under test with hapictl (an outage); the bed is no HAPI",
        "large-transactions": "the bed takes at most 50 updates in a transaction (row 2); the test posts a mapped "
        "Bundle itself, not through the service, which splits what a server will not take",
    },
}
"""Per bed: capability -> why a test needing it cannot run there."""


def current_bed() -> str | None:
    """The bed this pass runs on (`INFUSION_FHIR_TEST_BED`), None for HAPI."""
    bed = os.environ.get("INFUSION_FHIR_TEST_BED") or None
    if bed is not None and bed not in LACKS:
        raise pytest.UsageError(f"INFUSION_FHIR_TEST_BED={bed!r}: known beds are {sorted(LACKS)}")
    return bed


def deselect_what_the_bed_lacks(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests needing what the current bed lacks, and name each in the terminal summary."""
    bed = current_bed()
    if bed is None:
        return
    lacks = LACKS[bed]
    kept: list[pytest.Item] = []
    left_out: list[tuple[pytest.Item, str]] = []
    for item in items:
        needs = [arg for mark in item.iter_markers("needs") for arg in mark.args]
        unknown = [n for n in needs if not any(n in bed_lacks for bed_lacks in LACKS.values())]
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: unknown capability {unknown} in needs(); add it to beds.LACKS")
        missing = [n for n in needs if n in lacks]
        if missing:
            left_out.append((item, missing[0]))
        else:
            kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=[item for item, _ in left_out])
        items[:] = kept
    report_line(config, f"on the {bed} bed: {len(kept)} tests run, {len(left_out)} left out, each with its reason:")
    for item, capability in left_out:
        report_line(config, f"  {item.nodeid}: needs {capability}: {lacks[capability]}")


def deleted_status() -> int:
    """What a read of a deleted resource answers on this pass's server: 410 Gone where deletes are tracked (HAPI),
    404 on the Medplum bed (docs/compatibility.md, row 11; FHIR http.html#read allows either)."""
    return 404 if current_bed() == "medplum" else 410


def written_once(base_url: str, resource: dict[str, Any]) -> bool:
    """Whether the server holds one version of `resource` (read from the server): its numbered version is `1` (HAPI),
    or, where versions are opaque (Medplum's UUIDs, docs/compatibility.md row 4), its history holds one entry."""
    version = str((resource.get("meta") or {}).get("versionId", ""))
    if version.isdigit():
        return version == "1"
    history = httpx.get(
        f"{base_url}/{resource['resourceType']}/{resource['id']}/_history",
        headers={"Accept": "application/fhir+json"},
        timeout=60,
    )
    history.raise_for_status()
    return len(history.json().get("entry", [])) == 1
