"""The fast path: mapped JSON is byte-for-byte what fhir.resources validates and writes back.

`to_fhir_json` emits dicts without building R4B models; `to_fhir` (the validated path) validates
each of them into its R4B model. Here, for generated records of every kind and configs with other
URIs, the JSON equals `to_json` of the validated model to the byte (keys, order, number and date
formats), so the fast path emits exactly the resources fhir.resources accepts and would write.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import parse_record
from service.demo import generate_records
from service.mappers import MappingConfig, mapper_for, patient_resource, transaction_bundle
from service.mappers.fhir import RESOURCE_CLASSES, to_json
from service.mappers.ids import base32_prefix
from service.mappers.patient import patient_json
from tests.unit.strategies import any_record, patients
from tests.unit.test_mapping_properties import CONFIGS, PROPERTY


def _same_bytes(fast: list[dict[str, Any]], models: list[Any]) -> None:
    assert [orjson.dumps(r) for r in fast] == [orjson.dumps(to_json(m)) for m in models]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=any_record, config=CONFIGS)
def test_fast_json_is_what_the_validated_models_write(raw: dict, config: MappingConfig) -> None:
    record = parse_record(raw)
    mapper = mapper_for(record.kind)
    _same_bytes(mapper.to_fhir_json(record, config), mapper.to_fhir(record, config))


@PROPERTY
@given(raw=patients(), config=CONFIGS)
def test_patient_json_is_what_the_validated_model_writes(raw: dict, config: MappingConfig) -> None:
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
    _same_bytes([patient_json(patient, config)], [patient_resource(patient, config)])


def _shape(value: Any) -> Any:
    """The structure of JSON without its values: which keys, nested how, and list lengths."""
    if isinstance(value, dict):
        return tuple((k, _shape(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(_shape(v) for v in value)
    return type(value).__name__


def test_every_shape_in_the_demo_corpus_validates_and_round_trips_byte_for_byte() -> None:
    """The structural guard: one resource of each distinct shape goes through R4B validation."""
    seen: dict[Any, int] = {}
    for raw in generate_records(3, seed=7):
        record = parse_record(raw)
        for resource in mapper_for(record.kind).to_fhir_json(record, MappingConfig()):
            shape = _shape(resource)
            if shape in seen:
                continue
            model = RESOURCE_CLASSES[resource["resourceType"]].model_validate(resource)
            assert orjson.dumps(to_json(model)) == orjson.dumps(resource)
            seen[shape] = 1
    assert len(seen) >= 20


def test_shared_fragments_survive_a_bundle_with_known_patients() -> None:
    """Mapped JSON shares cached fragments; rewriting references for known patients must copy them."""
    records = [parse_record(raw) for raw in generate_records(1, seed=3)][:40]
    before = orjson.dumps(transaction_bundle(records, MappingConfig()))
    transaction_bundle(records, MappingConfig(), patient_ids={records[0].patient.mrn: "Patient/p1"})
    assert orjson.dumps(transaction_bundle(records, MappingConfig())) == before


@given(st.binary(min_size=17, max_size=64))
def test_base32_prefix_is_the_rfc4648_encoding(digest: bytes) -> None:
    assert base32_prefix(digest) == base64.b32encode(digest).decode().lower()[:26]


def test_resource_ids_are_the_documented_hash() -> None:
    seed = b"https://infusion-fhir.example.org/fhir/sid|vital_sign|VS-1|observation"
    expected = base64.b32encode(hashlib.sha256(seed).digest()).decode().rstrip("=").lower()[:26]
    assert mapper_for("vital_sign").resource_ids("VS-1", MappingConfig())[0].id == f"vs-{expected}"
