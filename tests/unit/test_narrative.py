"""Narratives (Resource.text): present on every resource, valid XHTML, escaped, deterministic, diff-safe."""

from __future__ import annotations

import copy
import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import parse_record
from schemas.records import RecordInvalid
from service.mappers import MappingConfig, mapper_for, patient_json, retract, transaction_bundle
from service.mappers.fhir import as_resource
from service.mappers.narrative import XHTML_NS, at, escape, span
from tests.unit.examples import BASE
from tests.unit.strategies import RECORDS, any_record, short_texts, texts
from tests.unit.test_mapping_properties import CONFIGS, PROPERTY

CONFIG = MappingConfig()
DIV = f"{{{XHTML_NS}}}div"
P = f"{{{XHTML_NS}}}p"


def _paragraph(resource: dict[str, Any]) -> str:
    """The narrative's one paragraph as an XML parser reads it (asserting the div's shape on the way)."""
    assert resource["text"]["status"] == "generated"
    root = ET.fromstring(resource["text"]["div"])
    assert root.tag == DIV and root.attrib == {} and not (root.text or "").strip()
    assert [child.tag for child in root] == [P] and list(root[0]) == [] and not root[0].attrib
    return root[0].text or ""


def _xml_text(text: str) -> str:
    """What an XML parser gives back of `escape(text)`: U+FFFE and U+FFFF are not XML characters,
    and a parser reads CR LF and a lone CR as LF."""
    text = text.replace("\ufffe", "\ufffd").replace("\uffff", "\ufffd")
    return text.replace("\r\n", "\n").replace("\r", "\n")


@PROPERTY
@given(raw=any_record, config=CONFIGS)
def test_every_mapped_resource_and_patient_carries_a_one_paragraph_generated_narrative(
    raw: dict, config: MappingConfig
) -> None:
    record = parse_record(raw)
    resources = [patient_json(record.patient, config), *mapper_for(record.kind).to_fhir_json(record, config)]
    for resource in resources:
        assert _paragraph(resource)
        assert list(resource)[: list(resource).index("text")] in (  # FHIR element order: text after meta
            ["resourceType"],
            ["resourceType", "id"],
            ["resourceType", "id", "meta"],
        )


@PROPERTY
@given(data=st.data(), description=texts, stop_reason=texts, family=short_texts, given_=short_texts)
def test_free_text_in_any_field_is_escaped_and_the_div_parses_as_xml(
    data: st.DataObject, description: str, stop_reason: str, family: str, given_: str
) -> None:
    patient = {**BASE["infusion_session"]["patient"], "family": family, "given": [given_]}
    session = {**copy.deepcopy(BASE["infusion_session"]), "status": "stopped", "stop_reason": stop_reason}
    session["patient"] = patient
    event = {**data.draw(RECORDS["adverse_event"]), "description": description, "patient": patient}
    quoting = {"infusion_session": ("Procedure", "MedicationAdministration"), "adverse_event": ("AdverseEvent",)}
    for raw, quoted in ((session, stop_reason), (event, description)):
        record = parse_record(raw)
        resources = mapper_for(record.kind).to_fhir_json(record, CONFIG)
        for resource in resources:
            paragraph = _paragraph(resource)
            if resource["resourceType"] in quoting[record.kind]:
                assert escape(quoted) in resource["text"]["div"] and _xml_text(quoted) in paragraph
    told = patient_json(parse_record(session).patient, CONFIG)
    assert _xml_text(f"{given_} {family}") in _paragraph(told)


def test_escape_covers_markup_and_what_xml_cannot_hold_as_hapi_writes_it_back() -> None:
    """HAPI (8.8) reads a div and writes it back with `&amp; &lt; &gt; &quot;` and a literal
    apostrophe and CR (`&#39;` and `&#13;` come back as the characters): escaped the same way, the
    server's copy is ours byte for byte (tests/integration/test_batch_sync.py compares them)."""
    assert escape("a & <b> \"c\" 'd'") == "a &amp; &lt;b&gt; &quot;c&quot; 'd'"
    assert escape("line\r\nnext \ufffe\uffff") == "line\r\nnext \ufffd\ufffd"
    assert ET.fromstring("<p>" + escape("'x' & \"y\" <z>") + "</p>").text == "'x' & \"y\" <z>"


def test_times_are_written_by_hand_in_their_own_offset() -> None:
    utc = dt.UTC
    minus4 = dt.timezone(dt.timedelta(hours=-4))
    plus545 = dt.timezone(dt.timedelta(hours=5, minutes=45))
    assert at(dt.datetime(2026, 3, 2, 9, 30, 59, tzinfo=utc)) == "2 Mar 2026 09:30 UTC"
    assert at(dt.datetime(2026, 12, 31, 23, 5, tzinfo=minus4)) == "31 Dec 2026 23:05 UTC-04:00"
    assert at(dt.datetime(2026, 1, 9, 0, 0, tzinfo=plus545)) == "9 Jan 2026 00:00 UTC+05:45"
    start = dt.datetime(2026, 3, 2, 9, 30, tzinfo=minus4)
    assert span(start, start + dt.timedelta(minutes=40)) == "2 Mar 2026 09:30-10:10 UTC-04:00"
    assert span(start, start + dt.timedelta(hours=15)) == "2 Mar 2026 09:30 UTC-04:00 to 3 Mar 2026 00:30 UTC-04:00"
    assert span(start, None) == "2 Mar 2026 09:30 UTC-04:00"


def test_the_example_session_reads_as_a_clinician_would_say_it() -> None:
    record = parse_record(BASE["infusion_session"])
    said = {r["id"]: _paragraph(r) for r in mapper_for(record.kind).to_fhir_json(record, CONFIG)}
    sentences = list(said.values())
    assert sentences[0] == (
        "Ketamine infusion, completed, 12 Apr 2024 09:05-09:45 UTC-04:00, "
        "for Major depressive disorder, treatment-resistant"
    )
    assert sentences[1] == (
        "35 mg ketamine IV (0.5 mg/kg) at 0.75 mg/kg/h over 40 min, completed, 12 Apr 2024 09:05-09:45 UTC-04:00"
    )
    # interpreted against the monitoring protocol: every direction of heart rate has a limit, none is met
    assert "Heart rate 80 /min, 12 Apr 2024 09:05 UTC-04:00, during infusion. Normal" in sentences
    assert _paragraph(patient_json(record.patient, CONFIG)) == "Patient Ada Okafor, MRN MRN-1, born 14 Jul 1981"


def _content(resource: dict[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in resource.items() if k not in ("meta", "text")}, option=orjson.OPT_SORT_KEYS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data(), config=CONFIGS)
def test_a_narrative_changes_only_with_the_rest_of_its_resource(data: st.DataObject, config: MappingConfig) -> None:
    """The re-sync diff ignores `text`: sound only if a resource whose other elements are unchanged
    has an unchanged narrative. Two records of one kind and key, one field taken from another."""
    first = {k: v for k, v in data.draw(any_record).items() if k != "total"}  # a PHQ-9's total follows its items
    other = data.draw(RECORDS[first["kind"]])
    field = data.draw(st.sampled_from(sorted(set(other) - {"kind", "key", "patient", "total"})))
    second = {**first, field: other[field]}
    try:
        records = [parse_record(first), parse_record(second)]
    except (ValidationError, RecordInvalid):
        assume(False)
        return
    mapped = [{r["id"]: r for r in transaction_bundle_resources(record, config)} for record in records]
    for rid, ours in mapped[0].items():
        theirs = mapped[1].get(rid)
        if theirs is not None and _content(ours) == _content(theirs):
            assert ours["text"] == theirs["text"], rid


def transaction_bundle_resources(record: Any, config: MappingConfig) -> list[dict[str, Any]]:
    bundle = transaction_bundle([record], config)
    return [entry["resource"] | {"id": entry["fullUrl"]} for entry in bundle["entry"]]


def test_a_retracted_copy_says_it_was_entered_in_error_once() -> None:
    record = parse_record(BASE["infusion_session"])
    resources = mapper_for(record.kind).to_fhir_json(record, CONFIG)
    once = retract(resources)
    assert [_paragraph(r) for r in retract(once)] == [_paragraph(r) for r in once]
    for before, after in zip([r for r in resources if r["resourceType"] != "AdverseEvent"], once, strict=True):
        assert _paragraph(after) == "Entered in error: " + _paragraph(before)
    bare = {k: v for k, v in resources[0].items() if k != "text"}
    assert _paragraph(retract([bare])[0]) == "Entered in error."
    models = retract([as_resource(resources[0])])
    assert models[0].text is not None and models[0].text.div == once[0]["text"]["div"]
