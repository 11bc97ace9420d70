"""The per-session monitoring summary and critical-episode Flag on the real server (issue 22, points 3 and 4).

- The DiagnosticReport, its statistics Observations and the Flag pass HAPI's `$validate` with no error.
- A hypertensive session sent as separate records in shuffled order yields the same interpretations, Flag and
  summary as the same session sent embedded.
- A retracted reading leaves the summary (amended) and, when it was the only trigger, retracts the Flag.
"""

from __future__ import annotations

import base64
import random
from typing import Any

import httpx
import pytest

from service.mappers import codes
from service.mappers.monitoring_report import part_ref
from service.settings import Settings
from tests.monitoring_sessions import bp, hypertensive, separate, session, vital

MRN = "MRN-SUMMARY"
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
STATISTICS = ("systolic", "diastolic", "heart_rate", "respiratory_rate", "spo2")
SEGMENTS = {"vital_sign": "vital-signs", "monitoring_score": "monitoring-scores", "adverse_event": "adverse-events"}


def _get(fhir_base_url: str, ref: str) -> dict[str, Any]:
    response = httpx.get(f"{fhir_base_url}/{ref}", headers=FHIR_JSON, timeout=60)
    assert response.status_code == 200, (ref, response.status_code)
    return dict(response.json())


def _errors(fhir_base_url: str, resource: dict[str, Any]) -> list[str]:
    body = {k: v for k, v in resource.items() if k != "meta"}
    response = httpx.post(
        f"{fhir_base_url}/{resource['resourceType']}/$validate", json=body, headers=FHIR_JSON, timeout=120
    )
    issues = response.json().get("issue", [])
    return [f"{i.get('severity')}: {i.get('diagnostics')}" for i in issues if i.get("severity") in ("error", "fatal")]


def _put(api: Any, segment: str, record: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in record.items() if k not in ("key", "kind")}
    answer = api.put(f"/v1/{segment}/{record['key']}", json=body)
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


def _embedded(api: Any, key: str, prefix: str) -> None:
    _put(api, "infusion-sessions", {**session(key, MRN), **hypertensive(prefix)})


def _separately(api: Any, key: str, prefix: str, seed: int) -> None:
    _put(api, "infusion-sessions", session(key, MRN))
    records = separate(hypertensive(prefix), key, MRN)
    random.Random(seed).shuffle(records)
    for record in records:
        _put(api, SEGMENTS[record["kind"]], record)


def _by_key(fhir_base_url: str, refs: list[str]) -> dict[str, Any]:
    """Reading key without its prefix -> its interpretation and ranges on the server's copy."""
    out = {}
    for ref in refs:
        resource = _get(fhir_base_url, ref)
        parts = [resource, *resource.get("component", [])]
        key = resource["identifier"][0]["value"].split("-", 1)[1]
        out[key] = ([p.get("interpretation") for p in parts], [p.get("referenceRange") for p in parts])
    return out


def _normal(value: Any, prefix: str, key: str) -> Any:
    """A summary with its record keys and session key made alike, resource ids left out."""
    if isinstance(value, dict):
        return {k: _normal(v, prefix, key) for k, v in value.items() if k != "observation"}
    if isinstance(value, list):
        return [_normal(v, prefix, key) for v in value]
    if isinstance(value, str):
        return value.replace(key, "S").replace(f"{prefix}-", "X-")
    return value


@pytest.mark.needs("$validate")
def test_the_report_its_statistics_and_the_flag_pass_validate(api: Any, settings: Settings, fhir_base_url: str) -> None:
    _embedded(api, "S-V", "V")
    config = settings.mapping_config()
    written = [_get(fhir_base_url, part_ref("S-V", part, config)) for part in ("report", "flag")]
    written += [_get(fhir_base_url, part_ref("S-V", f"statistics-{m}", config)) for m in STATISTICS]
    for resource in written:
        assert _errors(fhir_base_url, resource) == [], resource["resourceType"]
    report, flag = written[0], written[1]
    assert report["status"] == "final" and flag["status"] == "active"
    (chart,) = report["presentedForm"]  # validated with the report above; the GET draws the same from HAPI's copy
    png = api.get("/v1/infusion-sessions/S-V/$monitoring-summary", headers={"Accept": "image/png"})
    assert chart["contentType"] == png.headers["content-type"] == "image/png"
    assert base64.b64decode(chart["data"]) == png.content
    again = api.post("/v1/infusion-sessions/S-V/$monitoring-summary")  # HAPI's copies equal ours: nothing written
    assert again.status_code == 200 and again.json()["counts"] == {"unchanged": 7}, again.text
    for statistic in written[2:]:
        assert all(c["system"] != codes.LOINC for c in statistic["code"]["coding"])


def test_separate_records_in_shuffled_order_give_what_the_embedded_session_gives(
    api: Any, settings: Settings, fhir_base_url: str
) -> None:
    _embedded(api, "S-EMB", "E")
    _separately(api, "S-SEP", "P", seed=22)
    config = settings.mapping_config()
    summaries = {}
    for key, prefix in (("S-EMB", "E"), ("S-SEP", "P")):
        answer = api.get(f"/v1/infusion-sessions/{key}/$monitoring-summary")
        assert answer.status_code == 200, answer.text
        summaries[key] = answer.json()
        summaries[key + "/normal"] = _normal(answer.json(), prefix, key)
    assert summaries["S-EMB/normal"] == summaries["S-SEP/normal"]
    assert [c["rule"] for c in summaries["S-EMB"]["confirmed"]] == ["blood_pressure_repeated", "blood_pressure_single"]
    # the same Flag, report and statistics, but for the ids of the readings they name
    flags = [_get(fhir_base_url, part_ref(key, "flag", config)) for key in ("S-EMB", "S-SEP")]
    reports = [_get(fhir_base_url, part_ref(key, "report", config)) for key in ("S-EMB", "S-SEP")]
    stats = [{part_ref(k, f"statistics-{m}", config) for m in STATISTICS} for k in ("S-EMB", "S-SEP")]
    readings = [
        [r["reference"] for r in rep["result"] if r["reference"] not in stats[i]] for i, rep in enumerate(reports)
    ]
    assert len(readings[0]) == len(readings[1]) == 25
    # the same interpretation on every reading
    assert _by_key(fhir_base_url, readings[0]) == _by_key(fhir_base_url, readings[1])
    names = [{ref: _name(fhir_base_url, ref) for ref in refs} for refs in readings]
    assert sorted(names[0].values()) == sorted(names[1].values())  # (readings of one instant: in id order)
    assert [[names[i][d] for d in _details(flag)] for i, flag in enumerate(flags)] == [["bp2", "bp3", "bp4"]] * 2
    assert flags[0]["period"] == flags[1]["period"] and flags[0]["status"] == flags[1]["status"] == "active"
    assert reports[0]["conclusion"] == reports[1]["conclusion"]
    assert reports[0]["status"] == reports[1]["status"] == "final"
    for measure in STATISTICS:
        one, other = (_get(fhir_base_url, part_ref(k, f"statistics-{measure}", config)) for k in ("S-EMB", "S-SEP"))
        assert one["component"] == other["component"], measure
        assert [names[0][r["reference"]] for r in one["derivedFrom"]] == [
            names[1][r["reference"]] for r in other["derivedFrom"]
        ]


def _name(fhir_base_url: str, ref: str) -> str:
    return str(_get(fhir_base_url, ref)["identifier"][0]["value"].split("-", 1)[1])


def _details(flag: dict[str, Any]) -> list[str]:
    return [e["valueReference"]["reference"] for e in flag.get("extension", []) if e["url"] == codes.EXT_FLAG_DETAIL]


def test_a_retracted_reading_leaves_the_summary_and_retracts_the_flag_it_alone_raised(
    api: Any, settings: Settings, fhir_base_url: str
) -> None:
    config = settings.mapping_config()
    readings = [
        bp("R-0", -10, 130, 80),
        bp("R-1", 10, 150, 90),
        vital("R-2", 15, "spo2", 86),
        vital("R-3", 20, "spo2", 96),
    ]
    _put(api, "infusion-sessions", session("S-RET", MRN))
    observations = {}
    for reading in readings:
        written = _put(api, "vital-signs", {**reading, "patient": {"mrn": MRN}, "session_key": "S-RET"})
        observations[reading["key"]] = next(
            f"Observation/{r['id']}" for r in written["resources"] if r["resourceType"] == "Observation"
        )
    flag = _get(fhir_base_url, part_ref("S-RET", "flag", config))
    assert flag["status"] == "active" and _details(flag) == [observations["R-2"]]
    assert api.delete("/v1/vital-signs/R-2").status_code == 204
    flag = _get(fhir_base_url, part_ref("S-RET", "flag", config))
    assert flag["status"] == codes.ENTERED_IN_ERROR and _details(flag) == [observations["R-2"]]
    report = _get(fhir_base_url, part_ref("S-RET", "report", config))
    assert report["status"] == "amended" and "Critical episode" not in report["conclusion"]
    assert observations["R-2"] not in [r["reference"] for r in report["result"]]
    spo2 = _get(fhir_base_url, part_ref("S-RET", "statistics-spo2", config))
    assert [c.get("valueQuantity", {}).get("value", c.get("valueInteger")) for c in spo2["component"]] == [96, 96, 1]
    summary = api.get("/v1/infusion-sessions/S-RET/$monitoring-summary").json()
    assert summary["readings"] == 3 and summary["confirmed"] == []
