"""The `infusion-fhir` command line: serve the API, map and sync record files."""

from __future__ import annotations

import typer

from service.batch.command import sync_command, validate_command
from service.demo.command import demo_data_command

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to bind (default from settings: 127.0.0.1)."),
    port: int = typer.Option(None, help="Port to listen on (default from settings: 8000)."),
) -> None:
    """Run the REST API with uvicorn."""
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


@app.command("map")
def map_file(
    file: str = typer.Argument(..., help="NDJSON file of records, one per line; `-` reads stdin."),
    batch_size: int = typer.Option(50, "--batch-size", min=1, help="Records per transaction Bundle."),
) -> None:
    """Map records to FHIR transaction Bundles offline (NDJSON out); bad lines go to stderr.

    Exit code 0 when every line was mapped, 1 when any line was rejected, 2 when FILE cannot be read.
    """
    import sys

    from service.mappers.ndjson import map_ndjson
    from service.settings import Settings

    config = Settings().mapping_config()
    try:
        if file == "-":
            summary = map_ndjson(sys.stdin.buffer, config, batch_size, sys.stdout, sys.stderr)
        else:
            with open(file, "rb") as lines:
                summary = map_ndjson(lines, config, batch_size, sys.stdout, sys.stderr)
    except OSError:
        typer.echo(f"cannot read {file}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"mapped {summary.mapped} of {summary.lines} records into {summary.bundles} bundles; "
        f"{summary.rejected} rejected",
        err=True,
    )
    raise typer.Exit(1 if summary.rejected else 0)


app.command("demo-data")(demo_data_command)
app.command("sync")(sync_command)
app.command("validate")(validate_command)
