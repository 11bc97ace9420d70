"""`infusion-fhir map FILE.ndjson`: Bundles as NDJSON on stdout, rejected lines on stderr, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.unit.examples import BASE, mutated

GOOD = [BASE[kind] for kind in sorted(BASE)]


@pytest.fixture
def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always keeps stderr apart
        return CliRunner()


def _write(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "records.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _bundles(stdout: str) -> list[dict]:
    return [orjson.loads(line) for line in stdout.splitlines() if line.strip()]


def test_valid_file_prints_one_transaction_bundle_per_batch_and_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps(r) for r in GOOD])
    result = runner.invoke(app, ["map", path, "--batch-size", "2"])
    assert result.exit_code == 0, result.stderr
    bundles = _bundles(result.stdout)
    assert len(bundles) == 3
    assert all(b["resourceType"] == "Bundle" and b["type"] == "transaction" for b in bundles)
    assert "mapped 6 of 6 records into 3 bundles; 0 rejected" in result.stderr


def test_default_batch_is_fifty_records(runner: CliRunner, tmp_path: Path) -> None:
    lines = [json.dumps(mutated("monitoring_score", {"key": f"M-{n}"})) for n in range(51)]
    result = runner.invoke(app, ["map", _write(tmp_path, lines)])
    assert result.exit_code == 0
    assert [len(b["entry"]) for b in _bundles(result.stdout)] == [51, 2]  # Patient + 50, Patient + 1


def test_bad_lines_go_to_stderr_with_line_number_key_and_paths_and_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    bad_bp = mutated("vital_sign", {"key": "V-BAD", "diastolic": 150, "patient.mrn": "PHI-MRN-777"})
    lines = [
        json.dumps(GOOD[0]),
        "",
        "{not json",
        json.dumps(bad_bp),
        json.dumps({"kind": "lab", "key": "L-1"}),
        json.dumps({**GOOD[1], "key": "bad key PHI-NAME"}),
        json.dumps(GOOD[2]),
    ]
    result = runner.invoke(app, ["map", _write(tmp_path, lines)])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert errors == [
        "line 3: key=?: (record): not valid JSON",
        "line 4: key=V-BAD: diastolic: diastolic must be below systolic",
        "line 5: key=L-1: kind: unknown record kind; expected one of: infusion_session, vital_sign, "
        "monitoring_score, adverse_event, phq9_assessment, assessment",
        "line 6: key=?: key: String should match pattern '^[A-Za-z0-9._-]{1,64}$'",
    ]
    assert "PHI" not in result.stderr
    (bundle,) = _bundles(result.stdout)
    assert "mapped 2 of 6 records into 1 bundles; 4 rejected" in result.stderr
    assert bundle["entry"]


def test_dash_reads_stdin(runner: CliRunner) -> None:
    result = runner.invoke(app, ["map", "-"], input=json.dumps(GOOD[3]) + "\n")
    assert result.exit_code == 0
    assert len(_bundles(result.stdout)) == 1


def test_an_unreadable_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["map", str(tmp_path / "missing.ndjson")])
    assert result.exit_code == 2
    assert result.stdout == ""
