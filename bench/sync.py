"""Sync throughput: `infusion-fhir sync` on the corpus vs prebuilt Bundles posted by a bare httpx client.

Every measurement writes the corpus into a namespace of its own, so every write on either side
is a create. The corpus is the benchmarks' corpus taken 10x (40 patients, ~12,000 resources): on an
empty HAPI the 1x corpus syncs in about 3 s, too short for a steady rate. The ceiling's batch size
and concurrency are chosen in two rounds: a sweep of every setting on the 1x corpus ranks them, then
the sweep's best three and the CLI's defaults each run once on the full corpus (each on a fresh
server, like the measured runs), and the fastest of those finals is the ceiling's setting. One round
alone was too noisy to choose by: on 4 patients three settings tied, and the one taken ran 172/s on
the full corpus where another ran 267/s. Ours runs with its defaults, and with the ceiling's
setting when they differ. The sides then run in blocks, each block every side once, adjacent in
time, in ABBA order (`ROUNDS` times: ABC CBA ABC CBA); on the benchmarks' own server each of these
runs starts on an emptied, restarted and warmed-up HAPI (HAPI slows down as its database fills:
without that the server's state, not the client, decides the ratio).
The ratio is the median over blocks of each block's own ratio (`paired`): the machine's speed can
step as well as drift (on 2026-12-06 the server's CPU per run rose by a third from the eighth
measured run on, for every side), and the ABBA order cancels a steady drift but not a step. A step
between two blocks changes no block's ratio, and the median sets aside the one block a step falls
inside. Each side's rate over all its runs (resources over the mean time of its runs) is reported
as well, with the ratio of those (`pooled`).
Resources/s counts the corpus' resources (Patient entries left out: their number depends on the
batch size); ours is timed by its own report (the job, not interpreter start-up). CPU seconds of
the FHIR server (when local) and of the client are recorded for every run.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from typing import Any

from bench import corpus
from bench.corpus import Namespace
from bench.hapi import CpuMeter, local_hapi_pid, post_all, prepare, purge, restart_empty, run_sync_cli
from service.mappers import MappingConfig, mapper_for

DEFAULTS = {"batch_size": 50, "concurrency": 4}  # `infusion-fhir sync` defaults
# batch sizes 25/50/100 x concurrency 1/2/4 in a Latin-square order: each batch size and each
# concurrency once early, once midway and once late, so a server that slows down favours none.
GRID = [(25, 1), (50, 2), (100, 4), (50, 1), (100, 2), (25, 4), (100, 1), (25, 2), (50, 4)]
FINALISTS = 3  # how many of the sweep's best settings run again on the full corpus
ROUNDS = 2
"""ABBA rounds of two blocks each: 4 runs a side. Ours varied by 7% between two runs of one setting (98 and 106 s)
where the ceiling varied by 0.3%, so two runs a side could not place a 0.9x target."""


def finalists(sweep: list[dict[str, Any]], count: int) -> list[dict[str, int]]:
    """The sweep's `count` fastest settings (ties kept in sweep order), and the CLI's defaults if not among them."""
    ranked = sorted(sweep, key=lambda row: -row["resources_per_s"])
    chosen = [{"batch_size": row["batch_size"], "concurrency": row["concurrency"]} for row in ranked[:count]]
    return chosen if DEFAULTS in chosen else [*chosen, dict(DEFAULTS)]


def corpus_types(records: list[Any]) -> Counter[str]:
    """How many resources of each type (Patients aside) the corpus maps to."""
    config = MappingConfig()
    return Counter(resource["resourceType"] for r in records for resource in mapper_for(r.kind).to_fhir_json(r, config))


def corpus_resources(records: list[Any]) -> int:
    """How many resources (Patients aside) the corpus maps to."""
    return sum(corpus_types(records).values())


class Runs:
    """Measurements against one FHIR server; remembers the namespaces written, for cleanup."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.used: list[Namespace] = []

    @property
    def server_pid(self) -> int | None:
        return local_hapi_pid(self.base_url)  # changes when the disposable server restarts

    def fresh_server(self) -> None:
        """Empty and restart the disposable server, then warm it up (not counted); elsewhere nothing."""
        if restart_empty() is not None:
            self.ceiling(corpus.records(1), 50, 2)

    def ceiling(self, records: list[Any], batch_size: int, concurrency: int) -> dict[str, Any]:
        """Post the corpus, prebuilt into Bundles for a fresh namespace, with a bare client."""
        ns = Namespace.fresh("ceiling")
        self.used.append(ns)
        bundles = prepare(records, batch_size, ns.config())
        with CpuMeter(self.server_pid) as cpu:
            stats = asyncio.run(post_all(self.base_url, bundles, concurrency))
        ok = not stats["failed"]
        return {
            "batch_size": batch_size,
            "concurrency": concurrency,
            **stats,
            "ok": ok,
            "server_cpu_s": cpu.server_s,
            "client_cpu_s": cpu.own_s,
            "steal_s": cpu.steal_s,
        }

    def ours(self, patients: int, summaries: bool = False, provenance: bool = False, **settings: int) -> dict[str, Any]:
        """`infusion-fhir sync` of the corpus file into a fresh namespace (with its monitoring summaries when
        `summaries`, its Provenance when `provenance`: the ceiling writes neither)."""
        ns = Namespace.fresh("ours")
        self.used.append(ns)
        with CpuMeter(self.server_pid) as cpu:
            result = run_sync_cli(
                corpus.ndjson_file(patients), ns, self.base_url, summaries=summaries, provenance=provenance, **settings
            )
        ok = result["exit_code"] == 0
        return {
            **settings,
            **result,
            "ok": ok,
            "seconds": result["report"]["duration_s"],
            "server_cpu_s": cpu.server_s,
            "client_cpu_s": result["cpu_s"],
            "steal_s": cpu.steal_s,
        }


def _rate(rows: list[dict[str, Any]], resources: int) -> None:
    for row in rows:
        row["resources_per_s"] = resources / row["seconds"] if row["ok"] else 0.0


def _side(rows: list[dict[str, Any]], resources: int) -> dict[str, Any]:
    """One side's rate: its resources over the mean time of its runs (0 when any run failed)."""
    ok = all(row["ok"] for row in rows)
    seconds = sum(row["seconds"] for row in rows) / len(rows)
    return {
        "batch_size": rows[0]["batch_size"],
        "concurrency": rows[0]["concurrency"],
        "runs": len(rows),
        "mean_seconds": seconds,
        "resources_per_s": resources / seconds if ok else 0.0,
    }


def paired(ceilings: list[dict[str, Any]], ours: list[dict[str, Any]]) -> dict[str, Any]:
    """Ours against the ceiling block by block: each block's ratio of rates (the ceiling's time over ours, both
    writing the same resources; 0 in a block where a run failed), and their median, 0 when any run failed."""
    ceiling = {row["block"]: row for row in ceilings}
    ratios = [
        ceiling[row["block"]]["seconds"] / row["seconds"] if row["ok"] and ceiling[row["block"]]["ok"] else 0.0
        for row in ours
        if row["block"] in ceiling
    ]
    if not ratios or not all(row["ok"] for row in [*ceilings, *ours]):
        return {"blocks": ratios, "median": 0.0}
    return {"blocks": ratios, "median": statistics.median(ratios)}


def _pooled(ours: dict[str, Any], ceiling: dict[str, Any]) -> float:
    """The ratio of two sides' rates over all their runs (the statistic before `paired`)."""
    return ours["resources_per_s"] / ceiling["resources_per_s"] if ceiling["resources_per_s"] else 0.0


def run(base_url: str, quick: bool = False) -> dict[str, Any]:
    """The sweep, then ours against the best ceiling, then delete what was written."""
    sweep_patients, patients = (1, 2) if quick else (corpus.PATIENTS, 10 * corpus.PATIENTS)
    grid = [(50, 2), (100, 4)] if quick else GRID
    sweep_records, records = corpus.records(sweep_patients), corpus.records(patients)
    runs = Runs(base_url)
    ceilings: list[dict[str, Any]] = []
    ours_default: list[dict[str, Any]] = []
    ours_best: list[dict[str, Any]] = []
    types = corpus_types(records)
    resources = sum(types.values())
    try:
        runs.ceiling(corpus.records(1), 50, 2)  # warm-up of the server's JIT and caches, not counted
        sweep = [runs.ceiling(sweep_records, b, c) for b, c in grid]
        _rate(sweep, corpus_resources(sweep_records))
        finals = []
        for settings in finalists(sweep, 1 if quick else FINALISTS):
            runs.fresh_server()
            finals.append(runs.ceiling(records, **settings))
        _rate(finals, resources)
        best = max(finals, key=lambda row: row["resources_per_s"])
        best_settings = {"batch_size": best["batch_size"], "concurrency": best["concurrency"]}
        sides = [
            (ceilings, lambda: runs.ceiling(records, **best_settings)),
            (ours_default, lambda: runs.ours(patients, **DEFAULTS)),
        ]
        if best_settings != DEFAULTS:
            sides.append((ours_best, lambda: runs.ours(patients, **best_settings)))
        blocks = [sides] if quick else [sides, sides[::-1]] * ROUNDS  # ABBA, ROUNDS times: a steady drift cancels
        for block, order in enumerate(blocks):
            for rows, measure in order:
                runs.fresh_server()
                rows.append({**measure(), "block": block})
    finally:
        cleanup = purge(base_url, runs.used)
    _rate(ceilings + ours_default + ours_best, resources)
    ceiling_side = _side(ceilings, resources)
    ours_side = _side(ours_default, resources)
    default_blocks = paired(ceilings, ours_default)
    out = {
        "sweep_patients": sweep_patients,
        "patients": patients,
        "records": len(records),
        "resources": resources,
        "questionnaire_responses": types["QuestionnaireResponse"],
        "sweep": sweep,
        "finals": finals,
        "best_settings": best_settings,
        "ceiling_runs": ceilings,
        "ours_runs": ours_default + ours_best,
        "ceiling": ceiling_side,
        "ours_default": ours_side,
        "ratio_default": default_blocks["median"],
        "ratio_default_blocks": default_blocks["blocks"],
        "pooled_ratio_default": _pooled(ours_side, ceiling_side),
        "cleanup": cleanup,
    }
    if ours_best:
        best_side = _side(ours_best, resources)
        best_blocks = paired(ceilings, ours_best)
        out["ours_best_settings"] = best_side
        out["ratio_best_settings"] = best_blocks["median"]
        out["ratio_best_settings_blocks"] = best_blocks["blocks"]
        out["pooled_ratio_best_settings"] = _pooled(best_side, ceiling_side)
    return out


def on_off(base_url: str, quick: bool, switch: str, extra: str) -> dict[str, Any]:
    """The 10x corpus synced by ours with `switch` (`summaries` or `provenance`) on and off, ABBA, each run on a
    fresh server; per side its runs, mean time, records/s and the report's `extra` entry (what the switch wrote)."""
    patients = 2 if quick else 10 * corpus.PATIENTS
    runs = Runs(base_url)
    rows: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    try:
        for side in ("on", "off", "off", "on")[: 2 if quick else 4]:
            runs.fresh_server()
            rows[side].append(runs.ours(patients, **{switch: side == "on"}))
    finally:
        cleanup = purge(base_url, runs.used)
    out: dict[str, Any] = {"patients": patients, "records": len(corpus.records(patients)), "cleanup": cleanup}
    for side, side_rows in rows.items():
        ok = all(r["ok"] for r in side_rows)
        seconds = sum(r["seconds"] for r in side_rows) / len(side_rows)
        out[side] = {
            "runs": [
                {k: r.get(k) for k in ("seconds", "server_cpu_s", "client_cpu_s", "exit_code", "ok")} for r in side_rows
            ],
            "mean_seconds": seconds,
            "records_per_s": out["records"] / seconds if ok else 0.0,
            extra: side_rows[0]["report"].get(extra),
        }
    out["ratio_on_off"] = out["on"]["records_per_s"] / out["off"]["records_per_s"] if out["off"]["records_per_s"] else 0
    return out
