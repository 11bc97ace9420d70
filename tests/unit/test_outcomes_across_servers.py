"""Created / updated / unchanged and versions from HAPI- and Medplum-shaped transaction answers (pytest-httpx).

HAPI answers 201 to a PUT that creates, with integer versions in `location` and a bare `etag`, and storage
codes; Medplum answers 200 to every PUT, with UUID versions found only in the entry's `resource.meta`, no
version in `location` and no `etag` (docs/compatibility.md, rows 3 and 4; shapes taken from both beds).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from schemas import parse_record
from service.fhir_client import open_fhir_client
from service.settings import Settings
from service.sync import SyncEngine
from service.sync.outcomes import HAPI_STORAGE_CODES, HeldBefore, WriteOutcome, written_resources
from tests.unit.examples import BASE as EXAMPLES
from tests.unit.fake_fhir import BASE, CAPABILITY

HAPI, MEDPLUM = "hapi", "medplum"
ALL_OK = {
    "resourceType": "OperationOutcome",
    "id": "ok",
    "issue": [{"severity": "information", "code": "informational"}],
}


class Server:
    """A FHIR server's store, answering transactions the way `style` does (HAPI or Medplum)."""

    def __init__(self, style: str, *, new_version_when_unchanged: bool = True) -> None:
        self.style = style
        self.new_version_when_unchanged = new_version_when_unchanged
        """Medplum's router writes a version for every PUT; its server keeps the old one for an unchanged PUT."""
        self.store: dict[str, dict[str, Any]] = {}
        self.id_searches: list[str] = []
        self.patients: dict[str, str] = {}
        """`ifNoneExist` -> `Patient/id` of the Patients created."""

    def version_after(self, held: dict[str, Any] | None) -> str:
        if self.style == HAPI:
            return str(int((held or {}).get("meta", {}).get("versionId", "0")) + 1)
        return str(uuid.uuid4())

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/fhir").strip("/")
        if path == "metadata":
            return httpx.Response(200, json=CAPABILITY)
        if path.endswith("/_search"):
            form = {k: v[-1] for k, v in parse_qs(request.content.decode()).items()}
            resource_type = path.split("/", 1)[0]
            found = []
            if "_id" in form:
                self.id_searches.append(resource_type)
                found = [self.store[r] for i in form["_id"].split(",") if (r := f"{resource_type}/{i}") in self.store]
            elif "identifier" in form:  # the Patient lookup (its MRNs need no escaping here)
                tokens = set(form["identifier"].split(","))
                found = [
                    held
                    for ref, held in self.store.items()
                    if ref.startswith(f"{resource_type}/")
                    and any(f"{i['system']}|{i['value']}" in tokens for i in held.get("identifier", []))
                ]
            entries = [{"resource": r, "search": {"mode": "match"}} for r in found]
            return httpx.Response(
                200, json={"resourceType": "Bundle", "type": "searchset", "total": len(found), "entry": entries}
            )
        assert path == "" and request.method == "POST", f"unexpected {request.method} {path}"
        return httpx.Response(200, json=self.transaction(orjson.loads(request.content)))

    def transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        refs: dict[str, str] = {}
        answers = []
        for entry in bundle["entry"]:
            request, resource = entry["request"], copy.deepcopy(entry.get("resource"))
            if request["method"] == "POST":  # our conditional Patient create
                found = self.patients.get(request["ifNoneExist"])
                ref = found or f"{request['url']}/{uuid.uuid4().hex[:12]}"
                self.patients[request["ifNoneExist"]] = refs[entry["fullUrl"]] = ref
                answers.append(self.matched(ref) if found else self.answer(ref, resource, "201", None))
                continue
            for urn, ref in refs.items():
                resource = orjson.loads(orjson.dumps(resource).replace(urn.encode(), ref.encode()))
            ref = request["url"]
            held = self.store.get(ref)
            answers.append(self.answer(ref, resource, "201" if held is None else "200", held))
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}

    def matched(self, ref: str) -> dict[str, Any]:
        """A conditional create that found its resource: written nothing."""
        if self.style == HAPI:
            code = "SUCCESSFUL_CREATE_WITH_CONDITIONAL_MATCH"
            outcome = {"issue": [{"details": {"coding": [{"system": HAPI_STORAGE_CODES, "code": code}]}}]}
            return {"response": {"status": "200 OK", "location": f"{ref}/_history/1", "etag": "1", "outcome": outcome}}
        return {"response": {"outcome": ALL_OK, "status": "200", "location": ref}, "resource": self.store[ref]}

    def answer(self, ref: str, resource: dict[str, Any], status: str, held: dict[str, Any] | None) -> dict[str, Any]:
        same = held is not None and _content(held) == _content(resource)
        version = (
            held["meta"]["versionId"] if same and not self.new_version_when_unchanged else self.version_after(held)
        )
        resource = {**resource, "id": ref.split("/", 1)[1], "meta": {"versionId": version}}
        self.store[ref] = resource
        if self.style == HAPI:
            code = "SUCCESSFUL_UPDATE_AS_CREATE" if status == "201" else "SUCCESSFUL_UPDATE"
            outcome = {"issue": [{"details": {"coding": [{"system": HAPI_STORAGE_CODES, "code": code}]}}]}
            text = {"201": "201 Created", "200": "200 OK"}[status]
            return {
                "response": {
                    "status": text,
                    "location": f"{ref}/_history/{version}",
                    "etag": version,
                    "outcome": outcome,
                }
            }
        status = "201" if ref.startswith("Patient/") else "200"  # Medplum: a create is 201 only by POST
        return {"response": {"outcome": ALL_OK, "status": status, "location": ref}, "resource": resource}


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


def vital(key: str, systolic: int = 130) -> Any:
    return parse_record({**EXAMPLES["vital_sign"], "key": key, "session_key": None, "systolic": systolic})


@asynccontextmanager
async def engine_on(server: Server, httpx_mock: HTTPXMock) -> AsyncIterator[SyncEngine]:
    httpx_mock.add_callback(server, is_reusable=True)
    settings = Settings(FHIR_BASE_URL=BASE)
    async with open_fhir_client(settings) as fhir:
        yield SyncEngine(fhir, settings.mapping_config())


def outcomes(result: Any) -> list[tuple[str, WriteOutcome]]:
    return sorted((r.resource_type, r.outcome) for r in result.resources)


@pytest.mark.parametrize("style", [HAPI, MEDPLUM])
@pytest.mark.parametrize("diff", [False, True], ids=["api", "batch-diff"])
async def test_a_put_that_creates_is_created_with_the_servers_version_whatever_its_status(
    style: str, diff: bool, httpx_mock: HTTPXMock
) -> None:
    server = Server(style)
    async with engine_on(server, httpx_mock) as engine:
        result = await engine.upsert([vital("V-1")], diff=diff)

        assert outcomes(result) == [("Observation", WriteOutcome.created), ("Patient", WriteOutcome.created)]
        (observation,) = [r for r in result.resources if r.resource_type == "Observation"]
        assert observation.version == server.store[f"Observation/{observation.id}"]["meta"]["versionId"]
        assert all(r.version is not None for r in result.resources)
        assert result.created_any  # the API answers 201


@pytest.mark.parametrize("style", [HAPI, MEDPLUM])
async def test_a_rewrite_is_updated_with_the_new_version(style: str, httpx_mock: HTTPXMock) -> None:
    server = Server(style)
    async with engine_on(server, httpx_mock) as engine:
        await engine.upsert([vital("V-1")])
        (ref,) = [r for r in server.store if r.startswith("Observation/")]
        first = server.store[ref]["meta"]["versionId"]

        result = await engine.upsert([vital("V-1", systolic=150)])

        (observation,) = [r for r in result.resources if r.resource_type == "Observation"]
        assert observation.outcome is WriteOutcome.updated
        assert observation.version == server.store[ref]["meta"]["versionId"] != first
        assert not result.created_any  # the API answers 200


@pytest.mark.parametrize("style", [HAPI, MEDPLUM])
@pytest.mark.parametrize("diff", [False, True], ids=["api", "batch-diff"])
async def test_a_suicide_risk_flag_the_safety_step_opens_is_created(
    style: str, diff: bool, httpx_mock: HTTPXMock
) -> None:
    server = Server(style)
    positive = {**EXAMPLES["phq9_assessment"], "session_key": None, "items": [1, 1, 1, 1, 1, 1, 1, 1, 2], "total": 10}
    async with engine_on(server, httpx_mock) as engine:
        result = await engine.upsert([parse_record(positive)], diff=diff)

        assert "Flag" in {r.resource_type for r in result.resources}
        assert result.counts() == {"created": len(result.resources)}


async def test_a_put_that_left_the_version_as_it_was_is_unchanged_on_a_server_without_storage_codes(
    httpx_mock: HTTPXMock,
) -> None:
    server = Server(MEDPLUM, new_version_when_unchanged=False)  # Medplum's server on an unchanged PUT
    async with engine_on(server, httpx_mock) as engine:
        await engine.upsert([vital("V-1")])
        result = await engine.upsert([vital("V-1")])
        (observation,) = [r for r in result.resources if r.resource_type == "Observation"]
        assert observation.outcome is WriteOutcome.unchanged


async def test_a_server_that_tells_creates_is_read_before_writing_only_until_it_did(httpx_mock: HTTPXMock) -> None:
    hapi, medplum = Server(HAPI), Server(MEDPLUM)
    for server in (hapi, medplum):
        async with engine_on(server, httpx_mock) as engine:
            await engine.upsert([vital("V-1")])
            await engine.upsert([vital("V-2")])
    assert hapi.id_searches == ["Observation"]  # the first write only: its 201 told how HAPI answers a create
    assert medplum.id_searches == ["Observation", "Observation"]  # every write: its 200 tells nothing


def test_a_medplum_answer_names_the_version_in_its_resource_and_a_conditional_match_is_unchanged() -> None:
    sent = {
        "entry": [
            {"request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "PUT", "url": "Observation/a"}},
            {"request": {"method": "PUT", "url": "Observation/b"}},
            {"request": {"method": "PUT", "url": "Observation/c"}},
        ]
    }
    uuids = [str(uuid.UUID(int=n)) for n in range(4)]
    answer = {
        "entry": [
            {"response": {"status": "200", "location": "Patient/p"}, "resource": {"meta": {"versionId": uuids[0]}}},
            {"response": {"status": "200", "location": "Observation/a"}, "resource": {"meta": {"versionId": uuids[1]}}},
            {"response": {"status": "200", "location": "Observation/b"}, "resource": {"meta": {"versionId": uuids[2]}}},
            {"response": {"status": "200", "location": "Observation/c"}, "resource": {"meta": {"versionId": uuids[3]}}},
        ]
    }
    before = HeldBefore.of(
        ["Observation/a", "Observation/b", "Observation/c"],
        {
            "Observation/b": {"meta": {"versionId": "an older one"}},
            "Observation/c": {"meta": {"versionId": uuids[3]}},
        },
    )
    written = written_resources(sent, answer, before)
    assert [(w.id, w.version, w.outcome) for w in written] == [
        ("p", uuids[0], WriteOutcome.unchanged),  # a conditional create that found its Patient writes nothing
        ("a", uuids[1], WriteOutcome.created),  # not held before
        ("b", uuids[2], WriteOutcome.updated),
        ("c", uuids[3], WriteOutcome.unchanged),  # held at the very version the answer names
    ]
    # unread, a 200 is what the FHIR spec makes it: an update
    assert [w.outcome for w in written_resources(sent, answer)][1:] == [WriteOutcome.updated] * 3


def test_hapis_bare_etag_is_a_version() -> None:
    sent = {"entry": [{"request": {"method": "PUT", "url": "Observation/a"}}]}
    answer = {"entry": [{"response": {"status": "201 Created", "location": "Observation/a", "etag": "7"}}]}
    ((written),) = written_resources(sent, answer)
    assert (written.version, written.outcome) == ("7", WriteOutcome.created)
