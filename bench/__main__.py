"""`python -m bench`: run the benchmarks, print BENCHMARKS.md and write it (with the raw results as JSON)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import orjson

from bench import api, audit, mapping, memory, provenance, report, scale, summaries, sync
from bench.corpus import OUT
from bench.machine import describe

SECTIONS = {
    "mapping": mapping.run,
    "sync": sync.run,
    "api": api.run,
    "summaries": summaries.run,
    "audit": audit.run,
    "provenance": provenance.run,
    "memory": memory.run,
    "scale": scale.run,
}
NEEDS_SERVER = {"sync", "api", "summaries", "audit", "provenance", "memory", "scale"}
ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small corpora and few rounds (about 3.5 minutes): a smoke run of every section; "
        "its runs are too short for its ratios to judge the targets",
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="markdown to write")
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: write the markdown again from the last run's bench/out/results.json "
        "(after editing bench/NOTES.md)",
    )
    parser.add_argument(
        "--into-last",
        action="store_true",
        help="keep the other sections of the last run's bench/out/results.json and put the sections run now "
        "into it; the markdown names them as measured later, with their own command, date and load",
    )
    args = parser.parse_args(argv)
    if args.render:
        return _write(orjson.loads((OUT / "results.json").read_bytes()), args.out)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    base_url = os.environ.get("FHIR_BASE_URL", "http://localhost:8080/fhir").rstrip("/")
    OUT.mkdir(exist_ok=True)
    started = time.monotonic()
    machine = describe(base_url if NEEDS_SERVER & set(only) else None)
    command = "make bench" + (f" BENCH_ARGS='{' '.join(argv or sys.argv[1:])}'" if (argv or sys.argv[1:]) else "")
    run_meta = {
        "command": command,
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "seconds": 0.0,
        "fhir_base_url": base_url,
    }
    if args.into_last:
        results = orjson.loads((OUT / "results.json").read_bytes())
        later = [e for e in results["meta"].get("later", []) if not set(e["sections"]) & set(only)]
        run_meta = {**run_meta, "sections": only, "load_average_at_start": machine.get("load_average_at_start")}
        results["meta"]["later"] = [*later, run_meta]
    else:
        results = {"machine": machine, "meta": run_meta}
    for name in only:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        section_started = time.monotonic()
        run = SECTIONS[name]
        results[name] = run(quick=args.quick) if name == "mapping" else run(base_url, quick=args.quick)
        print(f"bench: {name} done in {time.monotonic() - section_started:.0f} s", file=sys.stderr, flush=True)
        run_meta["seconds"] = time.monotonic() - started
        _save(results)  # a later section's failure does not lose this one's figures
    return _write(results, args.out)


def _save(results: dict) -> None:
    (OUT / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


def _write(results: dict, out: Path) -> int:
    text = report.render(results)
    print(text)
    out.write_text(text + "\n")
    failed = [t for t, _, ok in report.targets(results) if not ok]
    print(f"bench: wrote {out}; targets not met: {len(failed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
