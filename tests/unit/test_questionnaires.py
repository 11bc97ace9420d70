"""The service's Questionnaires: structure per instrument, licences, determinism, published copies, written once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.errors import FhirRejected
from service.fhir_client import FhirClient
from service.instruments import DEFINITIONS, definition
from service.instruments.model import LOINC, Choice, IntegerRange, YesNo
from service.mappers import questionnaire as q
from service.mappers.config import MappingConfig
from service.mappers.fhir import to_json
from service.mappers.narrative import DIV_CLOSE, DIV_OPEN
from service.sync.questionnaires import QuestionnairesOnce, ensure_questionnaires
from tests.unit.fake_fhir import BASE, FakeFhir

CONFIG = MappingConfig()
INSTRUMENTS = tuple(DEFINITIONS)
RESTRICTED = ("cssrs_screen", "cssrs_screen_slc", "qids_sr16", "madrs", "ybocs")
SCREENERS = ("cssrs_screen", "cssrs_screen_slc")
LOCAL = f"{CONFIG.local_code_system_base}/instrument"
YES = {"system": LOINC, "code": "LA33-6", "display": "Yes"}
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def strings(node: Any, key: str) -> Iterator[str]:
    """Every string value under `key` anywhere in a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and isinstance(v, str):
                yield v
            yield from strings(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v, key)


# --- the resource, per instrument ---


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_head_names_the_canonical_version_licence_and_subject(instrument: str) -> None:
    d = definition(instrument)
    out = q.to_questionnaire_json(CONFIG, instrument)
    assert out["resourceType"] == "Questionnaire"
    assert FHIR_ID.fullmatch(out["id"]) and out["id"].startswith(f"{d.id.replace('_', '-')}-v{d.version}-")
    assert out["url"] == q.questionnaire_url(CONFIG, instrument) == f"{CONFIG.canonical_base}/Questionnaire/{d.id}"
    assert f"{out['url']}|{out['version']}" == q.questionnaire_canonical(CONFIG, instrument)
    assert (out["version"], out["title"], out["status"], out["subjectType"]) == (
        d.version,
        d.title,
        "active",
        ["Patient"],
    )
    assert re.fullmatch(r"[A-Z][A-Za-z0-9_]*", out["name"])  # a computable name (R4 inv-0)
    assert out["copyright"] == d.licence.terms and out["copyright"]
    assert out["text"]["status"] == "generated"
    assert out["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml"><p>' + d.title)


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_items_follow_the_definition(instrument: str) -> None:
    d = definition(instrument)
    items = q.to_questionnaire_json(CONFIG, instrument)["item"]
    asked = items[: len(d.items)]
    assert len(items) == len(d.items) + (d.difficulty is not None)
    assert [i["linkId"] for i in asked] == [item.link_id for item in d.items]
    for out, item in zip(asked, d.items, strict=True):
        assert out["required"] is True
        assert out["text"] == item.text
        assert out["code"] == [
            {
                "system": LOCAL if item.coding.local else LOINC,
                "code": item.coding.code,
                **({"display": item.coding.display} if item.coding.display else {}),
            }
        ]
        answer = item.answer
        if isinstance(answer, IntegerRange):
            assert out["type"] == "integer" and "answerOption" not in out
            assert out["extension"] == [
                {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": answer.low},
                {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": answer.high},
            ]
        elif isinstance(answer, Choice):
            assert out["type"] == "choice"
            assert [
                (o["valueCoding"]["code"], o["valueCoding"]["display"], o["extension"]) for o in out["answerOption"]
            ] == [
                (
                    option.coding.code,
                    option.coding.display,
                    [{"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue", "valueDecimal": option.score}],
                )
                for option in answer.options
            ]
        else:
            assert isinstance(answer, YesNo)
            assert out["type"] == "choice"
            assert out["answerOption"] == [
                {"valueCoding": YES},
                {"valueCoding": {**YES, "code": "LA32-8", "display": "No"}},
            ]


def test_choice_scores_are_the_frequency_scale() -> None:
    for instrument in ("phq9", "gad7"):
        for item in q.to_questionnaire_json(CONFIG, instrument)["item"][:-1]:
            scores = [(o["valueCoding"]["code"], o["extension"][0]["valueDecimal"]) for o in item["answerOption"]]
            assert scores == [("LA6568-5", 0), ("LA6569-3", 1), ("LA6570-1", 2), ("LA6571-9", 3)]


@pytest.mark.parametrize(("instrument", "code"), [("phq9", "69722-7"), ("gad7", "gad7-difficulty")])
def test_the_difficulty_item_is_last_optional_and_unscored(instrument: str, code: str) -> None:
    d = definition(instrument)
    assert d.difficulty is not None
    last = q.to_questionnaire_json(CONFIG, instrument)["item"][-1]
    assert (last["linkId"], last["code"][0]["code"], last["type"]) == (d.difficulty.link_id, code, "choice")
    assert "required" not in last  # the record's difficulty is optional
    assert all("extension" not in option for option in last["answerOption"])  # not part of any score
    assert [o["valueCoding"]["code"] for o in last["answerOption"]] == ["LA6572-7", "LA6573-5", "LA6575-0", "LA6574-3"]


def test_no_other_instrument_has_a_difficulty_item() -> None:
    for instrument in INSTRUMENTS:
        if instrument not in ("phq9", "gad7"):
            assert len(q.to_questionnaire_json(CONFIG, instrument)["item"]) == len(definition(instrument).items)


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_skip_rules_are_the_cssrs_ones_only(instrument: str) -> None:
    rules = {
        item["linkId"]: (item["enableWhen"], item.get("enableBehavior"))
        for item in q.to_questionnaire_json(CONFIG, instrument)["item"]
        if "enableWhen" in item
    }
    expected = {"cssrs_screen": ("S3", "S4", "S5", "S6b"), "cssrs_screen_slc": ("S3", "S4", "S5")}.get(instrument, ())
    assert tuple(rules) == expected
    for link_id, (enable_when, behavior) in rules.items():
        question = "S6" if link_id == "S6b" else "S2"
        assert enable_when == [{"question": question, "operator": "=", "answerCoding": YES}]
        assert behavior is None  # one condition each: enableBehavior is needed with two or more


def test_panel_code_where_one_is_confirmed() -> None:
    panels = {i: q.to_questionnaire_json(CONFIG, i).get("code") for i in INSTRUMENTS}
    assert panels == {
        "phq9": [
            {"system": LOINC, "code": "44249-1", "display": "PHQ-9 quick depression assessment panel [Reported.PHQ]"}
        ],
        "gad7": [{"system": LOINC, "code": "69737-5", "display": "Generalized anxiety disorder 7 item (GAD-7)"}],
        "pcl5": [
            {
                "system": LOINC,
                "code": "101697-1",
                "display": "Post traumatic stress disorder checklist - civilian version DSM-5 [PCL-5]",
            }
        ],
        "cssrs_screen": None,  # 93373-9 is CHECK in instruments.md: not published until confirmed
        "cssrs_screen_slc": [
            {"system": LOCAL, "code": "cssrs-screener-slc", "display": "C-SSRS screener since last contact"}
        ],
        "qids_sr16": [{"system": LOCAL, "code": "qids-sr16", "display": "QIDS-SR16"}],
        "madrs": [{"system": LOCAL, "code": "madrs", "display": "MADRS"}],
        "ybocs": [{"system": LOCAL, "code": "ybocs", "display": "Y-BOCS"}],
    }


# --- licences (instruments.md section 5) ---


@pytest.mark.parametrize("instrument", RESTRICTED)
def test_every_text_and_display_of_a_restricted_instrument_is_allow_listed(instrument: str) -> None:
    d = definition(instrument)
    out = q.to_questionnaire_json(CONFIG, instrument)
    found = [*strings(out["item"], "text"), *strings(out, "display"), out["title"]]
    assert len(found) > len(d.items)
    assert [text for text in found if text not in d.licence.allow_list] == []


@pytest.mark.parametrize("instrument", SCREENERS)
def test_cssrs_item_codings_carry_no_display(instrument: str) -> None:
    for item in q.to_questionnaire_json(CONFIG, instrument)["item"]:
        assert all("display" not in coding for coding in item["code"])


# --- determinism, ids, the validated model ---


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_deterministic_and_equal_to_the_validated_model(instrument: str) -> None:
    first = q.document_text(CONFIG, instrument)
    assert first == q.document_text(MappingConfig(), instrument)
    as_model = json.dumps(to_json(q.to_questionnaire(CONFIG, instrument)), indent=2, ensure_ascii=False) + "\n"
    assert as_model == first  # same elements, same order


def test_ids_are_unique_per_instrument_canonical_base_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = {q.questionnaire_id(CONFIG, i) for i in INSTRUMENTS}
    assert len(ids) == len(INSTRUMENTS)
    other = MappingConfig(canonical_base="https://clinic-b.example/fhir")
    assert ids.isdisjoint(q.questionnaire_id(other, i) for i in INSTRUMENTS)
    assert q.to_questionnaire_json(other, "gad7")["url"] == "https://clinic-b.example/fhir/Questionnaire/gad7"
    version_1 = q.questionnaire_id(CONFIG, "gad7")
    monkeypatch.setattr(q, "definition", lambda i: dataclasses.replace(definition(i), version="2"))
    version_2 = q.questionnaire_id(CONFIG, "gad7")
    assert version_2.startswith("gad7-v2-") and version_2 != version_1
    monkeypatch.setattr(q, "definition", lambda i: dataclasses.replace(definition(i), version="1 beta"))
    with pytest.raises(ValueError, match="no valid FHIR id"):
        q.questionnaire_id(CONFIG, "gad7")


def test_narratives_say_what_the_form_holds_in_the_services_words() -> None:
    sentences = {
        i: q.to_questionnaire_json(CONFIG, i)["text"]["div"].removeprefix(DIV_OPEN).removesuffix(DIV_CLOSE)
        for i in INSTRUMENTS
    }
    assert sentences == {
        "phq9": "PHQ-9 questionnaire, version 1: 9 items scored 0-3, and an unscored difficulty item.",
        "gad7": "GAD-7 questionnaire, version 1: 7 items scored 0-3, and an unscored difficulty item.",
        "pcl5": "PCL-5 questionnaire, version 1: 20 items scored 0-4.",
        "cssrs_screen": "C-SSRS screener (recent) questionnaire, version 1: 7 yes/no items, 4 asked only after a yes.",
        "cssrs_screen_slc": (
            "C-SSRS screener (since last contact) questionnaire, version 1: 6 yes/no items, 3 asked only after a yes."
        ),
        "qids_sr16": "QIDS-SR16 questionnaire, version 1: 16 items scored 0-3.",
        "madrs": "MADRS questionnaire, version 1: 10 items scored 0-6.",
        "ybocs": "Y-BOCS questionnaire, version 1: 10 items scored 0-4.",
    }


# --- published copies (docs/fhir/) ---


def test_published_copies_are_fresh() -> None:
    expected = q.published()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in q.DOCS.glob("Questionnaire-*.json")}
    assert sorted(on_disk) == sorted(expected), "run `make questionnaires` and commit docs/fhir/"
    stale = [name for name, text in expected.items() if on_disk[name] != text]
    assert stale == [], "run `make questionnaires` and commit docs/fhir/"


def test_published_copies_are_listed_in_the_readme() -> None:
    readme = (q.DOCS / "README.md").read_text(encoding="utf-8")
    for name in q.published():
        assert f"({name})" in readme, name


def test_write_published_writes_every_copy_and_removes_stale_ones(tmp_path) -> None:
    (tmp_path / "Questionnaire-gad7-v0-old.json").write_text("{}")
    (tmp_path / "StructureDefinition-x.json").write_text("{}")
    names = q.write_published(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names, "StructureDefinition-x.json"])
    assert {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("Questionnaire-*")} == q.published()


# --- written once (against the in-memory server) ---


async def test_ensure_questionnaires_writes_each_once_and_only_what_differs() -> None:
    fake = FakeFhir()
    config = MappingConfig(fhir_base_url=BASE)
    ids = sorted(q.questionnaire_id(config, i) for i in INSTRUMENTS)
    async with httpx.AsyncClient(base_url=BASE + "/", transport=fake.transport()) as http:
        client = FhirClient(http)
        first = await ensure_questionnaires(client, config)
        assert (sorted(first.created), first.updated, first.unchanged, first.written) == (ids, (), (), len(ids))
        assert len(fake.transactions) == 1
        assert [e["request"] for e in fake.transactions[0]["entry"]] == [
            {"method": "PUT", "url": f"Questionnaire/{i}"} for i in ids
        ]

        second = await ensure_questionnaires(client, config)
        assert (second.written, sorted(second.unchanged)) == (0, ids)
        assert len(fake.transactions) == 1  # nothing sent

        gad7 = f"Questionnaire/{q.questionnaire_id(config, 'gad7')}"
        fake.store[gad7]["title"] = "changed by someone"
        del fake.store[f"Questionnaire/{q.questionnaire_id(config, 'madrs')}"]
        third = await ensure_questionnaires(client, config)
        assert (third.created, third.updated) == ((q.questionnaire_id(config, "madrs"),), (gad7.split("/")[1],))
        assert [e["request"]["url"] for e in fake.transactions[-1]["entry"]] == sorted(
            [gad7, f"Questionnaire/{q.questionnaire_id(config, 'madrs')}"]
        )
        assert fake.store[gad7]["title"] == "GAD-7" and fake.store[gad7]["meta"]["versionId"] == "2"


async def test_ensure_questionnaires_for_some_instruments_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="infusion_fhir")
    fake = FakeFhir()
    async with httpx.AsyncClient(base_url=BASE + "/", transport=fake.transport()) as http:
        report = await ensure_questionnaires(FhirClient(http), MappingConfig(fhir_base_url=BASE), ["gad7"])
    assert report.counts() == {"created": 1, "updated": 0, "unchanged": 0}
    (event,) = [r for r in caplog.records if r.getMessage() == "sync.questionnaires"]
    assert (event.questionnaires_created, event.questionnaires_updated, event.questionnaires_unchanged) == (1, 0, 0)
    assert [r["url"] for r in fake.of_type("Questionnaire")] == [f"{CONFIG.canonical_base}/Questionnaire/gad7"]


async def test_once_per_process_concurrent_callers_share_one_check_and_a_failure_is_retried() -> None:
    fake = FakeFhir()
    down = [True]
    fake.intercept = lambda request, body: (
        httpx.Response(400, json={"resourceType": "OperationOutcome"}) if down[0] else None
    )
    async with httpx.AsyncClient(base_url=BASE + "/", transport=fake.transport()) as http:
        once = QuestionnairesOnce(FhirClient(http), MappingConfig(fhir_base_url=BASE))
        with pytest.raises(FhirRejected):
            await once.ensure()
        down[0] = False
        reports = await asyncio.gather(*(once.ensure() for _ in range(5)))
        assert [r.written if r else None for r in reports] == [len(INSTRUMENTS), None, None, None, None]
        searches = len(fake.requests)
        assert await once.ensure() is None and len(fake.requests) == searches  # no request once done
    assert len(fake.transactions) == 1
