"""The mappers' `POS` and Flag decisions follow the safety thresholds in force (MappingConfig.thresholds):
a more sensitive rule makes an answer positive that the default does not; an acknowledged weaker rule
makes one negative that the default calls positive. (The sync's one-Flag-per-patient rule, service/safety/,
works from the Flags the mappers make, so it follows the same thresholds.)"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from schemas import parse_record
from service.instruments import FlagOverride, ItemOverride, Override
from service.mappers import MappingConfig, codes, mapper_for
from tests.unit.examples import BASE as EXAMPLES

DEFAULT = MappingConfig()
POS = codes.INTERPRETATION_POSITIVE.code


def config(*overrides: Override) -> MappingConfig:
    return MappingConfig(safety_overrides=overrides)


def assessment(instrument: str, items: list[Any]) -> Any:
    record = {
        **copy.deepcopy(EXAMPLES["assessment"]),
        "key": f"thr-{instrument}",
        "instrument": instrument,
        "items": items,
    }
    for field in ("session_key", "total", "difficulty"):
        record.pop(field, None)
    return parse_record(record)


def phq9(items: list[int]) -> Any:
    record = {**copy.deepcopy(EXAMPLES["phq9_assessment"]), "key": "thr-phq9", "items": items, "total": sum(items)}
    record.pop("session_key", None)
    return parse_record(record)


def positive_parts(resources: list[dict[str, Any]]) -> set[str]:
    """The identifier values (`key/part`) of Observations carrying v3 POS."""
    return {
        r["identifier"][0]["value"].split("/")[-1]
        for r in resources
        if r["resourceType"] == "Observation"
        and any(c.get("code") == POS for i in r.get("interpretation", []) for c in i.get("coding", []))
    }


def has_flag(resources: list[dict[str, Any]]) -> bool:
    return any(r["resourceType"] == "Flag" for r in resources)


def mapped(record: Any, cfg: MappingConfig) -> list[dict[str, Any]]:
    return mapper_for(record.kind).to_fhir_json(record, cfg)


MADRS_ITEM10_AT_1 = [0] * 9 + [1]


def test_a_more_sensitive_madrs_threshold_makes_item_10_at_1_positive_and_raises_the_flag() -> None:
    record = assessment("madrs", MADRS_ITEM10_AT_1)
    assert positive_parts(mapped(record, DEFAULT)) == set() and not has_flag(mapped(record, DEFAULT))
    stricter = config(ItemOverride("madrs", "10", 1))
    resources = mapped(record, stricter)
    assert positive_parts(resources) == {"item-10"}
    assert has_flag(resources)


def test_a_more_sensitive_cssrs_flag_level_raises_the_flag_at_low() -> None:
    record = assessment("cssrs_screen", [True, False, None, None, None, False, None])  # triage low
    assert positive_parts(mapped(record, DEFAULT)) == {"item-S1"}  # every yes is POS whatever the Flag rule
    assert not has_flag(mapped(record, DEFAULT))
    stricter = config(FlagOverride("cssrs_screen", "low"))
    assert has_flag(mapped(record, stricter))


@pytest.mark.parametrize(
    ("instrument", "items", "override", "part"),
    [
        (
            "qids_sr16",
            [0] * 11 + [1] + [0] * 4,
            ItemOverride("qids_sr16", "12", 2, acknowledge_less_sensitive=True),
            "item-12",
        ),
        ("madrs", [0] * 9 + [2], ItemOverride("madrs", "10", 3, acknowledge_less_sensitive=True), "item-10"),
    ],
)
def test_an_acknowledged_weaker_threshold_leaves_an_answer_below_it_negative(
    instrument: str, items: list[int], override: ItemOverride, part: str
) -> None:
    record = assessment(instrument, items)
    assert positive_parts(mapped(record, DEFAULT)) == {part} and has_flag(mapped(record, DEFAULT))
    weaker = config(override)
    resources = mapped(record, weaker)
    assert positive_parts(resources) == set()
    assert not has_flag(resources)


def test_phq9_item_9_follows_the_threshold_in_force_on_the_item_the_total_and_the_flag() -> None:
    weaker = config(ItemOverride("phq9", "9", 2, acknowledge_less_sensitive=True))
    one = phq9([1, 1, 1, 1, 1, 1, 1, 1, 1])
    default = mapped(one, DEFAULT)
    assert positive_parts(default) == {"item-9", "total"} and has_flag(default)
    resources = mapped(one, weaker)
    assert positive_parts(resources) == set()
    assert not has_flag(resources)
    total = next(
        r for r in resources if r["resourceType"] == "Observation" and r["identifier"][0]["value"].endswith("/total")
    )
    assert "note" not in total  # no suicide-risk note either

    two = phq9([1, 1, 1, 1, 1, 1, 1, 1, 2])  # at the configured threshold: positive as before
    resources = mapped(two, weaker)
    assert positive_parts(resources) == {"item-9", "total"} and has_flag(resources)


def test_no_overrides_map_exactly_as_the_defaults() -> None:
    for record in (assessment("madrs", [0] * 9 + [2]), phq9([1, 1, 1, 1, 1, 1, 1, 1, 1])):
        assert mapped(record, config()) == mapped(record, DEFAULT)
