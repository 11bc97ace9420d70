"""PHQ-9 totals over time for one patient: baseline, change, response, remission, and item 9.

Item 9 ("thoughts that you would be better off dead, or of hurting yourself") is never hidden:
every point carries its answer, and every assessment with item 9 > 0 is an alert, newest first.
Points are ordered by instant (offsets parsed), every page of results is read, retracted
assessments are left out, and totals count whether written as valueQuantity or valueInteger.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from service.fhir_client import FhirClient
from service.mappers import MappingConfig, codes
from service.mappers.ids import parse_identifier
from service.sync.identities import patients_holding

RESPONSE_FRACTION = 0.5  # >= 50% reduction from baseline
REMISSION_BELOW = 5  # total < 5
PAGE = "500"  # the local HAPI's largest page; every page is read whatever the server allows
_ANSWER_SCORES = {answer.code: score for score, answer in enumerate(codes.PHQ9_ANSWERS)}


@dataclass(frozen=True)
class TrendPoint:
    key: str | None
    date: str
    total: int
    item9: int | None = None
    """Item 9's answer 0-3; None when the server holds no item-9 answer for this total."""

    @property
    def instant(self) -> dt.datetime:
        return parse_instant(self.date)


def parse_instant(value: str) -> dt.datetime:
    """A FHIR dateTime as an aware instant (a date alone is taken as its start, UTC)."""
    text = value.replace("Z", "+00:00")
    parsed = dt.datetime.fromisoformat(text) if "T" in text else dt.datetime.fromisoformat(text[:10])
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def trend_summary(points: list[TrendPoint]) -> dict[str, Any]:
    """Baseline (the earliest total), change, response and remission per point, item 9, alerts."""
    points = sorted(points, key=lambda p: (p.instant, p.key or ""))
    alerts = [
        {"key": p.key, "date": p.date, "item9": p.item9}
        for p in sorted(points, key=lambda p: (p.instant, p.key or ""), reverse=True)
        if p.item9
    ]
    if not points:
        return {"baseline": None, "points": [], "latest": None, "alerts": []}
    baseline = points[0].total
    out = []
    for point in points:
        change = point.total - baseline
        out.append(
            {
                "key": point.key,
                "date": point.date,
                "total": point.total,
                "item9": point.item9,
                "item9_positive": None if point.item9 is None else point.item9 > 0,
                "change_from_baseline": change,
                "percent_change": round(100 * change / baseline, 1) if baseline else None,
                "response": baseline > 0 and point.total <= baseline * (1 - RESPONSE_FRACTION),
                "remission": point.total < REMISSION_BELOW,
            }
        )
    return {"baseline": {"date": points[0].date, "total": baseline}, "points": out, "latest": out[-1], "alerts": alerts}


def _total_of(observation: dict[str, Any]) -> int | None:
    if "valueQuantity" in observation and observation["valueQuantity"].get("value") is not None:
        return int(observation["valueQuantity"]["value"])
    if isinstance(observation.get("valueInteger"), int):
        return int(observation["valueInteger"])
    return None


def _item9_of(observation: dict[str, Any]) -> int | None:
    for coding in (observation.get("valueCodeableConcept") or {}).get("coding", []):
        if coding.get("system") == codes.LOINC and coding.get("code") in _ANSWER_SCORES:
            return _ANSWER_SCORES[coding["code"]]
    return None


def _code_of(observation: dict[str, Any]) -> str | None:
    for coding in (observation.get("code") or {}).get("coding", []):
        if coding.get("system") == codes.LOINC:
            code: str | None = coding.get("code")
            return code
    return None


def trend_points(observations: list[dict[str, Any]], config: MappingConfig) -> list[TrendPoint]:
    """A point per PHQ-9 total; item 9 from the panel's members (or, for ours, the same assessment key)."""
    live = [o for o in observations if o.get("status") != codes.ENTERED_IN_ERROR]
    by_ref = {f"Observation/{o['id']}": o for o in live}
    item9_of_total: dict[str, int] = {}
    for panel in (o for o in live if _code_of(o) == codes.PHQ9_PANEL.code):
        members = [
            by_ref[m.get("reference", "")] for m in panel.get("hasMember", []) if m.get("reference", "") in by_ref
        ]
        item9 = next((_item9_of(m) for m in members if _code_of(m) == codes.PHQ9_ITEMS[8].code), None)
        for member in members:
            if _code_of(member) == codes.PHQ9_TOTAL.code and item9 is not None:
                item9_of_total[member["id"]] = item9
    points = []
    for total in (o for o in live if _code_of(o) == codes.PHQ9_TOTAL.code):
        value = _total_of(total)
        if value is None:
            continue
        key = None
        for ident in total.get("identifier", []):
            parsed = parse_identifier(ident.get("system"), ident.get("value"), config)
            if parsed:
                key = parsed[1]
        points.append(TrendPoint(key, total.get("effectiveDateTime", ""), value, item9_of_total.get(total["id"])))
    return [p for p in points if p.date]


async def phq9_trend(fhir: FhirClient, config: MappingConfig, mrn: str) -> dict[str, Any]:
    """The patient's PHQ-9 assessments (retracted ones left out) in time order, summarised."""
    patients = await patients_holding(fhir, config, mrn)
    subjects = ",".join(f"Patient/{p['id']}" for p in patients)
    wanted = (codes.PHQ9_PANEL, codes.PHQ9_TOTAL, codes.PHQ9_ITEMS[8])
    observations = await fhir.search(
        "Observation",
        {"subject": subjects, "code": ",".join(f"{c.system}|{c.code}" for c in wanted), "_count": PAGE},
    )
    return trend_summary(trend_points(observations, config))
