"""Which parts a record no longer has its transaction deletes: those the server holds, never a dose still suspected.

A stale part (`KindMapper.stale_parts`: a re-planned session's administration, a withdrawn difficulty answer) is
deleted in the transaction that writes its record (H-35). Servers differ on two points (docs/compatibility.md):
- a DELETE of what the server does not hold: HAPI succeeds (its storage code `SUCCESSFUL_DELETE_NOT_FOUND`);
  Medplum answers 404 and refuses the whole transaction. So a DELETE is sent only for a part the server holds
  (the diff's read, else a read here), unless the server has shown HAPI's storage codes (`FhirClient.quiet_deletes`);
- a DELETE of what another resource references: HAPI refuses the transaction (409); Medplum deletes it. A dose an
  adverse event suspects must never be deleted under the event, whatever the server: that one is checked here, and
  the write refused (Conflict) before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from service.errors import Conflict
from service.fhir_client import FhirClient
from service.mappers import MappingConfig, record_refs
from service.mappers.bundle import stale_refs

ADMINISTRATION = "MedicationAdministration/"
SUSPECT_PARAM = "substance"
"""AdverseEvent's search parameter over `suspectEntity.instance` (FHIR R4 AdverseEvent, search parameters)."""


class DoseSuspected(Conflict):
    """A stale administration an adverse event suspects: the record is refused and nothing is written."""

    def __init__(self, administrations: Sequence[str], events: Sequence[str]) -> None:
        self.administrations = list(administrations)
        self.events = list(events)
        super().__init__(
            f"the session's medication administration ({', '.join(self.administrations)}) is suspected by "
            f"{', '.join(self.events)}: it is not withdrawn under the adverse event. Send the session with its dose, "
            "or retract the adverse event first; nothing was written"
        )


async def stale_deletes(
    fhir: FhirClient,
    config: MappingConfig,
    records: Iterable[Any],
    held: Callable[[str], bool] | None,
    current: Callable[[Sequence[str]], Any],
) -> Callable[[str], bool]:
    """The test `transaction_bundle(delete_stale=...)` asks of each stale part: delete it or not.

    `held`: what the diff's read says the server holds (None: not read); `current(refs)`, the engine's read of the
    server's current copies, is asked for the stale parts when neither `held` nor the server's own answers tell.
    DoseSuspected when a stale administration to delete is suspected by an adverse event that this write leaves
    as it is (an event embedded in the re-planned session is rewritten with it to suspect the session instead).
    """
    records = list(records)
    refs = stale_refs(records, config)
    if not refs:
        return _nothing
    if held is not None:
        deleting = {ref for ref in refs if held(ref)}
    elif fhir.quiet_deletes:
        deleting = set(refs)  # a DELETE of nothing succeeds there; one of something is what is wanted
    else:
        deleting = set(await current(refs))
    administrations = sorted(ref for ref in deleting if ref.startswith(ADMINISTRATION))
    if administrations:
        rewritten = {ref for record in records for ref in record_refs(record, config)}
        found = await fhir.search("AdverseEvent", {SUSPECT_PARAM: ",".join(administrations)})
        events = sorted(ref for e in found if (ref := f"AdverseEvent/{e['id']}") not in rewritten)
        if events:
            raise DoseSuspected(administrations, events)
    return deleting.__contains__


def _nothing(url: str) -> bool:
    return False
