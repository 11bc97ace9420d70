"""QIDS-SR16, MADRS and Y-BOCS: integer scales whose wording may not ship, so neutral labels only.

Licences (instruments.md section 5): Y-BOCS (c) Goodman et al., distribution needs the authors'
authorisation; MADRS and QIDS-SR16 terms conflict or are unclear. Every text in these definitions
comes from the licence's allow-list of neutral labels ("MADRS item 10"); no item wording is kept
anywhere in the service. Codes are local (LOINC has none, instruments.md section 2).
Sources: QIDS-SR16 scoring and bands Rush et al. 2003, response and remission STAR*D; MADRS bands
Snaith et al. 1986, response and remission as in the esketamine trials; Y-BOCS response and
remission the Y-BOCS criterion of Mataix-Cols et al., World Psychiatry 2016.
"""

from __future__ import annotations

from service.instruments.common import bands, integer_items, items_range, local, summed
from service.instruments.model import (
    Band,
    Bands,
    Definition,
    Group,
    Licence,
    Remission,
    Response,
    Safety,
    SafetyRule,
    ScoreRule,
)

_UNCLEAR = "terms conflict or are unclear"
_NEUTRAL = "neutral labels only"


def _allow_list(title: str, prefix: str, count: int, *texts: str) -> frozenset[str]:
    """The neutral labels a restricted scale's definition may hold: title, `<prefix> N`, and these."""
    return frozenset({title, *(f"{prefix} {n}" for n in range(1, count + 1)), *texts})


def _texts(total: ScoreRule, subscales: tuple[ScoreRule, ...], rows: tuple[Band, ...], *names: str) -> tuple[str, ...]:
    """The labels a definition writes beside its items: scores, bands and rule names."""
    labels = [score.label for score in (total, *subscales)]
    displays = [score.coding.display for score in (total, *subscales) if score.coding.display]
    return (*labels, *displays, *(band.display for band in rows), *names)


# --- QIDS-SR16: 16 items 0-3; total = max(1-4) + 5 + max(6-9) + 10..14 + max(15-16) (Rush 2003) ---
_QIDS_TOTAL = ScoreRule(
    "total",
    local("qids-sr16-total", "QIDS-SR16 total score"),
    "QIDS-SR16 total score",
    (
        Group(items_range(1, 4), "max"),
        Group(("5",)),
        Group(items_range(6, 9), "max"),
        Group(items_range(10, 14)),
        Group(items_range(15, 16), "max"),
    ),
)
_QIDS_BANDS = bands(
    "qids-sr16-interpretation",
    (0, 5, "none", "No depression"),
    (6, 10, "mild", "Mild depression"),
    (11, 15, "moderate", "Moderate depression"),
    (16, 20, "severe", "Severe depression"),
    (21, 27, "very-severe", "Very severe depression"),
)
_QIDS_RESPONSE = "QIDS-SR16 response: total at least 50% below baseline"
_QIDS_REMISSION = "QIDS-SR16 remission: total 5 or below"

QIDS_SR16 = Definition(
    id="qids_sr16",
    version="1",
    title="QIDS-SR16",
    panel=local("qids-sr16", "QIDS-SR16"),
    items=integer_items("qids-sr16-item", "QIDS-SR16 item", 16, 0, 3),
    total=_QIDS_TOTAL,
    subscales=(),
    bands=Bands("severity", "qids-sr16-interpretation", _QIDS_BANDS, source="Rush et al. 2003"),
    triage=None,
    response=Response(_QIDS_RESPONSE, source="STAR*D (instruments.md section 3)", published=True, percent_drop=50),
    remission=Remission(_QIDS_REMISSION, source="STAR*D (instruments.md section 3)", published=True, at_most=5),
    safety=Safety(
        (SafetyRule("12", 1),),
        source="instruments.md section 3: item 12 >= 1, chosen for sensitivity (no published alert threshold)",
    ),
    licence=Licence(
        terms=_UNCLEAR,
        ships=_NEUTRAL,
        restricted=True,
        allow_list=_allow_list(
            "QIDS-SR16", "QIDS-SR16 item", 16, *_texts(_QIDS_TOTAL, (), _QIDS_BANDS, _QIDS_RESPONSE, _QIDS_REMISSION)
        ),
    ),
    sources=("Rush et al. 2003", "STAR*D"),
)

# --- MADRS: 10 items 0-6, total the sum 0-60 (Snaith 1986) ---
_MADRS_TOTAL = summed("total", local("madrs-total", "MADRS total score"), "MADRS total score", items_range(1, 10))
_MADRS_BANDS = bands(
    "madrs-interpretation",
    (0, 6, "normal", "Normal"),
    (7, 19, "mild", "Mild depression"),
    (20, 34, "moderate", "Moderate depression"),
    (35, 60, "severe", "Severe depression"),
)
_MADRS_RESPONSE = "MADRS response: total at least 50% below baseline"
_MADRS_REMISSION = "MADRS remission: total 12 or below"
_ESKETAMINE = "the esketamine trials (instruments.md section 3; a threshold of 10 is also used)"

MADRS = Definition(
    id="madrs",
    version="1",
    title="MADRS",
    panel=local("madrs", "MADRS"),
    items=integer_items("madrs-item", "MADRS item", 10, 0, 6),
    total=_MADRS_TOTAL,
    subscales=(),
    bands=Bands("severity", "madrs-interpretation", _MADRS_BANDS, source="Snaith et al. 1986"),
    triage=None,
    response=Response(_MADRS_RESPONSE, source=_ESKETAMINE, published=True, percent_drop=50),
    remission=Remission(_MADRS_REMISSION, source=_ESKETAMINE, published=True, at_most=12),
    safety=Safety(
        (SafetyRule("10", 2),),
        source="instruments.md section 3: item 10 >= 2, chosen for sensitivity (no published alert threshold)",
    ),
    licence=Licence(
        terms=_UNCLEAR,
        ships=_NEUTRAL,
        restricted=True,
        allow_list=_allow_list(
            "MADRS", "MADRS item", 10, *_texts(_MADRS_TOTAL, (), _MADRS_BANDS, _MADRS_RESPONSE, _MADRS_REMISSION)
        ),
    ),
    sources=("Snaith et al. 1986", "esketamine trials"),
)

# --- Y-BOCS: 10 items 0-4; obsessions = items 1-5, compulsions = items 6-10, total 0-40 ---
_YBOCS_TOTAL = summed("total", local("ybocs-total", "Y-BOCS total score"), "Y-BOCS total score", items_range(1, 10))
_YBOCS_OBSESSIONS = "Y-BOCS obsessions subscale (items 1-5)"
_YBOCS_COMPULSIONS = "Y-BOCS compulsions subscale (items 6-10)"
_YBOCS_SUBSCALES = (
    summed("obsessions", local("ybocs-obsessions", _YBOCS_OBSESSIONS), _YBOCS_OBSESSIONS, items_range(1, 5)),
    summed("compulsions", local("ybocs-compulsions", _YBOCS_COMPULSIONS), _YBOCS_COMPULSIONS, items_range(6, 10)),
)
_YBOCS_BANDS = bands(
    "ybocs-interpretation",
    (0, 7, "subclinical", "Subclinical"),
    (8, 15, "mild", "Mild"),
    (16, 23, "moderate", "Moderate"),
    (24, 31, "severe", "Severe"),
    (32, 40, "extreme", "Extreme"),
)
_YBOCS_CRITERION = "Y-BOCS criterion only (CGI not recorded)"
_YBOCS_RESPONSE = f"{_YBOCS_CRITERION}: response = total at least 35% below baseline"
_YBOCS_REMISSION = f"{_YBOCS_CRITERION}: remission = total 12 or below"
_MATAIX_COLS = (
    "Mataix-Cols et al., World Psychiatry 2016 (its full definitions also need a CGI rating and at least 1 week)"
)

YBOCS = Definition(
    id="ybocs",
    version="1",
    title="Y-BOCS",
    panel=local("ybocs", "Y-BOCS"),
    items=integer_items("ybocs-item", "Y-BOCS item", 10, 0, 4),
    total=_YBOCS_TOTAL,
    subscales=_YBOCS_SUBSCALES,
    bands=Bands("severity", "ybocs-interpretation", _YBOCS_BANDS, source="instruments.md section 3"),
    triage=None,
    response=Response(_YBOCS_RESPONSE, source=_MATAIX_COLS, published=True, percent_drop=35),
    remission=Remission(_YBOCS_REMISSION, source=_MATAIX_COLS, published=True, at_most=12),
    safety=Safety((), source="instruments.md section 3: Y-BOCS has no safety item"),
    licence=Licence(
        terms="(c) Goodman et al.; distribution needs the authors' authorisation",
        ships=_NEUTRAL,
        restricted=True,
        allow_list=_allow_list(
            "Y-BOCS",
            "Y-BOCS item",
            10,
            *_texts(_YBOCS_TOTAL, _YBOCS_SUBSCALES, _YBOCS_BANDS, _YBOCS_RESPONSE, _YBOCS_REMISSION),
        ),
    ),
    sources=("Mataix-Cols et al. 2016",),
)
