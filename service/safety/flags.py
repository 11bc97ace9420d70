"""At most one active suicide-risk Flag per patient: which Flag a positive answer joins or opens, and what a retraction leaves.

The mappers still decide which answers are positive (thresholds included) and give each positive record
its own Flag, pointing at its panel (`flag-detail`). This module turns those per-record Flags into the
patient's one Flag, given the patient's suicide-risk Flags the server holds:

* a positive already named by a held Flag (active, or closed by a clinician) changes nothing: a re-sync
  of a clinic's history raises no alert again;
* a new positive joins the patient's active Flag (its `flag-detail` grows; the earliest-opened Flag when
  several are active, as Flags written before this rule may be);
* with no active Flag, the first new positive opens one with its own Flag's id (a free variant of it when a
  clinician closed that one), naming every new positive of that patient;
* a retracted record's evidence leaves every Flag naming it; a Flag left naming nothing else is marked
  entered-in-error (it was raised on withdrawn data) and keeps what it named;
* a record sent again with its answer now negative leaves its Flag as it is: closing it is a clinician's
  decision.

The service never re-opens, closes or otherwise rewrites a Flag a clinician changed: held Flags are
changed only by adding or removing our own `flag-detail`, and are written with `If-Match` on the version
read, so a clinician's concurrent edit makes the write fail rather than be lost.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from service.mappers.codes import ENTERED_IN_ERROR, EXT_FLAG_DETAIL, FLAG_ACTIVE
from service.mappers.retract import retract

Json = dict[str, Any]


@dataclass(frozen=True)
class Raised:
    """A record's own Flag as the mappers made it (JSON), and its patient's MRN."""

    mrn: str
    flag: Json

    @property
    def ref(self) -> str:
        return f"Flag/{self.flag['id']}"

    @property
    def evidence(self) -> tuple[str, ...]:
        return details(self.flag)

    @property
    def retracted(self) -> bool:
        return self.flag.get("status") == ENTERED_IN_ERROR

    @property
    def opened(self) -> str:
        return str((self.flag.get("period") or {}).get("start", ""))


@dataclass
class FlagPlan:
    """The Flag writes for one transaction: Flags opened, held Flags rewritten, and held Flags left as they are."""

    opened: list[Json] = field(default_factory=list)
    rewritten: list[Json] = field(default_factory=list)
    """Held Flags with their `flag-detail` changed (their `meta.versionId` is the one read: `If-Match`)."""
    unchanged: dict[str, Json] = field(default_factory=dict)
    """`Flag/<id>` -> a held Flag that already names a positive sent again (reported, not written)."""

    def entries(self, base_url: str) -> list[Json]:
        """Transaction entries: PUT for each opened Flag, PUT with `If-Match` for each rewritten one."""
        out = []
        for flag in self.opened:
            out.append(_put(flag, base_url))
        for flag in self.rewritten:
            version = (flag.get("meta") or {}).get("versionId")
            entry = _put({k: v for k, v in flag.items() if k != "meta"}, base_url)
            if version is not None:
                entry["request"]["ifMatch"] = f'W/"{version}"'
            out.append(entry)
        return out


def _put(flag: Json, base_url: str) -> Json:
    url = f"Flag/{flag['id']}"
    return {"fullUrl": f"{base_url.rstrip('/')}/{url}", "resource": flag, "request": {"method": "PUT", "url": url}}


def details(flag: Mapping[str, Any]) -> tuple[str, ...]:
    """The references a Flag's `flag-detail` extensions name, in order."""
    return tuple(
        str((ext.get("valueReference") or {}).get("reference"))
        for ext in flag.get("extension", [])
        if ext.get("url") == EXT_FLAG_DETAIL and (ext.get("valueReference") or {}).get("reference")
    )


def with_details(flag: Json, refs: Iterable[str]) -> Json:
    """`flag` with its `flag-detail` extensions replaced by `refs` (other extensions kept, first)."""
    out = copy.deepcopy(flag)
    others = [ext for ext in flag.get("extension", []) if ext.get("url") != EXT_FLAG_DETAIL]
    out["extension"] = others + [{"url": EXT_FLAG_DETAIL, "valueReference": {"reference": ref}} for ref in refs]
    return out


def plan_flags(raised: Iterable[Raised], held: Mapping[str, list[Json]]) -> FlagPlan:
    """The Flag writes for `raised` (the mappers' per-record Flags of one transaction) given `held`, each
    patient's suicide-risk Flags of ours on the server by MRN (see the module docstring)."""
    plan = FlagPlan()
    by_patient: dict[str, list[Raised]] = {}
    for one in raised:
        by_patient.setdefault(one.mrn, []).append(one)
    for mrn, ones in by_patient.items():
        _plan_patient(plan, ones, held.get(mrn, []))
    return plan


def _plan_patient(plan: FlagPlan, raised: list[Raised], held: list[Json]) -> None:
    withdrawn = {ref for one in raised if one.retracted for ref in one.evidence}
    changed = {f"Flag/{flag['id']}": flag for flag in withdrawn_from(held, withdrawn)}
    live = {f"Flag/{f['id']}": f for f in held if f.get("status") != ENTERED_IN_ERROR} | changed
    named = {d: ref for ref, flag in live.items() if flag.get("status") != ENTERED_IN_ERROR for d in details(flag)}
    new: list[Raised] = []
    for one in sorted((r for r in raised if not r.retracted), key=lambda r: (r.opened, r.ref)):
        holders = sorted({named[d] for d in one.evidence if d in named})
        for ref in holders:
            plan.unchanged.setdefault(ref, live[ref])
        if not holders:
            new.append(one)
    if new:
        evidence = [d for one in new for d in one.evidence]
        active = sorted(
            (flag for flag in live.values() if flag.get("status") == FLAG_ACTIVE),
            key=lambda f: (str((f.get("period") or {}).get("start", "")), f["id"]),
        )
        if active:
            target = active[0]
            changed[f"Flag/{target['id']}"] = with_details(target, [*details(target), *evidence])
        else:
            taken = {flag["id"] for flag in held if flag.get("status") != ENTERED_IN_ERROR}
            opener = with_details(new[0].flag, evidence)
            opener["id"] = _free_id(opener["id"], taken)
            plan.opened.append(opener)
    for ref, flag in changed.items():
        plan.unchanged.pop(ref, None)
        plan.rewritten.append(flag)


def _free_id(wanted: str, taken: set[str]) -> str:
    """`wanted`, or the first `wanted-<n>` no held Flag has (one a clinician closed keeps its id)."""
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"


def withdrawn_from(held: Iterable[Json], refs: Iterable[str]) -> list[Json]:
    """Held Flags that name any of `refs` (a retraction's resources), rewritten without them; one left
    naming nothing is entered-in-error instead, keeping what it named (so the record shows what it was
    raised on). Flags naming none of them, and retracted ones, are not returned."""
    gone = set(refs)
    out = []
    for flag in held:
        named = details(flag)
        if flag.get("status") == ENTERED_IN_ERROR or not gone.intersection(named):
            continue
        kept = [d for d in named if d not in gone]
        out.append(with_details(flag, kept) if kept else retract([flag])[0])
    return out
