"""Which patients a write holds for the suicide-risk Flag step (`service.safety.sync.flag_writers`, H-36)."""

from __future__ import annotations

import copy
from typing import Any

import service.sync  # noqa: F401  (loaded before service.safety.sync, which imports from it)
from schemas import parse_record
from service.mappers import transaction_bundle
from service.safety.sync import flag_writers
from service.settings import Settings
from service.sync.outcomes import WriteOutcome, WrittenResource
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE

CONFIG = Settings(FHIR_BASE_URL=BASE).mapping_config()
POSITIVE_ITEMS = [0, 0, 0, 0, 0, 0, 0, 0, 2]


def record(kind: str, mrn: str, **changes: Any) -> Any:
    out = {**copy.deepcopy(EXAMPLES[kind]), **changes}
    out["patient"] = {**out["patient"], "mrn": mrn}
    return parse_record(out)


def phq9(key: str, mrn: str, items: list[int]) -> Any:
    return record("phq9_assessment", mrn, key=key, session_key=None, items=items, total=sum(items))


def flag_refs(bundle: dict[str, Any]) -> list[str]:
    return [e["request"]["url"] for e in bundle["entry"] if e["request"]["url"].startswith("Flag/")]


def test_only_the_patients_whose_flag_the_bundle_raises_are_held() -> None:
    records = [
        phq9("P-1", "MRN-A", POSITIVE_ITEMS),
        phq9("P-2", "MRN-B", [1] * 9),  # item 9 answered "several days": positive too
        phq9("P-3", "MRN-C", [1, 1, 1, 1, 1, 1, 1, 1, 0]),  # negative
        record("vital_sign", "MRN-D", key="V-1", session_key=None),
    ]
    bundle = transaction_bundle(records, CONFIG)
    assert len(flag_refs(bundle)) == 2
    assert flag_writers(records, bundle, CONFIG) == ["MRN-A", "MRN-B"]


def test_an_embedded_positive_holds_its_patient() -> None:
    embedded = {"key": "P-E", "completed_at": EXAMPLES["infusion_session"]["started_at"], "items": POSITIVE_ITEMS}
    session = record("infusion_session", "MRN-S", phq9_assessments=[{**embedded, "difficulty": "somewhat"}])
    bundle = transaction_bundle([session], CONFIG)
    assert flag_writers([session], bundle, CONFIG) == ["MRN-S"]


def test_a_flag_the_diff_left_out_still_holds_its_patient() -> None:
    """A Conflict retry maps without the diff, so it may send that Flag again: the lock must already cover it."""
    positive = phq9("P-1", "MRN-A", POSITIVE_ITEMS)
    (ref,) = flag_refs(transaction_bundle([positive], CONFIG))
    left_out = [WrittenResource("Flag", ref.split("/")[1], "3", WriteOutcome.unchanged)]
    bundle = transaction_bundle([positive], CONFIG, unchanged=lambda url, ours, rewrites: url == ref)
    assert flag_refs(bundle) == []
    assert flag_writers([positive], bundle, CONFIG) == []
    assert flag_writers([positive], bundle, CONFIG, left_out) == ["MRN-A"]


def test_a_bundle_of_readings_and_negative_scores_holds_no_one() -> None:
    records = [phq9("P-3", "MRN-C", [0] * 9), record("vital_sign", "MRN-C", key="V-1", session_key=None)]
    assert flag_writers(records, transaction_bundle(records, CONFIG), CONFIG) == []
