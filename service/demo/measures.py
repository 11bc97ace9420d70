"""Rating scales beside PHQ-9 along a patient's course: which ones, at which visit, and their answers.

Every patient is screened with the C-SSRS: the recent screener at the first visit, the since-last-contact
one at every later visit. Each comorbid indication brings its scale (GAD-7, PCL-5, Y-BOCS, see
`tables.SCALES_BY_INDICATION`) and some depression patients are rated with MADRS or QIDS-SR16 too, each
at intake, at the mid-course review and at the last infusion, falling along the patient's PHQ-9
trajectory. Answers are drawn item by item from the instrument's definition, so they follow its ranges
and skip rules; the safety items (MADRS item 10, QIDS-SR16 item 12, every C-SSRS yes) follow the patient's
suicidal ideation, which fades with the response as PHQ-9 item 9 does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from service.demo import tables as t
from service.demo.course import Patient
from service.demo.monitoring import Timed
from service.demo.phq9 import difficulty, progress
from service.demo.plan import Plan
from service.instruments import DEFINITIONS, rule_range, score
from service.instruments.model import Definition, Item

RECENT, SINCE_LAST_CONTACT = "cssrs_screen", "cssrs_screen_slc"
SAFETY_SPREAD = 0.4  # a safety item's answer varies less than the others: it follows the patient's ideation
SCALE_ORDER = 500  # at the same minute: the PHQ-9 first, then these, then vital signs (monitoring.VITAL_ORDER)


@dataclass(frozen=True)
class Scale:
    """One scale a patient is rated on: its shape, baseline severity (0-1 of the range) and fall by the end."""

    shape: t.ScaleShape
    severity: float
    fall: float
    top: int  # the highest total
    leading: frozenset[str]  # in each max-of-items group (QIDS-SR16), the item this patient's symptom is


@dataclass(frozen=True)
class Measures:
    """What a patient is rated on besides PHQ-9, and how their suicidal ideation shows."""

    scales: tuple[Scale, ...]
    ideation: float  # 0-1 at intake: PHQ-9 item 9 / 3, at least 0.5 with the suicidal_ideation indication
    indicated: bool  # the suicidal_ideation indication


def make_measures(rng: random.Random, patient: Patient) -> Measures:
    """Draw the patient's scales (from their indications) and their baselines from `rng`."""
    shapes = [t.SCALES_BY_INDICATION[name] for name in patient.indications if name in t.SCALES_BY_INDICATION]
    draw = rng.random()
    for shape, share in t.DEPRESSION_SCALES:
        if draw < share:
            shapes.insert(0, shape)
            break
        draw -= share
    indicated = "suicidal_ideation" in patient.indications
    ideation = patient.phq9_item9 / 3
    return Measures(
        tuple(_scale(rng, patient, shape) for shape in shapes),
        max(ideation, 0.5) if indicated else ideation,
        indicated,
    )


def _scale(rng: random.Random, patient: Patient, shape: t.ScaleShape) -> Scale:
    definition = DEFINITIONS[shape.instrument]
    assert definition.total is not None  # scales with a total; the C-SSRS is drawn on its own
    high = rule_range(definition, definition.total)[1]
    fall = patient.response_fall * shape.follows + rng.gauss(0, 0.06)
    groups = [group for group in definition.total.groups if group.combine == "max"]
    leading = frozenset(rng.choice(group.link_ids) for group in groups)
    return Scale(shape, rng.triangular(*shape.baseline) / high, max(-0.1, min(0.85, fall)), high, leading)


def visit_assessments(
    rng: random.Random, patient: Patient, measures: Measures, visit: int, infusions_before: float, infused: bool
) -> list[dict[str, Any]]:
    """The assessments of one visit (`visit` 1 is the first; 0 a follow-up after the course), without keys,
    patient, session or time: the C-SSRS screener, and each scale due before this infusion (`infused`: an
    infusion is given at this visit; a follow-up takes every scale)."""
    left = max(0.0, 1 - patient.response_fall * progress(patient, infusions_before))  # as PHQ-9 item 9's
    out = [_record(RECENT if visit == 1 else SINCE_LAST_CONTACT, cssrs(rng, measures, visit == 1, left))]
    for scale in measures.scales:
        if visit == 0 or (infused and infusions_before in scale.shape.schedule):
            fraction_left = 1 - scale.fall * progress(patient, infusions_before)
            out.append(_scored(rng, scale, measures, fraction_left, left))
    return out


def _record(instrument: str, items: list[Any]) -> dict[str, Any]:
    return {"kind": "assessment", "instrument": instrument, "items": items}


def _scored(rng: random.Random, scale: Scale, measures: Measures, fraction_left: float, left: float) -> dict[str, Any]:
    """A scale's answers at `fraction_left` of the baseline severity (noise per item), its safety item from
    the patient's ideation, the total sent along most of the time."""
    definition = DEFINITIONS[scale.shape.instrument]
    severity = scale.severity * fraction_left
    safety = {rule.link_id: rule.at_least for rule in definition.safety.rules}
    items = []
    for item in definition.items:
        level = severity * (1.0 if item.link_id in scale.leading or not _in_max_group(definition, item) else 0.3)
        if item.link_id in safety:  # thoughts of death or suicide: the ideation, fading with the response
            items.append(_answer(rng, item, measures.ideation * (safety[item.link_id] + 1.2) * left, SAFETY_SPREAD))
        else:
            items.append(_answer(rng, item, level * item.answer.high, 0.2 * item.answer.high))
    record = _record(definition.id, items)
    total = score(definition, items).total
    if definition.difficulty is not None and rng.random() < 0.85:
        record["difficulty"] = difficulty(rng, round(total * 27 / scale.top))  # as for a PHQ-9 of that severity
    if rng.random() < t.SHARE_TOTAL_SENT:
        record["total"] = total
    return record


def _in_max_group(definition: Definition, item: Item) -> bool:
    assert definition.total is not None
    return any(group.combine == "max" and item.link_id in group.link_ids for group in definition.total.groups)


def _answer(rng: random.Random, item: Item, mean: float, spread: float) -> int:
    """An answer near `mean`, give or take `spread` (a standard deviation), within the item's range."""
    return max(item.answer.low, min(item.answer.high, round(mean + rng.gauss(0, spread))))


def as_children(rng: random.Random, plan: Plan, records: list[dict[str, Any]]) -> list[Timed]:
    """A visit's assessments as the session's children: keyed by session and instrument, each completed 15-45
    minutes before the infusion start."""
    out: list[Timed] = []
    for n, record in enumerate(records, 1):
        minute = -rng.randint(15, 45)
        child = {**record, "key": f"{plan.key}.{record['instrument']}", "session_key": plan.key}
        out.append((minute, SCALE_ORDER + n, {**child, "completed_at": plan.at(minute)}))
    return out


def cssrs(rng: random.Random, measures: Measures, intake: bool, left: float) -> list[bool | None]:
    """C-SSRS screener answers: S1-S6 and, at intake, S6b; S3-S5 asked only after S2 yes, S6b after S6 yes."""
    if intake:
        wish = measures.indicated or (measures.ideation > 0 and rng.random() < 0.7)
        thoughts = measures.indicated or (measures.ideation > 0.5 and rng.random() < 0.5)
        chances = (t.CSSRS_METHOD, t.CSSRS_INTENT, t.CSSRS_PLAN)
        behaviour = rng.random() < t.CSSRS_BEHAVIOUR[measures.indicated]
    else:
        wish = rng.random() < min(1.0, 1.2 * measures.ideation * left)
        thoughts = wish and rng.random() < (0.6 if measures.indicated else 0.2) * left
        chances = (t.CSSRS_METHOD * left, t.CSSRS_INTENT * left, t.CSSRS_PLAN * left)
        behaviour = wish and rng.random() < t.CSSRS_SLC_BEHAVIOUR
    asked: list[bool | None] = [rng.random() < chance for chance in chances] if thoughts else [None, None, None]
    answers = [wish, thoughts, *asked, behaviour]
    if intake:
        answers.append(rng.random() < t.CSSRS_RECENT_BEHAVIOUR if behaviour else None)
    return answers
