"""Scale (issue 13): first syncs as HAPI's database fills (H2 vs PostgreSQL), unchanged re-syncs, shards, API reads.

Each part runs on the benchmarks' own local servers: the H2 HAPI `make bench` started, and a HAPI on
its own PostgreSQL cluster (`HAPI_DB=postgres`, run directory `.run-bench-pg`, ports below) that
this section starts, empties and stops. The sync runs use the settings tuned for PostgreSQL
(TUNED; the CLI's defaults are 50 x 4) on both databases, so the databases are compared alike.

- First sync at 1x, 10x and 100x into an emptied server. The 100x load (400 patients) runs as ten
  consecutive CLI runs of 40 patients each, one after another into the same filling database:
  each tenth's resources/s comes from its own report, the whole load's from the sum.
- Unchanged re-sync: the last tenth sent again, default (read first, send what changed) against
  `--always-write`, in ABBA order, on the database the 100x load filled.
- Shards (PostgreSQL): the 10x corpus as 1, 2 and 4 concurrent `--shard I/N` processes, each into
  a fresh namespace, in 1-2-4-4-2-1 order; resources/s over the wall time until the last exits.
- Client CPU per 1,000 resources: user + system CPU of the CLI processes (wait4) over the resources
  they wrote.
- API: PUT of new sessions (and the same PUT repeated, unchanged) through two services on the same
  PostgreSQL HAPI, one with INFUSION_FHIR_API_READ_BEFORE_WRITE, interleaved by one closed-loop client.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import api, corpus
from bench.corpus import OUT, Namespace
from bench.hapi import CLI, HAPICTL, cli_env, disposable_server, proc_stat, process_cpu_seconds, restart_empty

TUNED = {"batch_size": 100, "concurrency": 4}
RESYNC_LARGE_BATCH = 400
UNIT = corpus.PATIENTS  # 1x = 4 patients
PG = {
    "HAPI_DB": "postgres",
    "HAPI_PORT": os.environ.get("BENCH_PG_HAPI_PORT", "8088"),
    "HAPI_PG_PORT": os.environ.get("BENCH_PG_PORT", "5434"),
    "HAPI_RUN_DIR": str(HAPICTL.parent / ".run-bench-pg"),
}
PG_URL = f"http://localhost:{PG['HAPI_PORT']}/fhir"


def _hapictl(env: dict[str, str], *commands: str) -> None:
    for command in commands:
        subprocess.run([str(HAPICTL), command], check=True, stdout=subprocess.DEVNULL, env={**os.environ, **env})


class Server:
    """One of the benchmarks' own HAPIs: `empty()` restarts it on an empty database."""

    def __init__(self, name: str, base_url: str, env: dict[str, str] | None) -> None:
        self.name, self.base_url, self.env = name, base_url, env

    def empty(self) -> None:
        if self.env is None:
            restart_empty()  # the H2 server `make bench` runs (its HAPI_RUN_DIR / HAPI_PORT)
        else:
            _hapictl(self.env, "down", "reset", "up")
        # Warm-up (not counted): the JVM's JIT and pools, as a server that has run a while.
        _sync_once(corpus.ndjson_file(UNIT), Namespace.fresh("warmup"), self.base_url)

    def database_cpu_seconds(self) -> float | None:
        """CPU seconds PostgreSQL has used so far (None on H2, inside HAPI's own process)."""
        if self.env is None:
            return None
        try:  # hapictl keeps the cluster outside the clone and names it in pg.home (`postgres_server` resets it)
            home = Path((Path(self.env["HAPI_RUN_DIR"]) / "pg.home").read_text().strip())
            postmaster = int((home / "data/postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return postgres_cpu_seconds(postmaster)

    def pid(self) -> int | None:
        run_dir = Path(self.env["HAPI_RUN_DIR"] if self.env else os.environ.get("HAPI_RUN_DIR", ""))
        try:
            return int((run_dir / "hapi.pid").read_text().strip())
        except (OSError, ValueError):
            return None


def postgres_cpu_seconds(postmaster: int) -> float | None:
    """User + system CPU of a PostgreSQL cluster so far: the postmaster with the backends it has reaped
    (its cutime/cstime) and those still running (its children in /proc)."""
    own = proc_stat(postmaster)
    if own is None:
        return None
    total = sum(int(f) for f in own[11:15])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(entry.name)) and fields[1] == str(postmaster):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def postgres_server():
    _hapictl(PG, "down", "reset", "up")
    try:
        yield Server("PostgreSQL", PG_URL, PG)
    finally:
        _hapictl(PG, "down", "reset")


def _spawn(
    path: Path, ns: Namespace, base_url: str, *extra: str, batch_size: int = TUNED["batch_size"]
) -> tuple[subprocess.Popen, Path]:
    report = OUT / f"report-{ns.token}-{len(extra)}-{time.monotonic_ns()}.json"
    args = [CLI, "sync", str(path), "--report", str(report), "--rejects", str(OUT / f"rejects-{ns.token}.ndjson")]
    args += ["--batch-size", str(batch_size), "--concurrency", str(TUNED["concurrency"]), *extra]
    # Monitoring summaries, Provenance and the audit trail off, as in every section but their own.
    env = ns.env(base_url, **cli_env())
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, report


def _wait(proc: subprocess.Popen, report: Path) -> dict[str, Any]:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = orjson.loads(report.read_bytes())
    out["job_cpu_s"] = out.get("cpu_s")  # the report's own: the job, without the interpreter's start-up
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        raise RuntimeError(f"sync exited {proc.returncode}: {out.get('stopped_reason')}")
    return out


def _sync_once(path: Path, ns: Namespace, base_url: str, *extra: str, **options: int) -> dict[str, Any]:
    return _wait(*_spawn(path, ns, base_url, *extra, **options))


def _written(report: dict[str, Any]) -> int:
    """Resources a sync created or updated: not the conditional creates that found their Patient (a new
    patient's later Bundles, read ahead before its first Bundle created it) nor anything unchanged."""
    return report["resources"].get("created", 0) + report["resources"].get("updated", 0)


def _row(report: dict[str, Any], server_cpu: float | None = None, *, resync: bool = False) -> dict[str, Any]:
    """One CLI run; its rate is over the resources it wrote, or for a re-sync over every resource it checked."""
    resources = sum(report["resources"].values()) if resync else _written(report)
    return {
        "lines": report["lines"],
        "resources": resources,
        "resources_by_outcome": report["resources"],
        "transactions": report["transactions"],
        "seconds": report["duration_s"],
        "resources_per_s": resources / report["duration_s"],
        "client_cpu_s": report["cpu_s"],
        "client_job_cpu_s": report["job_cpu_s"],
        "client_cpu_ms_per_1000": report["cpu_s"] / resources * 1e6 if resources else None,
        "server_cpu_s": server_cpu,
    }


def tenths(patients: int) -> list[Path]:
    """The corpus of `patients` split by patient into ten files of patients/10 each (records in file order)."""
    source = corpus.ndjson_file(patients)
    files = [OUT / f"corpus-{patients}p-tenth{i}.ndjson" for i in range(10)]
    if all(f.exists() for f in files):
        return files
    order: dict[str, int] = {}
    parts: list[list[bytes]] = [[] for _ in range(10)]
    for line in source.read_bytes().splitlines():
        mrn = orjson.loads(line)["patient"]["mrn"]
        index = order.setdefault(mrn, len(order))
        parts[index * 10 // patients].append(line)
    for path, lines in zip(files, parts, strict=True):
        path.write_bytes(b"\n".join(lines) + b"\n")
    return files


def first_syncs(server: Server, scales: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scale in scales:
        server.empty()
        ns = Namespace.fresh(f"scale{scale}x")
        if scale < 100:
            before = process_cpu_seconds(server.pid())
            report = _sync_once(corpus.ndjson_file(UNIT * scale), ns, server.base_url)
            after = process_cpu_seconds(server.pid())
            out[str(scale)] = {"whole": _row(report, after - before if before and after else None)}
            continue
        rows = []
        files = tenths(UNIT * scale)
        for path in files:
            before = process_cpu_seconds(server.pid())
            report = _sync_once(path, ns, server.base_url)
            after = process_cpu_seconds(server.pid())
            rows.append(_row(report, after - before if before and after else None))
            print(
                f"bench: scale {server.name} {scale}x tenth {len(rows)}: {rows[-1]['resources_per_s']:.0f} res/s",
                file=sys.stderr,
                flush=True,
            )
        resources, seconds = sum(r["resources"] for r in rows), sum(r["seconds"] for r in rows)
        cpu = sum(r["client_cpu_s"] for r in rows)
        whole = {
            "resources": resources,
            "seconds": seconds,
            "resources_per_s": resources / seconds,
            "client_cpu_s": cpu,
            "client_cpu_ms_per_1000": cpu / resources * 1e6,
            "lines": sum(r["lines"] for r in rows),
        }
        out[str(scale)] = {"whole": whole, "tenths": rows, "last_tenth": (files[-1], ns)}
    return out


def _spent(before: float | None, after: float | None) -> float | None:
    return after - before if before is not None and after is not None else None


def resync(
    server: Server, path: Path, ns: Namespace, rounds: int, batch_size: int = TUNED["batch_size"]
) -> dict[str, Any]:
    """The already synced `path` again: default vs --always-write, ABBA, both sides at `batch_size`."""
    runs: dict[str, list[dict[str, Any]]] = {"default": [], "always_write": []}
    order = ["default", "always_write", "always_write", "default"] * rounds
    for side in order:
        extra = ("--always-write",) if side == "always_write" else ()
        before, db_before = process_cpu_seconds(server.pid()), server.database_cpu_seconds()
        report = _sync_once(path, ns, server.base_url, *extra, batch_size=batch_size)
        after, db_after = process_cpu_seconds(server.pid()), server.database_cpu_seconds()
        row = _row(report, _spent(before, after), resync=True)
        row["database_cpu_s"] = _spent(db_before, db_after)
        runs[side].append(row)
    mean = {side: statistics.mean(r["seconds"] for r in rows) for side, rows in runs.items()}

    def mean_of(rows: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in rows]
        return statistics.mean(values) if all(v is not None for v in values) else None

    cpu = {
        side: {
            "client_s": mean_of(rows, "client_job_cpu_s"),
            "hapi_s": mean_of(rows, "server_cpu_s"),
            "database_s": mean_of(rows, "database_cpu_s"),
        }
        for side, rows in runs.items()
    }
    # The CPU-bound ceiling of the ratio on this machine: the default side cannot finish before its
    # single-threaded client has run, nor before its client, HAPI and PostgreSQL CPU have shared the
    # cores. The client's CPU is the job's own (the report's `cpu_s`), as its duration is.
    default_floor = None
    if cpu["default"]["hapi_s"] is not None:
        spent = cpu["default"]["client_s"] + cpu["default"]["hapi_s"] + (cpu["default"]["database_s"] or 0.0)
        default_floor = max(cpu["default"]["client_s"], spent / (os.cpu_count() or 1))
    return {
        "batch_size": batch_size,
        "runs": runs,
        "mean_s": mean,
        "cpu_s": cpu,
        "default_floor_s": default_floor,
        "speedup_bound": mean["always_write"] / default_floor if default_floor else None,
        "speedup": mean["always_write"] / mean["default"],
        "default_transactions": [r["transactions"] for r in runs["default"]],
        "always_write_transactions": [r["transactions"] for r in runs["always_write"]],
        "resources": runs["default"][0]["resources"],
        "outcomes": {side: rows[0]["resources_by_outcome"] for side, rows in runs.items()},
    }


def shards(server: Server, patients: int, order: tuple[int, ...]) -> dict[str, Any]:
    path = corpus.ndjson_file(patients)
    runs: dict[int, list[dict[str, Any]]] = {}
    for n in order:
        ns = Namespace.fresh(f"shards{n}")
        started = time.perf_counter()
        procs = [_spawn(path, ns, server.base_url, "--shard", f"{i}/{n}") for i in range(n)]
        reports = [_wait(p, r) for p, r in procs]
        wall = time.perf_counter() - started
        resources = sum(_written(r) for r in reports)
        cpu = sum(r["cpu_s"] for r in reports)
        runs.setdefault(n, []).append(
            {
                "wall_s": wall,
                "resources": resources,
                "resources_per_s": resources / wall,
                "client_cpu_s": cpu,
                "lines": [r["synced"] for r in reports],
            }
        )
    return {
        str(n): {"runs": rows, "resources_per_s": statistics.mean(r["resources_per_s"] for r in rows)}
        for n, rows in sorted(runs.items())
    }


def api_read_first(base_url: str, count: int) -> dict[str, Any]:
    """p50/p99 of new-session PUTs and of the same PUTs repeated, with and without read-before-write."""
    services = {}
    try:
        for side, flag in (("write", "false"), ("read_first", "true")):
            services[side] = api.start_service(
                base_url, Namespace.fresh(f"api-{side}"), INFUSION_FHIR_API_READ_BEFORE_WRITE=flag
            )
        return asyncio.run(_api_measure({side: url for side, (_, url) in services.items()}, count))
    finally:
        for proc, _ in services.values():
            proc.terminate()
            proc.wait(timeout=30)


async def _api_measure(urls: dict[str, str], count: int) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {api.API_KEY}", "Content-Type": "application/json"}
    bodies = {n: api.request_body(n, "s") for n in range(api.PATIENTS + 32 + count)}
    async with httpx.AsyncClient(headers=auth, timeout=600) as http:

        def sender(side: str):
            async def send(n: int) -> int:
                key, body = bodies[n]
                url = f"{urls[side]}/v1/infusion-sessions/{key}"
                return (await http.put(url, content=orjson.dumps(body))).status_code

            return send

        sends = {side: sender(side) for side in urls}
        await api.closed_loop(sends, 0, api.PATIENTS + 32, 1)  # the Patients, then warm-up
        first = api.PATIENTS + 32
        new = await api.closed_loop(sends, first, count, 1)
        repeated = await api.closed_loop(sends, first, count, 1)  # the same requests again: nothing changes
    out: dict[str, Any] = {"requests_per_side": count}
    for label, samples in (("new", new), ("unchanged", repeated)):
        p = {side: api.percentiles(s) for side, s in samples.items()}
        out[label] = {
            "write": p["write"],
            "read_first": p["read_first"],
            "p50_pct": (p["read_first"]["p50"] / p["write"]["p50"] - 1) * 100,
            "p99_pct": (p["read_first"]["p99"] / p["write"]["p99"] - 1) * 100,
        }
    return out


def run(base_url: str, quick: bool = False) -> dict[str, Any]:
    """The H2 part on `base_url` (the benchmarks' H2 HAPI), then the PostgreSQL part on a HAPI of its own."""
    if not disposable_server():
        return {"skipped": "needs the benchmarks' own servers: `make bench` without FHIR_BASE_URL"}
    scales = (1, 10) if quick else (1, 10, 100)
    out: dict[str, Any] = {"tuned": TUNED, "unit_patients": UNIT, "scales": list(scales)}
    h2 = Server("H2", base_url, None)
    big = scales[-1]
    for key, server_cm in (("h2", None), ("postgres", postgres_server)):
        if key == "postgres":
            # The H2 HAPI holds the 100x load and was seen still at 130% CPU during the PostgreSQL part
            # (2026-12-05 run): stopped, it takes no CPU from that part; `h2.empty()` restarts it after.
            _hapictl({}, "down")
        with server_cm() if server_cm else _just(h2) as server:
            first = first_syncs(server, scales)
            part: dict[str, Any] = {
                "first_sync": {k: {kk: vv for kk, vv in v.items() if kk != "last_tenth"} for k, v in first.items()}
            }
            if "last_tenth" in first[str(big)]:
                path, ns = first[str(big)]["last_tenth"]
            else:
                path, ns = corpus.ndjson_file(UNIT * big), Namespace.fresh("resync")
                _sync_once(path, ns, server.base_url)
            part["resync"] = resync(server, path, ns, rounds=1)
            if key == "postgres":
                # The reads cost per request more than per resource: bigger batches, fewer reads.
                part["resync_large_batches"] = resync(server, path, ns, rounds=1, batch_size=RESYNC_LARGE_BATCH)
                server.empty()
                part["shards"] = shards(server, UNIT * (1 if quick else 10), (1, 2, 4, 4, 2, 1))
                part["api"] = api_read_first(server.base_url, 40 if quick else 300)
            out[key] = part
    h2.empty()  # leave the H2 server empty, as the other sections expect
    return out


@contextmanager
def _just(server: Server):
    yield server
