"""PHQ-9, GAD-7 and PCL-5: self-report scales whose item text may ship (instruments.md sections 1-5).

Sources: PHQ-9 bands Kroenke, Spitzer & Williams 2001; GAD-7 bands Spitzer et al. 2006; PCL-5
scoring, screen cut-point and change rule the National Center for PTSD (minimal important difference
Blanchard et al. 2023). PHQ-9's codes and texts are those of service/mappers/codes.py (PHQ9_*); a unit
test holds the two in agreement until the PHQ-9 mapper reads this definition.
"""

from __future__ import annotations

from service.instruments.common import DIFFICULTY, FREQUENCY, bands, integer_items, items_range, local, summed
from service.instruments.model import (
    Bands,
    Coding,
    Definition,
    Item,
    Licence,
    Remission,
    Response,
    Safety,
    SafetyRule,
)

_PFIZER = Licence(
    terms="Pfizer: no permission required to reproduce, translate, display or distribute",
    ships="item text allowed",
    restricted=False,
)

# --- PHQ-9 (clinical-coding.md section 3; LOINC displays as codes.py has them) ---
_PHQ9_ITEMS = (
    ("44250-9", "Little interest or pleasure in doing things"),
    ("44255-8", "Feeling down, depressed, or hopeless"),
    ("44259-0", "Trouble falling or staying asleep, or sleeping too much"),
    ("44254-1", "Feeling tired or having little energy"),
    ("44251-7", "Poor appetite or overeating"),
    ("44258-2", "Feeling bad about yourself - or that you are a failure or have let yourself or your family down"),
    ("44252-5", "Trouble concentrating on things, such as reading the newspaper or watching television"),
    (
        "44253-3",
        "Moving or speaking so slowly that other people could have noticed. Or the opposite - being so "
        "fidgety or restless that you have been moving around a lot more than usual",
    ),
    ("44260-8", "Thoughts that you would be better off dead, or of hurting yourself in some way"),
)
_PHQ9_DIFFICULTY_TEXT = (
    "How difficult have these problems made it for you to do your work, take care of things at home, "
    "or get along with other people?"
)

PHQ9 = Definition(
    id="phq9",
    version="1",
    title="PHQ-9",
    panel=Coding("44249-1", "PHQ-9 quick depression assessment panel [Reported.PHQ]"),
    items=tuple(
        Item(str(n), Coding(code, text), text, FREQUENCY) for n, (code, text) in enumerate(_PHQ9_ITEMS, start=1)
    ),
    difficulty=Item("10", Coding("69722-7", _PHQ9_DIFFICULTY_TEXT), _PHQ9_DIFFICULTY_TEXT, DIFFICULTY),
    total=summed(
        "total",
        Coding("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"),
        "PHQ-9 total score",
        items_range(1, 9),
    ),
    subscales=(),
    bands=Bands(
        "severity",
        "phq9-interpretation",
        bands(
            "phq9-interpretation",
            (0, 4, "minimal", "Minimal depression"),
            (5, 9, "mild", "Mild depression"),
            (10, 14, "moderate", "Moderate depression"),
            (15, 19, "moderately-severe", "Moderately severe depression"),
            (20, 27, "severe", "Severe depression"),
        ),
        source="Kroenke, Spitzer & Williams 2001",
    ),
    triage=None,
    response=Response(
        name="PHQ-9 response: total at least 50% below baseline",
        source="instruments.md section 3 (the rule of the service's PHQ-9 trend)",
        published=True,
        percent_drop=50,
    ),
    remission=Remission(
        name="PHQ-9 remission: total below 5",
        source="instruments.md section 3 (below the mild band of Kroenke 2001)",
        published=True,
        at_most=4,
    ),
    safety=Safety(
        (SafetyRule("9", 1),),
        source="instruments.md section 3: item 9 > 0, chosen for sensitivity (no published alert threshold)",
    ),
    licence=_PFIZER,
    sources=("Kroenke, Spitzer & Williams 2001", "LOINC 44249-1"),
)

# --- GAD-7 (instruments.md section 2: panel 69737-5, items in order, total 70274-6) ---
# Item codings carry no display: the sheet confirms the codes, not LOINC's display strings. The
# item text is the form's own (Pfizer: free to reproduce).
_GAD7_ITEMS = (
    ("69725-0", "Feeling nervous, anxious, or on edge"),
    ("68509-9", "Not being able to stop or control worrying"),
    ("69733-4", "Worrying too much about different things"),
    ("69734-2", "Trouble relaxing"),
    ("69735-9", "Being so restless that it's hard to sit still"),
    ("69689-8", "Becoming easily annoyed or irritable"),
    ("69736-7", "Feeling afraid as if something awful might happen"),
)

GAD7 = Definition(
    id="gad7",
    version="1",
    title="GAD-7",
    panel=Coding("69737-5", "Generalized anxiety disorder 7 item (GAD-7)"),
    items=tuple(
        Item(str(n), Coding(code, None), text, FREQUENCY) for n, (code, text) in enumerate(_GAD7_ITEMS, start=1)
    ),
    difficulty=Item("8", local("gad7-difficulty", "GAD-7 difficulty"), _PHQ9_DIFFICULTY_TEXT, DIFFICULTY),
    total=summed(
        "total",
        Coding("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"),
        "GAD-7 total score",
        items_range(1, 7),
    ),
    subscales=(),
    bands=Bands(
        "severity",
        "gad7-interpretation",
        bands(
            "gad7-interpretation",
            (0, 4, "minimal", "Minimal anxiety"),
            (5, 9, "mild", "Mild anxiety"),
            (10, 14, "moderate", "Moderate anxiety"),
            (15, 21, "severe", "Severe anxiety"),
        ),
        source="Spitzer, Kroenke, Williams & Lowe 2006",
    ),
    triage=None,
    response=Response(
        name="Service rule (no published rule): response = total at least 50% below baseline",
        source="instruments.md section 3: no published GAD-7 response rule; the service's rule, labelled as such",
        published=False,
        percent_drop=50,
    ),
    remission=Remission(
        name="Service rule (no published rule): remission = total below 5",
        source="instruments.md section 3: no published GAD-7 remission rule; the service's rule, labelled as such",
        published=False,
        at_most=4,
    ),
    safety=Safety((), source="instruments.md section 3: GAD-7 has no safety item"),
    licence=_PFIZER,
    sources=("Spitzer, Kroenke, Williams & Lowe 2006", "LOINC 69737-5"),
)

# --- PCL-5 (instruments.md sections 1-3) ---
# Item codes: LOINC item codes could not be confirmed (CHECK), so local `pcl5-item-N`. Item labels
# are neutral; the form's text is a US Government work and may be added once checked against it.
_PCL5_CLUSTERS = (
    ("cluster-b", "PCL-5 cluster B (intrusion)", 1, 5),
    ("cluster-c", "PCL-5 cluster C (avoidance)", 6, 7),
    ("cluster-d", "PCL-5 cluster D (negative alterations in cognitions and mood)", 8, 14),
    ("cluster-e", "PCL-5 cluster E (alterations in arousal and reactivity)", 15, 20),
)

PCL5 = Definition(
    id="pcl5",
    version="1",
    title="PCL-5",
    panel=Coding("101697-1", "Post traumatic stress disorder checklist - civilian version DSM-5 [PCL-5]"),
    items=integer_items("pcl5-item", "PCL-5 item", 20, 0, 4),
    total=summed("total", Coding("101698-9", "PTSD PCL-5 score [PCL-5]"), "PCL-5 total score", items_range(1, 20)),
    subscales=tuple(
        summed(score_id, local(f"pcl5-{score_id}", label), label, items_range(first, last))
        for score_id, label, first, last in _PCL5_CLUSTERS
    ),
    bands=Bands(
        "screen",
        "pcl5-interpretation",
        bands(
            "pcl5-interpretation",
            (0, 32, "below-cut-point", "Below the PCL-5 screening cut-point"),
            (33, 80, "probable-ptsd", "Probable PTSD (a screen result, not a diagnosis)"),
        ),
        source="National Center for PTSD: >= 33 probable PTSD (provisional cut-point 31-33); no validated severity bands",
    ),
    triage=None,
    response=Response(
        name="PCL-5 response: total at least 10 points below baseline",
        source=(
            "National Center for PTSD; minimal important difference 9-12 points (Blanchard et al. 2023); "
            "changes of 5 points or less are within noise"
        ),
        published=True,
        points_drop=10,
    ),
    remission=None,
    safety=Safety((), source="instruments.md section 3: PCL-5 has no suicide item"),
    licence=Licence(
        terms="US Government work (VA National Center for PTSD), not copyrighted",
        ships="item text allowed",
        restricted=False,
    ),
    sources=("National Center for PTSD", "Blanchard et al. 2023", "LOINC 101697-1"),
)
