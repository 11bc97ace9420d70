"""The service as a `Device` and the clinic as an `Organization`: the agents every Provenance names, written once."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from service.fhir_client import FhirClient
from service.provenance.build import entry

log = logging.getLogger("infusion_fhir.provenance")
PACKAGE = "infusion-fhir"


def service_version() -> str:
    """The installed package's version (the Device's `version`)."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0.0.0"


@dataclass(frozen=True)
class Clinic:
    """The clinic as the author of every write: its name and one identifier (`system|value`)."""

    name: str
    identifier: str

    @property
    def organization_id(self) -> str:
        return "clinic-" + hashlib.sha256(self.identifier.encode()).hexdigest()[:16]

    def organization(self) -> dict[str, Any]:
        system, _, value = self.identifier.rpartition("|")
        return {
            "resourceType": "Organization",
            "id": self.organization_id,
            "identifier": [{"system": system, "value": value}] if system else [{"value": value}],
            "active": True,
            "name": self.name,
        }


def device_id(version: str) -> str:
    """One Device per service version, so a Provenance names the version that assembled it."""
    return f"{PACKAGE}-{re.sub(r'[^A-Za-z0-9.-]', '-', version)}"[:64]


def device(version: str, organization_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "id": device_id(version),
        "status": "active",
        "deviceName": [{"name": PACKAGE, "type": "user-friendly-name"}],
        "version": [{"value": version}],
        "owner": {"reference": f"Organization/{organization_id}"},
    }


class AgentsOnce:
    """PUT the Organization and the Device at most once per process, before the first Provenance names them (a
    no-op update when the server holds them as they are). A failure raises and the next write tries again."""

    def __init__(self, fhir: FhirClient, clinic: Clinic, base_url: str, version: str | None = None) -> None:
        self.fhir = fhir
        self.clinic = clinic
        self.base_url = base_url
        self.version = version or service_version()
        self._lock = asyncio.Lock()
        self._done = False

    @property
    def device_ref(self) -> str:
        return f"Device/{device_id(self.version)}"

    @property
    def organization_ref(self) -> str:
        return f"Organization/{self.clinic.organization_id}"

    async def ensure(self) -> None:
        if self._done:
            return
        async with self._lock:
            if self._done:
                return
            resources = [self.clinic.organization(), device(self.version, self.clinic.organization_id)]
            bundle = {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [entry(r, self.base_url) for r in resources],
            }
            await self.fhir.transaction(bundle, idempotent=True)
            log.info("provenance.agents", extra={"device": self.device_ref, "organization": self.organization_ref})
            self._done = True
