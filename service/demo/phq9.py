"""PHQ-9 answers along a patient's response trajectory (responder, partial, non-responder)."""

from __future__ import annotations

import math
import random
from typing import Any

from service.demo import tables as t
from service.demo.course import Patient


def phq9_answers(rng: random.Random, patient: Patient, infusions_before: float) -> dict[str, Any]:
    """Items (and usually difficulty and total) after `infusions_before` infusions.

    The total falls from the baseline by `response_fall` by session 6 along 1 - exp(-k/tau);
    item 9 (self-harm thoughts) falls in proportion, so it is sometimes > 0 at baseline only.
    """
    k = infusions_before
    fraction_left = 1 - patient.response_fall * progress(patient, k)
    noise = rng.gauss(0, 1.3) if k else 0.0
    total = _clamp(round(patient.phq9_baseline * fraction_left + noise), 0, 27)
    item9 = _clamp(round(patient.phq9_item9 * fraction_left + rng.gauss(0, 0.3)), 0, 3)
    item9 = max(min(item9, total), total - 24)
    items = _spread(rng, total - item9) + [item9]
    answers: dict[str, Any] = {"items": items}
    if rng.random() < 0.85:
        answers["difficulty"] = difficulty(rng, total)
    if rng.random() < 0.7:
        answers["total"] = total
    return answers


def progress(patient: Patient, infusions_before: float) -> float:
    """How much of the patient's response has shown after `infusions_before` infusions: 0 at intake, 1 by the
    sixth infusion, along 1 - exp(-k/tau) (most of it after the first two or three)."""
    tau = patient.response_tau
    return (1 - math.exp(-infusions_before / tau)) / (1 - math.exp(-(t.SESSIONS_PER_COURSE - 1) / tau))


def _spread(rng: random.Random, total: int) -> list[int]:
    """Items 1-8 (each 0-3) summing to `total` (0-24), heavier on mood, interest and energy."""
    items = [0] * 8
    for _ in range(total):
        open_items = [i for i in range(8) if items[i] < 3]
        weights = [t.PHQ9_ITEM_WEIGHTS[i] for i in open_items]
        items[rng.choices(open_items, weights=weights)[0]] += 1
    return items


def difficulty(rng: random.Random, total: int) -> str:
    """The difficulty answer (PHQ-9, GAD-7) of a total: higher totals make things harder, give or take one."""
    levels = ("not_difficult", "somewhat", "very", "extremely")
    level = 0 if total < 5 else 1 if total < 12 else 2 if total < 20 else 3
    level = _clamp(level + rng.choice((-1, 0, 0, 0, 1)), 0, 3)
    return levels[level]


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))
