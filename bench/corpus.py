"""The fixed benchmark corpus (demo-data records of a fixed seed) and run-unique namespaces."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas import parse_record
from service.demo import generate_records, write_ndjson
from service.mappers import MappingConfig

SEED = 20240412
PATIENTS = 4  # the corpus: demo-data --patients 4 --seed 20240412 (870 lines since the monitoring schedule of issue 22)
OUT = Path(__file__).resolve().parent / "out"


def raw_records(patients: int) -> list[dict[str, Any]]:
    """The corpus of `patients` synthetic patients as NDJSON-ready dicts (patient n is always the same)."""
    return list(generate_records(patients, SEED))


def records(patients: int) -> list[Any]:
    """The corpus as parsed (strictly validated) records."""
    return [parse_record(raw) for raw in raw_records(patients)]


def ndjson_file(patients: int) -> Path:
    """The corpus as an NDJSON file under bench/out/ (written once per size)."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"corpus-{patients}p-{SEED}.ndjson"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as out:
            write_ndjson(generate_records(patients, SEED), out)
        tmp.rename(path)
    return path


@dataclass(frozen=True)
class Namespace:
    """Identifier and MRN systems unique to one measurement, so that every write is a create."""

    token: str

    @classmethod
    def fresh(cls, label: str) -> Namespace:
        return cls(f"{label}-{uuid.uuid4().hex[:10]}")

    @property
    def identifier_base(self) -> str:
        return f"https://bench.infusion-fhir.example/{self.token}/sid"

    @property
    def mrn_system(self) -> str:
        return f"https://bench.infusion-fhir.example/{self.token}/mrn"

    def config(self) -> MappingConfig:
        return MappingConfig(identifier_system_base=self.identifier_base, mrn_system=self.mrn_system)

    def env(self, fhir_base_url: str, **extra: str) -> dict[str, str]:
        """The environment of a CLI or server process that writes into this namespace."""
        return {
            **os.environ,
            "FHIR_BASE_URL": fhir_base_url,
            "INFUSION_FHIR_IDENTIFIER_SYSTEM_BASE": self.identifier_base,
            "INFUSION_FHIR_MRN_SYSTEM": self.mrn_system,
            **extra,
        }
