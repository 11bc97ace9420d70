"""The service's Questionnaires on the real server: written once, `$validate` clean, and responses checked against them.

Each test publishes under a canonical base of its own (`run_id`), so its Questionnaires have URLs and
ids no other test meets, and deletes them afterwards. A QuestionnaireResponse's `$validate` checks the
answers only when the server resolves its `questionnaire` canonical: the tests see that resolution
happen (no "could not be resolved" warning, which an unknown canonical does get) and see a wrong
answer code, an answer outside the options and an answer to a skipped question rejected.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from service.fhir_client import FhirClient, open_fhir_client
from service.instruments import DEFINITIONS
from service.mappers.config import MappingConfig
from service.mappers.narrative import narrative
from service.mappers.questionnaire import questionnaire_canonical, questionnaire_id, to_questionnaire_json
from service.settings import Settings
from service.sync.questionnaires import ensure_questionnaires
from tests.integration.beds import written_once

LOINC = "http://loinc.org"
YES, NO = "LA33-6", "LA32-8"
SEVERAL_DAYS = "LA6569-3"
# The one warning an offline server gives our Questionnaires: it has no LOINC to check codes against.
LOINC_UNCHECKED = re.compile(r"cannot be checked because codeSystem 'http://loinc\.org'")
UNRESOLVED = re.compile(r"questionnaire .* (could not be resolved|not found)", re.IGNORECASE)


@pytest.fixture
def config(fhir_base_url: str, run_id: str) -> MappingConfig:
    """A canonical base and identifier systems unique to this test."""
    return MappingConfig(
        canonical_base=f"https://test.infusion-fhir.example/{run_id}/fhir",
        identifier_system_base=f"https://test.infusion-fhir.example/{run_id}/sid",
        mrn_system=f"https://test.infusion-fhir.example/{run_id}/mrn",
        fhir_base_url=fhir_base_url,
    )


@pytest.fixture
async def client(fhir_base_url: str, config: MappingConfig, fhir_cleanup) -> AsyncIterator[FhirClient]:
    """The service's FHIR client; every Questionnaire of this test's base is deleted afterwards."""
    fhir_cleanup.track(*(f"Questionnaire/{questionnaire_id(config, i)}" for i in DEFINITIONS))
    async with open_fhir_client(Settings(FHIR_BASE_URL=fhir_base_url)) as fhir:
        yield fhir


def issues(outcome: dict[str, Any], *severities: str) -> list[str]:
    return [
        f"{i.get('expression')}: {i.get('diagnostics')}"
        for i in outcome.get("issue", [])
        if i["severity"] in severities
    ]


async def version_ids(client: FhirClient, config: MappingConfig) -> dict[str, str]:
    held = await client.current("Questionnaire", [questionnaire_id(config, i) for i in DEFINITIONS])
    return {r["id"]: r["meta"]["versionId"] for r in held}


async def test_each_questionnaire_is_written_once(
    client: FhirClient, config: MappingConfig, fhir_base_url: str
) -> None:
    first = await ensure_questionnaires(client, config)
    assert (first.written, len(first.created), first.updated, first.unchanged) == (len(DEFINITIONS), 8, (), ())
    versions = await version_ids(client, config)
    assert set(versions) == {questionnaire_id(config, i) for i in DEFINITIONS}
    held = await client.current("Questionnaire", list(versions))
    assert all(written_once(fhir_base_url, q) for q in held)

    second = await ensure_questionnaires(client, config)
    assert (second.written, len(second.unchanged)) == (0, len(DEFINITIONS))
    assert await version_ids(client, config) == versions  # nothing rewritten

    for instrument in DEFINITIONS:  # the server holds them as the service publishes them
        held = await client.read("Questionnaire", questionnaire_id(config, instrument))
        assert {k: v for k, v in held.items() if k != "meta"} == to_questionnaire_json(config, instrument)


@pytest.mark.parametrize("instrument", tuple(DEFINITIONS))
@pytest.mark.needs("$validate")
async def test_every_questionnaire_validates_without_errors(client: FhirClient, instrument: str) -> None:
    outcome = await client.validate(to_questionnaire_json(MappingConfig(), instrument))
    assert issues(outcome, "fatal", "error") == []
    assert [w for w in issues(outcome, "warning") if not LOINC_UNCHECKED.search(w)] == []


# --- QuestionnaireResponses checked against the stored Questionnaires ---


def response(config: MappingConfig, instrument: str, answers: list[tuple[str, str]]) -> dict[str, Any]:
    """A completed response naming the service's Questionnaire (`url|version`), answers as LOINC valueCoding."""
    return {
        "resourceType": "QuestionnaireResponse",
        "text": narrative(f"{DEFINITIONS[instrument].title} response (test)"),
        "questionnaire": questionnaire_canonical(config, instrument),
        "status": "completed",
        "subject": {"identifier": {"system": config.mrn_system, "value": "q-test-1"}},
        "authored": "2026-03-02T09:30:00Z",
        "item": [
            {"linkId": link_id, "answer": [{"valueCoding": {"system": LOINC, "code": code}}]}
            for link_id, code in answers
        ],
    }


def gad7(config: MappingConfig, third: str = SEVERAL_DAYS) -> dict[str, Any]:
    answers = [(str(n), third if n == 3 else SEVERAL_DAYS) for n in range(1, 8)]
    return response(config, "gad7", [*answers, ("8", "LA6573-5")])  # 8: the difficulty item


def cssrs(config: MappingConfig, answers: list[tuple[str, str]]) -> dict[str, Any]:
    return response(config, "cssrs_screen", answers)


async def validated(client: FhirClient, resource: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(errors, warnings) of `$validate`, the warnings without the LOINC-not-loaded ones."""
    outcome = await client.validate(resource)
    warnings = [w for w in issues(outcome, "warning") if not LOINC_UNCHECKED.search(w)]
    return issues(outcome, "fatal", "error"), warnings


@pytest.mark.needs("$validate")
async def test_a_response_is_checked_against_its_stored_questionnaire(
    client: FhirClient, config: MappingConfig
) -> None:
    await ensure_questionnaires(client, config, ["gad7", "cssrs_screen"])

    # Without the Questionnaire the validator checks nothing and says so: the warning the next checks must not see.
    unknown = {**gad7(config), "questionnaire": f"{config.canonical_base}/Questionnaire/none|1"}
    errors, warnings = await validated(client, unknown)
    assert errors == [] and any(UNRESOLVED.search(w) for w in warnings), warnings

    good = [
        gad7(config),
        cssrs(config, [("S1", YES), ("S2", NO), ("S6", NO)]),  # S3-S5 and S6b skipped
        cssrs(config, [("S1", YES), ("S2", YES), ("S3", NO), ("S4", NO), ("S5", NO), ("S6", YES), ("S6b", NO)]),
    ]
    for resource in good:
        assert await validated(client, resource) == ([], [])

    wrong_code = await validated(client, gad7(config, third="LA9999-9"))
    assert wrong_code[0] and "LA9999-9" in wrong_code[0][0] and "item[2]" in wrong_code[0][0]
    not_an_option = await validated(client, gad7(config, third=YES))  # a LOINC answer, but from another list
    assert not_an_option[0] and YES in not_an_option[0][0]
    cssrs_wrong = await validated(client, cssrs(config, [("S1", "LA9999-9"), ("S2", NO), ("S6", NO)]))
    assert cssrs_wrong[0] and "LA9999-9" in cssrs_wrong[0][0]
    skipped_but_answered = await validated(client, cssrs(config, [("S1", YES), ("S2", NO), ("S3", NO), ("S6", NO)]))
    assert skipped_but_answered[0] and "S3" in skipped_but_answered[0][0]
    asked_but_missing = await validated(client, cssrs(config, [("S1", YES), ("S2", YES), ("S6", NO)]))
    assert len(asked_but_missing[0]) == 3  # S3, S4, S5 are required once S2 is yes
