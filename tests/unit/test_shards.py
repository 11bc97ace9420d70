"""`sync --shard I/N`: N copies of a load split it by patient with no coordinator, nothing twice, nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from service.batch.source import Shard, in_shard, read_lines
from tests.corpus import generate

CLI = str(Path(sys.executable).parent / "infusion-fhir")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The covering corpus plus two lines that are not records (they must be reported once, by shard 0)."""
    path = tmp_path_factory.mktemp("shards") / "history.ndjson"
    lines = [orjson.dumps(record) for record in generate()]
    lines[5:5] = [b"{not json", b'{"kind": "vital_sign", "key": "bad-1"}']
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("text", ["1", "4/4", "-1/3", "a/b", "0/0", "2/1"])
def test_a_shard_must_be_i_of_n(text: str) -> None:
    with pytest.raises(ValueError):
        Shard.parse(text)


def test_shards_partition_the_lines_and_keep_each_patient_whole(history: Path) -> None:
    everything = list(read_lines([str(history)]))
    count = 3
    taken = [list(in_shard(iter(everything), Shard(i, count))) for i in range(count)]
    numbers = Counter(line.number for shard in taken for line in shard)
    assert sorted(numbers) == [line.number for line in everything] and set(numbers.values()) == {1}
    for i, shard in enumerate(taken):
        mrns = {line.record.patient.mrn for line in shard if line.record is not None}
        others = {
            line.record.patient.mrn for j, s in enumerate(taken) if j != i for line in s if line.record is not None
        }
        assert not mrns & others
        assert all(line.record is not None for line in shard) or i == 0  # invalid lines: shard 0 only
    assert all(len(shard) > 0 for shard in taken)


def test_a_shard_hears_of_every_line_it_passes_over_so_progress_counts_the_whole_file(history: Path) -> None:
    everything = list(read_lines([str(history)]))
    passed_over: list[int] = []
    taken = list(in_shard(iter(everything), Shard(1, 3), lambda line: passed_over.append(line.number)))
    assert sorted(passed_over + [line.number for line in taken]) == [line.number for line in everything]


def test_the_split_is_the_same_in_every_process(history: Path) -> None:
    """SHA-256, not Python's salted hash(): two processes with other hash seeds agree line by line."""
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        script = (
            "import sys; from service.batch.source import Shard, in_shard, read_lines; "
            "print([l.number for l in in_shard(read_lines([sys.argv[1]]), Shard(1, 4))])"
        )
        runs.append(
            subprocess.run([sys.executable, "-c", script, str(history)], env=env, capture_output=True, text=True).stdout
        )
    assert runs[0] == runs[1] and runs[0].strip() not in ("", "[]")


def test_n_dry_runs_of_the_cli_map_exactly_what_one_run_maps(history: Path, tmp_path: Path) -> None:
    def dry_run(*shard: str) -> dict:
        result = subprocess.run(
            [CLI, "sync", str(history), "--dry-run", "--rejects", str(tmp_path / "r.ndjson"), *shard],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode in (0, 1), result.stderr[-2000:]
        return json.loads(result.stdout)

    whole = dry_run()
    parts = [dry_run("--shard", f"{i}/3") for i in range(3)]
    assert [p["shard"] for p in parts] == ["0/3", "1/3", "2/3"]
    assert sum(p["mapped"] for p in parts) == whole["mapped"]
    assert sum(p["rejected"] for p in parts) == whole["rejected"] == 2 == parts[0]["rejected"]
    assert sum(p["lines"] for p in parts) == whole["lines"]
