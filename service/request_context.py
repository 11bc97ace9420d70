"""Who is calling and which request this is: the request id and the caller's name, carried in context variables.

Set once at each edge (the API's middleware and `require_caller`, the batch command) and read where they are
recorded: every log line, every call to the FHIR server (`X-Request-Id`), Provenance and audit events. A caller is
named, never identified by its credential: an API key by the name configured beside its digest, an OAuth client by
its `client_id` (else `azp`, else `sub`), a batch job by its job name.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from schemas.common import KEY_PATTERN

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_PATTERN = re.compile(KEY_PATTERN)
"""What the service accepts as a caller's request id: a record key's characters and length, which HAPI keeps in
`meta.source` (up to `HAPI_KEEPS` of them)."""
CALLER_NAME_PATTERN = re.compile(r"[A-Za-z0-9._@:-]{1,64}")
"""A configured caller name (an API key's or a batch job's)."""

API_KEY = "api-key"
OAUTH = "oauth"
BATCH = "batch"


@dataclass(frozen=True)
class Caller:
    """A caller as recorded: how it authenticated (`api-key`, `oauth`, `batch`) and its name."""

    kind: str
    name: str


_request_id: ContextVar[str | None] = ContextVar("infusion_fhir_request_id", default=None)
_caller: ContextVar[Caller | None] = ContextVar("infusion_fhir_caller", default=None)


HAPI_KEEPS = 16
"""HAPI stores only the first 16 characters of a request id in `meta.source` (its column `REQUEST_ID` is 16 wide):
so the ids the service makes are that long, and a longer one a caller sends is found there by its first 16."""


def new_request_id() -> str:
    """A fresh request id: 16 random hex digits (64 bits), whole in HAPI's `meta.source`."""
    return uuid.uuid4().hex[:HAPI_KEEPS]


def accepted_request_id(offered: str | None) -> str:
    """The caller's `X-Request-Id` when it matches `REQUEST_ID_PATTERN`, else a fresh one."""
    if offered is not None and REQUEST_ID_PATTERN.fullmatch(offered):
        return offered
    return new_request_id()


def current_request_id() -> str | None:
    return _request_id.get()


def current_caller() -> Caller | None:
    return _caller.get()


def set_caller(caller: Caller) -> None:
    """Name the caller of the request in progress (auth, once it accepted the credential)."""
    _caller.set(caller)


@contextmanager
def request_scope(request_id: str, caller: Caller | None = None) -> Iterator[None]:
    """Within the block, `current_request_id()` is `request_id` (and `current_caller()` is `caller`)."""
    id_token = _request_id.set(request_id)
    caller_token = _caller.set(caller)
    try:
        yield
    finally:
        _caller.reset(caller_token)
        _request_id.reset(id_token)
