"""One active suicide-risk Flag per patient: join, open, keep, retract (service/safety/flags.py), and its invariants."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from service.mappers.codes import ENTERED_IN_ERROR, EXT_FLAG_DETAIL
from service.safety.flags import FlagPlan, Raised, details, plan_flags, withdrawn_from

BASE_URL = "http://fhir.test/fhir"


def own_flag(key: str, day: int = 1, status: str = "active") -> dict[str, Any]:
    """A record's own Flag as a mapper makes it: id from the key, naming the record's panel."""
    return {
        "resourceType": "Flag",
        "id": f"fl-{key.lower()}",
        "status": status,
        "extension": [{"url": EXT_FLAG_DETAIL, "valueReference": {"reference": f"Observation/ap-{key.lower()}"}}],
        "period": {"start": f"2026-03-{day:02d}T09:00:00Z"},
        "subject": {"reference": "Patient/p1"},
    }


def held(flag: dict[str, Any], version: int = 1, **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(flag), "meta": {"versionId": str(version)}, **changes}


def panel(key: str) -> str:
    return f"Observation/ap-{key.lower()}"


def test_a_first_positive_opens_its_own_flag() -> None:
    plan = plan_flags([Raised("M1", own_flag("A"))], {})

    assert [f["id"] for f in plan.opened] == ["fl-a"] and not plan.rewritten
    assert details(plan.opened[0]) == (panel("A"),)


def test_positives_of_one_patient_in_one_transaction_open_one_flag_naming_all_earliest_first() -> None:
    plan = plan_flags([Raised("M1", own_flag("B", day=5)), Raised("M1", own_flag("A", day=2))], {})

    (opened,) = plan.opened
    assert opened["id"] == "fl-a" and details(opened) == (panel("A"), panel("B"))


def test_each_patient_gets_their_own_flag() -> None:
    plan = plan_flags([Raised("M1", own_flag("A")), Raised("M2", own_flag("B"))], {})

    assert sorted(f["id"] for f in plan.opened) == ["fl-a", "fl-b"]


def test_a_new_positive_joins_the_active_flag_written_with_if_match() -> None:
    active = held(own_flag("A"), version=3)

    plan = plan_flags([Raised("M1", own_flag("B", day=9))], {"M1": [active]})

    assert not plan.opened
    (rewritten,) = plan.rewritten
    assert rewritten["id"] == "fl-a" and rewritten["status"] == "active"
    assert details(rewritten) == (panel("A"), panel("B"))
    (entry,) = plan.entries(BASE_URL)
    assert entry["request"] == {"method": "PUT", "url": "Flag/fl-a", "ifMatch": 'W/"3"'}
    assert "meta" not in entry["resource"]


def test_a_positive_sent_again_changes_nothing_whatever_the_clinician_did() -> None:
    for status in ("active", "inactive"):
        flag = held(own_flag("A"), version=4, status=status)

        plan = plan_flags([Raised("M1", own_flag("A"))], {"M1": [flag]})

        assert not plan.opened and not plan.rewritten
        assert list(plan.unchanged) == ["Flag/fl-a"]


def test_a_positive_after_a_clinician_closed_the_flag_opens_a_new_one_and_never_reopens_it() -> None:
    closed = held(own_flag("A"), status="inactive")

    plan = plan_flags([Raised("M1", own_flag("B", day=9))], {"M1": [closed]})

    assert not plan.rewritten
    (opened,) = plan.opened
    assert opened["id"] == "fl-b" and opened["status"] == "active" and details(opened) == (panel("B"),)


def test_a_record_whose_own_flag_a_clinician_closed_opens_a_free_variant_of_its_id() -> None:
    """A retracted-then-resent record: its own Flag id is held closed (naming another record), so it
    cannot be written over; the new Flag takes the first free variant."""
    closed = held(own_flag("A"), status="inactive")
    closed["extension"] = [{"url": EXT_FLAG_DETAIL, "valueReference": {"reference": panel("Z")}}]
    taken = held(own_flag("A"), status="inactive", id="fl-a-2")
    taken["extension"] = closed["extension"]

    plan = plan_flags([Raised("M1", own_flag("A"))], {"M1": [closed, taken]})

    assert [f["id"] for f in plan.opened] == ["fl-a-3"]


def test_a_flag_written_before_this_rule_is_joined_earliest_opened_first() -> None:
    older, newer = held(own_flag("A", day=1)), held(own_flag("B", day=4))

    plan = plan_flags([Raised("M1", own_flag("C", day=9))], {"M1": [newer, older]})

    assert [f["id"] for f in plan.rewritten] == ["fl-a"]


def test_a_retraction_removes_its_evidence_and_marks_the_flag_only_when_nothing_is_left() -> None:
    both = held(own_flag("A"))
    both["extension"].append({"url": EXT_FLAG_DETAIL, "valueReference": {"reference": panel("B")}})

    (kept,) = withdrawn_from([both], [panel("A")])
    assert kept["status"] == "active" and details(kept) == (panel("B"),)

    (gone,) = withdrawn_from([kept], [panel("B")])
    assert gone["status"] == ENTERED_IN_ERROR and details(gone) == (panel("B"),)  # still says what it was raised on
    assert withdrawn_from([gone], [panel("B")]) == []  # a retracted Flag is left alone
    assert withdrawn_from([both], ["Observation/other"]) == []


def test_a_session_retracted_by_put_takes_its_embedded_positive_out_of_the_flag() -> None:
    both = held(own_flag("A"))
    both["extension"].append({"url": EXT_FLAG_DETAIL, "valueReference": {"reference": panel("B")}})

    plan = plan_flags([Raised("M1", own_flag("A", status=ENTERED_IN_ERROR))], {"M1": [both]})

    (rewritten,) = plan.rewritten
    assert details(rewritten) == (panel("B"),) and not plan.opened


def test_a_clinicians_own_detail_keeps_the_flag_when_ours_is_retracted() -> None:
    flag = held(own_flag("A"))
    flag["extension"].append({"url": EXT_FLAG_DETAIL, "valueReference": {"reference": "Condition/c-1"}})

    (kept,) = withdrawn_from([flag], [panel("A")])

    assert kept["status"] == "active" and details(kept) == ("Condition/c-1",)


# -- invariants over any sequence of sends, re-sends, retractions and clinicians' reviews -----------

Step = tuple[str, str]  # ("send" | "retract" | "close", record key)
steps = st.lists(
    st.tuples(st.sampled_from(["send", "retract", "close"]), st.sampled_from(["A", "B", "C", "D"])), max_size=14
)


class Server:
    """The patient's Flags as a FHIR server holds them, written through FlagPlans."""

    def __init__(self) -> None:
        self.flags: dict[str, dict[str, Any]] = {}
        self.closed_by_clinician: set[str] = set()

    def write(self, plan: FlagPlan) -> None:
        for entry in plan.entries(BASE_URL):
            flag = entry["resource"]
            old = self.flags.get(flag["id"])
            if "ifMatch" in entry["request"]:
                assert old is not None and entry["request"]["ifMatch"] == f'W/"{old["meta"]["versionId"]}"'
            version = int(old["meta"]["versionId"]) + 1 if old else 1
            self.flags[flag["id"]] = {**flag, "meta": {"versionId": str(version)}}

    def held(self) -> dict[str, list[dict[str, Any]]]:
        return {"M1": [copy.deepcopy(f) for f in self.flags.values()]}


@settings(max_examples=300, deadline=None)
@given(steps)
def test_at_most_one_active_flag_every_positive_named_and_a_clinicians_close_stands(sequence: list[Step]) -> None:
    server = Server()
    positive: set[str] = set()
    for day, (action, key) in enumerate(sequence, start=1):
        statuses_before = {i: f["status"] for i, f in server.flags.items()}
        if action == "send":
            server.write(plan_flags([Raised("M1", own_flag(key, day=day))], server.held()))
            positive.add(key)
        elif action == "retract" and key in positive:
            server.write(FlagPlan(rewritten=withdrawn_from(server.held()["M1"], [panel(key)])))
            positive.discard(key)
        elif action == "close":
            active = [f for f in server.flags.values() if f["status"] == "active"]
            if active:
                active[0]["status"] = "inactive"
                active[0]["meta"]["versionId"] = str(int(active[0]["meta"]["versionId"]) + 1)
                server.closed_by_clinician.add(active[0]["id"])
        live = [f for f in server.flags.values() if f["status"] != ENTERED_IN_ERROR]
        assert sum(f["status"] == "active" for f in server.flags.values()) <= 1
        named = {d for f in live for d in details(f)}
        assert {panel(k) for k in positive} <= named  # no positive is ever without a Flag
        assert named <= {panel(k) for k in positive}  # and no live Flag names a retracted one
        for flag_id in server.closed_by_clinician:
            if statuses_before.get(flag_id) == "inactive":  # we never re-open what a clinician closed
                assert server.flags[flag_id]["status"] in ("inactive", ENTERED_IN_ERROR)
