"""Mapping benchmark: records -> FHIR JSON bytes, ours vs the naive validated path vs the plain-dict floor.

All three run in this one process on one core, interleaved round by round, timed in CPU seconds
(`time.process_time`, so other load on the machine does not count against a path); a round repeats
a fast path's pass until it lasts about 0.2 s, and the best round of each path is reported.
Input is parsed records: parsing (strict record validation) is the same for every path and is
reported on its own line.
"""

from __future__ import annotations

import cProfile
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench import corpus
from bench.floor import Floor
from bench.report import profile_top
from schemas import parse_record
from service.mappers import MappingConfig, mapper_for, transaction_bundle

Path = Callable[[list[Any]], int]


def ours(config: MappingConfig) -> Path:
    """The fast path: `to_fhir_json` dicts serialised by orjson."""

    def run(records: list[Any]) -> int:
        out = [orjson.dumps(r) for rec in records for r in mapper_for(rec.kind).to_fhir_json(rec, config)]
        return len(out)

    return run


def naive(config: MappingConfig) -> Path:
    """Each resource built as a validated R4B model and serialised by fhir.resources."""

    def run(records: list[Any]) -> int:
        out = [m.model_dump_json() for rec in records for m in mapper_for(rec.kind).to_fhir(rec, config)]
        return len(out)

    return run


def floor(config: MappingConfig) -> Path:
    """The same JSON as plain dict literals with no checks, serialised by orjson."""
    builder = Floor(config)

    def run(records: list[Any]) -> int:
        return len([orjson.dumps(r) for rec in records for r in builder.map(rec)])

    return run


def bundles(config: MappingConfig, batch: int = 50) -> Path:
    """Ours as the sync job uses it: one transaction Bundle per `batch` records, Patients included."""

    def run(records: list[Any]) -> int:
        n = 0
        for i in range(0, len(records), batch):
            bundle = transaction_bundle(records[i : i + batch], config)
            orjson.dumps(bundle)
            n += len(bundle["entry"])
        return n

    return run


def check_equal(records: list[Any], config: MappingConfig) -> dict[str, int]:
    """Assert ours == the validated path in content and == the floor byte for byte, on every record."""
    builder = Floor(config)
    resources = identical = 0
    for rec in records:
        mapper = mapper_for(rec.kind)
        fast = [orjson.dumps(r) for r in mapper.to_fhir_json(rec, config)]
        validated = [m.model_dump_json().encode() for m in mapper.to_fhir(rec, config)]
        assert [orjson.loads(b) for b in fast] == [orjson.loads(b) for b in validated], rec.key
        assert [orjson.dumps(r) for r in builder.map(rec)] == fast, rec.key
        resources += len(fast)
        identical += sum(a == b for a, b in zip(fast, validated, strict=True))
    return {"records": len(records), "resources": resources, "byte_identical": identical}


def _time(path: Path, records: list[Any], repeat: int) -> tuple[float, int]:
    """CPU seconds of one pass (the mean of `repeat` passes) and resources per pass."""
    started = time.process_time()
    for _ in range(repeat):
        n = path(records)
    return (time.process_time() - started) / repeat, n


def profile_run(path: Path, records: list[Any], lines: int = 12) -> str:
    """The top of a cProfile of one run of `path` (by own time)."""
    profiler = cProfile.Profile()
    profiler.runcall(path, records)
    return profile_top(profiler, lines)


def run(quick: bool = False) -> dict[str, Any]:
    """Time the three paths side by side on the fixed corpus; assert they produce the same JSON."""
    patients = corpus.PATIENTS
    rounds = 3 if quick else 7
    raw = corpus.raw_records(patients)
    started = time.process_time()
    records = [parse_record(r) for r in raw]
    parse_s = time.process_time() - started
    config = MappingConfig()
    equality = check_equal(records, config)
    paths = {"ours": ours(config), "naive": naive(config), "floor": floor(config), "ours_bundles": bundles(config)}
    repeat = {name: max(1, round(0.2 / _time(path, records, 1)[0])) for name, path in paths.items()}
    best: dict[str, tuple[float, int]] = {}
    for _ in range(rounds):
        for name, path in paths.items():
            seconds, n = _time(path, records, repeat[name])
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, n)
    rows = {
        name: {"seconds": round(s, 4), "resources": n, "records_per_s": len(records) / s, "resources_per_s": n / s}
        for name, (s, n) in best.items()
    }
    return {
        "patients": patients,
        "seed": corpus.SEED,
        "records": len(records),
        "rounds": rounds,
        "parse_records_per_s": len(records) / parse_s,
        "paths": rows,
        "ours_over_naive": rows["ours"]["resources_per_s"] / rows["naive"]["resources_per_s"],
        "ours_over_floor": rows["ours"]["resources_per_s"] / rows["floor"]["resources_per_s"],
        "equality": equality,
        "profile_ours": profile_run(paths["ours"], records),
    }
