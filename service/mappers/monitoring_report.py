"""A session's monitoring summary as FHIR: one DiagnosticReport and a statistics Observation per monitored vital.

Pure: the summary (`service.monitoring.summary`), the report's status and an optional rendered chart in; JSON out,
deterministic ids (`ids.MONITORING_SUMMARY` under the session's key), no clock (no `issued`). Shape from
../shared/monitoring-protocol.md section 4:

- DiagnosticReport: local code and text (LOINC has none), `subject`, `encounter` = the session's visit (R4 cannot
  point a report at a Procedure), `effectivePeriod` = the infusion, `status` as the caller decides (preliminary,
  final, amended), `result` -> the vital signs, the statistics, then the scores, `conclusion` in plain words,
  `presentedForm` the chart when the caller adds it (`presenting`, `presented_form`: rendered by
  `service.monitoring.summary_chart`, outside this pure mapper).
- Statistics Observation: a local code per vital (never the vital's LOINC code, so no vital-signs profile
  applies), the vital named in `code.text`, components `maximum` / `minimum` (in the vital's unit) and `count`
  from observation-statistics, `derivedFrom` the readings, the peak first and the trough second.
"""

from __future__ import annotations

import base64

from service.mappers import codes, narrative
from service.mappers.build import Json, concept, configured_system, number, quantity, when
from service.mappers.config import MappingConfig
from service.mappers.ids import MONITORING_SUMMARY, identifier_system, identifier_value, resource_id, resource_type
from service.monitoring.model import MEASURES
from service.monitoring.readings import Reading
from service.monitoring.summary import Statistic, Summary
from service.monitoring.words import conclusion

SCORES = ("moaas", "cadss", "rass")
REPORT = "report"
CHART_TITLE = "Infusion monitoring chart"


def part_ref(key: str, part: str, config: MappingConfig) -> str:
    """`Type/id` of one of a session's summary resources (`report`, `statistics-<measure>`, `flag`)."""
    return f"{resource_type(MONITORING_SUMMARY, part)}/{resource_id(MONITORING_SUMMARY, key, part, config)}"


def head(key: str, part: str, config: MappingConfig, text: Json, extension: list[Json] | None = None) -> Json:
    """resourceType, id, text, extension (when any) and identifier of one of the session's summary resources."""
    out: Json = {
        "resourceType": resource_type(MONITORING_SUMMARY, part),
        "id": resource_id(MONITORING_SUMMARY, key, part, config),
        "text": text,
    }
    if extension:
        out["extension"] = extension
    system = configured_system(identifier_system(MONITORING_SUMMARY, config))
    out["identifier"] = [{"system": system, "value": identifier_value(MONITORING_SUMMARY, key, part)}]
    return out


def _links(summary: Summary) -> Json:
    out: Json = {}
    if summary.held.subject is not None:
        out["subject"] = {"reference": summary.held.subject}
    out["encounter"] = {"reference": summary.held.context.encounter}
    return out


def _statistic(summary: Summary, statistic: Statistic, status: str, config: MappingConfig) -> Json:
    measure = statistic.measure
    local = codes.SESSION_STATISTICS[measure]
    ucum = MEASURES[measure].unit
    peak, trough = statistic.value(statistic.peak), statistic.value(statistic.trough)
    unit_words = codes.UNIT_TEXT[ucum]
    sentence = (
        f"{local.display}: maximum {number(peak)} {unit_words}, minimum {number(trough)} {unit_words}, "
        f"{statistic.count} reading{'s' if statistic.count != 1 else ''}"
    )
    out = head(summary.held.key, f"statistics-{measure}", config, narrative.narrative(sentence))
    out.update(status=status, code=concept((local,), config, local.display), **_links(summary))
    first, last = statistic.readings[0].at, statistic.readings[-1].at
    out["effectivePeriod"] = {"start": when(first), "end": when(last)}
    ordered = [statistic.peak, statistic.trough, *statistic.readings]
    out["derivedFrom"] = [{"reference": ref} for ref in dict.fromkeys(r.ref for r in ordered)]
    out["component"] = [
        {"code": concept((codes.STATISTIC_MAXIMUM,), config), "valueQuantity": quantity(peak, ucum)},
        {"code": concept((codes.STATISTIC_MINIMUM,), config), "valueQuantity": quantity(trough, ucum)},
        {"code": concept((codes.STATISTIC_COUNT,), config), "valueInteger": statistic.count},
    ]
    return out


def statistics(summary: Summary, status: str, config: MappingConfig) -> list[Json]:
    """One statistics Observation per monitored vital the session has readings of."""
    return [_statistic(summary, s, status, config) for s in summary.statistics]


def _results(summary: Summary, stats: list[Json]) -> list[Json]:
    readings: list[Reading] = list(summary.held.readings)
    vitals = [r.ref for r in readings if r.reading not in SCORES]
    scores = [r.ref for r in readings if r.reading in SCORES]
    refs = [*vitals, *(f"Observation/{s['id']}" for s in stats), *scores]
    return [{"reference": ref} for ref in refs]


def presented_form(content_type: str, data: bytes) -> list[Json]:
    """`DiagnosticReport.presentedForm`: the chart, inline (base64), with its size and title."""
    encoded = base64.b64encode(data).decode("ascii")
    return [{"contentType": content_type, "data": encoded, "size": len(data), "title": CHART_TITLE}]


def report(summary: Summary, status: str, config: MappingConfig, stats: list[Json]) -> Json:
    """The session's DiagnosticReport (see the module), without its chart (`presenting` adds it); `stats` are the
    statistics Observations it results in."""
    held = summary.held
    said = conclusion(summary)
    when_ = "" if held.started_at is None else f", {narrative.span(held.started_at, held.ended_at)}"
    out = head(held.key, REPORT, config, narrative.narrative(f"{codes.NARRATIVE_MONITORING_SUMMARY}{when_}. {said}"))
    out.update(status=status, code=concept((codes.MONITORING_REPORT,), config, codes.MONITORING_REPORT_TEXT))
    out.update(_links(summary))
    if held.started_at is not None:
        period = {"start": when(held.started_at)}
        if held.ended_at is not None:
            period["end"] = when(held.ended_at)
        out["effectivePeriod"] = period
    results = _results(summary, stats)
    if results:
        out["result"] = results
    out["conclusion"] = said
    return out


def presenting(built: Json, presented: list[Json]) -> Json:
    """`built` (a `report`) presenting `presented` (`presented_form`, or the server's copy of it)."""
    return {**built, "presentedForm": presented}
