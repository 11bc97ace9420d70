"""What happens in one infusion session: dose, adverse events, early stop, and its timeline."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from service.demo import tables as t
from service.demo.course import Patient, weighted

_PAUSE_OR_SLOW = ("infusion_paused", "infusion_slowed")


@dataclass
class Event:
    """One adverse event in a session; minutes count from the infusion start."""

    shape: t.EventShape
    onset: int
    action: str
    delay: int = 0  # minutes the infusion was paused or slowed for this event


@dataclass
class Plan:
    """One session's timeline, in minutes from the infusion start."""

    key: str
    index: int  # 1-based session number in the course
    start: datetime
    mg_per_kg: float  # planned
    duration: int  # planned
    end: int  # when the infusion actually ended
    discharge: int  # the last observation, an hour or more after the end
    infused: int = 0  # minutes the pump ran (less than end - start after a pause or slowing)
    events: list[Event] = field(default_factory=list)
    stop_reason: str | None = None

    def at(self, minutes: float) -> str:
        """ISO 8601 time, with the clinic offset, `minutes` after the infusion start."""
        return (self.start + timedelta(minutes=minutes)).isoformat()

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    def has(self, *events: str) -> Event | None:
        """The first adverse event of one of these kinds, if the session had one."""
        return next((e for e in self.events if e.shape.event in events), None)

    def episode(self, name: str) -> Event | None:
        """The adverse event whose readings show this monitoring episode (`tables.EventShape.episode`), if any."""
        return next((e for e in self.events if e.shape.episode == name), None)


def planned_mg_per_kg(patient: Patient, index: int) -> float:
    """0.5 mg/kg, titrated up by the patient's step from session 3 on, to at most 1.0 mg/kg."""
    return round(min(1.0, 0.5 + patient.escalation_step * max(0, index - 2)), 3)


def plan_session(rng: random.Random, patient: Patient, key: str, index: int, start: datetime) -> Plan:
    """Draw the adverse events and any early stop, then lay out the timeline around them."""
    duration = patient.duration_min
    events = [
        Event(shape, rng.randint(*shape.onset_min), weighted(rng, shape.actions))
        for shape in t.EVENTS
        if rng.random() < shape.rate
    ]
    stop_at, stop_reason = None, None
    for event in events:
        if event.shape.stops and rng.random() < event.shape.stops:
            high = max(5, min(event.shape.onset_min[1], duration - 6))
            event.onset = rng.randint(min(max(5, event.shape.onset_min[0]), high), high)
            event.action = "infusion_stopped"
            stop_at, stop_reason = event.onset + rng.randint(1, 4), event.shape.stop_reason
            break
    if stop_at is None and rng.random() < t.SHARE_STOPPED_OTHER:
        stop_at, stop_reason = rng.randint(8, duration - 5), rng.choice(t.STOP_REASONS_OTHER)

    infusion_end = stop_at if stop_at is not None else duration
    if stop_at is not None:  # what would have come later in the infusion did not happen
        events = [e for e in events if e.action == "infusion_stopped" or e.onset <= stop_at + 15]
    for event in events:
        if event.action in _PAUSE_OR_SLOW:
            if event.onset >= infusion_end:
                event.action = "none"  # nothing left to pause once the infusion is over
            else:
                event.delay = rng.randint(5, 10) if event.action == "infusion_paused" else rng.randint(5, 15)
    delays = sum(e.delay for e in events)
    if stop_at is None:  # pauses and slowing push the end back
        end, infused = duration + delays, duration
    else:  # stopped at a wall-clock time; pauses before it cut what ran
        end, infused = stop_at, max(1, stop_at - delays)
    discharge = end + rng.choice(t.OBSERVED_AFTER_END)
    for event in events:
        event.onset = min(event.onset, discharge - 3)
    events.sort(key=lambda e: e.onset)
    return Plan(
        key, index, start, planned_mg_per_kg(patient, index), duration, end, discharge, infused, events, stop_reason
    )
