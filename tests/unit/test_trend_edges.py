"""PHQ-9 trend edge cases: service.sync.trend.trend_summary / trend_points, no server."""

from __future__ import annotations

import copy
from typing import Any

from schemas import parse_record
from service.mappers import MappingConfig, mapper_for
from service.mappers.codes import ENTERED_IN_ERROR, PHQ9_TOTAL
from service.sync.trend import TrendPoint, trend_points, trend_summary
from tests.unit.examples import BASE as EXAMPLES

CONFIG = MappingConfig()


def observations(key: str, completed_at: str, items: list[int]) -> list[dict[str, Any]]:
    record = parse_record(
        {
            **copy.deepcopy(EXAMPLES["phq9_assessment"]),
            "key": key,
            "completed_at": completed_at,
            "items": items,
            "total": sum(items),
        }
    )
    resources = mapper_for("phq9_assessment").to_fhir_json(record, CONFIG)
    return [copy.deepcopy(r) for r in resources if r["resourceType"] == "Observation"]


def total_of(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in resources if any(c["code"] == PHQ9_TOTAL.code for c in r["code"]["coding"]))


def test_no_points() -> None:
    assert trend_summary([]) == {"baseline": None, "points": [], "latest": None, "alerts": []}
    assert trend_points([], CONFIG) == []


def test_a_baseline_of_zero_gives_no_percent_change_and_no_response() -> None:
    summary = trend_summary(
        [
            TrendPoint("a", "2024-01-01T09:00:00Z", 0),
            TrendPoint("b", "2024-02-01T09:00:00Z", 0),
            TrendPoint("c", "2024-03-01T09:00:00Z", 6, item9=1),
        ]
    )
    assert summary["baseline"] == {"date": "2024-01-01T09:00:00Z", "total": 0}
    assert [p["percent_change"] for p in summary["points"]] == [None, None, None]
    assert [p["response"] for p in summary["points"]] == [False, False, False]
    assert [p["remission"] for p in summary["points"]] == [True, True, False]
    assert [p["change_from_baseline"] for p in summary["points"]] == [0, 0, 6]
    assert summary["alerts"] == [{"key": "c", "date": "2024-03-01T09:00:00Z", "item9": 1}]


def test_equal_instants_are_ordered_by_key_whatever_the_offset_or_input_order() -> None:
    same = [
        TrendPoint("b", "2024-01-01T10:00:00Z", 20, 2),
        TrendPoint("a", "2024-01-01T05:00:00-05:00", 10, 3),
        TrendPoint("c", "2024-01-01T11:00:00+01:00", 4, 1),
    ]
    for points in (same, list(reversed(same))):
        summary = trend_summary(points)
        assert [p["key"] for p in summary["points"]] == ["a", "b", "c"]
        assert summary["baseline"]["total"] == 10
        assert summary["latest"]["key"] == "c"
        assert [a["key"] for a in summary["alerts"]] == ["c", "b", "a"]  # newest first, ties by key reversed
    assert summary["points"][1]["percent_change"] == 100.0
    assert summary["points"][2]["response"] is True


def test_a_date_only_effective_date_time_is_the_start_of_that_day_utc() -> None:
    points = [
        TrendPoint("late", "2024-01-01T23:30:00-05:00", 9),  # 2024-01-02T04:30Z
        TrendPoint("dated", "2024-01-02", 18),  # 2024-01-02T00:00Z
        TrendPoint("early", "2024-01-01T20:00:00Z", 12),
    ]
    summary = trend_summary(points)
    assert [p["key"] for p in summary["points"]] == ["early", "dated", "late"]
    assert [p["date"] for p in summary["points"]][1] == "2024-01-02"  # reported as the server holds it


def test_date_only_totals_from_the_server_are_points_too() -> None:
    first = observations("P-1", "2024-01-01T09:00:00Z", [2, 2, 2, 2, 2, 2, 2, 2, 0])
    second = observations("P-2", "2024-02-01T09:00:00Z", [1, 1, 1, 0, 0, 0, 0, 0, 0])
    for resource in second:
        resource["effectiveDateTime"] = "2024-02-01"
    points = trend_points(first + second, CONFIG)
    assert sorted((p.key, p.date, p.total) for p in points) == [
        ("P-1", "2024-01-01T09:00:00Z", 16),
        ("P-2", "2024-02-01", 3),
    ]
    summary = trend_summary(points)
    assert summary["latest"]["key"] == "P-2" and summary["latest"]["response"] is True


def test_retracted_totals_are_left_out() -> None:
    kept = observations("P-1", "2024-01-01T09:00:00Z", [2, 2, 2, 2, 2, 2, 2, 2, 1])
    retracted = observations("P-2", "2023-12-01T09:00:00Z", [3, 3, 3, 3, 3, 3, 3, 3, 3])
    total_of(retracted)["status"] = ENTERED_IN_ERROR
    later = observations("P-3", "2024-03-01T09:00:00Z", [0, 0, 0, 1, 0, 0, 0, 0, 0])
    for resource in later:  # a whole assessment retracted
        resource["status"] = ENTERED_IN_ERROR

    points = trend_points(kept + retracted + later, CONFIG)

    assert [(p.key, p.total, p.item9) for p in points] == [("P-1", 17, 1)]
    summary = trend_summary(points)
    assert summary["baseline"]["total"] == 17  # not the retracted 27 from earlier
    assert [a["key"] for a in summary["alerts"]] == ["P-1"]


def test_totals_as_value_integer_count_and_item9_comes_from_the_panel() -> None:
    resources = observations("P-1", "2024-01-01T09:00:00Z", [1, 1, 1, 1, 1, 1, 1, 1, 2])
    total = total_of(resources)
    total["valueInteger"] = int(total.pop("valueQuantity")["value"])
    (point,) = trend_points(resources, CONFIG)
    assert (point.key, point.total, point.item9) == ("P-1", 10, 2)
