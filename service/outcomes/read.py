"""Reading a patient's assessments from the FHIR server for the outcome trend (through the shared FhirClient).

One search of the patient's Observations with the codes the trend reads (panels, totals, safety items,
the C-SSRS triage) of the instruments asked for; every page is read (`FhirClient.search` follows `next`),
retracted ones come back too so that a retracted panel's members can be left out (service/outcomes/points.py).
The MRN travels in the search body (POST `_search`), never in a URL or a log line.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from service.fhir_client import FhirClient
from service.instruments import DEFINITIONS, definition
from service.mappers import MappingConfig, search_escape
from service.outcomes.index import code_index
from service.outcomes.points import read_points
from service.outcomes.trend import summarise
from service.sync.identities import patients_holding

PAGE = "500"  # the local HAPI's largest page; every page is read whatever the server allows


async def outcome_trend(
    fhir: FhirClient,
    config: MappingConfig,
    mrn: str,
    instrument: str | None = None,
    *,
    since: dt.date | None = None,
    baseline_key: str | None = None,
) -> dict[str, Any]:
    """The trend of one instrument, or (`instrument` None) `{"summaries": [...]}`: one per instrument the
    patient has, in the definitions' order. NotFound without a Patient of this MRN, or for a `baseline_key`
    that names none of the patient's assessments of the instrument."""
    patients = await patients_holding(fhir, config, mrn)
    wanted = [instrument] if instrument is not None else list(DEFINITIONS)
    tokens = code_index(config).tokens(wanted)
    observations = await fhir.search(
        "Observation",
        {
            "subject": ",".join(f"Patient/{p['id']}" for p in patients),
            "code": ",".join(f"{search_escape(system)}|{search_escape(code)}" for system, code in tokens),
            "_count": PAGE,
        },
    )
    points = read_points(observations, config)
    thresholds = config.thresholds
    if instrument is not None:
        return summarise(
            definition(instrument), points.get(instrument, []), thresholds, since=since, baseline_key=baseline_key
        )
    return {
        "summaries": [
            summarise(definition(name), held, thresholds, since=since)
            for name, held in points.items()
            if name in wanted
        ]
    }
