"""FastAPI dependencies: the shared FHIR client and the settings, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.fhir_client import FhirClient
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_fhir_client(request: Request) -> FhirClient:
    return request.app.state.fhir


SettingsDep = Annotated[Settings, Depends(get_settings)]
FhirClientDep = Annotated[FhirClient, Depends(get_fhir_client)]
