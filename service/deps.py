"""FastAPI dependencies: settings, the shared FHIR client, the sync engine, the Questionnaires and the monitoring
summaries, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.fhir_client import FhirClient
from service.monitoring.write import MonitoringSummaries
from service.settings import Settings
from service.sync import SyncEngine
from service.sync.questionnaires import QuestionnairesOnce


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_fhir_client(request: Request) -> FhirClient:
    fhir: FhirClient = request.app.state.fhir
    return fhir


def get_sync_engine(request: Request) -> SyncEngine:
    engine: SyncEngine = request.app.state.engine
    return engine


def get_questionnaires(request: Request) -> QuestionnairesOnce:
    questionnaires: QuestionnairesOnce = request.app.state.questionnaires
    return questionnaires


def get_summaries(request: Request) -> MonitoringSummaries:
    summaries: MonitoringSummaries = request.app.state.summaries
    return summaries


SettingsDep = Annotated[Settings, Depends(get_settings)]
FhirClientDep = Annotated[FhirClient, Depends(get_fhir_client)]
SyncEngineDep = Annotated[SyncEngine, Depends(get_sync_engine)]
QuestionnairesDep = Annotated[QuestionnairesOnce, Depends(get_questionnaires)]
SummariesDep = Annotated[MonitoringSummaries, Depends(get_summaries)]
