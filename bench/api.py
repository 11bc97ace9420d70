"""API latency: `PUT /v1/infusion-sessions/{key}` through the service vs the same Bundle posted to the server.

The service runs as a real uvicorn process (one worker, as `infusion-fhir serve` runs it). Each
request is a completed session with its first vital signs embedded, under fresh keys, so that on
both sides every request creates the same resources; requests rotate over 16 patients, which
warm-up requests create first, so that measured requests match an existing Patient. The direct
side posts, per request, the very transaction Bundle the service would send, prebuilt. N
closed-loop clients per side; the sides alternate, four rounds each per level, samples pooled.
The direct side's odd rounds against its even rounds give the measurement's own noise (A/A).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import io
import pstats
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
from bench.hapi import HEADERS, CpuMeter, local_hapi_pid, process_cpu_seconds, purge
from schemas import parse_record
from service.auth import key_digest
from service.mappers import mapper_for, transaction_bundle

API_KEY = "bench-key"
VITALS = 8
PATIENTS = 16  # requests rotate over this many patients, each created by a warm-up request


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


def start_service(base_url: str, ns: Namespace, profile: Path | None = None) -> tuple[subprocess.Popen, str]:
    """The service under uvicorn (profiled when `profile` names the output), writing into `ns`."""
    port = _free_port()
    env = ns.env(base_url, INFUSION_FHIR_API_KEYS=key_digest(API_KEY), INFUSION_FHIR_LOG_LEVEL="WARNING")
    args = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--no-access-log"]
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


async def closed_loop(send: Callable[[int], Awaitable[int]], first: int, count: int, clients: int) -> list[float]:
    """`clients` workers sending requests first..first+count-1 back to back; latencies in ms."""
    latencies: list[float] = []
    errors: list[int] = []
    next_index = iter(range(first, first + count))

    async def worker() -> None:
        for n in next_index:
            started = time.perf_counter()
            status = await send(n)
            latencies.append((time.perf_counter() - started) * 1000)
            if status >= 300:
                errors.append(status)

    await asyncio.gather(*(worker() for _ in range(clients)))
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. status {errors[0]}")
    return latencies


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p95, p99 (nearest rank) and the mean, in ms."""
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]

    return {"n": len(ordered), "p50": rank(50), "p95": rank(95), "p99": rank(99), "mean": sum(ordered) / len(ordered)}


async def measure(
    api_url: str, base_url: str, direct_ns: Namespace, levels: dict[int, int], rounds: int, service_pid: int,
    after_warmup: Callable[[], None] = lambda: None,
) -> dict:
    """Per concurrency level: direct and ours, `rounds` times each, samples pooled; CPU per request."""
    auth = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    direct_config = direct_ns.config()
    async with (
        httpx.AsyncClient(base_url=api_url, headers=auth, timeout=600, limits=limits) as api,
        httpx.AsyncClient(base_url=base_url, headers=HEADERS, timeout=600, limits=limits) as fhir,
    ):
        bodies: dict[int, tuple[str, bytes]] = {}
        bundles: dict[int, bytes] = {}

        async def ours(n: int) -> int:
            key, body = bodies[n]
            return (await api.put(f"/v1/infusion-sessions/{key}", content=body)).status_code

        async def direct(n: int) -> int:
            return (await fhir.post("", content=bundles[n])).status_code

        total = PATIENTS + rounds * sum(levels.values())
        for n in range(total):
            key, body = request_body(n, "a")
            bodies[n] = (key, orjson.dumps(body))
            bundles[n] = orjson.dumps(transaction_bundle([parse_record(request_body(n, "d")[1])], direct_config))
        await closed_loop(direct, 0, PATIENTS, 1)  # warm-up: creates each side's Patients, opens connections
        await closed_loop(ours, 0, PATIENTS, 1)
        after_warmup()
        out: dict[int, dict[str, Any]] = {}
        first = PATIENTS
        hapi_pid = local_hapi_pid(base_url)
        for clients, count in levels.items():
            samples: dict[str, list[float]] = {"direct": [], "ours": []}
            direct_rounds: list[list[float]] = []
            usage = {side: {"wall_s": 0.0, "server_cpu_s": 0.0, "service_cpu_s": 0.0} for side in samples}
            for _ in range(rounds):
                for side, send in (("direct", direct), ("ours", ours)):
                    service_before = process_cpu_seconds(service_pid) or 0.0
                    started = time.perf_counter()
                    with CpuMeter(hapi_pid) as cpu:
                        latencies = await closed_loop(send, first, count, clients)
                    samples[side] += latencies
                    if side == "direct":
                        direct_rounds.append(latencies)
                    usage[side]["wall_s"] += time.perf_counter() - started
                    usage[side]["server_cpu_s"] += cpu.server_s or 0.0
                    usage[side]["service_cpu_s"] += (process_cpu_seconds(service_pid) or 0.0) - service_before
                first += count
            out[clients] = {side: percentiles(values) for side, values in samples.items()}
            for side, used in usage.items():
                n = len(samples[side])
                out[clients][side].update(
                    requests_per_s=n / used["wall_s"],
                    server_cpu_ms_per_request=1000 * used["server_cpu_s"] / n if hapi_pid else None,
                    service_cpu_ms_per_request=1000 * used["service_cpu_s"] / n,
                )
            for p in ("p50", "p95", "p99", "mean"):
                added = out[clients]["ours"][p] - out[clients]["direct"][p]
                out[clients][f"added_{p}"] = added
                out[clients][f"added_{p}_pct"] = 100 * added / out[clients]["direct"][p]
            if len(direct_rounds) > 1:
                even = percentiles([x for r in direct_rounds[0::2] for x in r])
                odd = percentiles([x for r in direct_rounds[1::2] for x in r])
                out[clients]["aa_pct"] = {p: 100 * (odd[p] - even[p]) / even[p] for p in ("p50", "p95", "p99")}
            out[clients]["samples"] = samples
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
            start_profile = (lambda: proc.send_signal(signal.SIGUSR1)) if path else (lambda: None)
            try:
                out[key] = asyncio.run(
                    measure(api_url, stub_url, Namespace.fresh("stub"), levels, 1, proc.pid, start_profile)
                )
            finally:
                proc.send_signal(signal.SIGINT)  # the profiled server writes its profile on SIGINT
                proc.wait(timeout=30)
    finally:
        stub.terminate()
        stub.wait(timeout=30)
    out["profile"] = profile_top(profile)
    return out


def profile_top(path: Path, lines: int = 15) -> str:
    """The top of a cProfile output file, by own time."""
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).strip_dirs().sort_stats("tottime").print_stats(lines)
    text = out.getvalue()
    return text[text.index("   ncalls") :].rstrip() if "   ncalls" in text else text


def run(base_url: str, quick: bool = False) -> dict[str, Any]:
    """Start the service, measure every level, stop it, delete what both sides wrote; then the stub run."""
    levels = {1: 6, 8: 16, 32: 32} if quick else {1: 20, 8: 48, 32: 96}
    rounds = 2 if quick else 4
    ours_ns, direct_ns = Namespace.fresh("api"), Namespace.fresh("direct")
    proc, api_url = start_service(base_url, ours_ns)
    try:
        results = asyncio.run(measure(api_url, base_url, direct_ns, levels, rounds, proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        cleanup = purge(base_url, [ours_ns, direct_ns])
    record = parse_record(request_body(0, "x")[1])
    return {
        "levels": results,
        "requests_per_level": levels,
        "rounds": rounds,
        "resources_per_request": len(mapper_for(record.kind).to_fhir_json(record, direct_ns.config())),
        "vitals_per_request": len(record.vital_signs),
        "cleanup": cleanup,
        "stub": stub_overhead(quick),
    }
