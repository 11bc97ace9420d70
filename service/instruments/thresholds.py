"""The clinic's safety thresholds: the sheet's defaults, overrides, and which rules an override weakened.

instruments.md section 3: no published alert threshold exists for these items, so the defaults are
chosen for sensitivity. A clinic may make a rule more sensitive freely; making one less sensitive must
be acknowledged explicitly (`acknowledge_less_sensitive`), and the result names every weakened rule
so that callers can log it at start and name it in every answer that used it. A safety rule cannot
be switched off: a threshold no answer can reach is refused, acknowledged or not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from service.instruments.model import Definition, Safety, SafetyRule, YesNo


@dataclass(frozen=True)
class ItemOverride:
    """Positive at `at_least` or above for this instrument's safety item (C-SSRS: yes counts 1)."""

    instrument: str
    link_id: str
    at_least: int
    acknowledge_less_sensitive: bool = False


@dataclass(frozen=True)
class FlagOverride:
    """C-SSRS: raise the Flag from triage level `flag_at` upwards (default moderate)."""

    instrument: str
    flag_at: str
    acknowledge_less_sensitive: bool = False


Override = ItemOverride | FlagOverride


@dataclass(frozen=True)
class Weakened:
    """A rule the clinic made less sensitive than the sheet's default, with its acknowledgement."""

    instrument: str
    rule: str  # the safety item's linkId, or "flag_at"
    default: int | str
    configured: int | str
    description: str


class ThresholdError(ValueError):
    """An override that cannot apply; names the instrument and the item (or `flag_at`)."""

    def __init__(self, instrument: str, rule: str, message: str) -> None:
        self.instrument = instrument
        self.rule = rule
        super().__init__(f"safety threshold {instrument} {rule}: {message}")


@dataclass(frozen=True)
class Thresholds:
    """The safety rules in force per instrument, and the weakened ones among them."""

    safety: Mapping[str, Safety]
    weakened: tuple[Weakened, ...] = ()

    def of(self, instrument: str) -> Safety:
        """The rules in force for this instrument."""
        return self.safety[instrument]

    def weakened_for(self, instrument: str) -> tuple[Weakened, ...]:
        """The weakened rules of this instrument (empty when it runs on the defaults or stricter)."""
        return tuple(w for w in self.weakened if w.instrument == instrument)


def defaults(definitions: Mapping[str, Definition]) -> Thresholds:
    """The sheet's default rules for every instrument."""
    return Thresholds({key: definition.safety for key, definition in definitions.items()})


def rule_text(definition: Definition, link_id: str, at_least: int) -> str:
    """A neutral description of a safety rule: "C-SSRS screener Q3: yes", "MADRS item 10 >= 2"."""
    item = definition.item(link_id)
    if isinstance(item.answer, YesNo):
        return f"{item.text}: yes"
    return f"{definition.title} item {link_id} >= {at_least}"


def apply_overrides(definitions: Mapping[str, Definition], overrides: Iterable[Override]) -> Thresholds:
    """The defaults with the clinic's overrides applied; ThresholdError for any that cannot apply."""
    safety = {key: definition.safety for key, definition in definitions.items()}
    weakened: list[Weakened] = []
    seen: set[tuple[str, str]] = set()
    for override in overrides:
        definition = definitions.get(override.instrument)
        rule_name = override.link_id if isinstance(override, ItemOverride) else "flag_at"
        if definition is None:
            raise ThresholdError(override.instrument, rule_name, "no such instrument")
        if (override.instrument, rule_name) in seen:
            raise ThresholdError(override.instrument, rule_name, "configured twice")
        seen.add((override.instrument, rule_name))
        current = safety[override.instrument]
        if isinstance(override, ItemOverride):
            current, weaker = _item(definition, current, override)
        else:
            current, weaker = _flag(definition, current, override)
        safety[override.instrument] = current
        if weaker is not None:
            weakened.append(weaker)
    return Thresholds(safety, tuple(weakened))


def _item(definition: Definition, safety: Safety, override: ItemOverride) -> tuple[Safety, Weakened | None]:
    instrument, link_id, at_least = override.instrument, override.link_id, override.at_least
    default = next((rule for rule in definition.safety.rules if rule.link_id == link_id), None)
    if default is None:
        raise ThresholdError(instrument, link_id, "not a safety item of this instrument")
    answer = definition.item(link_id).answer
    if at_least > answer.high:
        raise ThresholdError(instrument, link_id, "no answer could reach it: a safety rule cannot be switched off")
    if at_least <= answer.low:
        raise ThresholdError(
            instrument, link_id, f"every answer would be positive; the lowest threshold is {answer.low + 1}"
        )
    weaker = None
    if at_least > default.at_least:
        if not override.acknowledge_less_sensitive:
            raise ThresholdError(
                instrument,
                link_id,
                f"less sensitive than the default ({default.at_least}): set acknowledge_less_sensitive to weaken it",
            )
        description = (
            f"{rule_text(definition, link_id, at_least)} (default {rule_text(definition, link_id, default.at_least)}), "
            "less sensitive, acknowledged by the clinic"
        )
        weaker = Weakened(instrument, link_id, default.at_least, at_least, description)
    rules = tuple(SafetyRule(link_id, at_least) if rule.link_id == link_id else rule for rule in safety.rules)
    return dataclasses.replace(safety, rules=rules), weaker


def _flag(definition: Definition, safety: Safety, override: FlagOverride) -> tuple[Safety, Weakened | None]:
    instrument, flag_at = override.instrument, override.flag_at
    if definition.triage is None or definition.safety.flag_at is None:
        raise ThresholdError(
            instrument, "flag_at", "this instrument has no triage: any positive answer raises the Flag"
        )
    order = definition.triage.order
    if flag_at not in order:
        raise ThresholdError(instrument, "flag_at", f"not a triage level: one of {', '.join(order[1:])}")
    if order.index(flag_at) == 0:
        raise ThresholdError(
            instrument, "flag_at", "every screener would raise the Flag; the lowest level is " + order[1]
        )
    default = definition.safety.flag_at
    weaker = None
    if order.index(flag_at) > order.index(default):
        if not override.acknowledge_less_sensitive:
            raise ThresholdError(
                instrument,
                "flag_at",
                f"less sensitive than the default ({default}): set acknowledge_less_sensitive to weaken it",
            )
        description = (
            f"{definition.title}: Flag at triage {flag_at} or above (default {default}), "
            "less sensitive, acknowledged by the clinic"
        )
        weaker = Weakened(instrument, "flag_at", default, flag_at, description)
    return dataclasses.replace(safety, flag_at=flag_at), weaker


_ITEM_FIELDS = {"instrument", "item", "at_least", "acknowledge_less_sensitive"}
_FLAG_FIELDS = {"instrument", "flag_at", "acknowledge_less_sensitive"}


def parse_overrides(entries: object) -> tuple[Override, ...]:
    """Overrides from the clinic's configuration: a list of objects, each either
    `{"instrument", "item", "at_least"}` or `{"instrument", "flag_at"}`, with an optional
    `"acknowledge_less_sensitive": true`. ValueError naming the entry (by position) and what is wrong.

    Only the shape is checked here; `apply_overrides` checks each one against the definitions.
    """
    if not isinstance(entries, list):
        raise ValueError("must be a JSON list of threshold objects")
    out: list[Override] = []
    for position, entry in enumerate(entries):
        where = f"entry {position}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be an object")
        fields = set(entry)
        allowed = _FLAG_FIELDS if "flag_at" in entry else _ITEM_FIELDS
        if fields - allowed or not (allowed - {"acknowledge_less_sensitive"}) <= fields:
            required = sorted(allowed - {"acknowledge_less_sensitive"})
            raise ValueError(
                f"{where}: must have exactly {', '.join(required)} (and optionally acknowledge_less_sensitive)"
            )
        acknowledged = entry.get("acknowledge_less_sensitive", False)
        if not isinstance(acknowledged, bool):
            raise ValueError(f"{where}: acknowledge_less_sensitive must be true or false")
        instrument = entry["instrument"]
        if not isinstance(instrument, str):
            raise ValueError(f"{where}: instrument must be a string")
        if "flag_at" in entry:
            if not isinstance(entry["flag_at"], str):
                raise ValueError(f"{where}: flag_at must be a string")
            out.append(FlagOverride(instrument, entry["flag_at"], acknowledged))
            continue
        item, at_least = entry["item"], entry["at_least"]
        if not isinstance(item, str):
            raise ValueError(f"{where}: item must be the safety item's linkId as a string")
        if isinstance(at_least, bool) or not isinstance(at_least, int):
            raise ValueError(f"{where}: at_least must be an integer")
        out.append(ItemOverride(instrument, item, at_least, acknowledged))
    return tuple(out)
