"""The session's critical-episode Flag, purely: raised by the protocol's confirmed rules, naming each reading.

One Flag per session (deterministic id under the session's key), category `safety`, a local code with a fixed
text, `flag-detail` -> each reading that fired a confirmed rule, `period` from the first such reading to 24 h
after the session ends (open while it has not ended: it lapses without the service touching `status`),
`encounter` the session's visit. A rise from the baseline alone never raises it (only `Summary.fired` does).
What is done with a Flag the server already holds (a clinician's change, a retraction) is
`service.monitoring.flag_plan`'s.
"""

from __future__ import annotations

import datetime as dt

from service.mappers import codes, narrative
from service.mappers.build import Json, concept, when
from service.mappers.config import MappingConfig
from service.mappers.monitoring_report import head
from service.monitoring.confirmed import triggers
from service.monitoring.summary import Summary
from service.monitoring.words import rule_words

FLAG = "flag"


def critical_flag(summary: Summary, config: MappingConfig) -> Json:
    """The session's Flag as the summary raises it; with no confirmed rule fired, the same Flag naming no reading
    and without a period (what `flag_plan` compares a held Flag with, never written as such)."""
    held = summary.held
    found = triggers(summary.fired)
    if summary.fired:
        rules = "; ".join(rule_words(f.rule) for f in summary.fired)
        first = found[0].at if held.started_at is None else found[0].at.astimezone(held.started_at.tzinfo)
        sentence = f"{codes.NARRATIVE_CRITICAL_EPISODE} from {narrative.at(first)}: {rules}"  # the infusion's clock
    else:
        sentence = codes.NARRATIVE_CRITICAL_EPISODE
    detail = [{"url": codes.EXT_FLAG_DETAIL, "valueReference": {"reference": r.ref}} for r in found]
    out = head(held.key, FLAG, config, narrative.narrative(sentence), detail)
    out.update(
        status=codes.FLAG_ACTIVE,
        category=[concept((codes.FLAG_CATEGORY_SAFETY,), config)],
        code=concept((codes.CRITICAL_EPISODE,), config, codes.CRITICAL_EPISODE_TEXT),
    )
    if held.subject is not None:
        out["subject"] = {"reference": held.subject}
    if found:
        period = {"start": when(found[0].at)}
        if held.ended_at is not None:
            period["end"] = when(held.ended_at + dt.timedelta(hours=codes.FLAG_LAPSES_AFTER_HOURS))
        out["period"] = period
    out["encounter"] = {"reference": held.context.encounter}
    return out
