"""The `infusion-fhir` command line: serve the API, map and sync record files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from service.batch.command import settings_or_stop, start_logging, sync_command, validate_command
from service.demo.command import demo_data_command
from service.exit_codes import ExitCode
from service.help_format import Command, Group

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__, cls=Group)


@app.command(cls=Command)
def serve(
    host: str = typer.Option(None, metavar="HOST", help="Interface to bind (default from settings: 127.0.0.1)."),
    port: int = typer.Option(None, metavar="PORT", help="Port to listen on (default from settings: 8000)."),
    workers: int = typer.Option(
        1, "--workers", min=1, metavar="N", help="Worker processes sharing the port (same settings each)."
    ),
) -> None:
    """Run the REST API with uvicorn."""
    import uvicorn

    from service.app import create_app

    settings = settings_or_stop()  # a bad configuration or protocol file: exit 2 before anything listens
    options: dict[str, Any] = {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_level": settings.log_level.lower(),
        "access_log": False,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
    else:
        # Worker processes each build their own app (and FHIR client) from the environment: uvicorn
        # needs an import string and a factory to start them. The service is stateless, so any
        # worker may answer any request; concurrent writes are made safe by the FHIR server.
        uvicorn.run("service.app:create_app", factory=True, workers=workers, **options)


@app.command("map", cls=Command)
def map_file(
    file: str = typer.Argument(..., metavar="FILE", help="NDJSON file of records; `-` reads stdin."),
    batch_size: int = typer.Option(
        50,
        "--batch-size",
        min=1,
        metavar="N",
        help="Records per transaction Bundle, at most; a session starts a new one (see README).",
    ),
) -> None:
    """Map records to FHIR transaction Bundles offline (NDJSON out).

    Bad lines go to stderr. Exit code 0 when every line was mapped, 1 when any line was rejected, 2 when FILE cannot
    be read or the configuration (the monitoring protocol file among it) cannot be used.
    """
    import sys

    from service.batch.mapfile import map_lines
    from service.batch.source import read_lines
    from service.safety_thresholds import announce_thresholds

    settings = settings_or_stop()
    start_logging(settings)
    config = settings.mapping_config()
    announce_thresholds(config)  # each weakened safety rule named, once
    try:
        summary = map_lines(read_lines([file]), config, batch_size, sys.stdout, sys.stderr)
    except OSError:
        typer.echo(f"cannot read {file}", err=True)
        raise typer.Exit(ExitCode.STOPPED) from None
    typer.echo(
        f"mapped {summary.mapped} of {summary.lines} records into {summary.bundles} bundles; "
        f"{summary.rejected} rejected",
        err=True,
    )
    raise typer.Exit(ExitCode.REJECTED if summary.rejected else ExitCode.OK)


@app.command("smart-keygen", cls=Command)
def smart_keygen(
    alg: str = typer.Option("ES384", "--alg", metavar="ALG", help="ES384 (a P-384 key) or RS384 (an RSA 3072 key)."),
    output: Path = typer.Option(
        ..., "--output", "-o", file_okay=False, metavar="DIR", help="Directory to write the two files to."
    ),
) -> None:
    """Make a SMART Backend Services key pair in DIR.

    Writes DIR/private-key.pem (mode 0600) and DIR/jwks.json, the public JWK Set to register with the
    EHR, and prints the key's kid. Existing files are never overwritten (exit 2).
    """
    from service.smart import SMART_ALGS, write_key_pair

    chosen = next((a for a in SMART_ALGS if a == alg.upper()), None)
    if chosen is None:
        raise typer.BadParameter(f"use one of {', '.join(SMART_ALGS)}", param_hint="--alg")
    try:
        key, key_path, jwks_path = write_key_pair(chosen, output)
    except OSError as exc:  # FileExistsError among them: a registered key is never overwritten
        typer.echo(f"smart-keygen: {exc}", err=True)
        raise typer.Exit(ExitCode.STOPPED) from None
    typer.echo(key.kid)
    typer.echo(
        f"smart-keygen: {key.alg} key {key_path} (keep it secret), public JWK Set {jwks_path}: register the JWK Set "
        f"(or the service's /.well-known/jwks.json) with the EHR, then set INFUSION_FHIR_SMART_CLIENT_ID and "
        f"INFUSION_FHIR_SMART_PRIVATE_KEY_FILE={key_path}",
        err=True,
    )


app.command("demo-data", cls=Command)(demo_data_command)
app.command("sync", cls=Command)(sync_command)
app.command("validate", cls=Command)(validate_command)
