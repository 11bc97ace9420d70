"""The service's own Questionnaire per instrument: canonical URL, version, id and the resource itself.

Built from the instrument's definition alone (instruments.md section 4): items with linkId and code,
choice items with their LOINC answers each carrying its score (ordinalValue), integer items with
minValue / maxValue, the C-SSRS skip rules as enableWhen, the licence's terms as `copyright`. For a
restricted instrument every `text` and `display` comes from the definition's allow-list of neutral
labels (section 5). Pure: same config and instrument, byte-identical JSON.

`python -m service.mappers.questionnaire` writes the published copies, docs/fhir/Questionnaire-<id>.json
(default config); a unit test fails while one is stale.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

from service.instruments import DEFINITIONS, definition
from service.instruments.model import LOCAL_SYSTEM, LOINC, Choice, Coding, Definition, IntegerRange, Item, YesNo
from service.mappers import codes
from service.mappers.build import Json
from service.mappers.config import MappingConfig
from service.mappers.fhir import Questionnaire
from service.mappers.ids import base32_prefix
from service.mappers.narrative import narrative

DOCS = Path(__file__).resolve().parents[2] / "docs" / "fhir"
STATUS = "active"
SUBJECT_TYPE = "Patient"
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_HASH_CHARS = 8
# The narrative's own words (never an instrument's wording; titles come from the definition).
_SCORED = "scored"
_YES_NO = "yes/no"
_AFTER_YES = "asked only after a yes"
_DIFFICULTY = "an unscored difficulty item"


def questionnaire_url(config: MappingConfig, instrument: str) -> str:
    """The canonical URL of the service's Questionnaire for `instrument`, never LOINC's namespace."""
    return f"{config.canonical_base}/Questionnaire/{definition(instrument).id}"


def questionnaire_canonical(config: MappingConfig, instrument: str) -> str:
    """`url|version`, as a QuestionnaireResponse's `questionnaire` names the version its answers follow."""
    return f"{questionnaire_url(config, instrument)}|{definition(instrument).version}"


def questionnaire_id(config: MappingConfig, instrument: str) -> str:
    """`<instrument with dashes>-v<version>-<h>`: `h` is 8 base32 characters of the SHA-256 of `url|version`.

    A new version is a new id (the old Questionnaire stays), and so is another canonical base: two
    clinics (or two test runs) sharing a server never write over each other's Questionnaire.
    """
    d = definition(instrument)
    digest = hashlib.sha256(questionnaire_canonical(config, instrument).encode()).digest()
    resource_id = f"{d.id.replace('_', '-')}-v{d.version}-{base32_prefix(digest)[:_HASH_CHARS]}"
    if not _FHIR_ID.fullmatch(resource_id):
        raise ValueError(f"{instrument}: version {d.version!r} makes no valid FHIR id")
    return resource_id


def to_questionnaire_json(config: MappingConfig, instrument: str) -> Json:
    """The Questionnaire of `instrument` as FHIR JSON, keys in the order fhir.resources serialises."""
    d = definition(instrument)
    out: Json = {
        "resourceType": "Questionnaire",
        "id": questionnaire_id(config, instrument),
        "text": narrative(_sentence(d)),
        "url": questionnaire_url(config, instrument),
        "version": d.version,
        "name": d.id.upper(),
        "title": d.title,
        "status": STATUS,
        "subjectType": [SUBJECT_TYPE],
        "copyright": d.licence.terms,
    }
    if d.panel is not None and d.panel.confirmed:  # an unconfirmed (CHECK) panel code is not published
        out["code"] = [_coding(d.panel, config)]
    items = [_item(d, item, config, required=True) for item in d.items]
    if d.difficulty is not None:
        items.append(_item(d, d.difficulty, config, required=False, scored=False))
    out["item"] = items
    return out


def to_questionnaire(config: MappingConfig, instrument: str) -> Questionnaire:
    """The same Questionnaire as a validated R4B model."""
    return Questionnaire.model_validate(to_questionnaire_json(config, instrument))


def _coding(coding: Coding, config: MappingConfig) -> Json:
    """A FHIR Coding of an instrument code: LOINC, or the local instrument code system; display only if any."""
    system = codes.local_system(config.local_code_system_base, LOCAL_SYSTEM) if coding.local else LOINC
    out: Json = {"system": system, "code": coding.code}
    if coding.display is not None:
        out["display"] = coding.display
    return out


def _item(d: Definition, item: Item, config: MappingConfig, *, required: bool, scored: bool = True) -> Json:
    """One question: answer options (choice, yes/no) or bounds (integer), skip rules, required when asked."""
    answer = item.answer
    out: Json = {}
    if isinstance(answer, IntegerRange):
        out["extension"] = [
            {"url": codes.EXT_MIN_VALUE, "valueInteger": answer.low},
            {"url": codes.EXT_MAX_VALUE, "valueInteger": answer.high},
        ]
    out |= {"linkId": item.link_id, "code": [_coding(item.coding, config)], "text": item.text}
    out["type"] = "integer" if isinstance(answer, IntegerRange) else "choice"
    if item.enable_when:
        out["enableWhen"] = [
            {
                "question": rule.link_id,
                "operator": "=",
                "answerCoding": _yes_no(d.item(rule.link_id), rule.answer, config),
            }
            for rule in item.enable_when
        ]
        if len(item.enable_when) > 1:
            out["enableBehavior"] = "all"
    if required:
        out["required"] = True
    if isinstance(answer, Choice):
        out["answerOption"] = [
            {
                **({"extension": [{"url": codes.EXT_ORDINAL_VALUE, "valueDecimal": option.score}]} if scored else {}),
                "valueCoding": _coding(option.coding, config),
            }
            for option in answer.options
        ]
    elif isinstance(answer, YesNo):  # a triage, not a sum: the options carry no score
        out["answerOption"] = [{"valueCoding": _coding(coding, config)} for coding in (answer.yes, answer.no)]
    return out


def _yes_no(question: Item, answer: bool, config: MappingConfig) -> Json:
    """The answer coding of `question` a skip rule waits for (skip rules wait on yes/no items only)."""
    if not isinstance(question.answer, YesNo):
        raise ValueError(f"item {question.link_id}: skip rules wait on yes/no items only")
    return _coding(question.answer.yes if answer else question.answer.no, config)


def _sentence(d: Definition) -> str:
    """`GAD-7 questionnaire, version 1: 7 items scored 0-3, and an unscored difficulty item.`"""
    answers = {item.answer for item in d.items}
    count = len(d.items)
    if all(isinstance(answer, YesNo) for answer in answers):
        what = f"{count} {_YES_NO} items"
        skipped = sum(1 for item in d.items if item.enable_when)
        if skipped:
            what += f", {skipped} {_AFTER_YES}"
    else:
        ranges = sorted({(answer.low, answer.high) for answer in answers})
        what = f"{count} items {_SCORED} " + " or ".join(f"{low}-{high}" for low, high in ranges)
    if d.difficulty is not None:
        what += f", and {_DIFFICULTY}"
    return f"{d.title} questionnaire, version {d.version}: {what}."


# --- the published copies (docs/fhir/) ---


def document_text(config: MappingConfig, instrument: str) -> str:
    """The exact text of a published copy: indented JSON in the resource's element order, newline-ended."""
    return json.dumps(to_questionnaire_json(config, instrument), indent=2, ensure_ascii=False) + "\n"


def published(config: MappingConfig | None = None) -> dict[str, str]:
    """File name -> text of every published Questionnaire (`Questionnaire-<id>.json`), default config."""
    config = config or MappingConfig()
    return {
        f"Questionnaire-{questionnaire_id(config, instrument)}.json": document_text(config, instrument)
        for instrument in DEFINITIONS
    }


def write_published(folder: Path = DOCS) -> list[str]:
    """Write every published copy into `folder`, removing Questionnaire files that are no longer published."""
    files = published()
    for stale in folder.glob("Questionnaire-*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return sorted(files)


if __name__ == "__main__":  # pragma: no cover - exercised by `make questionnaires`
    for written in write_published():
        sys.stdout.write(f"docs/fhir/{written}\n")
