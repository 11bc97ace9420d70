"""A clinician's view of each safety rule on the real HAPI: one active suicide-risk Flag per patient.

Per rule (PHQ-9 item 9 > 0, QIDS-SR16 item 12 >= 1, MADRS item 10 >= 2, a C-SSRS screener at moderate
or high): a positive answer raises an active Flag naming it and an alert in `$outcome-trend`; the same
assessment with the answer negative raises neither; two positives while the Flag is active leave one Flag naming both; a positive after a
clinician closed it opens a new one and the closed one stays closed; retracting takes the answer out of
the Flag, and the Flag is entered-in-error once nothing is left (issue 21, hazards H-07/H-08).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service.mappers.codes import ENTERED_IN_ERROR
from service.mappers.ids import patient_token, resource_ref
from service.safety.flags import details

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
WHEN = ["2026-03-02T09:00:00-05:00", "2026-03-09T09:00:00-05:00", "2026-03-16T09:00:00-05:00"]


def _phq9(positive: bool) -> dict[str, Any]:
    return {"items": [1, 1, 1, 1, 1, 1, 1, 1, 1 if positive else 0]}


def _qids(positive: bool) -> dict[str, Any]:
    items = [1] * 16
    items[11] = 1 if positive else 0  # item 12: thoughts of death or suicide
    return {"instrument": "qids_sr16", "items": items}


def _madrs(positive: bool) -> dict[str, Any]:
    return {"instrument": "madrs", "items": [3, 3, 2, 3, 2, 2, 2, 3, 2, 2 if positive else 1]}


def _cssrs(positive: bool) -> dict[str, Any]:
    # S1, S2 yes then S3 yes: moderate (a Flag); every answer no: negative (neither a Flag nor an alert).
    items = [True, True, True, False, False, False, None] if positive else [False, False, None, None, None, False, None]
    return {"instrument": "cssrs_screen", "items": items}


RULES: dict[str, tuple[str, str, str, Callable[[bool], dict[str, Any]]]] = {
    "phq9-item9": ("phq9-assessments", "phq9_assessment", "phq9", _phq9),
    "qids-item12": ("assessments", "assessment", "qids_sr16", _qids),
    "madrs-item10": ("assessments", "assessment", "madrs", _madrs),
    "cssrs-moderate": ("assessments", "assessment", "cssrs_screen", _cssrs),
}


class Clinic:
    """Sends one rule's assessments for one patient through the API, and reads the patient's Flags."""

    def __init__(self, api: Any, settings: Any, fhir_base_url: str, run_id: str, rule: str, mrn: str) -> None:
        self.api, self.config, self.base, self.rule = api, settings.mapping_config(), fhir_base_url, rule
        self.segment, self.kind, self.instrument, self.answers = RULES[rule]
        self.mrn, self.run_id = mrn, run_id

    def send(self, n: int, positive: bool) -> str:
        key = f"{self.rule}-{n}-{self.run_id}"
        body = {"patient": {"mrn": self.mrn}, "completed_at": WHEN[n], **self.answers(positive)}
        answer = self.api.put(f"/v1/{self.segment}/{key}", json=body)
        assert answer.status_code in (200, 201), answer.text
        return key

    def alerts(self) -> list[dict[str, Any]]:
        """The `$outcome-trend` alerts of this rule's instrument, newest first."""
        answer = self.api.post("/v1/patients/$outcome-trend", json={"mrn": self.mrn, "instrument": self.instrument})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["alerts"])

    def panel(self, key: str) -> str:
        return resource_ref(self.kind, key, "panel", self.config)

    def flags(self) -> list[dict[str, Any]]:
        form = {"patient.identifier": patient_token(self.mrn, self.config), "_count": "100"}
        found = httpx.post(f"{self.base}/Flag/_search", data=form, headers={"Accept": "application/fhir+json"})
        found.raise_for_status()
        return sorted((e["resource"] for e in found.json().get("entry", [])), key=lambda f: f["id"])

    def active(self) -> list[dict[str, Any]]:
        return [f for f in self.flags() if f["status"] == "active"]

    def close(self, flag: dict[str, Any]) -> None:
        """A clinician reviews the risk and closes the Flag (in the EHR, not through us)."""
        closed = {**flag, "status": "inactive"}
        assert httpx.put(f"{self.base}/Flag/{flag['id']}", json=closed, headers=FHIR_JSON).status_code == 200


@pytest.fixture(params=sorted(RULES))
def clinic(request, api, settings, fhir_base_url, run_id) -> Clinic:
    """The API tracks what it writes (Flags included) and cleans it up after the test."""
    return Clinic(api, settings, fhir_base_url, run_id, request.param, f"F1-{request.param}-{run_id}")


def test_a_negative_answer_raises_no_flag_and_a_positive_one_raises_one_naming_it(clinic: Clinic) -> None:
    clinic.send(0, positive=False)
    assert clinic.flags() == [] and clinic.alerts() == []

    key = clinic.send(1, positive=True)

    (flag,) = clinic.flags()
    assert flag["status"] == "active" and details(flag) == (clinic.panel(key),)
    (alert,) = clinic.alerts()
    assert alert["key"] == key and alert["positive"]


@pytest.mark.needs("$validate")
def test_two_positives_while_the_flag_is_active_leave_one_flag_naming_both(clinic: Clinic) -> None:
    first, second = clinic.send(0, positive=True), clinic.send(1, positive=True)
    clinic.send(1, positive=True)  # sent again: nothing added twice

    (flag,) = clinic.flags()
    assert flag["status"] == "active" and details(flag) == (clinic.panel(first), clinic.panel(second))
    checked = httpx.post(f"{clinic.base}/Flag/$validate", json=flag, headers=FHIR_JSON, timeout=120).json()
    assert [i for i in checked.get("issue", []) if i["severity"] in ("error", "fatal")] == []


def test_a_positive_after_a_clinician_closed_the_flag_opens_a_new_one_and_the_closed_stays_closed(
    clinic: Clinic,
) -> None:
    first = clinic.send(0, positive=True)
    (opened,) = clinic.active()
    clinic.close(opened)
    clinic.send(0, positive=True)  # the reviewed answer sent again: no new alert
    assert clinic.active() == []

    later = clinic.send(1, positive=True)

    flags = {f["id"]: f for f in clinic.flags()}
    assert flags[opened["id"]]["status"] == "inactive" and details(flags[opened["id"]]) == (clinic.panel(first),)
    (new,) = clinic.active()
    assert new["id"] != opened["id"] and details(new) == (clinic.panel(later),)


def test_retracting_takes_the_answer_out_and_the_flag_is_retracted_when_none_is_left(clinic: Clinic) -> None:
    first, second = clinic.send(0, positive=True), clinic.send(1, positive=True)

    assert clinic.api.delete(f"/v1/{clinic.segment}/{first}").status_code == 204
    (flag,) = clinic.flags()
    assert flag["status"] == "active" and details(flag) == (clinic.panel(second),)

    assert clinic.api.delete(f"/v1/{clinic.segment}/{second}").status_code == 204
    (flag,) = clinic.flags()
    assert flag["status"] == ENTERED_IN_ERROR

    again = clinic.send(1, positive=True)  # the record comes back: flagged again
    (active,) = clinic.active()
    assert details(active) == (clinic.panel(again),)
