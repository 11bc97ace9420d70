"""FastAPI dependencies (settings, the FHIR client, the sync engine, the Questionnaires, the monitoring summaries)
as `Annotated` aliases.

Each is `async def`: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request for what is
one attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.fhir_client import FhirClient
from service.monitoring.write import MonitoringSummaries
from service.settings import Settings
from service.sync import SyncEngine
from service.sync.questionnaires import QuestionnairesOnce


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_fhir_client(request: Request) -> FhirClient:
    fhir: FhirClient = request.app.state.fhir
    return fhir


async def get_sync_engine(request: Request) -> SyncEngine:
    engine: SyncEngine = request.app.state.engine
    return engine


async def get_questionnaires(request: Request) -> QuestionnairesOnce:
    questionnaires: QuestionnairesOnce = request.app.state.questionnaires
    return questionnaires


async def get_summaries(request: Request) -> MonitoringSummaries:
    summaries: MonitoringSummaries = request.app.state.summaries
    return summaries


SettingsDep = Annotated[Settings, Depends(get_settings)]
FhirClientDep = Annotated[FhirClient, Depends(get_fhir_client)]
SyncEngineDep = Annotated[SyncEngine, Depends(get_sync_engine)]
QuestionnairesDep = Annotated[QuestionnairesOnce, Depends(get_questionnaires)]
SummariesDep = Annotated[MonitoringSummaries, Depends(get_summaries)]
