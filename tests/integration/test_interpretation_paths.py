"""A hypertensive, desaturating session gives each reading the same interpretation on the real server, whichever
way its readings arrive: embedded in the session (API), sent alone in shuffled order after it (API: the
session read from the server), or beside it in one transaction in shuffled order (the engine, as the batch).
"""

from __future__ import annotations

import asyncio
import copy
import random
from typing import Any

import httpx

from schemas import parse_record
from service.fhir_client import open_fhir_client
from service.settings import Settings
from service.sync import SyncEngine
from tests.corpus import monitored_session

PATIENT = {"mrn": "MRN-PATHS"}
SESSION = monitored_session(PATIENT)
VITALS = [
    ("P-1", "2026-03-02T13:50:00Z", {"type": "blood_pressure", "systolic": 150, "diastolic": 92}),  # before
    ("P-2", "2026-03-02T15:20:00+01:00", {"type": "blood_pressure", "systolic": 212, "diastolic": 124}),  # during
    ("P-3", "2026-03-02T09:25:00-05:00", {"type": "spo2", "value": 86, "supplemental_o2": True}),  # during
    ("P-4", "2026-03-02T10:30:00-05:00", {"type": "blood_pressure", "systolic": 135, "diastolic": 85}),  # after
]
SCORES = [
    ("P-5", "2026-03-02T08:55:00-05:00", {"instrument": "moaas", "score": 4}),  # before: no rule
    ("P-6", "2026-03-02T09:30:00-05:00", {"instrument": "moaas", "score": 1}),  # during
]


def _children(suffix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    vitals = [{"key": f"{k}{suffix}", "measured_at": t, **copy.deepcopy(v)} for k, t, v in VITALS]
    scores = [{"key": f"{k}{suffix}", "measured_at": t, **copy.deepcopy(v)} for k, t, v in SCORES]
    return vitals, scores


def _judged(fhir_base_url: str, refs: list[str]) -> dict[str, Any]:
    """Base reading key -> (interpretations, ranges, partOf) of the server's copy of its Observation."""
    out = {}
    with httpx.Client(base_url=fhir_base_url, timeout=60) as http:
        for ref in refs:
            resource = http.get(f"/{ref}").json()
            key = resource["identifier"][0]["value"]
            if "/" in key:  # the session's dosing weight
                continue
            parts = [resource, *resource.get("component", [])]
            out[key.rsplit("-", 1)[0]] = (
                [p.get("interpretation") for p in parts],
                [p.get("referenceRange") for p in parts],
                "partOf" in resource,
            )
    return out


def _observations(body: dict[str, Any]) -> list[str]:
    return [f"Observation/{r['id']}" for r in body["resources"] if r["resourceType"] == "Observation"]


async def _upsert(settings: Settings, records: list[Any]) -> Any:
    async with open_fhir_client(settings) as fhir:
        return await SyncEngine(fhir, settings.mapping_config()).upsert(records)


def test_the_same_interpretation_embedded_sent_alone_shuffled_or_in_one_transaction(
    api: Any, settings: Settings, fhir_base_url: str, fhir_cleanup: Any
) -> None:
    vitals, scores = _children("-e")
    embedded = api.put(
        "/v1/infusion-sessions/S-E", json={**SESSION, "vital_signs": vitals, "monitoring_scores": scores}
    )
    assert embedded.status_code == 201, embedded.text
    by_embedding = _judged(fhir_base_url, _observations(embedded.json()))

    assert api.put("/v1/infusion-sessions/S-A", json=SESSION).status_code == 201
    vitals, scores = _children("-a")
    alone = [("vital-signs", v) for v in vitals] + [("monitoring-scores", s) for s in scores]
    random.Random(22).shuffle(alone)
    refs = []
    for segment, body in alone:
        answer = api.put(f"/v1/{segment}/{body['key']}", json={**body, "patient": PATIENT, "session_key": "S-A"})
        assert answer.status_code == 201, answer.text
        refs += _observations(answer.json())
    by_server = _judged(fhir_base_url, refs)

    vitals, scores = _children("-t")
    records = [parse_record({"kind": "infusion_session", "key": "S-T", **SESSION})]
    records += [parse_record({**v, "kind": "vital_sign", "patient": PATIENT, "session_key": "S-T"}) for v in vitals]
    records += [
        parse_record({**s, "kind": "monitoring_score", "patient": PATIENT, "session_key": "S-T"}) for s in scores
    ]
    random.Random(13).shuffle(records)
    result = asyncio.run(_upsert(settings, records))
    written = [w.as_dict() for w in result.resources]
    fhir_cleanup.track(
        *(f"{w['resourceType']}/{w['id']}" for w in sorted(written, key=lambda w: w["resourceType"] != "Patient"))
    )
    by_transaction = _judged(
        fhir_base_url, [f"Observation/{w['id']}" for w in written if w["resourceType"] == "Observation"]
    )

    assert set(by_embedding) == {k for k, _, _ in VITALS + SCORES}
    assert by_server == by_embedding == by_transaction
    codes = {k: [i[0]["coding"][0]["code"] if i else None for i in v[0]] for k, v in by_embedding.items()}
    assert codes == {
        "P-1": [None, "H", "H"],  # the panel itself carries none: its components do
        "P-2": [None, "HH", "HH"],
        "P-3": ["LL", None],  # the supplemental-oxygen component carries none
        "P-4": [None, "N", None],  # diastolic has no low limit: never N
        "P-5": [None],  # MOAA/S before the infusion: no rule
        "P-6": ["AA"],
    }
    texts = {k: next(r for r in v[1] if r)[0]["text"] for k, v in by_embedding.items() if k != "P-5"}
    assert "before the infusion" in texts["P-1"] and "after the infusion" in texts["P-4"]
    assert "during the infusion" in texts["P-2"] and "during the infusion" in texts["P-6"]
