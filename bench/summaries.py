"""Monitoring summaries: the API latency of one session's summary, and batch sync with summaries on vs off.

Latency: the service (one uvicorn worker, summaries written only when asked) over sessions of 12 readings each
(a completed session of the corpus with its first 12 vital signs, under fresh keys). Four operations, taken in
turn round after round so that they meet the same server conditions:

- `GET .../$monitoring-summary` (JSON): the session read back and the summary computed, nothing written;
- the same with `Accept: image/png`: computed and its chart drawn;
- `POST .../$monitoring-summary` with nothing changed since the last: read, computed, compared, nothing written;
- `POST` after one reading was corrected (the PUT before it is not timed): the report (amended, its chart drawn
  again) and the statistics written.

Sync: `infusion-fhir sync` of the 10x corpus with summaries on (the default) and off, ABBA on a fresh server each
time; the same records, the summaries' own resources extra on the "on" side.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from typing import Any

import httpx

from bench import corpus
from bench.api import API_KEY, percentiles, start_service
from bench.corpus import Namespace
from bench.hapi import purge, restart_empty
from bench.sync import on_off

READINGS = 12
SESSIONS = 16  # requests rotate over this many sessions
OPERATIONS = ("get_json", "get_png", "post_unchanged", "post_corrected")


@functools.cache
def template() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The corpus' first completed session with at least `READINGS` vital signs, and its first `READINGS`."""
    raw = corpus.raw_records(1)
    for session in (r for r in raw if r["kind"] == "infusion_session" and r["status"] == "completed"):
        vitals = [r for r in raw if r["kind"] == "vital_sign" and r.get("session_key") == session["key"]]
        vitals += [{**v, "kind": "vital_sign"} for v in session.get("vital_signs", [])]
        if len(vitals) >= READINGS:
            children = [{k: v for k, v in r.items() if k not in ("kind", "patient", "session_key")} for r in vitals]
            return session, children[:READINGS]
    raise LookupError(f"no completed session of the corpus has {READINGS} vital signs")


def session_body(n: int) -> tuple[str, dict[str, Any]]:
    """Session `n` under fresh keys, its readings embedded."""
    session, children = template()
    body = copy.deepcopy(session)
    body["key"] = key = f"{session['key']}.m{n}"
    body["patient"]["mrn"] = f"{session['patient']['mrn']}-m{n}"
    body["vital_signs"] = [{**copy.deepcopy(c), "key": f"{c['key']}.m{n}"} for c in children]
    body.pop("monitoring_scores", None)
    body.pop("adverse_events", None)
    return key, body


def _corrected_reading(body: dict[str, Any], round_: int) -> tuple[str, dict[str, Any]]:
    """A correction of the session's first heart or respiratory rate: its value one up, or back, by round."""
    reading = next(r for r in body["vital_signs"] if r["type"] in ("heart_rate", "respiratory_rate"))
    out = {**reading, "value": reading["value"] + (1 if round_ % 2 == 0 else 0)}
    out.update(patient=body["patient"], session_key=body["key"])
    return reading["key"], {k: v for k, v in out.items() if k != "key"}


async def latency(api_url: str, rounds: int, warmup: int) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    samples: dict[str, list[float]] = {op: [] for op in OPERATIONS}
    bodies = dict(session_body(n) for n in range(SESSIONS))
    async with httpx.AsyncClient(base_url=api_url, headers=auth, timeout=600) as api:

        async def timed(op: str, request: Any) -> None:
            started = time.perf_counter()
            response = await request
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code >= 300:
                raise RuntimeError(f"{op}: status {response.status_code}")
            samples[op].append(elapsed)

        for key, body in bodies.items():  # each session written, with its summary once (not counted)
            (await api.put(f"/v1/infusion-sessions/{key}", json=body)).raise_for_status()
            (await api.post(f"/v1/infusion-sessions/{key}/$monitoring-summary")).raise_for_status()
        for n in range(warmup + rounds):
            key = list(bodies)[n % SESSIONS]
            url = f"/v1/infusion-sessions/{key}/$monitoring-summary"
            await timed("get_json", api.get(url))
            await timed("get_png", api.get(url, headers={"Accept": "image/png"}))
            await timed("post_unchanged", api.post(url))
            reading_key, correction = _corrected_reading(bodies[key], n // SESSIONS)
            (await api.put(f"/v1/vital-signs/{reading_key}", json=correction)).raise_for_status()
            await timed("post_corrected", api.post(url))
            if n == warmup - 1:
                samples = {op: [] for op in OPERATIONS}
    return {op: percentiles(values) for op, values in samples.items()}


def sync_on_off(base_url: str, quick: bool) -> dict[str, Any]:
    """The 10x corpus synced with summaries on and off, ABBA, each on a fresh server."""
    out = on_off(base_url, quick, "summaries", "monitoring_summaries")
    for side in ("on", "off"):
        out[side]["summaries"] = out[side].pop("monitoring_summaries")
    return out


def run(base_url: str, quick: bool = False) -> dict[str, Any]:
    rounds, warmup = (16, 4) if quick else (200, 16)
    ns = Namespace.fresh("summaries")
    restart_empty()
    proc, api_url = start_service(base_url, ns)  # summaries off: only the POSTs write them
    try:
        measured = asyncio.run(latency(api_url, rounds, warmup))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        cleanup = purge(base_url, [ns])
    return {
        "readings_per_session": READINGS,
        "sessions": SESSIONS,
        "rounds": rounds,
        "latency_ms": measured,
        "latency_cleanup": cleanup,
        "sync": sync_on_off(base_url, quick),
    }
