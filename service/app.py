"""`create_app()`: wires settings, the shared FHIR client and the routers; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from service.fhir_client import FhirClient, build_http_client
from service.retry import RetryPolicy
from service.routes import health
from service.settings import Settings


def create_app(settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The FastAPI application; `transport` lets tests put a fake FHIR server under the client."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with build_http_client(
            settings.fhir_base_url,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            max_connections=settings.max_connections,
            bearer_token=settings.fhir_bearer_token,
            transport=transport,
        ) as http:
            app.state.fhir = FhirClient(http, retry_policy(settings))
            yield

    app = FastAPI(
        title="infusion-fhir",
        summary="Ketamine infusion clinic records to FHIR R4, synced with a FHIR server.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(health.router)
    return app


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy the settings describe."""
    return RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        max_total_s=settings.retry_max_total_s,
        backoff_base_s=settings.retry_backoff_base_s,
        backoff_cap_s=settings.retry_backoff_cap_s,
        retry_after_cap_s=settings.retry_after_cap_s,
    )
