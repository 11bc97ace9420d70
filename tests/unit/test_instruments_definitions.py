"""The definitions as data: licences and allow-lists, codes per the sheet, and PHQ-9 agreeing with codes.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from service.instruments import DEFINITIONS, definition, model
from service.instruments.model import Choice, Coding, IntegerRange, YesNo
from service.mappers import codes
from service.sync import trend

RESTRICTED = ("cssrs_screen", "cssrs_screen_slc", "qids_sr16", "madrs", "ybocs")
SCREENERS = ("cssrs_screen", "cssrs_screen_slc")
# Every str-typed field of the model is one or the other; a new text field must join TEXT_FIELDS.
TEXT_FIELDS = {"title", "text", "display", "label", "name", "method", "note"}
NOT_TEXT = {
    "code",
    "link_id",
    "link_ids",
    "id",
    "version",
    "system_path",
    "source",
    "sources",
    "terms",
    "ships",
    "kind",
    "combine",
    "flag_at",
    "allow_list",
}


def texts(value: Any, field_name: str = "") -> Iterator[str]:
    """Every string held in a text field anywhere inside a definition (the licence's own terms aside)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, model.Licence):
            return
        for f in dataclasses.fields(value):
            yield from texts(getattr(value, f.name), f.name)
    elif isinstance(value, tuple | list):
        for element in value:
            yield from texts(element, field_name)
    elif isinstance(value, str) and field_name in TEXT_FIELDS:
        yield value


def test_every_string_field_of_the_model_is_classified() -> None:
    for cls in vars(model).values():
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            for f in dataclasses.fields(cls):
                if "str" in str(f.type):
                    assert f.name in TEXT_FIELDS | NOT_TEXT, f"{cls.__name__}.{f.name}"


@pytest.mark.parametrize("instrument", RESTRICTED)
def test_every_text_of_a_restricted_instrument_comes_from_its_allow_list(instrument: str) -> None:
    d = definition(instrument)
    assert d.licence.restricted and d.licence.allow_list
    found = list(texts(d))
    assert len(found) > len(d.items)  # the walk reaches items, scores, bands or triage
    assert [text for text in found if text not in d.licence.allow_list] == []


@pytest.mark.parametrize("instrument", SCREENERS)
def test_cssrs_item_codings_carry_no_display(instrument: str) -> None:
    for item in definition(instrument).items:
        assert item.coding.display is None
        assert isinstance(item.answer, YesNo)


def test_the_open_instruments_are_not_restricted_and_the_licence_says_what_ships() -> None:
    for d in DEFINITIONS.values():
        assert d.licence.terms and d.licence.ships
        assert d.licence.restricted == (d.id in RESTRICTED)


def test_codes_per_the_sheet() -> None:
    gad7 = definition("gad7")
    assert gad7.panel == Coding("69737-5", "Generalized anxiety disorder 7 item (GAD-7)")
    assert gad7.total is not None and gad7.total.coding.code == "70274-6"  # not the panel code (a trap seen)
    assert [i.coding.code for i in gad7.items] == [
        "69725-0",
        "68509-9",
        "69733-4",
        "69734-2",
        "69735-9",
        "69689-8",
        "69736-7",
    ]
    pcl5 = definition("pcl5")
    assert pcl5.panel is not None and pcl5.panel.code == "101697-1"
    assert pcl5.total is not None and pcl5.total.coding.code == "101698-9"
    assert [i.coding.code for i in pcl5.items] == [f"pcl5-item-{n}" for n in range(1, 21)]
    assert all(i.coding.local for i in pcl5.items)
    recent = definition("cssrs_screen")
    assert [i.coding.code for i in recent.items] == [
        "93246-7",
        "93247-5",
        "93248-3",
        "93249-1",
        "93250-9",
        "93267-3",
        "93269-9",
    ]
    assert recent.panel is not None and (recent.panel.code, recent.panel.confirmed) == ("93373-9", False)
    assert recent.triage is not None and recent.triage.coding == Coding(
        "cssrs-screener-triage", recent.triage.label, local=True
    )
    slc = definition("cssrs_screen_slc")
    assert slc.panel is not None and (slc.panel.code, slc.panel.local) == ("cssrs-screener-slc", True)
    assert [i.coding.code for i in slc.items] == [f"cssrs-slc-item-{n}" for n in range(1, 7)]
    for instrument, prefix in (("qids_sr16", "qids-sr16"), ("madrs", "madrs"), ("ybocs", "ybocs")):
        d = definition(instrument)
        assert d.total is not None and d.total.coding == Coding(f"{prefix}-total", d.total.coding.display, local=True)
        assert [i.coding.code for i in d.items] == [f"{prefix}-item-{n}" for n in range(1, len(d.items) + 1)]
    ybocs = definition("ybocs")
    assert [s.coding.code for s in ybocs.subscales] == ["ybocs-obsessions", "ybocs-compulsions"]


def test_answer_types_per_the_sheet() -> None:
    yes_no = {"LA33-6": 1, "LA32-8": 0}
    for d in DEFINITIONS.values():
        for item in d.items:
            answer = item.answer
            if d.id in ("phq9", "gad7"):
                assert isinstance(answer, Choice)
                assert [(o.coding.code, o.score) for o in answer.options] == [
                    ("LA6568-5", 0),
                    ("LA6569-3", 1),
                    ("LA6570-1", 2),
                    ("LA6571-9", 3),
                ]
            elif d.id in SCREENERS:
                assert isinstance(answer, YesNo)
                assert {answer.yes.code: 1, answer.no.code: 0} == yes_no
            else:
                assert isinstance(answer, IntegerRange) and answer.low == 0


def test_linkids_are_unique_and_skip_rules_point_backwards() -> None:
    for d in DEFINITIONS.values():
        link_ids = [item.link_id for item in d.items]
        assert len(set(link_ids)) == len(link_ids)
        for position, item in enumerate(d.items):
            assert all(d.index(rule.link_id) < position for rule in item.enable_when)
    recent = definition("cssrs_screen")
    assert {i.link_id: [(r.link_id, r.answer) for r in i.enable_when] for i in recent.items if i.enable_when} == {
        "S3": [("S2", True)],
        "S4": [("S2", True)],
        "S5": [("S2", True)],
        "S6b": [("S6", True)],
    }


def test_default_safety_rules_per_the_sheet() -> None:
    rules = {d.id: [(r.link_id, r.at_least) for r in d.safety.rules] for d in DEFINITIONS.values()}
    assert rules == {
        "phq9": [("9", 1)],
        "gad7": [],
        "pcl5": [],
        "cssrs_screen": [(i, 1) for i in ("S1", "S2", "S3", "S4", "S5", "S6", "S6b")],
        "cssrs_screen_slc": [(i, 1) for i in ("S1", "S2", "S3", "S4", "S5", "S6")],
        "qids_sr16": [("12", 1)],
        "madrs": [("10", 2)],
        "ybocs": [],
    }
    assert {d.id: d.safety.flag_at for d in DEFINITIONS.values() if d.safety.flag_at} == {
        "cssrs_screen": "moderate",
        "cssrs_screen_slc": "moderate",
    }


# --- PHQ-9: the definition agrees with service/mappers/codes.py until the mapper reads it ---
def test_phq9_definition_agrees_with_codes_py() -> None:
    d = definition("phq9")
    assert d.panel == Coding(codes.PHQ9_PANEL.code, codes.PHQ9_PANEL.display)
    assert [(i.coding.code, i.coding.display, i.text) for i in d.items] == [
        (c.code, c.display, c.display) for c in codes.PHQ9_ITEMS
    ]
    assert all(c.system == codes.LOINC == model.LOINC for c in (*codes.PHQ9_ITEMS, codes.PHQ9_PANEL, codes.PHQ9_TOTAL))
    assert d.total is not None
    assert d.total.coding == Coding(codes.PHQ9_TOTAL.code, codes.PHQ9_TOTAL.display)
    assert d.total.label == codes.PHQ9_TOTAL_TEXT and d.title == codes.PHQ9_PANEL_TEXT
    for item in d.items:
        assert isinstance(item.answer, Choice)
        assert [(o.coding.code, o.coding.display) for o in item.answer.options] == [
            (c.code, c.display) for c in codes.PHQ9_ANSWERS
        ]
        assert [o.score for o in item.answer.options] == list(range(len(codes.PHQ9_ANSWERS)))
    assert d.difficulty is not None and isinstance(d.difficulty.answer, Choice)
    assert d.difficulty.coding == Coding(codes.PHQ9_DIFFICULTY.code, codes.PHQ9_DIFFICULTY.display)
    assert [o.coding.code for o in d.difficulty.answer.options] == [
        c.code for c in codes.PHQ9_DIFFICULTY_ANSWERS.values()
    ]
    assert d.bands is not None
    assert [(b.high, d.bands.system_path, b.code, b.display) for b in d.bands.bands] == [
        (upper, c.system_path, c.code, c.display) for upper, c in codes.PHQ9_SEVERITY
    ]
    for total in range(28):
        found = next(b for b in d.bands.bands if b.low <= total <= b.high)
        assert found.code == codes.phq9_severity(total).code
    # item 9 > 0 is the mapper's positive; the trend's response and remission are the definition's
    assert [(r.link_id, r.at_least) for r in d.safety.rules] == [("9", 1)]
    assert d.response is not None and d.remission is not None
    assert d.response.percent_drop == round(100 * trend.RESPONSE_FRACTION)
    assert d.remission.at_most == trend.REMISSION_BELOW - 1
