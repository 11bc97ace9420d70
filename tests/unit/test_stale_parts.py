"""Parts a record no longer has are deleted in the transaction that writes it, and only those."""

from __future__ import annotations

import copy
from typing import Any

from schemas import parse_record
from service.mappers import MappingConfig, transaction_bundle
from service.mappers.ids import resource_ref
from service.sync.outcomes import HAPI_STORAGE_CODES, WriteOutcome, written_resources
from tests.unit.examples import BASE

CONFIG = MappingConfig()


def _synced(records: list[Any], held: Any = lambda url: True) -> dict[str, Any]:
    """The Bundle the sync engine sends (`delete_stale`), by default without the diff's read."""
    return transaction_bundle(records, CONFIG, delete_stale=held)


def _session(**changes: Any) -> Any:
    raw = {**copy.deepcopy(BASE["infusion_session"]), "vital_signs": [], "adverse_events": []}
    raw |= {"monitoring_scores": [], "phq9_assessments": []}
    for field, value in changes.items():
        if value is None:
            raw.pop(field, None)
        else:
            raw[field] = value
    return parse_record(raw)


def _deletes(bundle: dict[str, Any]) -> list[str]:
    return [e["request"]["url"] for e in bundle["entry"] if e["request"]["method"] == "DELETE"]


def _refs(part: str, key: str) -> str:
    return resource_ref("infusion_session", key, part, CONFIG)


def test_a_session_sent_again_as_planned_deletes_its_administration_and_dosing_weight() -> None:
    planned = _session(status="planned", dose=None, ended_at=None)

    assert _deletes(_synced([planned])) == [
        _refs("medication-administration", planned.key),
        _refs("dosing-weight", planned.key),
    ]


def test_a_completed_session_with_its_weight_deletes_nothing_and_without_it_only_the_weight() -> None:
    completed = _session()
    assert completed.dose is not None and completed.dose.weight_kg is not None
    assert _deletes(_synced([completed])) == []

    dose = {"total_mg": completed.dose.total_mg}
    without_weight = _session(dose=dose)
    assert _deletes(_synced([without_weight])) == [_refs("dosing-weight", completed.key)]


def test_a_retraction_deletes_nothing_it_marks_what_the_server_holds() -> None:
    retracted = _session(status="entered_in_error", dose=None)

    assert _deletes(_synced([retracted])) == []


def test_with_the_diffs_read_only_parts_the_server_holds_are_deleted() -> None:
    planned = _session(status="planned", dose=None, ended_at=None)
    administration = _refs("medication-administration", planned.key)

    bundle = _synced([planned], held=lambda url: url == administration)

    assert _deletes(bundle) == [administration]
    assert _deletes(_synced([planned], held=lambda url: False)) == []


def test_an_offline_bundle_deletes_nothing_it_knows_no_server() -> None:
    """`$convert` and `map` answer what records map to; DELETEs there would contradict their contract."""
    planned = _session(status="planned", dose=None, ended_at=None)

    assert _deletes(transaction_bundle([planned], CONFIG)) == []


def test_a_cssrs_screener_whose_s2_became_no_deletes_the_items_now_unasked() -> None:
    raw = {**copy.deepcopy(BASE["assessment"]), "instrument": "cssrs_screen"}
    raw["items"] = [True, False, None, None, None, False, None]
    raw.pop("total", None)
    raw.pop("difficulty", None)
    record = parse_record(raw)

    deleted = _deletes(_synced([record]))

    assert deleted == [resource_ref("assessment", record.key, f"item-{q}", CONFIG) for q in ("S3", "S4", "S5", "S6b")]


def test_a_delete_that_found_nothing_is_not_reported_and_one_that_deleted_is() -> None:
    sent = {
        "entry": [{"request": {"method": "DELETE", "url": f"Observation/{x}"}} for x in ("gone", "never", "before")]
    }

    def nothing(code: str) -> dict[str, Any]:
        coding = {"system": HAPI_STORAGE_CODES, "code": code}
        return {"response": {"status": "204 No Content", "outcome": {"issue": [{"details": {"coding": [coding]}}]}}}

    answer = {
        "entry": [
            {"response": {"status": "204 No Content"}},
            nothing("SUCCESSFUL_DELETE_NOT_FOUND"),
            nothing("SUCCESSFUL_DELETE_ALREADY_DELETED"),
        ]
    }

    written = written_resources(sent, answer)

    assert [(w.id, w.outcome) for w in written] == [("gone", WriteOutcome.deleted)]
