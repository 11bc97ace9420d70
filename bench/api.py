"""API latency: `PUT /v1/infusion-sessions/{key}` through the service vs the same Bundle posted to the server.

The service runs as a real uvicorn process (one worker, as `infusion-fhir serve` runs it). Each
request is a completed session with its first vital signs embedded, under fresh keys, so that on
both sides every request creates the same resources; requests rotate over 16 patients, which
warm-up requests create first, so that measured requests match an existing Patient. The direct
side posts, per request, the very transaction Bundle the service would send, prebuilt. N
closed-loop clients in all, each taking the two sides in turn, so that both meet the same server
conditions (its GC pauses, its drift, other users); the direct side's samples split in two
alternate halves show the measurement's own noise (A/A).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import math
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import corpus
from bench.corpus import OUT, Namespace
from bench.hapi import HEADERS, CpuMeter, cli_env, local_hapi_pid, process_cpu_seconds, purge, restart_empty
from bench.report import profile_top
from schemas import parse_record
from service.auth import key_digest
from service.mappers import mapper_for, transaction_bundle

API_KEY = "bench-key"
VITALS = 8
PATIENTS = 16  # requests rotate over this many patients, each created by a warm-up request
WARMUP_CLIENTS = 8  # after the Patients exist, both sides warm the server up together at this level
BOOTSTRAP_ROUNDS = 1000


@functools.cache
def session_template() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The corpus' first completed session and its first `VITALS` vital signs (embedded form)."""
    raw = corpus.raw_records(1)
    session = next(r for r in raw if r["kind"] == "infusion_session" and r["status"] == "completed")
    vitals = [r for r in raw if r["kind"] == "vital_sign" and r.get("session_key") == session["key"]][:VITALS]
    children = [{k: v for k, v in r.items() if k not in ("kind", "patient", "session_key")} for r in vitals]
    return session, children


def request_body(n: int, label: str) -> tuple[str, dict[str, Any]]:
    """Request `n`: the template under fresh keys (`<key>.<label><n>`), for patient `n % PATIENTS`."""
    session, children = session_template()
    body = copy.deepcopy(session)
    key = f"{session['key']}.{label}{n}"
    body["key"] = key
    body["patient"]["mrn"] = f"{session['patient']['mrn']}-{n % PATIENTS}"
    body["vital_signs"] = [{**copy.deepcopy(child), "key": f"{child['key']}.{label}{n}"} for child in children]
    return key, body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"{url} did not come up (see bench/out/)")


def start_service(
    base_url: str, ns: Namespace, profile: Path | None = None, **settings: str
) -> tuple[subprocess.Popen, str]:
    """The service under uvicorn (profiled when `profile` names the output), writing into `ns`;
    `settings` are further INFUSION_FHIR_* variables. Monitoring summaries, Provenance and the audit trail are off
    unless `settings` turn them on: the direct side writes none (sections `summaries`, `provenance` and `audit`
    measure them)."""
    settings = {**cli_env(), **settings}
    port = _free_port()
    env = ns.env(base_url, INFUSION_FHIR_API_KEYS=key_digest(API_KEY), INFUSION_FHIR_LOG_LEVEL="WARNING", **settings)
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "service.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if profile:
        args = [sys.executable, "-m", "bench.profiled_service", str(port), str(profile)]
    log = (OUT / f"api-{ns.token}.log").open("wb")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    _wait_until_up(proc, f"{url}/healthz")
    return proc, url


def start_stub() -> tuple[subprocess.Popen, str]:
    """The instant stand-in FHIR server (bench/stub.py) on a free port."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.stub", str(port)])
    url = f"http://127.0.0.1:{port}/fhir"
    _wait_until_up(proc, url)
    return proc, url


Send = Callable[[int], Awaitable[int]]


async def closed_loop(sends: dict[str, Send], first: int, count: int, clients: int) -> dict[str, list[float]]:
    """`clients` workers, each sending back to back and taking the sides in turn; latencies in ms by side.

    Request n of every side goes to first+n, for n below `count`. Worker i starts with side i mod
    the number of sides, so at any moment about as many requests of each side are in flight: the
    server's pauses and drift fall on both sides alike.
    """
    names = list(sends)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    queues = {name: iter(range(first, first + count)) for name in names}
    errors: list[int] = []

    async def worker(start: int) -> None:
        turn = start
        while True:
            name = names[turn % len(names)]
            n = next(queues[name], None)
            if n is None:
                name = next((other for other in names if other != name), name)
                n = next(queues[name], None)
                if n is None:
                    return
            turn += 1
            started = time.perf_counter()
            status = await sends[name](n)
            latencies[name].append((time.perf_counter() - started) * 1000)
            if status >= 300:
                errors.append(status)

    await asyncio.gather(*(worker(i) for i in range(clients)))
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. status {errors[0]}")
    return latencies


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p95, p99 (nearest rank) and the mean, in ms."""
    ordered = sorted(samples)

    def rank(p: int) -> float:  # the smallest sample with at least p% of the samples at or below it
        return ordered[max(0, math.ceil(p * len(ordered) / 100) - 1)]

    return {"n": len(ordered), "p50": rank(50), "p95": rank(95), "p99": rank(99), "mean": sum(ordered) / len(ordered)}


def added_pct(ours: list[float], direct: list[float], p: str) -> float:
    """How much higher ours is than direct at percentile `p`, in percent of direct."""
    base = percentiles(direct)[p]
    return 100 * (percentiles(ours)[p] - base) / base


def bootstrap_ci(ours: list[float], direct: list[float], p: str, seed: int = 1) -> tuple[float, float]:
    """95% interval of the added percentage at percentile `p`, both sides resampled with replacement."""
    rng = random.Random(seed)
    estimates = sorted(
        added_pct(rng.choices(ours, k=len(ours)), rng.choices(direct, k=len(direct)), p)
        for _ in range(BOOTSTRAP_ROUNDS)
    )
    return estimates[int(0.025 * BOOTSTRAP_ROUNDS)], estimates[int(0.975 * BOOTSTRAP_ROUNDS) - 1]


def _summary(samples: dict[str, list[float]], cpu: dict[str, float | None], seconds: float) -> dict[str, Any]:
    """Percentiles of each side, what ours adds (with bootstrap intervals), the A/A noise, throughput, CPU."""
    out: dict[str, Any] = {side: percentiles(samples[side]) for side in ("direct", "ours")}
    for p in ("p50", "p95", "p99", "mean"):
        out[f"added_{p}"] = out["ours"][p] - out["direct"][p]
        out[f"added_{p}_pct"] = 100 * out[f"added_{p}"] / out["direct"][p]
    for p in ("p50", "p99"):
        out[f"added_{p}_pct_ci95"] = bootstrap_ci(samples["ours"], samples["direct"], p)
    halves = samples["direct"][0::2], samples["direct"][1::2]
    out["aa_pct"] = {p: added_pct(halves[1], halves[0], p) for p in ("p50", "p95", "p99")}
    total = len(samples["direct"]) + len(samples["ours"])
    out["requests_per_s"] = total / seconds
    out["server_cpu_ms_per_request"] = 1000 * cpu["server"] / total if cpu["server"] is not None else None
    out["service_cpu_ms_per_ours_request"] = 1000 * cpu["service"] / len(samples["ours"])
    return out


async def measure(
    api_url: str,
    base_url: str,
    direct_ns: Namespace,
    levels: dict[int, int],
    service_pid: int,
    after_warmup: Callable[[], None] = lambda: None,
    warmup: int = 64,
) -> dict:
    """Per concurrency level, `count` requests of each side, interleaved (see `closed_loop`).

    Not counted: one request per patient and side (creating the Patients), then `warmup` requests of
    each side at `WARMUP_CLIENTS` clients (the server's JIT, caches and connection pools).
    """
    auth = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    bodies: dict[int, tuple[str, bytes]] = {}
    bundles: dict[int, bytes] = {}
    for n in range(PATIENTS + warmup + sum(levels.values())):
        key, body = request_body(n, "a")
        bodies[n] = (key, orjson.dumps(body))
        bundles[n] = orjson.dumps(transaction_bundle([parse_record(request_body(n, "d")[1])], direct_ns.config()))
    hapi_pid = local_hapi_pid(base_url)
    async with (
        httpx.AsyncClient(base_url=api_url, headers=auth, timeout=600, limits=limits) as api,
        httpx.AsyncClient(base_url=base_url, headers=HEADERS, timeout=600, limits=limits) as fhir,
    ):

        async def ours(n: int) -> int:
            key, body = bodies[n]
            return (await api.put(f"/v1/infusion-sessions/{key}", content=body)).status_code

        async def direct(n: int) -> int:
            return (await fhir.post("", content=bundles[n])).status_code

        await closed_loop({"direct": direct}, 0, PATIENTS, 1)
        await closed_loop({"ours": ours}, 0, PATIENTS, 1)
        await closed_loop({"direct": direct, "ours": ours}, PATIENTS, warmup, WARMUP_CLIENTS)
        after_warmup()
        out: dict[int, dict[str, Any]] = {}
        first = PATIENTS + warmup
        for clients, count in levels.items():
            service_before = process_cpu_seconds(service_pid) or 0.0
            started = time.perf_counter()
            with CpuMeter(hapi_pid) as meter:
                samples = await closed_loop({"direct": direct, "ours": ours}, first, count, clients)
            seconds = time.perf_counter() - started
            service = (process_cpu_seconds(service_pid) or 0.0) - service_before
            out[clients] = _summary(samples, {"server": meter.server_s, "service": service}, seconds)
            out[clients]["samples"] = samples
            first += count
    return out


def stub_overhead(quick: bool) -> dict[str, Any]:
    """Ours vs direct with the instant stub as the FHIR server: the service's own cost; then its profile."""
    profile = OUT / "api-service.prof"
    levels = {1: 100, 8: 200} if quick else {1: 300, 8: 600}
    stub, stub_url = start_stub()
    try:
        out: dict[str, Any] = {}
        for key, path in (("levels", None), ("profiled_levels", profile)):
            proc, api_url = start_service(stub_url, Namespace.fresh("stub"), profile=path)
            start_profile = (lambda p=proc: p.send_signal(signal.SIGUSR1)) if path else (lambda: None)
            try:
                out[key] = asyncio.run(
                    measure(api_url, stub_url, Namespace.fresh("stub"), levels, proc.pid, start_profile)
                )
            finally:
                proc.send_signal(signal.SIGINT)  # the profiled server writes its profile on SIGINT
                proc.wait(timeout=30)
    finally:
        stub.terminate()
        stub.wait(timeout=30)
    out["profile"] = profile_top(profile, lines=15)
    return out


def run(base_url: str, quick: bool = False) -> dict[str, Any]:
    """Start the service, measure every level, stop it, delete what both sides wrote; then the stub run."""
    levels = {1: 30, 8: 64, 32: 128} if quick else {1: 400, 8: 1000, 32: 1200}
    warmup = 16 if quick else 64
    ours_ns, direct_ns = Namespace.fresh("api"), Namespace.fresh("direct")
    restart_empty()  # on the benchmarks' own server: start from an empty database, whatever ran before
    proc, api_url = start_service(base_url, ours_ns)
    try:
        results = asyncio.run(measure(api_url, base_url, direct_ns, levels, proc.pid, warmup=warmup))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        cleanup = purge(base_url, [ours_ns, direct_ns])
    record = parse_record(request_body(0, "x")[1])
    return {
        "levels": results,
        "requests_per_side": levels,
        "warmup_per_side": warmup,
        "resources_per_request": len(mapper_for(record.kind).to_fhir_json(record, direct_ns.config())),
        "vitals_per_request": len(record.vital_signs),
        "cleanup": cleanup,
        "stub": stub_overhead(quick),
    }
