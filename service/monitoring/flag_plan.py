"""What to do with the session's critical-episode Flag, given the one the server holds: pure, like `service.safety.flags`.

The service owns only the Flag's evidence: its `flag-detail` (the readings that fired a confirmed rule), the
`period` they give and the narrative that says so. Everything else is the clinician's:

- none held, or one held entered in error: a raised Flag is written (over the retracted one, with `If-Match`);
- a held Flag that is not active (a clinician closed it) is never written over, whatever the readings say now:
  one Flag per session, so no second one is opened (the summary still lists every rule that fired);
- an active Flag whose other elements differ from ours was changed by a clinician: never written over;
- an active Flag of ours: its evidence is brought up to date (`If-Match` on the version read, so a clinician's
  concurrent edit fails the write rather than being lost), or, when no triggering reading remains, it is
  entered-in-error keeping what it named (it was raised on withdrawn data); unchanged evidence writes nothing.

A clinician's change to only the period or evidence of a Flag still active is not told apart from ours and is
brought back in line with the readings (docs/clinical-safety.md, residual risks): close it to take it over.
"""

from __future__ import annotations

from typing import Any

import orjson

from service.mappers.codes import ENTERED_IN_ERROR, EXT_FLAG_DETAIL, FLAG_ACTIVE
from service.mappers.retract import retract
from service.safety.flags import FlagPlan, details, with_details

Json = dict[str, Any]
OURS = ("period", "text")
"""Elements the service writes from the readings (besides `flag-detail`)."""


def plan_session_flag(ours: Json, raised: bool, held: Json | None) -> FlagPlan:
    """The writes for the session's Flag: `ours` as the summary builds it (`raised` when a confirmed rule fired;
    otherwise a template naming nothing, never written), `held` the server's copy (None: none)."""
    ref = f"Flag/{ours['id']}"
    if held is None:
        return FlagPlan(opened=[ours]) if raised else FlagPlan()
    if held.get("status") == ENTERED_IN_ERROR:
        return FlagPlan(rewritten=[{**ours, "meta": held.get("meta", {})}]) if raised else FlagPlan()
    if held.get("status") != FLAG_ACTIVE or _clinicians(held) != _clinicians(ours):
        return FlagPlan(unchanged={ref: held})
    if not raised:
        return FlagPlan(rewritten=[retract([held])[0]])
    wanted = with_details(held, details(ours))
    for element in OURS:
        if element in ours:
            wanted[element] = ours[element]
        else:
            wanted.pop(element, None)
    if _content(wanted) == _content(held):
        return FlagPlan(unchanged={ref: held})
    return FlagPlan(rewritten=[wanted])


def _clinicians(flag: Json) -> bytes:
    """What a clinician may change: everything but meta, our evidence (`flag-detail`, period, narrative)."""
    kept = {k: v for k, v in flag.items() if k not in ("meta", "extension", *OURS)}
    others = [e for e in flag.get("extension", []) if e.get("url") != EXT_FLAG_DETAIL]
    if others:
        kept["extension"] = others
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)


def _content(flag: Json) -> bytes:
    return orjson.dumps({k: v for k, v in flag.items() if k != "meta"}, option=orjson.OPT_SORT_KEYS)
