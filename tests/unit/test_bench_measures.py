"""The benchmarks' own arithmetic: percentiles, added latency and its interval, interleaving, verdicts."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.api import added_pct, bootstrap_ci, closed_loop, percentiles
from bench.report import targets


def test_percentiles_are_nearest_rank() -> None:
    samples = [float(x) for x in range(100, 0, -1)]  # 1..100, unsorted
    got = percentiles(samples)
    assert (got["n"], got["p50"], got["p95"], got["p99"], got["mean"]) == (100, 50.0, 95.0, 99.0, 50.5)
    assert percentiles([7.0])["p99"] == 7.0


def test_added_percentage_and_its_interval_find_a_known_shift() -> None:
    direct = [50.0 + (i * 37 % 101) / 10 for i in range(1000)]  # 50..60 ms, spread evenly
    ours = [x * 1.2 for x in direct]  # exactly 20% slower at every percentile
    assert added_pct(ours, direct, "p50") == pytest.approx(20.0)
    low, high = bootstrap_ci(ours, direct, "p99")
    assert low < 20.0 < high
    assert high - low < 10.0


def test_interval_of_a_side_against_itself_straddles_zero() -> None:
    direct = [float(i % 97) + 40 for i in range(800)]
    low, high = bootstrap_ci(direct, list(direct), "p50")
    assert low <= 0.0 <= high


def test_closed_loop_interleaves_the_sides_and_sends_each_request_once() -> None:
    in_flight: dict[str, int] = {"a": 0, "b": 0}
    both_in_flight = 0
    sent: dict[str, list[int]] = {"a": [], "b": []}

    def side(name: str):
        async def send(n: int) -> int:
            nonlocal both_in_flight
            in_flight[name] += 1
            both_in_flight += all(in_flight.values())
            sent[name].append(n)
            await asyncio.sleep(0)
            in_flight[name] -= 1
            return 201

        return send

    latencies = asyncio.run(closed_loop({"a": side("a"), "b": side("b")}, first=10, count=40, clients=4))
    assert sorted(sent["a"]) == sorted(sent["b"]) == list(range(10, 50))
    assert len(latencies["a"]) == len(latencies["b"]) == 40
    assert both_in_flight > 0  # the two sides really ran side by side


def test_closed_loop_raises_when_a_request_fails() -> None:
    async def failing(n: int) -> int:
        return 502

    async def fine(n: int) -> int:
        return 200

    with pytest.raises(RuntimeError, match="status 502"):
        asyncio.run(closed_loop({"a": fine, "b": failing}, first=0, count=3, clients=2))


def _level(p50: float, p99: float) -> dict:
    return {
        "added_p50_pct": p50,
        "added_p99_pct": p99,
        "added_p50_pct_ci95": (p50 - 1, p50 + 1),
        "added_p99_pct_ci95": (p99 - 5, p99 + 5),
    }


def test_api_target_is_met_only_when_p50_and_p99_are_within_ten_percent() -> None:
    verdicts = targets({"api": {"levels": {1: _level(3.0, 9.9), 8: _level(2.0, 10.5), 32: _level(11.0, 1.0)}}})
    assert [ok for _, _, ok in verdicts] == [True, False, False]
    assert "95% CI" in verdicts[0][1]


def test_a_sync_side_is_rated_over_the_mean_time_of_its_runs() -> None:
    from bench.sync import _side

    runs = [
        {"batch_size": 50, "concurrency": 4, "seconds": 10.0, "ok": True},
        {"batch_size": 50, "concurrency": 4, "seconds": 30.0, "ok": True},
    ]
    assert _side(runs, 1000)["resources_per_s"] == 50.0  # not 100 (best run) nor 66.7 (mean of rates)
    runs[1]["ok"] = False
    assert _side(runs, 1000)["resources_per_s"] == 0.0


def _block_rows(seconds: list[float]) -> list[dict[str, object]]:
    return [{"block": b, "seconds": t, "ok": True} for b, t in enumerate(seconds)]


def test_a_step_in_the_machines_speed_between_blocks_moves_no_sync_ratio() -> None:
    """The 2026-12-06 run: the machine slowed by a third from one block on, for both sides alike."""
    from bench.sync import paired

    ceiling, ours = _block_rows([60, 60, 80, 80]), _block_rows([63, 63, 84, 84])
    result = paired(ceiling, ours)
    assert [round(r, 3) for r in result["blocks"]] == [0.952] * 4
    assert round(result["median"], 3) == 0.952
    # pooled over all runs the same data read alike here; a step inside a block is what pooling cannot set aside:
    inside = paired(_block_rows([60, 60, 60, 80]), _block_rows([63, 63, 84, 84]))
    assert round(inside["median"], 3) == 0.952 and round(min(inside["blocks"]), 3) == 0.714


def test_a_slower_ours_reads_slower_in_every_block() -> None:
    from bench.sync import paired

    result = paired(_block_rows([60, 62, 80, 81]), _block_rows([75, 77.5, 100, 101.25]))
    assert round(result["median"], 3) == 0.8 and max(result["blocks"]) < 0.81


def test_a_failed_run_fails_the_paired_sync_ratio() -> None:
    from bench.sync import paired

    ours = _block_rows([63, 63, 84, 84])
    ours[2]["ok"] = False
    assert paired(_block_rows([60, 60, 80, 80]), ours)["median"] == 0.0  # the other blocks' 0.95 do not carry it
    ceiling = _block_rows([60, 60, 80, 80])
    ceiling[0]["ok"] = False
    assert paired(ceiling, _block_rows([63, 63, 84, 84]))["median"] == 0.0


def test_the_sync_targets_are_judged_on_the_median_of_blocks_and_say_so() -> None:
    from bench.sync import paired

    ceiling, ours = _block_rows([60, 60, 60, 80]), _block_rows([63, 63, 84, 84])
    result = paired(ceiling, ours)
    sync = {"ratio_default": result["median"], "ratio_default_blocks": result["blocks"], "pooled_ratio_default": 0.88}
    [(name, measured, met)] = targets({"sync": sync})
    assert name.startswith("Sync: ours at the CLI's defaults") and met
    assert measured == "0.95x (median of 4 blocks; 0.88x pooled)"
    sync["ratio_default"] = paired(ceiling, _block_rows([70, 70, 84, 84]))["median"]  # 0.86x in 3 blocks of 4
    assert not targets({"sync": sync})[0][2]


def test_the_bench_floor_still_maps_byte_for_byte_like_the_mappers() -> None:
    """`make bench` compares against a hand-written floor mapper; it must follow the mappers' output
    (a stale floor once stopped a full benchmark run at its first section)."""
    from bench import corpus, mapping
    from service.mappers import MappingConfig

    equality = mapping.check_equal(corpus.records(2), MappingConfig())
    assert equality["byte_identical"] == equality["resources"] > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_bench_floor_maps_every_instruments_assessment_byte_for_byte(data: st.DataObject) -> None:
    """Assessments join the corpus with the demo courses (issue 21); the floor must follow them too:
    every instrument, unasked C-SSRS items, difficulty or not, a session or none, a Flag or none."""
    import orjson

    from bench.floor import Floor
    from schemas import parse_record
    from schemas.assessment import INSTRUMENTS
    from service.instruments import DEFINITIONS
    from service.mappers import MappingConfig, mapper_for
    from tests.unit.examples import PATIENT
    from tests.unit.strategies import answers

    instrument = data.draw(st.sampled_from(sorted(INSTRUMENTS)))
    raw = {
        "kind": "assessment",
        "key": "Q-F",
        "patient": PATIENT,
        "instrument": instrument,
        "completed_at": data.draw(st.sampled_from(["2024-04-12T09:05:00-04:00", "2024-04-12T13:05:00Z"])),
        "items": data.draw(answers(instrument)),
    }
    if DEFINITIONS[instrument].difficulty is not None and data.draw(st.booleans()):
        raw["difficulty"] = data.draw(st.sampled_from(["not_difficult", "somewhat", "very", "extremely"]))
    if data.draw(st.booleans()):
        raw["session_key"] = "S-F"
    record = parse_record(raw)
    config = MappingConfig()

    floor = [orjson.dumps(r) for r in Floor(config).map(record)]

    assert floor == [orjson.dumps(r) for r in mapper_for(record.kind).to_fhir_json(record, config)]


def test_a_section_run_into_the_last_run_replaces_only_itself(tmp_path, monkeypatch) -> None:
    import orjson

    import bench.__main__ as bench_main

    monkeypatch.setattr(bench_main, "OUT", tmp_path)
    monkeypatch.setattr(bench_main, "describe", lambda _url: {"load_average_at_start": (0.5, 0.25, 0.125)})
    monkeypatch.setattr(bench_main.report, "render", lambda results: orjson.dumps(results).decode())
    monkeypatch.setattr(bench_main.report, "targets", lambda results: [])
    last = {
        "machine": {"cores": 2},
        "meta": {"command": "make bench", "date": "d0", "seconds": 9.0},
        "sync": {"old": 1},
    }
    (tmp_path / "results.json").write_bytes(orjson.dumps(last))
    monkeypatch.setitem(bench_main.SECTIONS, "summaries", lambda base_url, quick: {"new": 2})
    monkeypatch.setitem(bench_main.SECTIONS, "sync", lambda base_url, quick: pytest.fail("sync must not run"))

    bench_main.main(["--only", "summaries", "--into-last", "--out", str(tmp_path / "B.md")])
    bench_main.main(["--only", "summaries", "--into-last", "--out", str(tmp_path / "B.md")])

    saved = orjson.loads((tmp_path / "results.json").read_bytes())
    assert saved["sync"] == {"old": 1} and saved["summaries"] == {"new": 2}
    assert saved["machine"] == {"cores": 2} and saved["meta"]["date"] == "d0"
    (later,) = saved["meta"]["later"]  # the second run replaced the first's entry
    assert later["sections"] == ["summaries"] and later["load_average_at_start"] == [0.5, 0.25, 0.125]


def test_the_header_names_each_later_section_run(monkeypatch, tmp_path) -> None:
    from bench import report

    monkeypatch.setattr(report, "_machine", lambda machine: [])
    monkeypatch.setattr(report, "NOTES", tmp_path / "absent.md")
    meta = {"command": "make bench", "date": "d0", "seconds": 9.0}
    later = {"sections": ["summaries"], "command": "make bench X", "date": "d1", "seconds": 3.0}

    alone, with_later = (
        report.render({"machine": {}, "meta": meta}),
        report.render({"machine": {}, "meta": {**meta, "later": [later]}}),
    )

    assert "except the sections" not in alone and "make bench X" not in alone
    assert "except the sections named next" in with_later
    assert "- Section 3b. Monitoring summaries: `make bench X` on d1 (3 s)" in with_later


def _on_off(on_s: float, off_s: float, extra: str, written: object) -> dict:
    side = {"runs": [{"seconds": 1.0, "server_cpu_s": 2.0, "client_cpu_s": 3.0}], extra: None}
    return {
        "patients": 40,
        "records": 1000,
        "on": {**side, "mean_seconds": on_s, "records_per_s": 1000 / on_s, extra: written},
        "off": {**side, "mean_seconds": off_s, "records_per_s": 1000 / off_s},
        "ratio_on_off": off_s / on_s,
    }


@pytest.mark.parametrize(("on_s", "met"), [(10.0, True), (11.1, True), (11.2, False)])
def test_the_provenance_target_is_met_only_within_ten_percent_of_sync_throughput(on_s: float, met: bool) -> None:
    verdicts = targets({"provenance": _on_off(on_s, 10.0, "provenances", 82)})
    assert [(t.startswith("Provenance:"), ok) for t, _, ok in verdicts] == [(True, met)]


def test_the_provenance_section_shows_both_sides_and_what_was_written() -> None:
    from bench.report import SECTIONS

    render = next(section for key, _, section in SECTIONS if key == "provenance")
    text = "\n".join(render(_on_off(10.5, 10.0, "provenances", 82)))
    assert "**0.95x**" in text
    off_row = next(line for line in text.splitlines() if line.startswith("| off |"))
    on_row = next(line for line in text.splitlines() if line.startswith("| on |"))
    assert off_row.endswith("| - |") and on_row.endswith("| 82 |")


def test_the_audit_summary_compares_each_sink_with_auditing_off() -> None:
    from bench.audit import _summary

    off = [10.0 + i % 5 for i in range(200)]
    samples = {"off": off, "file": [x * 1.02 for x in off], "fhir": [x * 1.10 for x in off]}
    lat = _summary(samples)
    assert abs(lat["file_added_p50_pct"] - 2.0) < 0.01 and abs(lat["fhir_added_p50_pct"] - 10.0) < 0.01
    verdicts = targets({"audit": {"clients": 8, "latency": lat}})
    assert [(t.split(":")[0], ok) for t, _, ok in verdicts] == [
        ("Audit (audit file)", True),
        ("Audit (FHIR audit store)", False),
    ]
    from bench.report import SECTIONS

    render = next(section for key, _, section in SECTIONS if key == "audit")
    text = "\n".join(
        render({"clients": 8, "requests_per_side": 200, "warmup_per_side": 8, "audit_file_lines": 412, "latency": lat})
    )
    assert "| off | 200 |" in text and "+10.0%" in text and "412" in text


def test_the_ceiling_finals_are_the_sweeps_fastest_and_the_defaults() -> None:
    from bench.sync import DEFAULTS, finalists

    def row(batch: int, concurrency: int, rate: float) -> dict[str, float]:
        return {"batch_size": batch, "concurrency": concurrency, "resources_per_s": rate}

    sweep = [row(25, 1, 203), row(50, 2, 196), row(25, 4, 203), row(100, 4, 185), row(25, 2, 203), row(50, 4, 139)]
    assert finalists(sweep, 3) == [
        {"batch_size": 25, "concurrency": 1},
        {"batch_size": 25, "concurrency": 4},
        {"batch_size": 25, "concurrency": 2},
        DEFAULTS,
    ]
    assert finalists([row(50, 4, 300), *sweep], 2) == [DEFAULTS, {"batch_size": 25, "concurrency": 1}]


def test_the_ceilings_bundles_are_cut_before_sessions_as_the_clis() -> None:
    """Issue 24: the ceiling cuts the corpus by the CLI's rule (`session_cut`), so a Bundle carrying a session
    waits for no other Bundle, and the two sides send alike."""
    from bench import corpus
    from bench.hapi import prepare
    from service.settings import Settings

    records = corpus.records(corpus.PATIENTS)
    bundles = prepare(records, 50, Settings(FHIR_BASE_URL="http://fhir.example/fhir").mapping_config())
    carrying = [b for b in bundles if b.carries]
    assert len(carrying) >= 10 and not any(b.needs for b in carrying)
    assert all(b.needs <= prior.carries for prior, b in itertools.pairwise(bundles) if b.needs)
