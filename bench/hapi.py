"""The FHIR server side of the benchmarks: the CLI as a subprocess, bare posting, and cleaning up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.corpus import OUT, Namespace

FHIR_JSON = "application/fhir+json"
ACCEPT = {"Accept": FHIR_JSON}
HEADERS = {**ACCEPT, "Content-Type": FHIR_JSON}
CLI = str(Path(sys.executable).parent / "infusion-fhir")
GNU_TIME = "/usr/bin/time"  # Debian's `time` package
OWN_TYPES = (
    "DiagnosticReport",
    "Flag",
    "QuestionnaireResponse",
    "AdverseEvent",
    "Observation",
    "MedicationAdministration",
    "Procedure",
    "Encounter",
)
"""What a patient's records (and their sessions' summaries) become: deleted with the Patient, in one transaction."""
HAPI_DIR = Path(__file__).resolve().parents[1] / "tools" / "hapi-server"
HAPICTL = HAPI_DIR / "hapictl"


def disposable_server() -> bool:
    """True when `make bench` runs on a HAPI of its own that it may empty (BENCH_DISPOSABLE_SERVER=1)."""
    return os.environ.get("BENCH_DISPOSABLE_SERVER") == "1"


def restart_empty() -> float | None:
    """On the disposable server: stop it, delete its database, start it; seconds taken (None: not ours).

    HAPI on H2 slows down as its database fills (here ~5.8 ms of server CPU per created resource on
    an empty database, ~15 ms after ~80,000 resources), so runs to be compared start from the same,
    empty state. hapictl takes HAPI_RUN_DIR and HAPI_PORT from the environment `make bench` sets.
    """
    if not disposable_server():
        return None
    started = time.perf_counter()
    for command in ("down", "reset", "up"):
        subprocess.run([str(HAPICTL), command], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def cli_env(*, summaries: bool = False, provenance: bool = False) -> dict[str, str]:
    """The settings of ours in a section: what the service writes beyond the records (monitoring summaries,
    Provenance) only where the section measures it, and no audit trail (section `audit` measures it)."""
    return {
        "INFUSION_FHIR_MONITORING_SUMMARIES": str(summaries).lower(),
        "INFUSION_FHIR_PROVENANCE": str(provenance).lower(),
        "INFUSION_FHIR_AUDIT_LOG": "",
    }


def run_sync_cli(
    path: Path,
    ns: Namespace,
    base_url: str,
    *,
    batch_size: int | None = None,
    concurrency: int | None = None,
    dry_run: bool = False,
    summaries: bool = False,
    provenance: bool = False,
) -> dict[str, Any]:
    """`infusion-fhir sync` as a user runs it; its report, wall time, CPU time and peak RSS. Its monitoring
    summaries only when `summaries` (section `summaries`), its Provenance only when `provenance` (section
    `provenance`): elsewhere ours is compared with a ceiling that writes neither.

    Peak RSS comes from GNU time (`%M`) run in between: the kilobytes `wait4` reports for a child
    of this process start from this process's own peak, which the child inherits at fork on Linux.
    """
    report = OUT / f"report-{ns.token}.json"
    args = [CLI, "sync", str(path), "--report", str(report), "--rejects", str(OUT / f"rejects-{ns.token}.ndjson")]
    if batch_size is not None:
        args += ["--batch-size", str(batch_size)]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    if dry_run:
        args.append("--dry-run")
    log, rss = OUT / f"log-{ns.token}.txt", OUT / f"rss-{ns.token}.txt"
    started = time.perf_counter()
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [GNU_TIME, "-f", "%M", "-o", str(rss), *args],
            env=ns.env(base_url, **cli_env(summaries=summaries, provenance=provenance)),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    text = log.read_text(errors="replace")
    return {
        "exit_code": proc.returncode,
        "report": orjson.loads(report.read_bytes()),
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_mb": int(rss.read_text().split()[-1]) / 1024,
        "patient_race_retries": text.count("sync.patient_race_retry"),
        "fhir_retries": text.count('"fhir.retry"'),
        "questionnaires_written": _questionnaires_written(text),
    }


def _questionnaires_written(log_text: str) -> int | None:
    """The Questionnaires a `sync` run wrote (created or changed) before its first line, from its
    `sync.questionnaires` log line; None when the run logged none (a dry run, or a stop before it)."""
    for line in log_text.splitlines():
        if '"sync.questionnaires"' in line:
            event = orjson.loads(line)
            return int(event.get("questionnaires_created", 0)) + int(event.get("questionnaires_updated", 0))
    return None


@dataclass
class Prepared:
    """One prebuilt transaction Bundle: its bytes, the sessions it carries and those it needs first."""

    body: bytes
    entries: int
    carries: set[str] = field(default_factory=set)
    needs: set[str] = field(default_factory=set)


def prepare(records: list[Any], batch_size: int, config: Any) -> list[Prepared]:
    """The corpus cut into transaction Bundles in file order as the CLI cuts it (at `batch_size`, or before a session:
    `session_cut`), as bytes, with their session dependencies."""
    from service.batch.cuts import bundles_of
    from service.mappers import transaction_bundle

    out = []
    for batch in bundles_of(records, batch_size):
        bundle = transaction_bundle(batch, config)
        own = {r.key for r in batch if r.kind == "infusion_session"}
        needs = {k for r in batch if (k := getattr(r, "session_key", None))} - own
        out.append(Prepared(orjson.dumps(bundle), len(bundle["entry"]), own, needs))
    return out


async def post_all(base_url: str, bundles: list[Prepared], concurrency: int) -> dict[str, Any]:
    """The ceiling: post prebuilt Bundles with a bare AsyncClient, `concurrency` in flight, in order.

    A Bundle waits for the earlier Bundle carrying a session it references (the server checks
    references); a 409/412 from two first creates of one Patient racing is answered by re-posting.
    """
    events: dict[str, asyncio.Event] = {}
    slots = asyncio.Semaphore(concurrency)
    stats = {"bundles": 0, "entries_ok": 0, "conflict_reposts": 0, "failed": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS, timeout=300, limits=limits) as http:

        async def send(prepared: Prepared, waits: list[asyncio.Event], done: list[asyncio.Event]) -> None:
            try:
                for event in waits:
                    await event.wait()
                for _ in range(5):
                    response = await http.post("", content=prepared.body)
                    if response.status_code not in (409, 412):
                        break
                    stats["conflict_reposts"] += 1
                if response.status_code != 200:
                    stats["failed"] += 1
                    return
                body = orjson.loads(response.content)
                stats["bundles"] += 1
                stats["entries_ok"] += sum(e["response"]["status"][:1] == "2" for e in body["entry"])
            finally:
                for event in done:
                    event.set()
                slots.release()

        started = time.perf_counter()
        tasks = []
        for prepared in bundles:
            await slots.acquire()
            waits = [events[k] for k in prepared.needs if k in events]
            done = [events.setdefault(k, asyncio.Event()) for k in prepared.carries]
            tasks.append(asyncio.create_task(send(prepared, waits, done)))
        await asyncio.gather(*tasks)
        stats["seconds"] = time.perf_counter() - started
    return stats


def purge(base_url: str, namespaces: list[Namespace]) -> dict[str, Any]:
    """Delete everything the namespaces' patients own: one transaction of conditional deletes per patient.

    One transaction lets the server delete resources that reference each other (PHQ-9 panels and
    their items) together. Deleted versions stay in the server's history (no $expunge: the server
    is shared); `hapictl reset` on an idle server reclaims the space. Skipped when `make bench` says
    the server is its own and is thrown away afterwards (BENCH_DISPOSABLE_SERVER=1).
    """
    if disposable_server():
        return {"patients": 0, "seconds": 0.0, "skipped": True}
    started = time.perf_counter()
    patients = 0
    with httpx.Client(base_url=base_url, headers=ACCEPT, timeout=600) as http:
        for ns in namespaces:
            query = {"identifier": f"{ns.mrn_system}|", "_elements": "id", "_count": "500"}
            found = http.post("Patient/_search", data=query)
            found.raise_for_status()
            for entry in found.json().get("entry", []):
                pid = entry["resource"]["id"]
                entries = [{"request": {"method": "DELETE", "url": f"{t}?subject=Patient/{pid}"}} for t in OWN_TYPES]
                entries.append({"request": {"method": "DELETE", "url": f"Patient/{pid}"}})
                bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
                http.post("", content=orjson.dumps(bundle), headers=HEADERS).raise_for_status()
                patients += 1
    return {"patients": patients, "seconds": time.perf_counter() - started}


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...; utime is [11]), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used so far (from /proc), or None."""
    fields = proc_stat(pid) if pid is not None else None
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def local_hapi_pid(base_url: str) -> int | None:
    """The pid of the local HAPI that hapictl started (in `HAPI_RUN_DIR`, as `make bench` sets it) at `base_url`."""
    url = httpx.URL(base_url)
    if url.host not in ("localhost", "127.0.0.1"):
        return None
    run_dir = Path(os.environ.get("HAPI_RUN_DIR") or HAPI_DIR / ".run")
    try:
        pid = int((run_dir / "hapi.pid").read_text().strip())
        port = int((run_dir / "hapi.port").read_text().strip())
    except (OSError, ValueError):
        return None
    if port != url.port:
        return None
    return pid if process_cpu_seconds(pid) is not None else None


def steal_seconds() -> float | None:
    """CPU seconds the hypervisor has run something else while this machine wanted the CPU, all CPUs summed
    (`steal` in /proc/stat), or None where it is not counted."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class CpuMeter:
    """CPU seconds used by the FHIR server (when local) and by this process over a `with` block, and the CPU
    seconds the machine lost to steal in it (a busy host shows there, not in either process)."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.server_s: float | None = None
        self.own_s = 0.0
        self.steal_s: float | None = None

    def __enter__(self) -> CpuMeter:
        self._server = process_cpu_seconds(self.server_pid)
        self._own = time.process_time()
        self._steal = steal_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.own_s = time.process_time() - self._own
        steal = steal_seconds()
        if steal is not None and self._steal is not None:
            self.steal_s = steal - self._steal
        after = process_cpu_seconds(self.server_pid)
        if after is not None and self._server is not None:
            self.server_s = after - self._server


def hapi_version(base_url: str) -> str:
    """`software.name version` from the server's CapabilityStatement."""
    try:
        body = httpx.get(f"{base_url}/metadata", headers={"Accept": FHIR_JSON}, timeout=30).json()
    except httpx.HTTPError:
        return "unreachable"
    software = body.get("software", {})
    return f"{software.get('name', '?')} {software.get('version', '?')} (FHIR {body.get('fhirVersion', '?')})"
