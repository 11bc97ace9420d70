"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.deps import FhirClientDep
from service.errors import FhirAuthRefused, FhirMisconfigured, InfusionFhirError
from service.fhir_client import missing_capabilities
from service.media import FHIR_JSON
from service.outcome import single_issue
from service.routes.responses import HEALTHZ, READYZ

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz", response_model=None, responses=HEALTHZ)
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", operation_id="readyz", response_model=None, responses=READYZ)
async def readyz(fhir: FhirClientDep) -> Any:
    """Ready when the FHIR server answers `/metadata` with FHIR 4.0.x and supports transactions; `lacks` names the
    optional operations it does not declare, and what that costs."""
    try:
        capability = await fhir.require_r4(retry=False)
    except FhirMisconfigured as exc:
        return _not_ready("not-supported", f"FHIR server misconfigured: {exc.message}")
    except FhirAuthRefused as exc:
        return _not_ready("security", exc.message)
    except InfusionFhirError as exc:
        return _not_ready("transient", f"FHIR server not reachable: {exc.message}")
    return {
        "status": "ready",
        "fhirVersion": capability.get("fhirVersion"),
        "software": (capability.get("software") or {}).get("name"),
        "lacks": missing_capabilities(capability),
    }


def _not_ready(code: str, message: str) -> JSONResponse:
    return JSONResponse(single_issue(code, message), status_code=503, media_type=FHIR_JSON)
