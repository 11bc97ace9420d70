"""GET and DELETE of `/v1/assessments/{key}` reach a PHQ-9, which is written under its `phq9_assessment` ids.

A PHQ-9 sent as `assessment` is the `phq9_assessment` of its key (`schemas.phq9_kinds`), so nothing is
written under the `assessment` kind's ids for it. Reading or retracting an `assessment` key the server
holds nothing for falls back to the PHQ-9 of that key; a read answers it as the `assessment` it was sent
as (`instrument: "phq9"`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from schemas import Record
from schemas.kinds import ASSESSMENT, PHQ9
from schemas.phq9 import Phq9Assessment
from schemas.phq9_kinds import as_assessment
from service.errors import NotFound
from service.sync.engine import SyncEngine, SyncResult

T = TypeVar("T")


async def read_record(engine: SyncEngine, kind: str, key: str) -> Record:
    """The record `kind`/`key` as the server holds it; an `assessment` key may be a PHQ-9's."""
    try:
        return await engine.read(kind, key)
    except NotFound:
        if kind != ASSESSMENT:
            raise
        found = await _as_phq9(engine.read(PHQ9, key), kind, key)
    assert isinstance(found, Phq9Assessment)
    return as_assessment(found)


async def retract_record(engine: SyncEngine, kind: str, key: str) -> SyncResult:
    """Retract the record `kind`/`key`; an `assessment` key may be a PHQ-9's."""
    try:
        return await engine.retract(kind, key)
    except NotFound:
        if kind != ASSESSMENT:
            raise
        return await _as_phq9(engine.retract(PHQ9, key), kind, key)


async def _as_phq9(action: Awaitable[T], kind: str, key: str) -> T:
    """The PHQ-9's answer; NotFound naming the kind asked for when there is none either."""
    try:
        return await action
    except NotFound:
        raise NotFound(f"{kind} {key} not found on the FHIR server") from None
