"""The terminal summary of `sync`: counts by outcome, the commonest rejection reasons, where things went."""

from __future__ import annotations

import io
import json
import os
import re
import select
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
from typer.testing import CliRunner

from service.batch.report import MAX_REASONS, OTHER, Report
from service.batch.source import parse_line
from service.batch.terminal import Bar, report_destination, sync_summary
from service.cli import app
from tests.unit.examples import BASE as EXAMPLES

CLI = str(Path(sys.executable).parent / "infusion-fhir")


def _summary(**overrides: object) -> dict:
    summary = {
        "status": "completed",
        "stopped_reason": None,
        "exit_code": 1,
        "lines": 1207,
        "synced": 1200,
        "rejected": 7,
        "not_processed": 0,
        "by_kind": {
            "vital_sign": {"created": 900, "updated": 40, "unchanged": 60, "rejected": 7},
            "infusion_session": {"created": 150, "unchanged": 50},
        },
        "duration_s": 12.34,
        "records_per_s": 97.8,
        "rejects_file": "rejects.ndjson",
    }
    return {**summary, **overrides}


def test_the_summary_counts_synced_as_created_and_updated_apart_from_unchanged_and_names_the_files() -> None:
    reasons = Counter({"invalid record: value: must be at most 100": 5, "the FHIR server refused the data": 2})

    lines = sync_summary(_summary(), reasons, "report.json, stdout")

    assert lines == [
        "sync completed: 1,207 lines in 12.3 s (98 records/s)",
        "  synced             1,090  (1,050 created, 40 updated)",
        "  unchanged            110",
        "  rejected               7  -> rejects.ndjson",
        "              5 x invalid record: value: must be at most 100",
        "              2 x the FHIR server refused the data",
        "report: report.json, stdout",
        "exit 1: some lines rejected, the rest done",
    ]


def test_beyond_the_top_reasons_the_rest_are_counted_in_one_line() -> None:
    reasons = Counter({f"reason {n}": 10 - n for n in range(8)})

    lines = sync_summary(_summary(rejected=sum(reasons.values())), reasons, None, top=3)

    assert lines[4:7] == ["             10 x reason 0", "              9 x reason 1", "              8 x reason 2"]
    assert lines[7] == f"             {sum(10 - n for n in range(3, 8))} x 5 other reasons (see the rejects file)"
    assert lines[-2] == "report: not written (--report FILE, or --json for stdout)"


def test_a_stopped_job_says_why_what_is_left_and_that_a_rerun_finishes_it() -> None:
    summary = _summary(
        status="stopped",
        stopped_reason="FHIR server unavailable: connection refused",
        exit_code=2,
        rejected=0,
        not_processed=300,
    )

    lines = sync_summary(summary, Counter(), "stdout")

    assert lines[0].startswith("sync stopped: 1,207 lines")
    assert "  stopped:       FHIR server unavailable: connection refused" in lines
    assert "  not processed        300  (re-run to finish)" in lines
    assert lines[-1].startswith("exit 2: stopped early, no line at fault")


def test_a_dry_run_counts_mapped_records_and_sends_nothing() -> None:
    summary = _summary(dry_run=True, by_kind={"vital_sign": {"mapped": 12}}, rejected=0, exit_code=0)

    lines = sync_summary(summary, Counter(), "stdout")

    assert lines[0] == "sync completed: 1,207 lines in 12.3 s"
    assert lines[1] == "  mapped                12  (dry run: nothing sent)"


def test_one_line_is_counted_in_the_singular() -> None:
    summary = _summary(lines=1, dry_run=True, by_kind={"vital_sign": {"mapped": 1}}, rejected=0, exit_code=0)

    assert sync_summary(summary, Counter(), "stdout")[0] == "sync completed: 1 line in 12.3 s"


def test_report_destination() -> None:
    assert report_destination(Path("r.json"), to_stdout=True) == "r.json, stdout"
    assert report_destination(None, to_stdout=False) is None


def test_reasons_are_counted_from_field_paths_and_messages_never_from_values() -> None:
    vital = {**EXAMPLES["vital_sign"], "key": "v-bad", "type": "spo2", "value": 140, "unit": "%"}
    vital.pop("session_key")
    line = parse_line("in.ndjson", 3, orjson.dumps(vital))
    assert line.record is None and line.issues
    report = Report(io.BytesIO())

    report.record_rejected(line, "invalid record", line.issues)
    report.record_rejected(line, "invalid record", line.issues)

    ((reason, count),) = report.reasons.items()
    assert count == 2 and reason.startswith("invalid record: value: ")
    assert "140" not in reason


def test_distinct_reasons_are_capped() -> None:
    report = Report(io.BytesIO())
    line = parse_line("in.ndjson", 1, b"{not json")
    for n in range(MAX_REASONS + 5):
        report.record_rejected(line, f"reason {n}")
    assert len(report.reasons) == MAX_REASONS + 1 and report.reasons[OTHER] == 5


def test_off_a_terminal_stdout_carries_the_json_report_alone_and_no_summary(tmp_path: Path) -> None:
    vital = {**EXAMPLES["vital_sign"], "key": "v1"}
    vital.pop("session_key")
    records = tmp_path / "in.ndjson"
    records.write_bytes(orjson.dumps(vital) + b"\n{not json\n")

    result = CliRunner().invoke(
        app,
        [
            "sync",
            str(records),
            "--dry-run",
            "--rejects",
            str(tmp_path / "r.ndjson"),
            "--report",
            str(tmp_path / "r.json"),
        ],
    )

    assert result.exit_code == 1
    report = json.loads(result.stdout)  # the whole of stdout is the report, as batch jobs parse it
    assert report == json.loads((tmp_path / "r.json").read_text())
    assert report["mapped"] == 1 and report["rejected"] == 1
    assert "sync completed" not in result.output


def _stdout_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run the CLI with stdout on a pseudo-terminal and stderr on a pipe: (exit code, terminal, stderr)."""
    controller, terminal = os.openpty()
    process = subprocess.Popen([CLI, *args], stdin=subprocess.DEVNULL, stdout=terminal, stderr=subprocess.PIPE)
    os.close(terminal)
    assert process.stderr is not None
    with process.stderr:
        err = process.stderr.read().decode()  # EOF at exit
    chunks = []
    while select.select([controller], [], [], 60)[0]:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the CLI has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return process.wait(timeout=60), b"".join(chunks).decode().replace("\r\n", "\n"), err


def test_on_a_terminal_stdout_gets_the_summary_or_with_json_the_report(tmp_path: Path) -> None:
    vital = {**EXAMPLES["vital_sign"], "key": "v1"}
    vital.pop("session_key")
    records = tmp_path / "in.ndjson"
    records.write_bytes(orjson.dumps(vital) + b"\n")
    args = ("sync", str(records), "--dry-run", "--rejects", str(tmp_path / "r.ndjson"))

    code, shown, err = _stdout_on_a_terminal(*args)
    assert code == 0
    assert shown.startswith("sync completed: 1 line in") and '"status"' not in shown
    assert "report: not written (--report FILE, or --json for stdout)" in shown
    assert "sync completed" not in err

    code, shown, err = _stdout_on_a_terminal(*args, "--json")
    assert code == 0
    assert json.loads(shown)["mapped"] == 1  # the report alone: stderr is no terminal, so no summary


def test_the_bar_shows_share_done_records_rate_what_went_wrong_and_eta() -> None:
    out = io.StringIO()
    bar = Bar("validate", 200, lambda: (200, 7, 2), out, bad="with errors")

    bar.finish()

    shown = out.getvalue()
    assert "validate" in shown and "100%" in shown and "ETA" in shown
    assert re.search(r"7 records, [\d,]+/s, 2 with errors", shown), shown
