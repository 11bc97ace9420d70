"""Issue 23 points 1 and 5: the request id end to end (accepted or made, on every answer, every log line, every
FHIR call) and callers with names (API keys, tokens, batch jobs), never their credentials."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.access_tokens import token_client
from service.app import create_app
from service.auth import accepted_key_name, key_digest
from service.batch.job import batch_job
from service.logs import JsonFormatter
from service.request_context import BATCH, REQUEST_ID_PATTERN, accepted_request_id, current_request_id, request_scope
from service.settings import Settings, named_api_keys

AUTH = {"Authorization": "Bearer unit-key"}
VITAL = {
    "patient": {"mrn": "MRN-RID-1"},
    "measured_at": "2026-03-02T09:30:00-05:00",
    "type": "heart_rate",
    "value": 80,
    "unit": "/min",
}


def client_for(handler) -> TestClient:
    settings = Settings(
        FHIR_BASE_URL="http://fhir.test/fhir",
        api_keys=f"ehr-main={key_digest('unit-key')}",
        retry_max_attempts=1,
    )
    return TestClient(create_app(settings, transport=httpx.MockTransport(handler)), raise_server_exceptions=False)


def unavailable(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503)


@pytest.mark.parametrize("offered", ["abc-123", "A.b_c-9", "x" * 64])
def test_an_acceptable_request_id_is_returned_as_given(offered: str) -> None:
    with client_for(unavailable) as api:
        response = api.get("/livez", headers={"X-Request-Id": offered})
    assert response.headers["X-Request-Id"] == offered


@pytest.mark.parametrize("offered", ["", "has space", "x" * 65, "semi;colon", "ünïcode"])
def test_an_unacceptable_request_id_is_replaced_by_a_fresh_one(offered: str) -> None:
    with client_for(unavailable) as api:
        response = api.get("/livez", headers={"X-Request-Id": offered.encode()})
    returned = response.headers["X-Request-Id"]
    assert returned != offered and REQUEST_ID_PATTERN.fullmatch(returned)


def test_each_request_without_one_gets_its_own() -> None:
    with client_for(unavailable) as api:
        ids = {api.get("/livez").headers["X-Request-Id"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/v1/vital-signs/k1", {}, 401),  # no key
        ("PUT", "/v1/vital-signs/k1", {"json": {"type": "heart_rate"}, "headers": AUTH}, 422),
        ("GET", "/v1/vital-signs/k1", {"headers": AUTH}, 503),  # the FHIR server is down
        ("GET", "/v1/no-such-route", {"headers": AUTH}, 404),
    ],
)
def test_errors_carry_the_request_id_too(method: str, path: str, kwargs: dict, status: int) -> None:
    headers = {**kwargs.pop("headers", {}), "X-Request-Id": "err-trace-1"}
    with client_for(unavailable) as api:
        response = api.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status
    assert response.headers["X-Request-Id"] == "err-trace-1"


def test_an_unexpected_failure_500_carries_the_request_id() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug")

    with client_for(broken) as api:
        response = api.get("/v1/vital-signs/k1", headers={**AUTH, "X-Request-Id": "bug-trace-1"})
    assert response.status_code == 500
    assert response.headers["X-Request-Id"] == "bug-trace-1"


def test_every_call_made_for_a_request_sends_its_id_to_the_fhir_server() -> None:
    seen: list[str | None] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("X-Request-Id"))
        if request.method == "POST" and request.url.path.endswith("/fhir"):
            entries = [{"response": {"status": "201 Created", "location": f"X/{i}/_history/1"}} for i in range(20)]
            return httpx.Response(
                200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
            )
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": []})

    with client_for(server) as api:
        api.put("/v1/vital-signs/k1", json=VITAL, headers={**AUTH, "X-Request-Id": "trace-put-1"})
    assert seen and set(seen) == {"trace-put-1"}


def test_log_lines_written_for_a_request_name_it() -> None:
    record = logging.makeLogRecord({"name": "infusion_fhir.t", "msg": "t.event", "levelname": "INFO"})
    with request_scope("log-trace-1"):
        inside = JsonFormatter().format(record)
    outside = JsonFormatter().format(record)
    assert '"request_id":"log-trace-1"' in inside
    assert "request_id" not in outside
    assert current_request_id() is None


def test_accepted_request_id_keeps_only_what_hapi_keeps() -> None:
    assert accepted_request_id("ok.id-1_2") == "ok.id-1_2"
    assert accepted_request_id(None) != accepted_request_id(None)
    assert accepted_request_id("a/b") != "a/b"


# -- callers have names --------------------------------------------------------------------------------------------

DIGEST_A = key_digest("key-a")
DIGEST_B = key_digest("key-b")


def test_api_keys_are_named_or_named_by_their_digest_prefix() -> None:
    names = named_api_keys(f"ehr-main={DIGEST_A}, {DIGEST_B.upper()}")
    assert names == {DIGEST_A: "ehr-main", DIGEST_B: f"key-{DIGEST_B[:8]}"}
    assert accepted_key_name("key-a", names) == "ehr-main"
    assert accepted_key_name("key-b", names) == f"key-{DIGEST_B[:8]}"
    assert accepted_key_name("key-c", names) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"bad name={DIGEST_A}", "entry 1: a name is"),
        (f"{DIGEST_B},={DIGEST_A}", "entry 2: a name is"),
        (f"lab={DIGEST_A},lab={DIGEST_B}", "entry 2: the name lab is given twice"),
    ],
)
def test_a_bad_api_keys_setting_stops_the_start_without_showing_a_digest(text: str, says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(api_keys=text)
    message = str(raised.value.errors()[0]["msg"])
    assert says in message
    assert DIGEST_A not in message and DIGEST_B not in message


def test_settings_keep_the_bare_digest_form_working() -> None:
    settings = Settings(api_keys=DIGEST_A)
    assert settings.api_key_digests() == frozenset({DIGEST_A})


@pytest.mark.parametrize(
    ("claims", "name"),
    [
        ({"client_id": "ehr-app", "azp": "x", "sub": "y"}, "ehr-app"),
        ({"azp": "portal", "sub": "y"}, "portal"),
        ({"sub": "service-account-lab"}, "service-account-lab"),
        ({}, "unknown"),
    ],
)
def test_an_oauth_caller_is_named_by_its_client(claims: dict, name: str) -> None:
    assert token_client(claims) == name


def test_a_batch_job_is_named_by_its_start_unless_named() -> None:
    started = datetime(2026, 12, 5, 21, 45, 1, tzinfo=UTC)
    job = batch_job(None, now=started)
    assert job is not None and job.caller.kind == BATCH
    assert job.caller.name == "sync@2026-12-05T21:45:01Z"
    assert REQUEST_ID_PATTERN.fullmatch(job.request_id)
    assert batch_job("nightly-load").caller.name == "nightly-load"  # type: ignore[union-attr]
    assert batch_job("bad name") is None
    assert batch_job(None).request_id != batch_job(None).request_id  # type: ignore[union-attr]
