"""Memory: peak RSS of `infusion-fhir sync` (GNU time's `%M`) as the corpus grows 10x and 100x.

The unit is the benchmarks' corpus (demo-data, 4 patients, 870 lines). Real runs sync into a
fresh namespace on the FHIR server (the 100x one, 400 patients and ~170,000 resources, keeps HAPI
busy for 20-30 minutes here); `--dry-run` maps and validates every record without a server, which
separates the job's own memory from what the HTTP side holds. The largest dry run runs beside the
largest real run (peak RSS does not depend on CPU share).
"""

from __future__ import annotations

import threading
from typing import Any

from bench import corpus
from bench.corpus import Namespace
from bench.hapi import purge, restart_empty, run_sync_cli

UNIT = corpus.PATIENTS


def _row(result: dict[str, Any], scale: int, mode: str) -> dict[str, Any]:
    report = result["report"]
    return {
        "scale": scale,
        "mode": mode,
        "patients": UNIT * scale,
        "lines": report["lines"],
        "exit_code": result["exit_code"],
        "maxrss_mb": result["maxrss_mb"],
        "wall_s": result["wall_s"],
        "report_peak_rss_mb": report.get("peak_rss_mb"),
        "resources": sum(report["resources"].values()),
    }


def run(base_url: str, quick: bool = False) -> dict[str, Any]:
    """Real and dry runs at 1x, 10x and 100x (quick: real 1x, dry 1x and 10x)."""
    real_scales = (1,) if quick else (1, 10, 100)
    dry_scales = (1, 10) if quick else (1, 10, 100)
    rows: list[dict[str, Any]] = []
    used: list[Namespace] = []
    for scale in dry_scales:
        corpus.ndjson_file(UNIT * scale)  # written before anything is timed
    restart_empty()  # on the benchmarks' own server: start from an empty database, whatever ran before
    try:
        for scale in dry_scales[:-1]:
            rows.append(_row(_sync(base_url, scale, used, dry_run=True), scale, "dry-run"))
        beside: dict[str, Any] = {}
        last_dry = dry_scales[-1]
        thread = threading.Thread(target=lambda: beside.update(_sync(base_url, last_dry, used, dry_run=True)))
        for scale in real_scales:
            if scale == real_scales[-1]:
                thread.start()
            rows.append(_row(_sync(base_url, scale, used, dry_run=False), scale, "real"))
        thread.join()
        rows.append(_row(beside, last_dry, "dry-run"))
    finally:
        cleanup = purge(base_url, [ns for ns in used if ns.token.startswith("memory-real")])
    rows.sort(key=lambda row: (row["mode"], row["scale"]))
    by = {(row["mode"], row["scale"]): row["maxrss_mb"] for row in rows}
    out: dict[str, Any] = {"unit_patients": UNIT, "rows": rows, "cleanup": cleanup}
    small, large = dry_scales[-2], dry_scales[-1]
    out["dry_growth"] = (small, large, by[("dry-run", large)] - by[("dry-run", small)])
    small, large = real_scales[-2:] if len(real_scales) > 1 else (real_scales[0], real_scales[0])
    out["real_growth"] = (small, large, by[("real", large)] - by[("real", small)])
    out["real_minus_dry_mb"] = {s: by[("real", s)] - by[("dry-run", s)] for s in real_scales}
    return out


def _sync(base_url: str, scale: int, used: list[Namespace], *, dry_run: bool) -> dict[str, Any]:
    ns = Namespace.fresh("memory-dry" if dry_run else "memory-real")
    used.append(ns)
    return run_sync_cli(corpus.ndjson_file(UNIT * scale), ns, base_url, dry_run=dry_run)
