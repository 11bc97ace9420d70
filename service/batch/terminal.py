"""What `sync` and `validate` show a person at a terminal: a progress bar on stderr, a short summary."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from service.batch.validate import Group, Validation
from service.exit_codes import ExitCode

TOP_REASONS = 5
TOP_WARNINGS = 15
REASON_WIDTH = 160
EXIT_MEANING = {
    ExitCode.OK: "every line done",
    ExitCode.REJECTED: "some lines rejected, the rest done",
    ExitCode.STOPPED: "stopped early, no line at fault: fix the cause and run the same command again to finish",
}

Counts = Callable[[], tuple[int, int, int]]
"""(input bytes done, records done, records gone wrong: rejected, or with errors) so far."""


class Bar:
    """A rich progress bar over the input's bytes (records, rate, rejected, ETA), redrawn on each tick.
    Only for a terminal: the caller makes one when stderr is one."""

    interval_s = 0.2

    def __init__(
        self, label: str, total_bytes: int | None, counts: Counts, stream: TextIO, *, bad: str = "rejected"
    ) -> None:
        self.counts = counts
        self.started = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[records]:,} records, {task.fields[rate]:,.0f}/s, {task.fields[bad]:,} " + bad),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=stream),
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.task = self.progress.add_task(label, total=total_bytes or None, records=0, rate=0.0, bad=0)
        self.started_bar = False

    def tick(self) -> None:
        if not self.started_bar:  # drawn from the first tick: a job stopped before it ran shows none
            self.progress.start()
            self.started_bar = True
        done_bytes, records, bad = self.counts()
        rate = records / max(time.monotonic() - self.started, 1e-9)
        self.progress.update(self.task, completed=done_bytes, records=records, rate=rate, bad=bad)
        self.progress.refresh()

    def finish(self) -> None:
        self.tick()
        self.progress.stop()


def _n(count: int) -> str:
    return f"{count:,}"


def _short(reason: str) -> str:
    return reason if len(reason) <= REASON_WIDTH else reason[: REASON_WIDTH - 3] + "..."


def sync_summary(
    summary: Mapping[str, Any], reasons: Counter[str], report_to: str | None, *, top: int = TOP_REASONS
) -> list[str]:
    """The job's account in a few lines: what was synced (created/updated), unchanged, rejected and
    why (the commonest reasons, counted), where the rejects and the report went, and the exit code.
    Rejected lines holding a positive safety answer come first of all (`safety_line`).
    From the JSON report's counts and the reasons' texts only: record keys at most, never PHI."""
    outcomes: Counter[str] = Counter()
    for by_outcome in summary["by_kind"].values():
        outcomes.update(by_outcome)
    verb = "mapped" if summary.get("dry_run") else "synced"
    head = f"sync {summary['status']}: {_n(summary['lines'])} line{'' if summary['lines'] == 1 else 's'} in {summary['duration_s']:,.1f} s"
    if not summary.get("dry_run"):
        head += f" ({summary['records_per_s']:,.0f} records/s)"
    lines = [head]
    if safety := summary.get("safety_rejects"):  # before anything else: a risk nothing wrote (H-39)
        lines.insert(0, safety_line(safety, summary.get("rejects_file")))
    if summary.get("stopped_reason"):
        lines.append(f"  stopped:       {summary['stopped_reason']}")
    if summary.get("dry_run"):
        lines.append(f"  {verb:<13}  {_n(outcomes['mapped']):>9}  (dry run: nothing sent)")
    else:
        written = outcomes["created"] + outcomes["updated"]
        detail = f"({_n(outcomes['created'])} created, {_n(outcomes['updated'])} updated)"
        lines.append(f"  {verb:<13}  {_n(written):>9}  {detail}")
        lines.append(f"  {'unchanged':<13}  {_n(outcomes['unchanged']):>9}")
    rejected = f"  {'rejected':<13}  {_n(summary['rejected']):>9}"
    if summary["rejected"]:
        rejected += f"  -> {summary['rejects_file']}"
    lines.append(rejected)
    lines += [f"      {_n(count):>9} x {_short(reason)}" for reason, count in reasons.most_common(top)]
    if len(reasons) > top:
        rest = sum(reasons.values()) - sum(count for _, count in reasons.most_common(top))
        others = len(reasons) - top
        lines.append(f"      {_n(rest):>9} x {others:,} other reason{'s' if others > 1 else ''} (see the rejects file)")
    if summary.get("not_processed"):
        lines.append(f"  {'not processed':<13}  {_n(summary['not_processed']):>9}  (re-run to finish)")
    lines.append(f"report: {report_to or 'not written (--report FILE, or --json for stdout)'}")
    code = ExitCode(summary["exit_code"])
    lines.append(f"exit {int(code)}: {EXIT_MEANING[code]}")
    return lines


def safety_line(count: int, rejects_file: str | None) -> str:
    """The summary's first line when rejected lines hold a positive safety answer."""
    lines = f"{_n(count)} rejected line{' holds' if count == 1 else 's hold'}"
    where = f' ({rejects_file}: "safety_answer": true)' if rejects_file else ""
    return (
        f"SAFETY: {lines} a positive safety answer, not written{where}: "
        "correct and re-send, or record the risk another way"
    )


def report_destination(report_path: Path | None, to_stdout: bool) -> str | None:
    """Where the JSON report went, as the summary says it."""
    places = [str(report_path)] if report_path else []
    if to_stdout:
        places.append("stdout")
    return ", ".join(places) or None


def _groups(groups: dict[str, Group], *, name_where: bool, top: int | None = None) -> list[str]:
    lines = []
    ordered = sorted(groups.items(), key=lambda item: (-item[1].count, item[0]))
    for message, group in ordered[:top]:
        text = f"  {_n(group.count):>7} x {_short(message)}"
        if group.types:
            text += " (" + ", ".join(f"{t} {_n(n)}" for t, n in group.types.most_common()) + ")"
        if name_where and group.where:
            text += " in " + ", ".join(group.where) + (f" and {_n(group.elsewhere)} more" if group.elsewhere else "")
        lines.append(text)
    if top is not None and len(ordered) > top:
        rest = sum(group.count for _, group in ordered[top:])
        others = len(ordered) - top
        lines.append(f"  {_n(rest):>7} x {others:,} other message{'s' if others > 1 else ''} (--all-issues lists them)")
    return lines


def validate_summary(validation: Validation) -> list[str]:
    """Issues grouped by message with counts, each distinct resource counted once; errors and invalid
    lines name where they were found (record keys or line numbers, a few per message)."""
    counts = validation.counts
    lines = [
        f"validate: {_n(counts['records'])} records, {_n(counts['resources'])} resources mapped, "
        f"{_n(counts['validated'])} distinct (each validated once)"
    ]
    errors = sum(g.count for g in validation.errors.values())
    if errors:
        lines.append(f"errors: {_n(errors)} in {_n(counts['records_with_errors'])} records")
        lines += _groups(validation.errors, name_where=True)
    else:
        lines.append("errors: none")
    if counts["invalid_lines"]:
        lines.append(f"invalid lines: {_n(counts['invalid_lines'])}")
        lines += _groups(validation.invalid, name_where=True)
    lines.append(f"warnings: {_n(counts['warnings'])} (--all-issues lists every issue of every record)")
    lines += _groups(validation.warnings, name_where=False, top=TOP_WARNINGS)
    code = ExitCode.REJECTED if validation.failed() else ExitCode.OK
    lines.append(f"exit {int(code)}: {'some records have errors or are invalid' if code else 'no errors'}")
    return lines


def write_lines(lines: list[str], stream: TextIO) -> None:
    stream.write("".join(line + "\n" for line in lines))
    stream.flush()
