"""Clinic safety thresholds: stricter is free, weaker needs an acknowledgement and is named, off is refused."""

from __future__ import annotations

import pytest

from service.instruments import (
    DEFINITIONS,
    FlagOverride,
    ItemOverride,
    ThresholdError,
    apply_overrides,
    assess,
    defaults,
    definition,
    safety_positives,
)

MADRS_ITEM10_AT_1 = [0] * 9 + [1]
MADRS_ITEM10_AT_3 = [0] * 9 + [3]


def test_no_overrides_are_the_sheets_defaults() -> None:
    thresholds = apply_overrides(DEFINITIONS, [])
    assert thresholds == defaults(DEFINITIONS)
    assert thresholds.weakened == ()
    assert all(thresholds.of(key) == d.safety for key, d in DEFINITIONS.items())


def test_a_more_sensitive_threshold_is_free_and_not_named_as_weakened() -> None:
    madrs = definition("madrs")
    thresholds = apply_overrides(DEFINITIONS, [ItemOverride("madrs", "10", 1)])
    assert thresholds.weakened == ()
    assert safety_positives(madrs, MADRS_ITEM10_AT_1) == ()
    assert safety_positives(madrs, MADRS_ITEM10_AT_1, thresholds.of("madrs")) == ("10",)


def test_a_less_sensitive_threshold_without_acknowledgement_is_an_error_naming_instrument_and_item() -> None:
    with pytest.raises(ThresholdError) as refused:
        apply_overrides(DEFINITIONS, [ItemOverride("madrs", "10", 4)])
    assert (refused.value.instrument, refused.value.rule) == ("madrs", "10")
    assert "madrs 10" in str(refused.value) and "acknowledge_less_sensitive" in str(refused.value)


def test_an_acknowledged_less_sensitive_threshold_applies_and_is_named() -> None:
    madrs = definition("madrs")
    thresholds = apply_overrides(DEFINITIONS, [ItemOverride("madrs", "10", 4, acknowledge_less_sensitive=True)])
    assert safety_positives(madrs, MADRS_ITEM10_AT_3, thresholds.of("madrs")) == ()
    (weakened,) = thresholds.weakened
    assert (weakened.instrument, weakened.rule, weakened.default, weakened.configured) == ("madrs", "10", 2, 4)
    assert "MADRS item 10 >= 4" in weakened.description and "default MADRS item 10 >= 2" in weakened.description
    assert thresholds.weakened_for("madrs") == (weakened,) and thresholds.weakened_for("phq9") == ()
    assert madrs.safety.rules[0].at_least == 2  # the definition itself is untouched


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (ItemOverride("madrs", "10", 7, acknowledge_less_sensitive=True), "cannot be switched off"),
        (ItemOverride("phq9", "9", 4, acknowledge_less_sensitive=True), "cannot be switched off"),
        (ItemOverride("cssrs_screen", "S4", 2, acknowledge_less_sensitive=True), "cannot be switched off"),
        (ItemOverride("qids_sr16", "12", 0), "every answer would be positive"),
        (ItemOverride("phq9", "1", 1), "not a safety item"),
        (ItemOverride("ybocs", "3", 1), "not a safety item"),
        (ItemOverride("phq10", "9", 1), "no such instrument"),
        (FlagOverride("phq9", "high"), "no triage"),
        (FlagOverride("cssrs_screen", "negative"), "every screener would raise the Flag"),
        (FlagOverride("cssrs_screen", "never", acknowledge_less_sensitive=True), "not a triage level"),
        (FlagOverride("cssrs_screen_slc", "high"), "acknowledge_less_sensitive"),
    ],
)
def test_overrides_that_cannot_apply(override: ItemOverride | FlagOverride, message: str) -> None:
    with pytest.raises(ThresholdError, match=message) as refused:
        apply_overrides(DEFINITIONS, [override])
    assert refused.value.instrument == override.instrument


def test_the_same_rule_configured_twice_is_an_error() -> None:
    with pytest.raises(ThresholdError, match="configured twice"):
        apply_overrides(DEFINITIONS, [ItemOverride("phq9", "9", 1), ItemOverride("phq9", "9", 2)])


def test_the_cssrs_flag_level_can_be_lowered_freely_and_raised_only_with_acknowledgement() -> None:
    screener = definition("cssrs_screen")
    low_only = [True, False, None, None, None, False, None]  # triage low
    moderate = [False, True, True, False, False, False, None]  # triage moderate
    assert not assess(screener, low_only).raises_flag
    stricter = apply_overrides(DEFINITIONS, [FlagOverride("cssrs_screen", "low")])
    assert stricter.weakened == ()
    assert assess(screener, low_only, stricter.of("cssrs_screen")).raises_flag
    weaker = apply_overrides(DEFINITIONS, [FlagOverride("cssrs_screen", "high", acknowledge_less_sensitive=True)])
    assert not assess(screener, moderate, weaker.of("cssrs_screen")).raises_flag
    assert assess(screener, moderate, weaker.of("cssrs_screen")).positives == ("S2", "S3")  # still alerts
    (weakened,) = weaker.weakened
    assert (weakened.rule, weakened.default, weakened.configured) == ("flag_at", "moderate", "high")


def test_overrides_of_several_instruments_apply_together() -> None:
    thresholds = apply_overrides(
        DEFINITIONS,
        [
            ItemOverride("qids_sr16", "12", 2, acknowledge_less_sensitive=True),
            ItemOverride("madrs", "10", 1),
            FlagOverride("cssrs_screen_slc", "low"),
        ],
    )
    assert [(w.instrument, w.rule) for w in thresholds.weakened] == [("qids_sr16", "12")]
    assert thresholds.of("madrs").rules[0].at_least == 1
    assert thresholds.of("cssrs_screen_slc").flag_at == "low"
    assert thresholds.of("phq9") == definition("phq9").safety
