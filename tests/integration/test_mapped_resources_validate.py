"""Every resource the mappers emit for a covering corpus passes the real server's `$validate` with no errors
and carries a narrative (no dom-6 "should have narrative" issue); so do retracted copies.

Also: a transaction Bundle is accepted, re-sending it is idempotent, and the resources read back
map to the same records (the reverse mappers work on what the server returns).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from schemas import parse_record
from schemas.kinds import CHILD_LISTS
from service.instruments import DEFINITIONS
from service.mappers import (
    MappingConfig,
    mapper_for,
    patient_from_fhir,
    patient_resource,
    retract,
    transaction_bundle,
)
from service.mappers.fhir import RESOURCE_CLASSES, to_json
from service.mappers.questionnaire import questionnaire_id, to_questionnaire_json
from service.mappers.session import visit_encounter
from tests.corpus import coverage_gaps, generate, monitored_session

FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
CONFIG = MappingConfig()
WORKERS = 4
UNRESOLVED = re.compile(r"questionnaire .* (could not be resolved|not found)", re.IGNORECASE)
DOM_6 = "dom-6"  # "A resource should have narrative for robust management" (R4 DomainResource)
EXTENSIONS = Path(__file__).resolve().parents[2] / "docs" / "fhir"


def _corpus_resources(config: MappingConfig) -> tuple[int, list[dict[str, Any]]]:
    """(number of records incl. embedded ones, every distinct resource the corpus maps to, Patients first)."""
    raw = list(generate())
    assert coverage_gaps(raw) == []
    patients: dict[str, dict[str, Any]] = {}
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    count = 0
    for item in raw:
        record = parse_record(item)
        count += 1 + sum(len(getattr(record, name, [])) for name in CHILD_LISTS)
        patients.setdefault(record.patient.mrn, to_json(patient_resource(record.patient, config)))
        if record.kind == "infusion_session" and record.visit_id is not None:  # the EHR visit's Encounter
            resources[("Encounter", f"visit:{record.visit_id}")] = visit_encounter(record, config)
        for resource in mapper_for(record.kind).to_fhir(record, config):
            resources[(resource.get_resource_type(), resource.id)] = to_json(resource)
    return count, [*patients.values(), *resources.values()]


def _publish_extensions(http: httpx.Client) -> None:
    """PUT the local extensions' StructureDefinitions (docs/fhir/) so `$validate` checks our
    extensions against them (without them HAPI only notes "unknown extension")."""
    for path in sorted(EXTENSIONS.glob("StructureDefinition-*.json")):
        definition = orjson.loads(path.read_bytes())
        response = http.put(f"/StructureDefinition/{definition['id']}", content=orjson.dumps(definition))
        assert response.status_code in (200, 201), response.text[:500]


def _publish_questionnaires(http: httpx.Client, config: MappingConfig) -> list[str]:
    """PUT the service's Questionnaires under `config`'s canonical base, as `sync` does before any line, so that
    `$validate` checks every QuestionnaireResponse against its form; their ids, to delete afterwards."""
    ids = []
    for instrument in DEFINITIONS:
        ids.append(questionnaire_id(config, instrument))
        response = http.put(
            f"/Questionnaire/{ids[-1]}", content=orjson.dumps(to_questionnaire_json(config, instrument))
        )
        assert response.status_code in (200, 201), response.text[:500]
    return ids


def _post_validate(http: httpx.Client, resource: dict[str, Any]) -> httpx.Response:
    """POST to `$validate` (no side effects), retrying transport errors a few times with backoff."""
    for attempt in range(4):
        try:
            return http.post(f"/{resource['resourceType']}/$validate", content=orjson.dumps(resource))
        except httpx.TransportError:
            if attempt == 3:
                raise
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


def _validate(http: httpx.Client, resource: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    response = _post_validate(http, resource)
    try:
        outcome = response.json()
    except ValueError:
        outcome = {}
    if outcome.get("resourceType") != "OperationOutcome":
        issue = {
            "severity": "fatal",
            "diagnostics": f"HTTP {response.status_code} without an OperationOutcome",
        }
        return resource, [issue]
    return resource, outcome.get("issue", [])


def _where(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource.get('id', '(conditional)')}"


def _pattern(message: str) -> str:
    """A warning message with its specific codes and positions blanked, for grouping."""
    message = re.sub(r"'[^']*#[^']*'", "'<code>'", message)
    message = re.sub(r"Line\[\d+\] Col\[\d+\]", "", message)
    return message[:220]


@pytest.mark.needs("$validate")
def test_every_mapped_resource_passes_validate_without_errors(
    fhir_base_url: str, run_id: str, capsys: pytest.CaptureFixture
) -> None:
    # A canonical base of this run's own: no earlier validation on the server can have cached its
    # Questionnaires as missing.
    config = replace(CONFIG, canonical_base=f"https://test.infusion-fhir.example/{run_id}/fhir")
    count, resources = _corpus_resources(config)
    assert count >= 500
    # One retracted copy of each retractable type: the narrative says so, and is still there.
    retracted = {r["resourceType"]: r for r in retract(resources)}
    resources += [{**r, "id": f"{r['id']}-retracted"} for r in retracted.values()]
    for resource in resources:  # each resource also parses back with fhir.resources R4B
        RESOURCE_CLASSES[resource["resourceType"]].model_validate(resource)

    with (
        httpx.Client(base_url=fhir_base_url, headers=HEADERS, timeout=60) as http,
        ThreadPoolExecutor(max_workers=WORKERS) as pool,
    ):
        _publish_extensions(http)
        questionnaires = _publish_questionnaires(http, config)
        try:
            results = list(pool.map(lambda r: _validate(http, r), resources))
        finally:
            for questionnaire in questionnaires:
                http.delete(f"/Questionnaire/{questionnaire}")
    kinds = Counter(r["resourceType"] for r in resources)
    assert {
        "Patient",
        "Encounter",
        "Procedure",
        "MedicationAdministration",
        "Observation",
        "AdverseEvent",
        "Flag",
    } <= set(kinds)

    errors, warnings, no_narrative, unresolved = [], Counter(), [], []
    for resource, issues in results:
        for issue in issues:
            text = issue.get("diagnostics", "")
            if UNRESOLVED.search(text):
                unresolved.append(_where(resource))
            if DOM_6 in text or "should have narrative" in text:
                no_narrative.append(f"{_where(resource)}: {issue.get('severity')}: {text}")
            if issue.get("severity") in ("error", "fatal"):
                errors.append(f"{_where(resource)}: {issue.get('location')}: {text}")
            elif issue.get("severity") == "warning":
                warnings[(resource["resourceType"], _pattern(text))] += 1
    with capsys.disabled():
        print(
            f"\n$validate: {count} records -> {len(resources)} distinct resources, "
            f"{len(errors)} errors, {sum(warnings.values())} warnings:"
        )
        for (resource_type, message), n in sorted(warnings.items()):
            print(f"  warning x{n} {resource_type}: {message}")
    assert errors == []
    assert no_narrative == []
    assert kinds["QuestionnaireResponse"] > 0
    assert unresolved == []  # every QuestionnaireResponse was checked against its stored Questionnaire


def _read_back(http: httpx.Client, refs: list[str]) -> list[dict[str, Any]]:
    out = []
    for ref in refs:
        response = http.get(f"/{ref}")
        assert response.status_code == 200, ref
        out.append(response.json())
    return out


def _transaction_records(run_id: str) -> list[Any]:
    """From the corpus: a session with embedded children, and one whose children come as separate records.

    Keys get the run id appended; all records share one patient whose fresh MRN holds every special
    character.
    """
    raw = list(generate())
    embedded = next(
        r
        for r in raw
        if r["kind"] == "infusion_session"
        and r.get("vital_signs")
        and r.get("assessments")
        and r["status"] in ("completed", "stopped")
    )
    flat = next(
        r for r in raw if r["kind"] == "infusion_session" and "vital_signs" not in r and r["status"] == "completed"
    )
    chosen = [embedded, flat, *(r for r in raw if r.get("session_key") == flat["key"])]
    keys = {r["key"] for r in chosen} | {c["key"] for r in chosen for name in CHILD_LISTS for c in r.get(name, [])}
    text = orjson.dumps(chosen).decode()
    for key in keys:
        text = text.replace(f'"{key}"', f'"{key}.{run_id}"')
    patient = {**embedded["patient"], "mrn": f"IT,{run_id}|$\\x"}
    records = []
    for data in orjson.loads(text):
        data["patient"] = patient
        for child in (c for name in CHILD_LISTS for c in data.get(name, [])):
            child.pop("patient", None)
        records.append(parse_record(data))
    assert {r.kind for r in records} == {
        "infusion_session",
        "vital_sign",
        "monitoring_score",
        "adverse_event",
        "phq9_assessment",
        "assessment",
    }
    return records


@pytest.mark.needs("large-transactions")
def test_transaction_is_accepted_idempotent_and_reads_back_to_the_same_records(
    fhir_base_url: str, fhir_cleanup: Any, run_id: str
) -> None:
    records = _transaction_records(run_id)
    bundle = transaction_bundle(records, CONFIG)

    with httpx.Client(base_url=fhir_base_url, headers=HEADERS, timeout=120) as http:
        first = http.post("", content=orjson.dumps(bundle))
        assert first.status_code == 200, first.text[:2000]
        entries = first.json()["entry"]
        refs = ["/".join(e["response"]["location"].split("/")[:2]) for e in entries]
        fhir_cleanup.track(*refs)
        assert all(e["response"]["status"].startswith("201") for e in entries)

        again = http.post("", content=orjson.dumps(bundle))
        assert again.status_code == 200, again.text[:2000]
        assert [e["response"]["status"][:3] for e in again.json()["entry"]] == ["200"] * len(refs)

        read = _read_back(http, refs)
    assert read[0]["resourceType"] == "Patient"
    patient = patient_from_fhir(read[0], CONFIG)
    assert patient == records[0].patient
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in read[1:]}
    assert all(r["subject"]["reference"] == refs[0] for r in by_ref.values())  # urn:uuid rewritten by the server
    visits = [
        r
        for r in by_ref.values()
        if r["resourceType"] == "Encounter" and r["identifier"][0]["system"] == CONFIG.visit_system
    ]
    for record in records:  # each record from the server's copies of exactly the resources it produced
        mapper = mapper_for(record.kind)
        own = [by_ref[f"{r.get_resource_type()}/{r.id}"] for r in mapper.to_fhir(record, CONFIG)]
        own += visits if record.kind == "infusion_session" else []  # the EHR visit, created by the Bundle
        assert mapper.from_fhir(own, patient, CONFIG) == record
    for record in records[2:]:  # and picked by key from everything that was written
        assert mapper_for(record.kind).from_fhir(list(by_ref.values()), patient, CONFIG, key=record.key) == record


# --- Interpreted readings (issue 22): every level, both reference ranges, the unknown phase, a weakened rule ---

INTERPRETED_SESSION = monitored_session(
    {"mrn": "MRN-INT"},
    kind="infusion_session",
    key="S-INT",
    vital_signs=[
        {"key": "I-1", "measured_at": "2026-03-02T08:50:00-05:00", "type": "blood_pressure", "systolic": 150, "diastolic": 95},
        {"key": "I-2", "measured_at": "2026-03-02T15:20:00+01:00", "type": "blood_pressure", "systolic": 212, "diastolic": 124},
        {"key": "I-3", "measured_at": "2026-03-02T10:20:00-05:00", "type": "blood_pressure", "systolic": 76, "diastolic": 48},
        {"key": "I-4", "measured_at": "2026-03-02T09:25:00-05:00", "type": "spo2", "value": 86, "supplemental_o2": True},
        {"key": "I-5", "measured_at": "2026-03-02T10:45:00-05:00", "type": "spo2", "value": 97, "supplemental_o2": False},
        {"key": "I-6", "measured_at": "2026-03-02T09:30:00-05:00", "type": "heart_rate", "value": 38},
        {"key": "I-7", "measured_at": "2026-03-02T09:31:00-05:00", "type": "heart_rate", "value": 130},
        {"key": "I-8", "measured_at": "2026-03-02T09:32:00-05:00", "type": "respiratory_rate", "value": 32},
        {"key": "I-9", "measured_at": "2026-03-02T09:33:00-05:00", "type": "respiratory_rate", "value": 6},
        {"key": "I-10", "measured_at": "2026-03-02T09:34:00-05:00", "type": "temperature", "value": 37.1, "unit": "Cel"},
    ],
    monitoring_scores=[
        {"key": "I-11", "measured_at": "2026-03-02T09:35:00-05:00", "instrument": "moaas", "score": 1},
        {"key": "I-12", "measured_at": "2026-03-02T10:30:00-05:00", "instrument": "moaas", "score": 5},
        {"key": "I-13", "measured_at": "2026-03-02T09:36:00-05:00", "instrument": "cadss", "score": 12},
    ],
)  # fmt: skip
# A reading offline (its session unknown: the strictest limits) and one under a weakened rule.
ALONE = {"kind": "vital_sign", "key": "I-14", "patient": {"mrn": "MRN-INT"}, "session_key": "S-INT",
         "measured_at": "2026-03-02T09:20:00-05:00", "type": "blood_pressure", "systolic": 185, "diastolic": 100}  # fmt: skip
WEAKENED_HR = (
    'when = "heart_rate > 120"\nsource = "clinic"\nless_sensitive_than_default = '
    '{ approved_by = "Dr Mensah", approved_on = 2026-05-01, reason = "athletes" }'
)


def _levels(resource: dict[str, Any]) -> list[str]:
    parts = [resource, *resource.get("component", [])]  # blood pressure: on its components
    return [i["coding"][0]["code"] for part in parts for i in part.get("interpretation", [])]


@pytest.mark.needs("$validate")
def test_interpreted_readings_pass_validate_without_errors(fhir_base_url: str, tmp_path: Path) -> None:
    """A hypertensive, desaturating, over-sedated session: every level, both ranges, the unknown phase, and a
    reading under a rule the clinic weakened (its range names the approval)."""
    from service.monitoring import load_protocol
    from service.monitoring.loader import DEFAULT_FILE

    session = parse_record(INTERPRETED_SESSION)
    resources = [
        r for r in mapper_for(session.kind).to_fhir_json(session, CONFIG) if r["resourceType"] == "Observation"
    ]
    alone = parse_record(ALONE)
    resources += mapper_for(alone.kind).to_fhir_json(alone, CONFIG)
    text = (Path(__file__).resolve().parents[2] / "service" / "monitoring" / DEFAULT_FILE).read_text()
    protocol_file = tmp_path / "protocol.toml"
    protocol_file.write_text(
        text.replace(
            'when = "heart_rate > 110"\nsource = "Bounds of an ICU ketamine trial (HR > 120, < 50)"', WEAKENED_HR
        )
    )
    weakened = MappingConfig(protocol=load_protocol(protocol_file))
    hr_115 = {**ALONE, "key": "I-15", "type": "heart_rate", "value": 115, "systolic": None, "diastolic": None}
    resources += mapper_for("vital_sign").to_fhir_json(parse_record(hr_115), weakened)

    levels = {r["identifier"][0]["value"]: _levels(r) for r in resources}
    assert levels == {
        "S-INT/dosing-weight": [], "I-1": ["H", "H"], "I-2": ["HH", "HH"], "I-3": ["LL"], "I-4": ["LL"], "I-5": ["N"],
        "I-6": ["LL"], "I-7": ["H"], "I-8": ["HH"], "I-9": ["LL"], "I-10": [], "I-11": ["AA"], "I-12": ["N"],
        "I-13": ["A"], "I-14": ["HH", "H"], "I-15": ["N"],
    }  # fmt: skip
    assert "approved by Dr Mensah on 2026-05-01" in resources[-1]["referenceRange"][0]["text"]
    assert "phase unknown" in resources[-2]["component"][0]["referenceRange"][0]["text"]

    with httpx.Client(base_url=fhir_base_url, headers=HEADERS, timeout=60) as http:
        _publish_extensions(http)
        results = [_validate(http, r) for r in resources]
    errors = [
        f"{_where(r)}: {i.get('location')}: {i.get('diagnostics')}"
        for r, issues in results
        for i in issues
        if i.get("severity") in ("error", "fatal")
    ]
    assert errors == []
