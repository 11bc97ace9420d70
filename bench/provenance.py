"""Provenance: batch sync throughput with a Provenance in every transaction vs without (`INFUSION_FHIR_PROVENANCE`).

The 10x corpus synced by `infusion-fhir sync` with Provenance on (the default) and off, ABBA, each run on a fresh
server: the same records; on the "on" side each transaction carries one Provenance per patient and activity, and the
service's Device and Organization are written once before the first line.
"""

from __future__ import annotations

from typing import Any

from bench.sync import on_off


def run(base_url: str, quick: bool = False) -> dict[str, Any]:
    return on_off(base_url, quick, "provenance", "provenances")
