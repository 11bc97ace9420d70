"""The C-SSRS screener, recent and since last contact: yes/no items, skip rules, triage, neutral labels.

Licence (instruments.md section 5): (c) Research Foundation for Mental Hygiene. No question wording
ships anywhere, not even LOINC's displays of its items (they repeat it): every text below comes from
the allow-list, and item codings carry no display. Codes: instruments.md section 2 (the recent
screener's items as in the HL7 US Behavioral Health Profiles example QuestionnaireResponse; its panel
93373-9 is CHECK, so marked unconfirmed). Skip rules and triage: instruments.md sections 1 and 3.
The since-last-contact screener has no LOINC codes (local codes) and no S6b: any behaviour it
records is recent.
"""

from __future__ import annotations

from service.instruments.common import YES_NO, every_yes, local, when
from service.instruments.model import Coding, Definition, EnableWhen, Item, Licence, Safety, Triage, TriageLevel

_RECENT_CODES = {
    "S1": "93246-7",
    "S2": "93247-5",
    "S3": "93248-3",
    "S4": "93249-1",
    "S5": "93250-9",
    "S6": "93267-3",
    "S6b": "93269-9",
}
_SKIPS = {"S3": "S2", "S4": "S2", "S5": "S2", "S6b": "S6"}  # asked only when that one is yes

RECENT_TITLE = "C-SSRS screener (recent)"
SLC_TITLE = "C-SSRS screener (since last contact)"
TRIAGE_LABEL = "C-SSRS screener triage category"
TRIAGE_METHOD = "Derived by the service from the screener answers by a fixed rule"
TRIAGE_NOTE = (
    "Triage category derived from the screener answers by a fixed rule; it is not a clinician's risk formulation."
)
_LEVELS = {"high": "High", "moderate": "Moderate", "low": "Low", "negative": "Negative"}


def _label(link_id: str) -> str:
    return f"C-SSRS screener Q{link_id[1:]}"


def _slc_label(link_id: str) -> str:
    return f"C-SSRS screener since last contact Q{link_id[1:]}"


def _allow_list(title: str, labels: tuple[str, ...], *extra: str) -> frozenset[str]:
    """Every text a screener's definition may hold: neutral labels, the answer words, the triage words."""
    return frozenset({title, TRIAGE_LABEL, TRIAGE_METHOD, TRIAGE_NOTE, "Yes", "No", *_LEVELS.values(), *labels, *extra})


_LICENCE_TERMS = (
    "(c) Research Foundation for Mental Hygiene; the electronic C-SSRS is licensed through a commercial licensee"
)
_LICENCE_SHIPS = "no question wording anywhere, including LOINC displays of its items: neutral labels or no display"
_TRIAGE_SOURCE = "instruments.md section 3 (C-SSRS screener triage)"
_SAFETY_SOURCE = "instruments.md section 3: every yes is an alert; the Flag at moderate or high"


def _triage(levels: tuple[TriageLevel, ...]) -> Triage:
    return Triage(
        coding=local("cssrs-screener-triage", TRIAGE_LABEL),
        label=TRIAGE_LABEL,
        system_path="cssrs-screener-triage",
        levels=levels,
        otherwise=TriageLevel("negative", _LEVELS["negative"], ()),
        method=TRIAGE_METHOD,
        note=TRIAGE_NOTE,
        source=_TRIAGE_SOURCE,
    )


def _level(code: str, *clauses: tuple[EnableWhen, ...]) -> TriageLevel:
    """A level that applies when any clause holds (a clause: all its answers as given)."""
    return TriageLevel(code, _LEVELS[code], clauses)


# --- Recent: S1-S6 and S6b ---
_RECENT_IDS = tuple(_RECENT_CODES)
_RECENT_LABELS = tuple(_label(link_id) for link_id in _RECENT_IDS)

CSSRS_SCREEN = Definition(
    id="cssrs_screen",
    version="1",
    title=RECENT_TITLE,
    panel=Coding("93373-9", None, confirmed=False),
    items=tuple(
        Item(
            link_id,
            Coding(code, None),
            _label(link_id),
            YES_NO,
            (when(_SKIPS[link_id]),) if link_id in _SKIPS else (),
        )
        for link_id, code in _RECENT_CODES.items()
    ),
    total=None,
    subscales=(),
    bands=None,
    triage=_triage(
        (
            _level("high", (when("S4"),), (when("S5"),), (when("S6b"),)),
            _level("moderate", (when("S3"),), (when("S6"), when("S6b", False))),
            _level("low", (when("S1"),), (when("S2"),)),
        )
    ),
    response=None,
    remission=None,
    safety=Safety(every_yes(_RECENT_IDS), source=_SAFETY_SOURCE, flag_at="moderate"),
    licence=Licence(
        terms=_LICENCE_TERMS,
        ships=_LICENCE_SHIPS,
        restricted=True,
        allow_list=_allow_list(RECENT_TITLE, _RECENT_LABELS),
    ),
    sources=("HL7 US Behavioral Health Profiles example QuestionnaireResponse", "LOINC 93245-9"),
)

# --- Since last contact: S1-S6, local codes ---
_SLC_IDS = ("S1", "S2", "S3", "S4", "S5", "S6")
_SLC_LABELS = tuple(_slc_label(link_id) for link_id in _SLC_IDS)
_SLC_PANEL = "C-SSRS screener since last contact"

CSSRS_SCREEN_SLC = Definition(
    id="cssrs_screen_slc",
    version="1",
    title=SLC_TITLE,
    panel=local("cssrs-screener-slc", _SLC_PANEL),
    items=tuple(
        Item(
            link_id,
            local(f"cssrs-slc-item-{link_id[1:]}", None),
            _slc_label(link_id),
            YES_NO,
            (when(_SKIPS[link_id]),) if link_id in _SKIPS else (),
        )
        for link_id in _SLC_IDS
    ),
    total=None,
    subscales=(),
    bands=None,
    triage=_triage(
        (
            _level("high", (when("S4"),), (when("S5"),), (when("S6"),)),
            _level("moderate", (when("S3"),)),
            _level("low", (when("S1"),), (when("S2"),)),
        )
    ),
    response=None,
    remission=None,
    safety=Safety(every_yes(_SLC_IDS), source=_SAFETY_SOURCE, flag_at="moderate"),
    licence=Licence(
        terms=_LICENCE_TERMS,
        ships=_LICENCE_SHIPS,
        restricted=True,
        allow_list=_allow_list(SLC_TITLE, _SLC_LABELS, _SLC_PANEL),
    ),
    sources=("instruments.md section 2 (no LOINC code for this window)",),
)
