"""A reading's `interpretation` and `referenceRange`s against the monitoring protocol, as FHIR JSON.

Pure: the value, its phase (`SessionContext.phase`) and `config.protocol`, nothing else, so a reading maps the
same whichever way it arrives and a re-sync of one reading never changes another. The limits come from
`service.monitoring.rules`; here they become R4 elements: interpretation from v3 ObservationInterpretation,
a `normal` range for the H / L (A) limits and a `treatment` range for the HH / LL (AA) ones, each range's
text naming the protocol, its version and the phase (docs/clinical-mapping.md section 5a). The ranges of a
measure in a phase are built once per protocol.
"""

from __future__ import annotations

from functools import lru_cache

from service.mappers import codes
from service.mappers.build import Json, quantity
from service.mappers.fhir import CodeableConcept, Coding, to_json
from service.monitoring import Protocol
from service.monitoring.model import MEASURES
from service.monitoring.rules import Limits, Tier, limits


@lru_cache(maxsize=16)
def interpretation(level: str) -> list[Json]:
    """Observation.interpretation for a level (`N`, `H`, `HH`, `L`, `LL`, `A`, `AA`)."""
    code = codes.INTERPRETATIONS[level]
    return [to_json(CodeableConcept(coding=[Coding(system=code.system, code=code.code, display=code.display)]))]


def _type(code: codes.Code) -> Json:
    return to_json(CodeableConcept(coding=[Coding(system=code.system, code=code.code, display=code.display)]))


def _unit_words(ucum: str) -> str:
    return "" if ucum == codes.UNIT_SCORE else codes.UNIT_TEXT[ucum]


def _tier_text(tier: Tier, level: str, ucum: str, phase: str | None) -> str:
    text = f"{level} {tier.comparison.words(_unit_words(ucum))}"
    notes = []
    if tier.assumed:
        notes.append(codes.RANGE_PRE_INFUSION_ASSUMED)
    elif tier.pre_infusion:
        notes.append(codes.RANGE_PRE_INFUSION_ALSO)
    if tier.rule.action and phase is not None:
        notes.append(tier.rule.action)
    weak = tier.rule.weakened
    if weak is not None:
        notes.append(f"{codes.RANGE_WEAKENED} {weak.approved_by} on {weak.approved_on.isoformat()}")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _range(limits_: Limits, critical: bool, protocol: Protocol) -> Json | None:
    """One reference range: the tier-1 limits (`normal`) or the tier-2 ones (`treatment`); None when it has none."""
    ucum = limits_.measure.unit
    ordinal = limits_.measure.ordinal
    high = limits_.critical_high if critical else limits_.high
    low = limits_.critical_low if critical else limits_.low
    if high is None and low is None:
        return None
    out: Json = {}
    parts = []
    if low is not None:
        out["low"] = quantity(low.bound, ucum)
    if high is not None:
        out["high"] = quantity(high.bound, ucum)
        level = ("AA" if ordinal else "HH") if critical else ("A" if ordinal else "H")
        parts.append(_tier_text(high, level, ucum, limits_.phase))
    if low is not None:
        level = ("AA" if ordinal else "LL") if critical else ("A" if ordinal else "L")
        parts.append(_tier_text(low, level, ucum, limits_.phase))
    out["type"] = _type(codes.RANGE_TREATMENT if critical else codes.RANGE_NORMAL)
    out["text"] = f"{protocol.title}, {codes.PHASE_WORDS[limits_.phase]}: {'; '.join(parts)}"
    return out


@lru_cache(maxsize=512)
def reference_ranges(protocol: Protocol, measure: str, phase: str | None) -> list[Json]:
    """The `normal` and `treatment` ranges of `measure` in `phase` (None: unknown), as many as have a limit."""
    found = limits(protocol, measure, phase)
    if found is None:
        return []
    return [r for r in (_range(found, False, protocol), _range(found, True, protocol)) if r is not None]


@lru_cache(maxsize=512)
def _judging(protocol: Protocol, measure: str, phase: str | None) -> tuple[Limits, list[Json]] | None:
    """The limits and ranges of `measure` in `phase`, looked up once per call of `judged`."""
    if measure not in MEASURES:
        return None
    found = limits(protocol, measure, phase)
    return None if found is None else (found, reference_ranges(protocol, measure, phase))


def judged(protocol: Protocol, measure: str, phase: str | None, value: float) -> tuple[Json, str | None] | None:
    """({interpretation, referenceRange} to put on the Observation or component, the level or None), or None
    when no rule judges `measure` in `phase` (temperature and weight never: they are not measures)."""
    table = _judging(protocol, measure, phase)
    if table is None:
        return None
    found, ranges = table
    level = found.judge(value)
    if level is None:
        return {"referenceRange": ranges}, None
    return {"interpretation": interpretation(level), "referenceRange": ranges}, level


def words(levels: list[tuple[str, str]]) -> str | None:
    """The narrative's sentence for (label, level) pairs: `High`, `Systolic high, diastolic critical high`."""
    if not levels:
        return None
    if len(levels) == 1 and not levels[0][0]:
        return codes.INTERPRETATIONS[levels[0][1]].display
    text = ", ".join(f"{label.lower()} {codes.INTERPRETATIONS[level].display.lower()}" for label, level in levels)
    return text[0].upper() + text[1:]
