"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.deps import FhirClientDep
from service.errors import InfusionFhirError
from service.outcome import single_issue

router = APIRouter(tags=["health"])

FHIR_JSON = "application/fhir+json"


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "FHIR server not usable (OperationOutcome)"}})
async def readyz(fhir: FhirClientDep) -> Any:
    """Ready when the FHIR server answers `/metadata` with FHIR 4.0.x and supports transactions."""
    try:
        capability = await fhir.capabilities(retry=False)
    except InfusionFhirError as exc:
        return _not_ready("transient", f"FHIR server not reachable: {exc.message}")
    problem = capability_problem(capability)
    if problem:
        return _not_ready("not-supported", problem)
    return {
        "status": "ready",
        "fhirVersion": capability.get("fhirVersion"),
        "software": (capability.get("software") or {}).get("name"),
    }


def capability_problem(capability: dict[str, Any]) -> str | None:
    """Why a CapabilityStatement rules a server out for us, or None when it is fit."""
    if capability.get("resourceType") != "CapabilityStatement":
        return "FHIR server /metadata did not return a CapabilityStatement"
    version = str(capability.get("fhirVersion", ""))
    if not version.startswith("4.0."):
        return f"FHIR server speaks FHIR {version or 'unknown'}; infusion-fhir needs R4 (4.0.x)"
    interactions = {
        i.get("code") for rest in capability.get("rest", []) for i in rest.get("interaction", [])
    }
    if "transaction" not in interactions:
        return "FHIR server does not support transaction Bundles"
    return None


def _not_ready(code: str, message: str) -> JSONResponse:
    return JSONResponse(single_issue(code, message), status_code=503, media_type=FHIR_JSON)
