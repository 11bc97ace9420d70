"""`infusion-fhir sync` on a terminal (a pseudo-terminal) and with stdout on a pipe, against the real HAPI."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.integration.batch_support import CLI, Namespace

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BAR = re.compile(r"100%\s+([\d,]+) records, [\d,]+/s, 0 rejected ETA \d+:\d\d:\d\d")


@pytest.fixture
def ns(fhir_base_url: str, run_id: str):
    namespace = Namespace(fhir_base_url, run_id)
    yield namespace
    namespace.purge()


@pytest.fixture
def demo_file(tmp_path: Path, ns: Namespace) -> Path:
    path = tmp_path / "demo.ndjson"
    result = ns.cli("demo-data", "--patients", "1", "--seed", "7", "-o", str(path))
    assert result.returncode == 0, result.stderr
    return path


def _terminal(columns: int = 100) -> tuple[int, int]:
    """A pseudo-terminal (controller, terminal end) of a known width."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    return controller, terminal


def _read_until_eof(controller: int, process: subprocess.Popen[bytes], timeout_s: float = 300) -> str:
    """All the terminal shows until the process closes it (EOF, or EIO on Linux), then its exit."""
    deadline = time.monotonic() + timeout_s
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([controller], [], [], max(deadline - time.monotonic(), 0))
        assert ready, "the CLI neither wrote nor closed the terminal in time"
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every holder of the terminal end closed it
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    process.wait(timeout=60)
    return ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r\n", "\n").replace("\r", "\n")


def test_sync_on_a_terminal_shows_a_progress_bar_and_a_short_summary_not_the_json(ns, demo_file, tmp_path) -> None:
    lines = len(demo_file.read_bytes().splitlines())
    controller, terminal = _terminal()
    report = tmp_path / "report.json"
    process = subprocess.Popen(
        [CLI, "sync", str(demo_file), "--rejects", str(tmp_path / "r.ndjson"), "--report", str(report)],
        env=ns.env(TERM="xterm-256color", COLUMNS="100"),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)

    shown = _read_until_eof(controller, process)

    assert process.returncode == 0, shown[-3000:]
    assert [int(n.replace(",", "")) for n in BAR.findall(shown)][-1] == lines, shown[-3000:]
    summary = shown[shown.index("sync completed:") :].splitlines()
    assert summary[0].startswith(f"sync completed: {lines:,} lines in ")
    assert re.fullmatch(rf"  synced +{lines:,}  \({lines:,} created, 0 updated\)", summary[1]), summary
    assert re.fullmatch(r"  rejected +0", summary[3]), summary
    assert f"report: {report}" in summary
    assert "exit 0: every line done" in summary
    assert '"status"' not in shown  # the JSON report went to --report only
    assert json.loads(report.read_text())["synced"] == lines


def test_sync_with_stdout_on_a_pipe_prints_the_json_report_as_before_and_the_summary_on_the_terminal(
    ns, demo_file, tmp_path
) -> None:
    good = demo_file.read_bytes().splitlines()
    mixed = tmp_path / "mixed.ndjson"
    mixed.write_bytes(b"\n".join([*good, b"{not json"]) + b"\n")
    controller, terminal = _terminal()
    process = subprocess.Popen(
        [CLI, "sync", str(mixed), "--rejects", str(tmp_path / "r.ndjson")],
        env=ns.env(TERM="xterm-256color", COLUMNS="100"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    assert process.stdout is not None
    with process.stdout:
        stdout = process.stdout.read()  # EOF when the CLI exits; the terminal holds the rest, read after

    shown = _read_until_eof(controller, process)

    assert process.returncode == 1, shown[-3000:]
    report = json.loads(stdout)  # stdout is the JSON report and nothing else, as batch jobs parse it
    assert report["status"] == "completed" and report["exit_code"] == 1
    assert report["lines"] == len(good) + 1 and report["synced"] == len(good) and report["rejected"] == 1
    assert report["rejects_file"] == str(tmp_path / "r.ndjson")
    assert BAR.search(shown.replace(" 1 rejected", " 0 rejected")), shown[-3000:]
    assert "  rejected               1  -> " in shown
    assert "1 x invalid record: (record): not valid JSON" in shown
    assert "report: stdout" in shown
