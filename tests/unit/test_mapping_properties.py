"""Property tests: record -> FHIR -> record round trips for every kind; mapping is deterministic."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import parse_record
from schemas.kinds import embedded_children
from service.mappers import MappingConfig, mapper_for, patient_from_fhir, patient_resource, transaction_bundle
from service.mappers.fhir import to_json
from service.mappers.ids import resource_ids
from tests.unit.examples import as_server_holds
from tests.unit.strategies import RECORDS, any_record, patients

CONFIGS = st.sampled_from(
    [
        MappingConfig(),
        MappingConfig(
            identifier_system_base="urn:oid:1.2.3.4",
            mrn_system="urn:oid:1.2.3.4.5",
            local_code_system_base="https://clinic.example/fhir/CodeSystem/",
            practitioner_identifier_system="https://clinic.example/staff",
            medication_product_coding=(
                "http://hl7.org/fhir/sid/ndc",
                "0409-2051-05",
                "Ketamine HCl 50 mg/mL",
            ),
        ),
    ]
)
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _child_records(record: Any) -> list[Any]:
    return embedded_children(record)


@pytest.mark.parametrize("kind", sorted(RECORDS))
@PROPERTY
@given(data=st.data(), config=CONFIGS)
def test_record_to_fhir_json_and_back_is_the_same_record(kind: str, data: st.DataObject, config: MappingConfig) -> None:
    record = parse_record(data.draw(RECORDS[kind]))
    mapper = mapper_for(record.kind)  # a PHQ-9 sent as `assessment` is its `phq9_assessment`
    as_read_back = [orjson.loads(orjson.dumps(to_json(r))) for r in mapper.to_fhir(record, config)]
    assert mapper.from_fhir(as_server_holds(record, as_read_back, config), record.patient, config) == record


@PROPERTY
@given(raw=any_record, config=CONFIGS)
def test_mapping_is_deterministic(raw: dict, config: MappingConfig) -> None:
    first, second = parse_record(raw), parse_record(raw)
    mapper = mapper_for(first.kind)
    assert [to_json(r) for r in mapper.to_fhir(first, config)] == [to_json(r) for r in mapper.to_fhir(second, config)]
    assert orjson.dumps(transaction_bundle([first], config)) == orjson.dumps(transaction_bundle([second], config))


@PROPERTY
@given(raw=any_record, config=CONFIGS)
def test_every_resource_has_a_listed_fhir_id_and_an_identifier(raw: dict, config: MappingConfig) -> None:
    record = parse_record(raw)
    listed = set()
    for owner in [record, *_child_records(record)]:
        listed |= {(r.resource_type, r.id) for r in resource_ids(owner.kind, owner.key, config)}
    resources = mapper_for(record.kind).to_fhir(record, config)
    produced = [(r.get_resource_type(), r.id) for r in resources]
    assert len(set(produced)) == len(produced)
    assert set(produced) <= listed
    for resource in resources:
        assert FHIR_ID.match(resource.id) and not resource.id.isdigit()
        assert resource.identifier


@PROPERTY
@given(raw=any_record)
def test_a_parsed_record_dumped_to_json_parses_back_equal(raw: dict) -> None:
    record = parse_record(raw)
    assert parse_record(orjson.loads(record.model_dump_json(exclude_none=True))) == record


@PROPERTY
@given(raw=patients(), config=CONFIGS)
def test_patient_round_trips_through_its_resource(raw: dict, config: MappingConfig) -> None:
    patient = parse_record(
        {
            "kind": "monitoring_score",
            "key": "k",
            "patient": raw,
            "session_key": "s",
            "measured_at": "2024-01-01T00:00:00Z",
            "instrument": "rass",
            "score": 0,
        }
    ).patient
    resource = orjson.loads(orjson.dumps(to_json(patient_resource(patient, config))))
    assert patient_from_fhir(resource, config) == patient
