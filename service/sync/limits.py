"""Transactions that fit the server: a record split over several only when the server takes fewer updates in one.

Medplum's engine takes at most 50 updates (PUTs) in a transaction and refuses a larger one whole, with 400
"Transaction contains more update operations than allowed" (docs/compatibility.md, row 2); a completed session
with its embedded readings can hold more. The limit is set (`INFUSION_FHIR_TRANSACTION_MAX_UPDATES`) or learned:
a transaction refused with such a text teaches that its count of PUTs is too many (`FhirClient.updates_refused_at`,
the fewest seen refused), and a later one as large is split before it is sent.

Only a single record is split here, in order (the Bundle is in dependency order: Encounter, Procedure, ...,
DELETEs last), each part a transaction of its own with its own Provenance. Several records are never split apart:
`TooManyUpdates` goes back to the batch, which halves its lines until each Bundle fits. A split record is not
atomic: when a later part is refused, the earlier ones stay written, and the error says which part failed and how
many were written (`PartlyWritten`), so the report can say so (nothing is lost silently).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from service.errors import FhirRejected
from service.fhir_client import FhirClient
from service.provenance import Transactions

log = logging.getLogger("infusion_fhir.sync")
Json = dict[str, Any]

SIZE_REFUSALS = ("more update operations than allowed",)
"""Refusal texts that mean "too many updates in one transaction" (Medplum's fhir-router 5.2.13, batch.ts)."""
PROVENANCE_ROOM = 3
"""PUTs the Provenance writer may add to a part of one record (one per activity: update, nullify, delete)."""


class TooManyUpdates(FhirRejected):
    """Several records' transaction holds more updates than the server takes; nothing was written."""


class PartlyWritten(FhirRejected):
    """A record split over several transactions, some of them written before one was refused."""


def updates(entries: Sequence[Json]) -> int:
    """The entries that count as updates: PUTs (Medplum counts those)."""
    return sum(1 for e in entries if e.get("request", {}).get("method") == "PUT")


def is_size_refusal(error: FhirRejected) -> bool:
    """Whether the server refused the transaction for holding too many updates."""
    texts = [str(error)] + [
        str(issue.get("diagnostics", "")) + str((issue.get("details") or {}).get("text", ""))
        for issue in (error.operation_outcome or {}).get("issue", [])
    ]
    return any(refusal in text.lower() for text in texts for refusal in SIZE_REFUSALS)


def most_updates(fhir: FhirClient) -> int | None:
    """The most of our PUTs one transaction may hold (room left for Provenances), or None when unlimited."""
    refused = fhir.updates_refused_at
    bounds = [n - PROVENANCE_ROOM for n in (fhir.max_updates, refused - 1 if refused else None) if n]
    return max(1, min(bounds)) if bounds else None


async def send_fitting(
    transactions: Transactions,
    fhir: FhirClient,
    bundle: Json,
    records: Sequence[Any],
) -> tuple[Json, int]:
    """(the transaction response for `bundle`, the transactions it took): one, or a single record's parts."""
    entries = bundle.get("entry", [])
    limit = most_updates(fhir)
    if limit is None or updates(entries) <= limit:
        try:
            return await transactions.send(bundle, records), 1
        except FhirRejected as refused:
            if not is_size_refusal(refused):
                raise
            _learn(fhir, updates(entries))
    if len(records) > 1:
        raise TooManyUpdates(
            f"the transaction holds {updates(entries)} updates, more than the FHIR server takes in one; nothing was written"
        )
    return await _send_parts(transactions, fhir, entries, records)


async def _send_parts(
    transactions: Transactions, fhir: FhirClient, entries: list[Json], records: Sequence[Any]
) -> tuple[Json, int]:
    answers: list[Json] = []
    pending = list(entries)
    sent = 0
    while pending:
        limit = most_updates(fhir) or updates(pending)
        part, rest = _take(pending, limit)
        try:
            response = await transactions.send(
                {"resourceType": "Bundle", "type": "transaction", "entry": part}, records
            )
        except FhirRejected as refused:
            if is_size_refusal(refused) and updates(part) > 1:
                _learn(fhir, updates(part))
                continue  # the same entries again, in smaller parts
            if not sent:
                raise
            # our words only: the server's may echo what it was sent (PHI)
            raise PartlyWritten(
                f"the record was split over several transactions (the FHIR server takes at most {limit} updates in "
                f"one); {sent} part(s) were written, then one was refused (HTTP {refused.status_code}); send it again",
                status_code=refused.status_code,
            ) from None
        answers.extend(response.get("entry", []))
        pending = rest
        sent += 1
    log.info("sync.record_split", extra={"transactions": sent, "updates": updates(entries)})
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}, sent


def _take(entries: list[Json], limit: int) -> tuple[list[Json], list[Json]]:
    """The first entries holding at most `limit` PUTs (the others, POSTs and DELETEs, with them), and the rest."""
    count = 0
    for index, entry in enumerate(entries):
        if entry.get("request", {}).get("method") == "PUT":
            if count == limit:
                return entries[:index], entries[index:]
            count += 1
    return entries, []


def _learn(fhir: FhirClient, refused: int) -> None:
    """A transaction of `refused` PUTs was refused for its size: remember the fewest seen so."""
    if fhir.updates_refused_at is None or refused < fhir.updates_refused_at:
        fhir.updates_refused_at = refused
        log.info("sync.updates_limit_learned", extra={"refused_at": refused})
