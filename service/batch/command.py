"""`infusion-fhir sync` and `infusion-fhir validate`: the batch edge, where errors become exit codes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import orjson
import typer
from pydantic import ValidationError

from service.audit.batch import JobPatients, record_job
from service.audit.trail import open_audit_trail
from service.batch.job import batch_job
from service.batch.report import Progress, Report, Ticker
from service.batch.runner import BatchSync, stop_reason
from service.batch.source import Line, Shard, in_shard, read_lines
from service.batch.terminal import Bar, report_destination, sync_summary, validate_summary, write_lines
from service.batch.validate import Validation, emit, validate_lines
from service.errors import (
    FhirAuthRefused,
    FhirMisconfigured,
    FhirUnavailable,
    InfusionFhirError,
)
from service.exit_codes import ExitCode
from service.fhir_client import FhirClient, open_fhir_client
from service.logs import configure_logging
from service.mappers import mapper_for
from service.monitoring import ProtocolError, announce
from service.monitoring.write import MonitoringSummaries, counts
from service.provenance import Transactions, transactions_for
from service.request_context import request_scope
from service.safety_thresholds import announce_thresholds
from service.settings import Settings
from service.sync import SyncEngine
from service.sync.questionnaires import ensure_questionnaires

log = logging.getLogger("infusion_fhir.batch")


def settings_or_stop(fhir_url: str | None = None) -> Settings:
    """The settings, with `--fhir-url` over the environment, and the monitoring protocol they name; a bad
    configuration or protocol file stops here (exit 2), naming the field."""
    try:
        settings = Settings(FHIR_BASE_URL=fhir_url) if fhir_url else Settings()
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) or "(settings)" for e in exc.errors())
        typer.echo(f"configuration error in: {fields}: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(ExitCode.STOPPED) from None
    try:
        settings.monitoring_protocol()
    except ProtocolError as exc:
        typer.echo(f"configuration error in: monitoring_protocol_file: {exc}", err=True)
        raise typer.Exit(ExitCode.STOPPED) from None
    return settings


def start_logging(settings: Settings) -> None:
    """Logs as configured, then which monitoring protocol the run uses and what it made less sensitive."""
    configure_logging(settings.log_level)
    announce(settings.monitoring_protocol(), log)


def _total_bytes(files: list[str]) -> int | None:
    if "-" in files:
        return None
    return sum(os.path.getsize(f) for f in files)


def sync_command(
    files: list[str] = typer.Argument(..., metavar="FILE", help="NDJSON files of records; `-` reads stdin."),
    fhir_url: str = typer.Option(
        None, "--fhir-url", metavar="URL", help="FHIR base URL (default: FHIR_BASE_URL, else the local HAPI)."
    ),
    batch_size: int = typer.Option(
        50,
        "--batch-size",
        min=1,
        max=1000,
        metavar="N",
        help="Records per transaction Bundle, at most; a session starts a new one (see README).",
    ),
    concurrency: int = typer.Option(4, "--concurrency", min=1, max=64, metavar="N", help="Bundles in flight at once."),
    rejects: Path = typer.Option(
        Path("rejects.ndjson"), "--rejects", metavar="FILE", help="Rejected lines, with reasons (NDJSON)."
    ),
    report_path: Path = typer.Option(None, "--report", metavar="FILE", help="Write the JSON report to FILE."),
    json_out: bool = typer.Option(False, "--json", help="Print the JSON report on stdout, even on a terminal."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Map and validate only; no FHIR server I/O."),
    always_write: bool = typer.Option(
        False,
        "--always-write",
        help="Send every resource, even those the server holds unchanged (default: only what changed).",
    ),
    shard_text: str = typer.Option(
        "0/1",
        "--shard",
        metavar="I/N",
        help="Only the patients whose MRN hashes to shard I of N (N copies make one load).",
    ),
    job_name: str = typer.Option(
        None,
        "--job-name",
        metavar="NAME",
        help="The caller's name recorded for this job (Provenance, audit); 1-64 of A-Z a-z 0-9 . _ - @ : "
        "(default: sync@ and the start time, UTC, e.g. sync@2026-12-05T21:45:01Z). Name no patient in it.",
    ),
) -> None:
    """Stream NDJSON records to the FHIR server in transaction Bundles; every line synced or rejected.

    On a terminal: a progress bar and a short summary (on stderr). The JSON report goes to stdout when
    stdout is not a terminal (or with --json), and to --report FILE.

    Exit codes: 0 every line synced; 1 some lines rejected (see --rejects); 2 stopped early
    (FHIR server unreachable after retries, or interrupted): re-run the same command to finish.
    """
    settings = settings_or_stop(fhir_url)
    start_logging(settings)
    announce_thresholds(settings.mapping_config())  # each weakened safety rule named, once
    try:
        shard = Shard.parse(shard_text)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(ExitCode.STOPPED) from None
    for f in files:
        if f != "-" and not os.path.isfile(f):
            typer.echo(f"cannot read {f}", err=True)
            raise typer.Exit(ExitCode.STOPPED)
    job = batch_job(job_name)
    if job is None:
        typer.echo("--job-name: 1-64 of A-Z a-z 0-9 . _ - @ :", err=True)
        raise typer.Exit(ExitCode.STOPPED)
    with open(rejects, "wb") as rejects_out:
        report = Report(rejects_out)
        lines = in_shard(read_lines(files), shard, report.passed_over)
        if dry_run:
            summary = _dry_run(lines, settings, report)
        else:
            progress = _ticker(report, _total_bytes(files))
            with request_scope(job.request_id, job.caller):  # the job's calls name it, as an API request's do
                summary = asyncio.run(
                    _sync(lines, progress, settings, report, batch_size, concurrency, diff=not always_write)
                )
    summary["job"] = {"name": job.caller.name, "id": job.request_id}
    summary["rejects_file"] = str(rejects)
    summary["shard"] = str(shard)
    text = orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode()
    if report_path:
        report_path.write_text(text + "\n")
    # A pipe or a file gets the JSON report, as batch jobs have always parsed it; a person gets a summary.
    to_stdout = json_out or not sys.stdout.isatty()
    if to_stdout:
        typer.echo(text)
    if person := _person(to_stdout):
        write_lines(sync_summary(summary, report.reasons, report_destination(report_path, to_stdout)), person)
    raise typer.Exit(summary["exit_code"])


def _ticker(report: Report, total_bytes: int | None) -> Ticker:
    """A progress bar when stderr is a terminal; a log line every few seconds otherwise."""
    if sys.stderr.isatty():
        return Bar(
            "sync",
            total_bytes,
            lambda: (report.bytes_done, report.synced + report.rejected, report.rejected),
            sys.stderr,
        )
    return Progress(report, total_bytes)


def _person(stdout_taken: bool) -> TextIO | None:
    """Where a person reads the summary: stderr on a terminal, else stdout when it is a terminal the
    JSON report left free; nowhere when neither is a terminal (a log keeps what it always had)."""
    if sys.stderr.isatty():
        return sys.stderr
    if sys.stdout.isatty() and not stdout_taken:
        return sys.stdout
    return None


def _dry_run(lines: Iterator[Line], settings: Settings, report: Report) -> dict[str, Any]:
    config = settings.mapping_config()
    for line in lines:
        report.lines_read += line.record is not None or bool(line.issues)
        if line.record is None:
            if line.issues:
                report.record_rejected(line, "invalid record", line.issues)
            continue
        resources = mapper_for(line.record.kind).to_fhir(line.record, config)
        report.resources["mapped"] += len(resources)
        report.record_synced(line, "mapped")
    summary = report.as_dict(retries=0)
    summary["dry_run"] = True
    summary["synced"] = 0
    summary["mapped"] = sum(c["mapped"] for c in report.by_kind.values())
    summary["not_processed"] = 0
    return summary


async def _sync(
    lines: Iterator[Line],
    progress: Ticker,
    settings: Settings,
    report: Report,
    batch_size: int,
    concurrency: int,
    *,
    diff: bool = True,
) -> dict[str, Any]:
    async with (
        open_fhir_client(settings, max_connections=max(concurrency * 2, 4)) as fhir,
        open_audit_trail(settings) as trail,
    ):
        report.patients = JobPatients()
        try:  # a server we cannot use stops the job before any line is read
            await fhir.require_r4()
            # Every Questionnaire before any QuestionnaireResponse names it (a no-op when all are there).
            await ensure_questionnaires(fhir, settings.mapping_config())
        except InfusionFhirError as exc:
            report.stopped_reason = stop_reason(exc)
            return _summary(report, fhir)
        transactions = transactions_for(settings, fhir, sequenced=True)  # with their Provenance, or as built
        job = BatchSync(
            SyncEngine(fhir, settings.mapping_config(), transactions),
            report,
            batch_size=batch_size,
            concurrency=concurrency,
            diff=diff,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, job.interrupt, f"interrupted by {signal.Signals(sig).name}")
        await job.run(lines, progress)
        summaries = await _write_summaries(transactions, settings, report, job.touched, concurrency)
        stopped = report.stopped_reason is not None
        unrecorded = await record_job(trail, report.patients, stopped=stopped, fhir_url=settings.fhir_base_url)
        if unrecorded and trail.refuses and not stopped:  # written but not audited: the re-run records it
            report.stopped_reason = f"the audit trail could not record {unrecorded} patients' events; run the job again"
        return {**_summary(report, fhir), **summaries, "provenances": transactions.provenances}


async def _write_summaries(
    transactions: Transactions, settings: Settings, report: Report, touched: set[str], concurrency: int
) -> dict[str, Any]:
    """At the end of the run, the monitoring summary and critical-episode Flag of each session the run touched
    (reads for those sessions only). A job that stopped writes none (its re-run does); one that cannot write them
    stops (exit 2) saying so: the records are written, and the re-run writes what is missing."""
    if not settings.monitoring_summaries or report.stopped_reason:
        return {}
    writer = MonitoringSummaries(
        transactions.fhir, settings.mapping_config(), charts=settings.monitoring_charts, transactions=transactions
    )
    try:
        written = await writer.refresh_all(touched, concurrency)
    except InfusionFhirError as exc:
        log.error("batch.summaries_failed", extra={"sessions": len(touched), "error": type(exc).__name__})
        report.stopped_reason = f"monitoring summaries not written: {stop_reason(exc)}; run the job again"
        return {"monitoring_summaries": {"sessions": len(touched), "resources": {}}}
    return {"monitoring_summaries": {"sessions": len(touched), "resources": dict(sorted(counts(written).items()))}}


def _summary(report: Report, fhir: FhirClient) -> dict[str, Any]:
    """The report, with the client's retries and, under SMART, how many access tokens it fetched
    (a token that expires mid-run is fetched again before it is refused: no request fails for it)."""
    summary = report.as_dict(retries=fhir.stats["retries"])
    summary["token_fetches"] = getattr(fhir.http.auth, "token_fetches", 0)
    return summary


def validate_command(
    file: str = typer.Argument(..., metavar="FILE", help="NDJSON file of records; `-` reads stdin."),
    fhir_url: str = typer.Option(
        None, "--fhir-url", metavar="URL", help="FHIR base URL (default: FHIR_BASE_URL, else the local HAPI)."
    ),
    concurrency: int = typer.Option(4, "--concurrency", min=1, max=32, metavar="N", help="$validate calls in flight."),
    all_issues: bool = typer.Option(
        False, "--all-issues", help="One NDJSON line per record with every issue, instead of grouped counts."
    ),
) -> None:
    """Map records and send each distinct resource to the FHIR server's `$validate` once.

    Prints the issues grouped by message with counts; errors and invalid lines name their records.
    With --all-issues: one NDJSON line per record that has any issue, listing every issue. Exit 0
    when no resource has an error, 1 when some do (or some lines are not valid records), 2 when the
    server cannot be used (unreachable, credentials refused, not a FHIR R4 server).
    """
    settings = settings_or_stop(fhir_url)
    start_logging(settings)
    announce_thresholds(settings.mapping_config())  # each weakened safety rule named, once
    try:
        validation = asyncio.run(_validate(file, settings, concurrency, all_issues=all_issues))
    except (FhirUnavailable, FhirAuthRefused, FhirMisconfigured) as exc:
        typer.echo(f"stopped: {stop_reason(exc)}", err=True)
        raise typer.Exit(ExitCode.STOPPED) from None
    if not all_issues:
        write_lines(validate_summary(validation), sys.stdout)
    typer.echo(orjson.dumps(validation.counts).decode(), err=True)
    raise typer.Exit(ExitCode.REJECTED if validation.failed() else ExitCode.OK)


async def _validate(file: str, settings: Settings, concurrency: int, *, all_issues: bool = True) -> Validation:
    validation = Validation()
    async with open_fhir_client(settings) as fhir:
        await fhir.require_r4()
        bar = None
        if sys.stderr.isatty():
            counts = validation.counts
            bar = Bar(
                "validate",
                _total_bytes([file]),
                lambda: (validation.bytes_done, counts["records"], counts["records_with_errors"]),
                sys.stderr,
                bad="with errors",
            )
        ticker = asyncio.create_task(_tick(bar)) if bar else None
        try:
            each = emit if all_issues else None
            await validate_lines(
                read_lines([file]), fhir, settings.mapping_config(), concurrency, each=each, into=validation
            )
        finally:
            if ticker:
                ticker.cancel()
            if bar:
                bar.finish()
    return validation


async def _tick(progress: Bar) -> None:
    while True:
        await asyncio.sleep(progress.interval_s)
        progress.tick()
