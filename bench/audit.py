"""Audit trail: API latency with auditing off, to the audit file, and to a FHIR audit store (issue 23).

Three services (one uvicorn worker each) write into the same HAPI, the same requests as section 3 (a completed
session with its vital signs embedded, under fresh keys): one with auditing off, one appending each AuditEvent to
its file (flushed before the answer), one sending them to a FHIR audit store. The store is the instant stand-in
server (bench/stub.py), as a deployment's store is a separate server: what is measured is the service's own cost of
auditing, not the store's. Closed-loop clients take the three sides in turn (`bench.api.closed_loop`), so all meet
the same HAPI conditions; the "off" side's samples split in two alternate halves show the measurement's noise (A/A).
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.api import (
    API_KEY,
    PATIENTS,
    added_pct,
    bootstrap_ci,
    closed_loop,
    percentiles,
    request_body,
    start_service,
    start_stub,
)
from bench.corpus import Namespace
from bench.hapi import purge, restart_empty

CLIENTS = 8
SIDES = ("off", "file", "fhir")


async def _measure(urls: dict[str, str], count: int, warmup: int) -> dict[str, list[float]]:
    auth = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    clients = {
        side: httpx.AsyncClient(base_url=url, headers=auth, timeout=600, limits=limits) for side, url in urls.items()
    }
    bodies = {side: {n: request_body(n, side) for n in range(PATIENTS + warmup + count)} for side in urls}
    try:

        def send(side: str):  # noqa: ANN202 - a closed_loop sender
            async def put(n: int) -> int:
                key, body = bodies[side][n]
                return (await clients[side].put(f"/v1/infusion-sessions/{key}", content=orjson.dumps(body))).status_code

            return put

        sends = {side: send(side) for side in urls}
        for side in urls:  # each side's Patients first, one at a time (not counted)
            await closed_loop({side: sends[side]}, 0, PATIENTS, 1)
        await closed_loop(sends, PATIENTS, warmup, CLIENTS)
        return await closed_loop(sends, PATIENTS + warmup, count, CLIENTS)
    finally:
        for client in clients.values():
            await client.aclose()


def _summary(samples: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {side: percentiles(samples[side]) for side in SIDES}
    for side in ("file", "fhir"):
        for p in ("p50", "p99"):
            out[f"{side}_added_{p}_pct"] = added_pct(samples[side], samples["off"], p)
            out[f"{side}_added_{p}_pct_ci95"] = bootstrap_ci(samples[side], samples["off"], p)
    halves = samples["off"][0::2], samples["off"][1::2]
    out["aa_pct"] = {p: added_pct(halves[1], halves[0], p) for p in ("p50", "p99")}
    return out


def run(base_url: str, quick: bool = False) -> dict[str, Any]:
    count, warmup = (48, 16) if quick else (600, 64)
    restart_empty()
    namespaces = {side: Namespace.fresh(f"audit-{side}") for side in SIDES}
    stub, stub_url = start_stub()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        audit_log, spool = Path(tmp) / "audit.jsonl", Path(tmp) / "spool"
        settings = {
            "off": {},
            "file": {"INFUSION_FHIR_AUDIT_LOG": str(audit_log)},
            "fhir": {"INFUSION_FHIR_AUDIT_FHIR_URL": stub_url, "INFUSION_FHIR_AUDIT_SPOOL_DIR": str(spool)},
        }
        try:
            urls = {}
            for side in SIDES:
                proc, url = start_service(base_url, namespaces[side], **settings[side])
                procs.append(proc)
                urls[side] = url
            samples = asyncio.run(_measure(urls, count, warmup))
            audit_lines = sum(1 for _ in audit_log.open()) if audit_log.exists() else 0
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=60)
            stub.terminate()
            stub.wait(timeout=30)
            cleanup = purge(base_url, list(namespaces.values()))
    return {
        "clients": CLIENTS,
        "requests_per_side": count,
        "warmup_per_side": warmup,
        "audit_file_lines": audit_lines,
        "latency": _summary(samples),
        "cleanup": cleanup,
    }
