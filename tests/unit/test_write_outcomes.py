"""Reading HAPI's transaction responses into created / updated / unchanged / deleted."""

from __future__ import annotations

from service.sync.outcomes import HAPI_STORAGE_CODES, WriteOutcome, written_resources


def _answer(status: str, location: str, code: str | None) -> dict:
    response: dict = {"status": status, "location": location, "etag": '"1"'}
    if code:
        response["outcome"] = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "details": {"coding": [{"system": HAPI_STORAGE_CODES, "code": code}]},
                }
            ],
        }
    return {"response": response}


def test_each_storage_outcome_is_read() -> None:
    sent = {
        "entry": [
            {"request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "PUT", "url": "Observation/a"}},
            {"request": {"method": "PUT", "url": "Observation/b"}},
            {"request": {"method": "PUT", "url": "Observation/c"}},
            {"request": {"method": "DELETE", "url": "AdverseEvent/d"}},
            {"request": {"method": "PUT", "url": "Observation/e"}},
        ]
    }
    answer = {
        "entry": [
            _answer("200 OK", "Patient/1002/_history/1", "SUCCESSFUL_CREATE_WITH_CONDITIONAL_MATCH"),
            _answer("201 Created", "Observation/a/_history/1", "SUCCESSFUL_UPDATE_AS_CREATE"),
            _answer("200 OK", "Observation/b/_history/3", "SUCCESSFUL_UPDATE"),
            _answer("200 OK", "Observation/c/_history/2", "SUCCESSFUL_UPDATE_NO_CHANGE"),
            {"response": {"status": "204 No Content"}},
            _answer("200 OK", "http://x/fhir/Observation/e/_history/4", None),
        ]
    }
    written = written_resources(sent, answer)
    assert [(w.resource_type, w.id, w.version, w.outcome) for w in written] == [
        ("Patient", "1002", "1", WriteOutcome.unchanged),
        ("Observation", "a", "1", WriteOutcome.created),
        ("Observation", "b", "3", WriteOutcome.updated),
        ("Observation", "c", "2", WriteOutcome.unchanged),
        ("AdverseEvent", "d", None, WriteOutcome.deleted),
        ("Observation", "e", "4", WriteOutcome.updated),  # a server without storage codes: 200 reads as updated
    ]
