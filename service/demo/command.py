"""The `demo-data` command: synthetic clinic records for N patients as NDJSON, file or stdout."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from service.demo.stream import generate_records, write_ndjson
from service.exit_codes import ExitCode


def demo_data_command(
    patients: Annotated[
        int, typer.Option("--patients", "-n", min=0, metavar="N", help="Number of synthetic patients.")
    ] = 10,
    seed: Annotated[
        int, typer.Option("--seed", "-s", metavar="N", help="Random seed; the same seed gives identical bytes.")
    ] = 0,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False, metavar="FILE", help="NDJSON file to write (default: stdout)."),
    ] = None,
) -> None:
    """Write synthetic ketamine-infusion records (every kind, rating scales included) as NDJSON, sessions first."""
    records = generate_records(patients, seed)
    if output is None:
        try:
            counts = write_ndjson(records, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        except BrokenPipeError:  # `... | head`: the reader left; stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(ExitCode.OK) from None
    else:
        with output.open("wb") as out:
            counts = write_ndjson(records, out)
    summary = ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))
    typer.echo(f"demo-data: {sum(counts.values())} lines for {patients} patients ({summary})", err=True)
