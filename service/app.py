"""`create_app()`: wires settings, the monitoring protocol, the shared FHIR client, the sync engine, the
Questionnaires, the monitoring summaries, the audit trail and the routers; nothing else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI

from service.access_tokens import open_token_verifier
from service.audit.middleware import AuditMiddleware
from service.audit.trail import open_audit_trail
from service.auth import require_caller
from service.exit_codes import ExitCode
from service.fhir_client import open_fhir_client
from service.http_edge import EdgeMiddleware, install_error_handlers
from service.logs import configure_logging
from service.metrics import Metrics
from service.monitoring import ProtocolError, announce
from service.monitoring.write import MonitoringSummaries
from service.openapi import install_openapi
from service.provenance import transactions_for
from service.routes import convert, docs, health, jwks, metrics, patients, records, sessions
from service.safety_thresholds import announce_thresholds
from service.settings import Settings
from service.sync import SyncEngine
from service.sync.questionnaires import QuestionnairesOnce

log = logging.getLogger("infusion_fhir.app")


def create_app(settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The FastAPI application; `transport` lets tests put fake servers (FHIR, OAuth issuer) under its clients."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    try:  # a protocol file that cannot be used stops the service before it serves anything (exit 2)
        protocol = settings.monitoring_protocol()
    except ProtocolError as exc:
        log.error("app.protocol_invalid", extra={"field": exc.field, "reason": exc.message, "protocol_file": exc.file})
        raise SystemExit(ExitCode.STOPPED) from None
    app_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        announce(protocol, log)  # which protocol, and every rule it made less sensitive than the default
        if not settings.api_key_digests() and not settings.oauth_issuer:
            log.warning("app.no_api_keys", extra={"hint": "set INFUSION_FHIR_API_KEYS; every /v1 call is refused"})
        async with (
            open_fhir_client(settings, observer=app_metrics, transport=transport) as fhir,
            open_token_verifier(settings, transport=transport) as token_verifier,
            open_audit_trail(settings, counter=app_metrics, transport=transport) as audit_trail,
        ):
            app.state.audit = audit_trail
            app.state.fhir = fhir
            app.state.token_verifier = token_verifier
            mapping_config = settings.mapping_config()
            announce_thresholds(mapping_config)
            transactions = transactions_for(settings, fhir)  # with their Provenance, or as built
            app.state.engine = SyncEngine(fhir, mapping_config, transactions)
            # Written at most once per process, before the first transaction with a QuestionnaireResponse.
            app.state.questionnaires = QuestionnairesOnce(fhir, mapping_config)
            app.state.summaries = MonitoringSummaries(
                fhir,
                mapping_config,
                automatic=settings.monitoring_summaries,
                charts=settings.monitoring_charts,
                transactions=transactions,
            )
            yield
            await app.state.summaries.close(settings.monitoring_drain_seconds)  # before the FHIR client closes

    app = FastAPI(
        title="infusion-fhir",
        summary="Ketamine infusion clinic records to FHIR R4, synced with a FHIR server.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from service.routes.docs, without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = app_metrics
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes, metrics=app_metrics)
    # outside the edge, so that its 413 answers are audited too; the trail is the lifespan's (None before it)
    app.add_middleware(AuditMiddleware, trail=lambda: getattr(app.state, "audit", None))
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(docs.router)
    app.include_router(jwks.router)  # the SMART client's public key (404 when SMART is off)
    for router in (records.router, sessions.router, convert.router, patients.router):
        app.include_router(router, dependencies=[Depends(require_caller)])
    return app
