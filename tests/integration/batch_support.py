"""Helpers for batch tests: run the CLI as a user would, count and purge a test's namespace on the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import provenances_naming

FHIR_JSON = {"Accept": "application/fhir+json"}
CLI = str(Path(sys.executable).parent / "infusion-fhir")
# What references a Patient, referrers first: deleted in this order before the Patient.
DEPENDENTS = (
    "DiagnosticReport",  # a session's monitoring summary: it references the readings and the statistics
    "Flag",
    "AdverseEvent",
    "Observation",
    "QuestionnaireResponse",
    "MedicationAdministration",
    "Procedure",
    "Encounter",
)
KIND_SYSTEM_TYPES = {
    "infusion-session": ("Procedure", "MedicationAdministration", "Observation"),
    "vital-sign": ("Observation",),
    "monitoring-score": ("Observation",),
    "phq9-assessment": ("Observation",),
    "assessment": ("QuestionnaireResponse", "Observation"),
}


class Namespace:
    """Identifier and MRN systems unique to one test, passed to the CLI through its settings."""

    def __init__(self, base_url: str, run_id: str) -> None:
        self.base_url = base_url
        self.identifier_base = f"https://test.infusion-fhir.example/{run_id}/sid"
        self.mrn_system = f"https://test.infusion-fhir.example/{run_id}/mrn"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "FHIR_BASE_URL": self.base_url,
            "INFUSION_FHIR_IDENTIFIER_SYSTEM_BASE": self.identifier_base,
            "INFUSION_FHIR_MRN_SYSTEM": self.mrn_system,
            "INFUSION_FHIR_RETRY_BACKOFF_BASE_S": "0.2",
            **extra,
        }

    def cli(self, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], env=self.env(**env), capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [CLI, *args], env=self.env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    # -- what the server holds ----------------------------------------------------------------

    def _post(self, path: str, data: dict[str, str]) -> dict[str, Any]:
        response = httpx.post(f"{self.base_url}/{path}", data=data, headers=FHIR_JSON, timeout=120)
        response.raise_for_status()
        return response.json()

    def count(self, resource_type: str, kind_segment: str) -> int:
        system = f"{self.identifier_base}/{kind_segment}"
        return self._post(f"{resource_type}/_search", {"identifier": f"{system}|", "_summary": "count"})["total"]

    def patient_ids(self) -> list[str]:
        found = self._post("Patient/_search", {"identifier": f"{self.mrn_system}|", "_elements": "id", "_count": "500"})
        return [e["resource"]["id"] for e in found.get("entry", [])]

    def patients(self) -> list[dict[str, Any]]:
        """This namespace's Patients, whole (their MRNs under its system)."""
        found = self._post("Patient/_search", {"identifier": f"{self.mrn_system}|", "_count": "500"})
        return [e["resource"] for e in found.get("entry", [])]

    def all_of(self, resource_type: str, patient_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Every resource of a type that belongs to this namespace's patients (or to `patient_ids`)."""
        out: list[dict[str, Any]] = []
        subjects = ",".join(f"Patient/{p}" for p in (self.patient_ids() if patient_ids is None else patient_ids))
        if not subjects:
            return out
        form = {"subject": subjects, "_count": "500"}
        bundle = self._post(f"{resource_type}/_search", form)
        total = bundle.get("total") if not any(link["relation"] == "next" for link in bundle.get("link", [])) else None
        while True:
            out.extend(e["resource"] for e in bundle.get("entry", []))
            next_url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
            if next_url:
                bundle = httpx.get(next_url, headers=FHIR_JSON, timeout=120).json()
            elif isinstance(total, int) and len(out) < total:  # capped with no next link (row 8): by offset
                bundle = self._post(f"{resource_type}/_search", {**form, "_offset": str(len(out))})
                assert bundle.get("entry"), f"{resource_type}: the server answered {len(out)} of {total}"
            else:
                return out

    def mapped_of(self, resource_type: str) -> list[dict[str, Any]]:
        """`all_of` without what the service derives for a session (its monitoring summary and critical-episode
        Flag, identifier system `<base>/monitoring-summary`): what the records themselves map to."""
        derived = f"{self.identifier_base}/monitoring-summary"

        def systems(resource: dict[str, Any]) -> list[Any]:
            found = resource.get("identifier", [])  # AdverseEvent.identifier is one Identifier in R4
            return [i.get("system") for i in ([found] if isinstance(found, dict) else found)]

        return [r for r in self.all_of(resource_type) if derived not in systems(r)]

    def purge(self) -> None:
        """Delete and expunge everything this namespace wrote: one transaction per Patient.

        A Patient and all that references it go in one transaction of deletes by id, so references
        among them (a PHQ-9 panel's `hasMember`) are no conflict; HAPI's conditional deletes refused
        those (409) and took ~0.1 s per resource.
        """
        with httpx.Client(base_url=self.base_url, headers=FHIR_JSON, timeout=300) as http:
            for patient_id in self.patient_ids():
                refs = [f"{t}/{r['id']}" for t in DEPENDENTS for r in self.all_of(t, [patient_id])]
                refs = [*provenances_naming(http, [*refs, f"Patient/{patient_id}"]), *refs]  # they name the rest
                entries = [{"request": {"method": "DELETE", "url": ref}} for ref in (*refs, f"Patient/{patient_id}")]
                response = http.post(
                    "/",
                    json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                    headers={"Content-Type": "application/fhir+json"},
                )
                response.raise_for_status()
            for resource_type in ("Provenance", *DEPENDENTS, "Patient"):
                http.post(
                    f"/{resource_type}/$expunge",
                    json={
                        "resourceType": "Parameters",
                        "parameter": [{"name": "expungeDeletedResources", "valueBoolean": True}],
                    },
                    headers={"Content-Type": "application/fhir+json"},
                )
