"""PHQ-9 totals over time for one patient: baseline, change, response and remission."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.errors import NotFound
from service.fhir_client import FhirClient
from service.mappers import MappingConfig
from service.mappers import codes
from service.mappers.ids import parse_identifier, patient_token

RESPONSE_FRACTION = 0.5  # >= 50% reduction from baseline
REMISSION_BELOW = 5  # total < 5


@dataclass(frozen=True)
class TrendPoint:
    key: str | None
    date: str
    total: int


def trend_summary(points: list[TrendPoint]) -> dict[str, Any]:
    """Baseline (the first total), change from baseline, response and remission per point."""
    if not points:
        return {"baseline": None, "points": [], "latest": None}
    baseline = points[0].total
    out = []
    for point in points:
        change = point.total - baseline
        out.append(
            {
                "key": point.key,
                "date": point.date,
                "total": point.total,
                "change_from_baseline": change,
                "percent_change": round(100 * change / baseline, 1) if baseline else None,
                "response": baseline > 0 and point.total <= baseline * (1 - RESPONSE_FRACTION),
                "remission": point.total < REMISSION_BELOW,
            }
        )
    return {"baseline": {"date": points[0].date, "total": baseline}, "points": out, "latest": out[-1]}


async def phq9_trend(fhir: FhirClient, config: MappingConfig, mrn: str) -> dict[str, Any]:
    """The patient's PHQ-9 totals (retracted ones left out) in time order, summarised."""
    patients = await fhir.search("Patient", {"identifier": patient_token(mrn, config)})
    if not patients:
        raise NotFound("no Patient with this MRN on the FHIR server")
    subjects = ",".join(f"Patient/{p['id']}" for p in patients)
    totals = await fhir.search(
        "Observation",
        {"subject": subjects, "code": f"{codes.LOINC}|{codes.PHQ9_TOTAL.code}", "_sort": "date", "_count": "200"},
    )
    points = []
    for obs in totals:
        if obs.get("status") == "entered-in-error" or "valueQuantity" not in obs:
            continue
        key = None
        for ident in obs.get("identifier", []):
            parsed = parse_identifier(ident.get("system"), ident.get("value"), config)
            if parsed:
                key = parsed[1]
        points.append(TrendPoint(key, obs.get("effectiveDateTime", ""), int(obs["valueQuantity"]["value"])))
    points.sort(key=lambda p: p.date)
    return trend_summary(points)
