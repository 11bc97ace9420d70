"""The batch job's account: every line synced (created/updated/unchanged) or rejected, with reasons."""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import orjson

from schemas import Issue, safety_issues
from service.audit.batch import JobPatients
from service.batch.source import Line
from service.exit_codes import ExitCode

EXIT_OK, EXIT_REJECTED, EXIT_STOPPED = ExitCode.OK, ExitCode.REJECTED, ExitCode.STOPPED
MAX_REASONS = 1000
"""Distinct rejection reasons counted (for the terminal summary); any further ones count as OTHER."""
OTHER = "(other reasons)"
SPLIT_KEYS_SHOWN = 100
"""Keys of split records listed in the report (all are counted)."""


@dataclass
class Report:
    """Counts by kind and outcome, written as JSON at the end; rejected lines go to `rejects`."""

    rejects: IO[bytes]
    started: float = field(default_factory=time.monotonic)
    started_cpu: float = field(default_factory=time.process_time)
    by_kind: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    resources: Counter[str] = field(default_factory=Counter)
    embedded: Counter[str] = field(default_factory=Counter)
    lines_read: int = 0
    bytes_done: int = 0
    """Input bytes done with: lines synced or rejected, and lines of other shards passed over."""
    bundles: int = 0
    transactions: int = 0
    splits: int = 0
    split_records: list[str] = field(default_factory=list)
    """`kind/key` of records written over several transactions, the FHIR server taking fewer updates in one
    (`service.sync.limits`): each was not written all or nothing."""
    stopped_reason: str | None = None
    reasons: Counter[str] = field(default_factory=Counter)
    """Rejected lines per reason (the first field issue of an invalid record): PHI-free, like the rejects file."""
    safety_rejects: int = 0
    """Rejected lines holding a positive safety answer, which nothing wrote (H-39)."""
    patients: JobPatients | None = None
    """Line outcomes per patient, for the job's audit events (`service.audit.batch`)."""

    @property
    def synced(self) -> int:
        return sum(c[o] for c in self.by_kind.values() for o in ("created", "updated", "unchanged"))

    @property
    def rejected(self) -> int:
        return sum(c["rejected"] for c in self.by_kind.values())

    def record_synced(self, line: Line, outcome: str) -> None:
        self.by_kind[line.kind or "unknown"][outcome] += 1
        self.bytes_done += line.size
        if self.patients is not None:
            self.patients.count(line.record, outcome)

    def passed_over(self, line: Line) -> None:
        """A line of another shard: not this job's, but read (progress counts it)."""
        self.bytes_done += line.size

    def record_rejected(self, line: Line, reason: str, issues: tuple[Issue, ...] | list[Issue] = ()) -> None:
        """Count the line rejected and write its rejects line. A line holding a positive safety answer says
        so (`safety_answer`, its safety issues first) and counts in `safety_rejects` (H-39): an invalid
        record's issues carry them; a record refused at sync (a 409, the server's refusal) is read here."""
        self.by_kind[line.kind or "unknown"]["rejected"] += 1
        self.bytes_done += line.size
        if self.patients is not None:
            self.patients.count(line.record, "rejected")
        safety = [i for i in issues if i.safety]
        if not safety and line.record is not None:
            safety = safety_issues(line.record.kind, line.record)
            issues = [*safety, *issues]
        entry: dict[str, Any] = {
            "source": line.source,
            "line": line.number,
            "kind": line.kind,
            "key": line.key,
            "reason": reason,
        }
        if safety:
            entry["safety_answer"] = True
            self.safety_rejects += 1
        if issues:
            entry["issues"] = [_issue(i) for i in issues]
        self.rejects.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
        cause = next((i for i in issues if not i.safety), None)  # why it was refused (safety is counted apart)
        if cause is not None:
            reason = f"{reason}: {cause.path or '(record)'}: {cause.message}"
        self.reasons[reason if reason in self.reasons or len(self.reasons) < MAX_REASONS else OTHER] += 1

    def records_by_kind(self) -> dict[str, int]:
        """Synced records per kind, a session's embedded children counted under their own kinds."""
        out: Counter[str] = Counter(self.embedded)
        for kind, counts in self.by_kind.items():
            out[kind] += sum(n for outcome, n in counts.items() if outcome != "rejected")
        return dict(sorted(out.items()))

    def exit_code(self) -> ExitCode:
        if self.stopped_reason:
            return EXIT_STOPPED
        return EXIT_REJECTED if self.rejected else EXIT_OK

    def as_dict(self, retries: int) -> dict[str, Any]:
        duration = max(time.monotonic() - self.started, 1e-9)
        resources = sum(self.resources[o] for o in ("created", "updated", "unchanged"))
        return {
            "status": "stopped" if self.stopped_reason else "completed",
            "stopped_reason": self.stopped_reason,
            "exit_code": int(self.exit_code()),
            "lines": self.lines_read,
            "synced": self.synced,
            "rejected": self.rejected,
            "safety_rejects": self.safety_rejects,
            "not_processed": self.lines_read - self.synced - self.rejected,
            "by_kind": {kind: dict(sorted(c.items())) for kind, c in sorted(self.by_kind.items())},
            "records_by_kind": self.records_by_kind(),
            "resources": dict(sorted(self.resources.items())),
            "bundles": self.bundles,
            "transactions": self.transactions,
            "bundle_splits": self.splits,
            "records_split": len(self.split_records),
            "records_split_keys": self.split_records[:SPLIT_KEYS_SHOWN],
            "retries": retries,
            "duration_s": round(duration, 3),
            "cpu_s": round(time.process_time() - self.started_cpu, 3),
            "records_per_s": round(self.synced / duration, 1),
            "resources_per_s": round(resources / duration, 1),
            "peak_rss_mb": peak_rss_mb(),
        }


def _issue(issue: Issue) -> dict[str, Any]:
    out: dict[str, Any] = {"path": issue.path, "message": issue.message}
    if issue.safety:
        out["safety"] = True
    return out


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (Linux VmHWM; it starts afresh at exec, unlike ru_maxrss)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class Ticker(Protocol):
    """What the job calls while it runs: `tick` every `interval_s`, `finish` once at the end."""

    interval_s: float

    def tick(self) -> None: ...

    def finish(self) -> None: ...


class Progress:
    """A plain log line every `interval_s` (when stderr is not a terminal; on one it is a bar: terminal.py)."""

    def __init__(self, report: Report, total_bytes: int | None, stream: IO[str] = sys.stderr) -> None:
        self.report = report
        self.total_bytes = total_bytes
        self.stream = stream
        self.interval_s = 10.0

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.report.started, 1e-9)
        done = self.report.synced + self.report.rejected
        rate = done / elapsed
        text = f"records {done:,} | {rate:,.0f}/s | rejected {self.report.rejected:,}"
        if self.total_bytes and self.report.bytes_done:
            fraction = min(self.report.bytes_done / self.total_bytes, 1.0)
            eta = elapsed * (1 - fraction) / fraction if fraction else 0
            text += f" | {100 * fraction:.0f}% | ETA {eta:,.0f}s"
        return text

    def tick(self) -> None:
        self.stream.write("sync progress: " + self.line() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        pass
