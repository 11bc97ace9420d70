"""Mapping is the same in every process: no hash-seed (set/dict order) dependence in the FHIR JSON."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import hashlib
import orjson
from schemas import parse_record
from service.mappers import MappingConfig, transaction_bundle
from tests.corpus import generate

records = [parse_record(r) for r in generate()]
config = MappingConfig()
digest = hashlib.sha256(orjson.dumps(transaction_bundle(records, config)))
for record in records:
    digest.update(orjson.dumps(transaction_bundle([record], config)))
print(len(records), digest.hexdigest())
"""


def test_the_corpus_maps_to_identical_json_under_different_hash_seeds() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            cwd=ROOT,
            env={**env, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in ("0", "1", "2718281")
    ]
    outputs = []
    for run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        outputs.append(out.split())
    (count, digest), *others = outputs
    assert int(count) > 500
    assert len(digest) == 64
    assert all(other == [count, digest] for other in others), outputs
