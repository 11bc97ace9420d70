"""Sync orchestration: map records, write them through the FHIR client, read and retract them."""

from service.sync.engine import SyncEngine, SyncResult
from service.sync.outcomes import WriteOutcome, WrittenResource

__all__ = ["SyncEngine", "SyncResult", "WriteOutcome", "WrittenResource"]
