"""The FHIR client's own behaviour: retries, Retry-After, error classification (pytest-httpx)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock

from service.errors import (
    Conflict,
    FhirAuthRefused,
    FhirLacksCapability,
    FhirMisconfigured,
    FhirRejected,
    FhirUnavailable,
    NotFound,
)
from service.fhir_client import FhirClient, build_http_client
from service.request_context import Caller, request_scope
from service.retry import RetryPolicy, parse_retry_after

BASE = "http://fhir.test/fhir"
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "processing", "diagnostics": "HAPI-0450: bad thing"}],
}
BUNDLE = {"resourceType": "Bundle", "type": "transaction", "entry": []}


class RecordingSleep:
    """A fake sleep: records delays instead of waiting, so retry tests run instantly."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
async def client(sleeps: RecordingSleep):
    policy = RetryPolicy(
        max_attempts=4, max_total_s=60, backoff_base_s=0.5, backoff_cap_s=4, retry_after_cap_s=10, sleep=sleeps
    )
    async with build_http_client(BASE) as http:
        yield FhirClient(http, policy)


async def test_retries_503_then_succeeds(client: FhirClient, httpx_mock: HTTPXMock, sleeps: RecordingSleep) -> None:
    httpx_mock.add_response(method="GET", url=f"{BASE}/Patient/p1", status_code=503)
    httpx_mock.add_response(method="GET", url=f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    resource = await client.read("Patient", "p1")
    assert resource["id"] == "p1"
    assert len(sleeps.delays) == 1
    assert 0 <= sleeps.delays[0] <= 0.5
    assert client.stats["retries"] == 1


async def test_retries_transport_errors(client: FhirClient, httpx_mock: HTTPXMock, sleeps: RecordingSleep) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), method="GET", url=f"{BASE}/metadata")
    httpx_mock.add_response(method="GET", url=f"{BASE}/metadata", json={"resourceType": "CapabilityStatement"})
    assert (await client.capabilities())["resourceType"] == "CapabilityStatement"
    assert len(sleeps.delays) == 1


async def test_retry_after_seconds_is_honoured_and_capped(
    client: FhirClient, httpx_mock: HTTPXMock, sleeps: RecordingSleep
) -> None:
    httpx_mock.add_response(method="GET", status_code=429, headers={"Retry-After": "3"})
    httpx_mock.add_response(method="GET", status_code=503, headers={"Retry-After": "120"})
    httpx_mock.add_response(method="GET", json={"resourceType": "Patient", "id": "p1"})
    await client.read("Patient", "p1")
    assert sleeps.delays == [3.0, 10.0]


def test_retry_after_http_date_is_parsed() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("status", [400, 422])
async def test_no_retry_on_client_errors(
    client: FhirClient, httpx_mock: HTTPXMock, sleeps: RecordingSleep, status: int
) -> None:
    httpx_mock.add_response(method="POST", url=f"{BASE}/", status_code=status, json=OUTCOME)
    with pytest.raises(FhirRejected) as caught:
        await client.transaction(BUNDLE, idempotent=True)
    assert sleeps.delays == []
    assert caught.value.status_code == status
    assert caught.value.diagnostics() == ["error: HAPI-0450: bad thing"]
    assert len(httpx_mock.get_requests()) == 1


async def test_gives_up_after_the_attempt_bound(
    client: FhirClient, httpx_mock: HTTPXMock, sleeps: RecordingSleep
) -> None:
    httpx_mock.add_response(method="GET", status_code=503, json=OUTCOME, is_reusable=True)
    with pytest.raises(FhirUnavailable) as caught:
        await client.read("Patient", "p1")
    assert len(httpx_mock.get_requests()) == 4
    assert len(sleeps.delays) == 3
    assert caught.value.status_code == 503
    assert caught.value.diagnostics() == ["error: HAPI-0450: bad thing"]


async def test_gives_up_when_the_total_time_bound_would_pass(httpx_mock: HTTPXMock, sleeps: RecordingSleep) -> None:
    policy = RetryPolicy(max_attempts=10, max_total_s=5, retry_after_cap_s=30, sleep=sleeps)
    httpx_mock.add_response(method="GET", status_code=503, headers={"Retry-After": "20"}, is_reusable=True)
    async with build_http_client(BASE) as http:
        with pytest.raises(FhirUnavailable):
            await FhirClient(http, policy).read("Patient", "p1")
    assert sleeps.delays == []


async def test_non_idempotent_transaction_is_not_retried(
    client: FhirClient, httpx_mock: HTTPXMock, sleeps: RecordingSleep
) -> None:
    httpx_mock.add_response(method="POST", url=f"{BASE}/", status_code=503)
    with pytest.raises(FhirUnavailable):
        await client.transaction(BUNDLE, idempotent=False)
    assert sleeps.delays == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, NotFound),
        (410, NotFound),
        (409, Conflict),
        (412, Conflict),
        (401, FhirAuthRefused),
        (403, FhirAuthRefused),
        (400, FhirRejected),
        (422, FhirRejected),
    ],
)
async def test_errors_are_classified_by_what_the_caller_must_do(
    client: FhirClient, httpx_mock: HTTPXMock, status: int, error: type[Exception]
) -> None:
    httpx_mock.add_response(method="GET", status_code=status, json=OUTCOME)
    with pytest.raises(error) as caught:
        await client.read("Observation", "o1")
    assert caught.value.operation_outcome == OUTCOME


@pytest.mark.parametrize("operation", ["transaction", "search", "metadata"])
async def test_a_404_from_the_base_url_is_a_configuration_error_not_a_missing_record(
    client: FhirClient, httpx_mock: HTTPXMock, operation: str
) -> None:
    httpx_mock.add_response(status_code=404, text="<html>Not Found</html>")
    with pytest.raises(FhirMisconfigured):
        if operation == "transaction":
            await client.transaction(BUNDLE, idempotent=True)
        elif operation == "search":
            await client.search("Procedure", {"_id": "p1"})
        else:
            await client.require_r4()


async def test_an_html_answer_is_not_a_fhir_server(client: FhirClient, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=200, text="<html>Welcome to nginx</html>")
    with pytest.raises(FhirMisconfigured):
        await client.require_r4()


async def test_a_fhir_server_of_another_version_is_a_configuration_error(
    client: FhirClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(json={"resourceType": "CapabilityStatement", "fhirVersion": "5.0.0"})
    with pytest.raises(FhirMisconfigured, match="R4"):
        await client.require_r4()


async def test_search_goes_by_post_form_and_keeps_values_out_of_the_url(
    client: FhirClient, httpx_mock: HTTPXMock
) -> None:
    page2 = f"{BASE}?_getpages=abc&_getpagesoffset=1"
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/Patient/_search",
        json={
            "resourceType": "Bundle",
            "link": [{"relation": "next", "url": page2}],
            "entry": [{"resource": {"resourceType": "Patient", "id": "a"}, "search": {"mode": "match"}}],
        },
    )
    httpx_mock.add_response(
        method="GET",
        url=page2,
        json={"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "b"}}]},
    )
    found = await client.search("Patient", {"identifier": "urn:mrn|MRN\\,42"})
    assert [r["id"] for r in found] == ["a", "b"]
    first = httpx_mock.get_requests()[0]
    assert "MRN" not in str(first.url)
    assert b"identifier=urn%3Amrn%7CMRN%5C%2C42" in first.content


def _capping_server(matches: int, cap: int, *, honours_offset: bool) -> Callable[[httpx.Request], httpx.Response]:
    """Medplum's engine (row 8): `_count` cuts the answer, no `next` link, `total` says how many matched."""

    def answer(request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        offset = int(form.get("_offset", ["0"])[0]) if honours_offset else 0
        ids = [f"o{i}" for i in range(matches)][offset : offset + cap]
        entries = [{"resource": {"resourceType": "Observation", "id": i}, "search": {"mode": "match"}} for i in ids]
        return httpx.Response(200, json={"resourceType": "Bundle", "total": matches, "entry": entries})

    return answer


async def test_a_search_capped_without_a_next_link_reads_the_rest_by_offset(
    client: FhirClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_callback(_capping_server(205, 100, honours_offset=True), is_reusable=True)

    found = await client.search("Observation", {"subject": "Patient/p", "_count": "100"})

    assert [r["id"] for r in found] == [f"o{i}" for i in range(205)]
    offsets = [parse_qs(r.content.decode()).get("_offset") for r in httpx_mock.get_requests()]
    assert offsets == [None, ["100"], ["200"]]


async def test_a_search_capped_with_no_way_to_the_rest_is_an_error_not_a_short_answer(
    client: FhirClient, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_callback(_capping_server(205, 167, honours_offset=False), is_reusable=True)

    with pytest.raises(FhirLacksCapability, match="167 of 205"):
        await client.search("Observation", {"subject": "Patient/p", "_count": "500"})


async def test_sends_fhir_json_and_bearer_token(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="POST", json={"resourceType": "Bundle", "type": "transaction-response"})
    async with build_http_client(BASE, bearer_token="s3cret") as http:
        await FhirClient(http).transaction(BUNDLE, idempotent=True)
    request = httpx_mock.get_requests()[0]
    assert request.headers["Content-Type"] == "application/fhir+json"
    assert request.headers["Accept"] == "application/fhir+json"
    assert request.headers["Authorization"] == "Bearer s3cret"


async def test_current_reads_ids_in_no_store_chunks_of_500_and_follows_a_paging_server(
    client: FhirClient, httpx_mock: HTTPXMock
) -> None:
    """The diff's read: <= 500 ids per `_id` search, uncached, asking for every match in one answer
    (and its total), yet following every page of a server that pages."""
    ids = [f"o{i}" for i in range(1130)]
    seen: list[list[str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.content.decode()))
        chunk = form["_id"].split(",")
        seen.append(chunk)
        assert request.headers["Cache-Control"] == f"no-store, max-results={len(chunk)}"
        assert form["_count"] == str(len(chunk)) and form["_total"] == "accurate"
        first, rest = chunk[:60], chunk[60:]  # this server pages at 60 whatever it is asked
        link = [{"relation": "next", "url": f"{BASE}/next-{chunk[0]}"}] if rest else []
        httpx_mock.add_response(
            method="GET",
            url=f"{BASE}/next-{chunk[0]}",
            json={
                "resourceType": "Bundle",
                "entry": [{"resource": {"resourceType": "Observation", "id": i}} for i in rest],
            },
        ) if rest else None
        entries = [{"resource": {"resourceType": "Observation", "id": i}, "search": {"mode": "match"}} for i in first]
        return httpx.Response(200, json={"resourceType": "Bundle", "total": len(chunk), "entry": entries, "link": link})

    httpx_mock.add_callback(answer, method="POST", url=f"{BASE}/Observation/_search", is_reusable=True)
    found = await client.current("Observation", ids)
    assert sorted(len(c) for c in seen) == [130, 500, 500]
    assert sorted(r["id"] for r in found) == sorted(ids)


def capping_server(httpx_mock: HTTPXMock, cap: int, *, total: bool) -> list[list[str]]:
    """A server answering at most `cap` matches of any search, with no next page (as HAPI does past
    its maximum page size), stating the full `total` or none; returns the `_id` lists asked."""
    seen: list[list[str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        chunk = dict(httpx.QueryParams(request.content.decode()))["_id"].split(",")
        seen.append(chunk)
        entries = [{"resource": {"resourceType": "Observation", "id": i}, "search": {"mode": "match"}} for i in chunk]
        bundle = {"resourceType": "Bundle", "entry": entries[:cap]} | ({"total": len(chunk)} if total else {})
        return httpx.Response(200, json=bundle)

    httpx_mock.add_callback(answer, method="POST", url=f"{BASE}/Observation/_search", is_reusable=True)
    return seen


async def test_current_asks_again_for_what_a_capped_answer_left_out_and_asks_fewer_ids_after(
    client: FhirClient, httpx_mock: HTTPXMock, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that answers fewer than it matched, without a next page, says so in `total`: the
    ids it left out are asked again (else each would be written needlessly), and from then on no
    search asks more ids than it answers."""
    seen = capping_server(httpx_mock, 200, total=True)
    ids = [f"o{i}" for i in range(1000)]
    with caplog.at_level(logging.WARNING, logger="infusion_fhir.fhir"):
        found = await client.current("Observation", ids)
        later = await client.current("Observation", ids[:450])

    assert sorted(r["id"] for r in found) == sorted(ids)
    assert [len(c) for c in seen[:2]] == [500, 500]  # the first round, before the cap was seen
    assert all(len(c) <= 200 for c in seen[2:]) and sum(len(c) for c in seen[2:]) > 600
    assert sorted(r["id"] for r in later) == sorted(ids[:450])
    assert [r.getMessage() for r in caplog.records] == ["fhir.search_capped"]
    assert not any("o1" in str(vars(r)) for r in caplog.records)  # no ids in the log


async def test_current_leaves_unanswered_what_a_capped_answer_without_a_total_left_out(
    client: FhirClient, httpx_mock: HTTPXMock
) -> None:
    """With no `total` a short answer cannot be told from ids the server does not hold: those read
    as not held (the diff writes them: a needless write, never a skip)."""
    seen = capping_server(httpx_mock, 200, total=False)
    found = await client.current("Observation", [f"o{i}" for i in range(1000)])
    assert [len(c) for c in seen] == [500, 500]
    assert len(found) == 400


async def test_a_transaction_carries_the_request_id_in_each_resources_meta_source(
    client: FhirClient, httpx_mock: HTTPXMock
) -> None:
    """Row 7: Medplum's engine ignores `X-Request-Id`; a `meta.source` the service sets is kept there and on HAPI."""
    answer = {"resourceType": "Bundle", "type": "transaction-response"}
    httpx_mock.add_response(method="POST", json=answer, is_reusable=True)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "Observation", "meta": {"profile": ["p"]}}, "request": {"method": "PUT"}},
            {"resource": {"resourceType": "Device", "meta": {"source": "urn:own"}}, "request": {"method": "PUT"}},
            {"request": {"method": "DELETE", "url": "Observation/x"}},
        ],
    }
    with request_scope("0123456789abcdef-and-more", Caller("api-key", "ehr")):
        await client.transaction(bundle, idempotent=True)
    await client.transaction(bundle, idempotent=True)  # no request: nothing added

    stamped, plain = (orjson.loads(r.content) for r in httpx_mock.get_requests())
    assert stamped["entry"][0]["resource"]["meta"] == {"profile": ["p"], "source": "#0123456789abcdef"}
    assert stamped["entry"][1]["resource"]["meta"] == {"source": "urn:own"}  # a source of its own is kept
    assert stamped["entry"][2] == bundle["entry"][2]
    assert plain == bundle
    assert bundle["entry"][0]["resource"]["meta"] == {"profile": ["p"]}  # the caller's Bundle is not changed
