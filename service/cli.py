"""The `infusion-fhir` command line: serve the API, map and sync record files."""

from __future__ import annotations

import typer

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
