"""The integration corpus (tests/corpus.py) is valid, covers every enum and optional field, round-trips."""

from __future__ import annotations

import orjson

from schemas import parse_record
from schemas.kinds import CHILD_LISTS
from service.mappers import MappingConfig, mapper_for
from service.mappers.fhir import to_json
from tests.corpus import coverage_gaps, generate
from tests.unit.examples import as_server_holds

CONFIG = MappingConfig()


def test_corpus_is_deterministic_large_enough_and_covers_everything() -> None:
    records = list(generate())
    assert records == list(generate())
    embedded = sum(len(r.get(name, [])) for r in records for name in CHILD_LISTS)
    assert len(records) + embedded >= 500
    assert coverage_gaps(records) == []


def test_every_corpus_record_maps_and_round_trips() -> None:
    for raw in generate():
        record = parse_record(raw)
        mapper = mapper_for(record.kind)
        as_json = [orjson.loads(orjson.dumps(to_json(r))) for r in mapper.to_fhir(record, CONFIG)]
        assert mapper.from_fhir(as_server_holds(record, as_json, CONFIG), record.patient, CONFIG) == record, record.key
