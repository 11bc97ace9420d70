"""The synthetic-data tables: fake names, clinicians, rates and shapes of adverse events and stops.

Every name here is invented from common words and first names; none describes a real person.
Rates are per infusion session and are rough figures for outpatient subanaesthetic ketamine
(0.5 mg/kg over 40 min), chosen to look plausible in a demo, not to be quoted clinically.
"""

from __future__ import annotations

from dataclasses import dataclass

# When courses end: every course starts 45-730 days before this date (derived from the seed only).
ANCHOR_DATE = (2026, 1, 1)
COURSE_START_WINDOW_DAYS = (45, 730)

SESSIONS_PER_COURSE = 6
MRN_PREFIX = "SYN"
MRN_ODD_SEPARATORS = (",", "|", "$", "\\")  # FHIR token-search characters that need escaping
MRN_ODD_SHARE = 0.05

FAMILY_NAMES = (
    "Testwell",
    "Sampleton",
    "Demoford",
    "Mockley",
    "Fakenham",
    "Placeholder",
    "Specimen",
    "Dummyworth",
    "Synthson",
    "Examplar",
    "Trialby",
    "Notreal",
    "Fixturo",
    "Stubbins",
    "Prototyp",
    "Mockridge",
    "Pseudowitz",
    "Imaginaire",
    "Fictor",
    "Madeupsky",
)
GIVEN_FEMALE = ("Alex", "Brook", "Casey", "Dana", "Eden", "Fern", "Gale", "Hazel", "Iris", "June")
GIVEN_MALE = ("Arlo", "Bram", "Cole", "Drew", "Ezra", "Finn", "Gus", "Hugo", "Ira", "Jude")
GIVEN_ANY = ("Quinn", "Remy", "Sage", "Tate", "Wren")

# (id, name): the nurse or physician who ran the infusion.
CLINICIANS = (
    ("clin-001", "Dr. Demo Practitioner"),
    ("clin-002", "Dr. Sample Anaesthetist"),
    ("clin-003", "NP Test Nurse"),
    ("clin-004", "Dr. Mock Psychiatrist"),
)

# Indications beside the main one (trd or mdd), with the share of patients who carry each.
COMORBID_INDICATIONS = (("gad", 0.25), ("ptsd", 0.15), ("ocd", 0.05))

# PHQ-9 trajectory types: (name, share of patients, fall in total by session 6 as a fraction).
RESPONSE_TYPES = (
    ("responder", 0.55, (0.50, 0.75)),
    ("partial", 0.25, (0.25, 0.50)),
    ("non_responder", 0.20, (-0.05, 0.20)),
)
# Relative weight of PHQ-9 items 1-8 when spreading a total (item 9 is modelled on its own).
PHQ9_ITEM_WEIGHTS = (1.3, 1.4, 1.2, 1.3, 0.9, 1.1, 1.0, 0.7)


@dataclass(frozen=True)
class ScaleShape:
    """An outcome measure beside PHQ-9: its baseline, how far it follows the patient's response, and when."""

    instrument: str
    baseline: tuple[float, float, float]  # total at intake: triangular (low, high, most likely)
    follows: float  # share of the patient's PHQ-9 response (fraction of the baseline gone) this scale shows
    schedule: tuple[int, ...]  # taken before the infusion that follows this many (0 = intake, 3 = mid-course, 5 = last)


# Outcome measures per indication (issue 21). Assumed shapes for a demo, not figures to quote. Published series
# of six infusions over two to three weeks report most of the change after the first two or three infusions and
# about half to two thirds of patients responding: treatment-resistant depression (Murrough et al., Biol
# Psychiatry 2013;74:250-6, MADRS), chronic PTSD (Feder et al., Am J Psychiatry 2021;178:193-202, CAPS-5 and
# PCL-5), OCD with a smaller and shorter-lived effect (Rodriguez et al., Neuropsychopharmacology
# 2013;38:2475-83, Y-BOCS), refractory anxiety (Glue et al., J Psychopharmacol 2017;31:1302-5). So a scale falls
# with the patient's PHQ-9 trajectory (RESPONSE_TYPES) times `follows`: by the sixth infusion responders lose
# roughly 35-60% of a scale's baseline (Y-BOCS and PCL-5 least, MADRS most; medians), partial responders
# 20-35%, non-responders mostly under 20% (tests/unit/test_demo_data.py checks these shapes).
SCALES_BY_INDICATION = {
    "gad": ScaleShape("gad7", (9, 19, 14), 0.85, (0, 3, 5)),  # moderate to severe anxiety
    "ptsd": ScaleShape("pcl5", (36, 70, 50), 0.75, (0, 3, 5)),  # above the provisional cut-point of 31-33
    "ocd": ScaleShape("ybocs", (18, 34, 26), 0.6, (0, 5)),  # moderate to severe; clinician-rated, less often
}
# Some depression patients are also rated with MADRS (clinician, as the esketamine trials) or QIDS-SR16
# (self-report): (scale, share of patients); a patient has at most one of them.
DEPRESSION_SCALES = (
    (ScaleShape("madrs", (24, 42, 32), 1.0, (0, 3, 5)), 0.25),
    (ScaleShape("qids_sr16", (12, 22, 17), 1.0, (0, 3, 5)), 0.15),
)
SHARE_TOTAL_SENT = 0.7  # assessments whose total the clinic system sends along (the service checks it)
# C-SSRS screener answers (recent at intake, since last contact at later visits). Patients with the
# suicidal_ideation indication report a wish to be dead and active thoughts (S1, S2) at intake; the
# chances below are of the later questions and of behaviour, and fade with the response like PHQ-9 item 9.
CSSRS_METHOD, CSSRS_INTENT, CSSRS_PLAN = 0.3, 0.08, 0.05  # S3, S4, S5 when S2 is yes, at intake
CSSRS_BEHAVIOUR = {True: 0.25, False: 0.04}  # S6 lifetime behaviour, by suicidal_ideation indication
CSSRS_RECENT_BEHAVIOUR = 0.25  # S6b (past three months) when S6 is yes
CSSRS_SLC_BEHAVIOUR = 0.01  # S6 since last contact, for a patient still reporting ideation

SHARE_EMBEDDED_SESSIONS = 0.20  # sessions that carry their children inside the session record
SHARE_NOT_DONE = 0.025
SHARE_NO_SHOW_DROPOUT = 0.06  # patients whose course ends after 2-5 sessions
SHARE_RASS_PATIENTS = 0.15  # patients scored with RASS as well as MOAA/S
SHARE_TEMPERATURE = 0.15
SHARE_WEIGHT_IN_LB = 0.15
SHARE_FOLLOW_UP_PHQ9 = 0.5  # patients with a PHQ-9 two weeks after the last infusion (no session)

NOT_DONE_REASONS = (
    "Pre-infusion blood pressure above 160/100 on two readings",
    "Patient unwell (upper respiratory infection); rescheduled",
    "Patient had eaten within 2 hours; rescheduled",
    "No driver available after the infusion; rescheduled",
)

# Early stops not caused by an adverse event (those come from the event table below).
STOP_REASONS_OTHER = (
    "IV access lost and could not be re-sited",
    "Patient asked to stop the infusion",
)


@dataclass(frozen=True)
class EventShape:
    """How one adverse event looks in the data: its rate and when and how it shows up."""

    event: str
    rate: float  # per session
    onset_min: tuple[int, int]  # minutes after infusion start
    severity: tuple[float, float, float]  # weights for mild, moderate, severe
    actions: tuple[tuple[str, float], ...]  # (action_taken, weight), never infusion_stopped here
    stops: float = 0.0  # share of this event's occurrences that end the infusion early
    stop_reason: str = ""
    medication: str = ""  # the note when action_taken is medication_given
    description: tuple[str, ...] = ()  # for `other`
    episode: str = ""  # what the session's readings show of it (service/demo/episodes.py); "" for nothing


# Monitoring episodes (service/demo/episodes.py): what an adverse event does to the session's readings.
RAISED_BP, HYPERTENSIVE_SURGE = "raised_bp", "hypertensive_surge"
DESATURATION, HYPOTENSION, OVER_SEDATION = "desaturation", "hypotension", "over_sedation"

EVENTS = (
    EventShape(
        "nausea",
        0.13,
        (15, 70),
        (0.8, 0.18, 0.02),
        (("none", 0.55), ("medication_given", 0.4), ("infusion_slowed", 0.05)),
        medication="Ondansetron 4 mg IV given",
    ),
    EventShape(
        "vomiting",
        0.02,
        (20, 75),
        (0.6, 0.35, 0.05),
        (("medication_given", 0.7), ("infusion_paused", 0.3)),
        stops=0.2,
        stop_reason="Vomiting despite antiemetic",
        medication="Ondansetron 4 mg IV given",
    ),
    EventShape(
        "headache",
        0.06,
        (20, 80),
        (0.85, 0.15, 0.0),
        (("none", 0.7), ("medication_given", 0.3)),
        medication="Acetaminophen 1 g by mouth",
    ),
    EventShape("dizziness", 0.07, (10, 70), (0.9, 0.1, 0.0), (("none", 1.0),)),
    EventShape(
        "elevated_blood_pressure",
        0.05,
        (15, 35),
        (0.6, 0.35, 0.05),
        (("none", 0.4), ("infusion_paused", 0.25), ("infusion_slowed", 0.2), ("medication_given", 0.15)),
        stops=0.25,
        stop_reason="Systolic blood pressure above 180 mmHg",
        medication="Labetalol 10 mg IV given",
        episode=RAISED_BP,
    ),
    # Severe hypertension in about 1% of infusions (0.98% of 2,342 in the Yale chart review, Gen Hosp Psychiatry
    # 2024): 186-212 systolic at its peak, confirmed by the recheck the protocol asks for.
    EventShape(
        "elevated_blood_pressure",
        0.01,
        (15, 35),
        (0.0, 0.6, 0.4),
        (("medication_given", 0.5), ("infusion_paused", 0.3), ("infusion_slowed", 0.2)),
        stops=0.35,
        stop_reason="Blood pressure at or above 180/110 on two readings",
        medication="Labetalol 10 mg IV given",
        episode=HYPERTENSIVE_SURGE,
    ),
    EventShape("tachycardia", 0.02, (10, 35), (0.8, 0.2, 0.0), (("none", 0.7), ("infusion_slowed", 0.3))),
    EventShape("hallucinations", 0.02, (10, 40), (0.7, 0.3, 0.0), (("none", 0.6), ("infusion_slowed", 0.4))),
    EventShape(
        "dissociation",
        0.05,
        (10, 35),
        (0.6, 0.35, 0.05),
        (("none", 0.6), ("infusion_slowed", 0.25), ("infusion_paused", 0.15)),
        stops=0.15,
        stop_reason="Distressing dissociation",
    ),
    EventShape(
        "emergence_reaction",
        0.025,
        (35, 60),
        (0.4, 0.45, 0.15),
        (("none", 0.3), ("medication_given", 0.7)),
        stops=0.3,
        stop_reason="Emergence reaction with marked distress",
        medication="Midazolam 1 mg IV given",
    ),
    EventShape(
        "anxiety",
        0.04,
        (0, 30),
        (0.8, 0.2, 0.0),
        (("none", 0.75), ("medication_given", 0.2), ("infusion_paused", 0.05)),
        stops=0.1,
        stop_reason="Patient anxious and asked to stop",
        medication="Midazolam 1 mg IV given",
    ),
    EventShape(
        "agitation",
        0.02,
        (15, 50),
        (0.6, 0.35, 0.05),
        (("none", 0.5), ("infusion_paused", 0.3), ("medication_given", 0.2)),
        stops=0.2,
        stop_reason="Agitation",
        medication="Midazolam 1 mg IV given",
    ),
    EventShape(
        "excessive_sedation",
        0.025,
        (20, 40),
        (0.7, 0.3, 0.0),
        (("infusion_slowed", 0.6), ("infusion_paused", 0.4)),
        episode=OVER_SEDATION,
    ),
    EventShape("blurred_vision", 0.04, (10, 50), (0.95, 0.05, 0.0), (("none", 1.0),)),
    EventShape("diplopia", 0.02, (10, 45), (0.95, 0.05, 0.0), (("none", 1.0),)),
    EventShape(
        "other",
        0.02,
        (0, 60),
        (0.95, 0.05, 0.0),
        (("none", 1.0),),
        description=("Tingling in hands", "Dry mouth", "Discomfort at the cannula site", "Feeling cold"),
    ),
    # Rare at these doses; in the demo so that a session shows each critical reading the protocol confirms.
    EventShape(
        "other",
        0.01,
        (10, 35),
        (0.4, 0.6, 0.0),
        (("infusion_paused", 0.6), ("infusion_slowed", 0.4)),
        description=("Oxygen saturation below 90%; airway repositioned and supplemental oxygen given",),
        episode=DESATURATION,
    ),
    EventShape(
        "other",
        0.008,
        (25, 70),
        (0.5, 0.5, 0.0),
        (("none", 0.5), ("infusion_paused", 0.5)),
        description=("Vasovagal episode with low blood pressure; laid flat and IV fluids given",),
        episode=HYPOTENSION,
    ),
)
SHARE_STOPPED_OTHER = 0.008  # early stops without an adverse event (IV access, patient request)

# Monitoring schedule, as published series describe it (../shared/monitoring-protocol.md section 2): readings on
# arrival and just before the start (the baseline), every 10-15 minutes during the infusion with one near 40
# minutes and one at its end, then every 15 minutes for an hour or more (the protocol's discharge criteria need
# 60 minutes after the end).
ARRIVAL_MINUTES = (20, 30)  # before the start
BASELINE_MINUTES = (3, 8)  # before the start
INTERVALS = (("10", 0.45), ("15", 0.4), ("12", 0.15))  # minutes between readings during the infusion
NEAR_40 = 40
AFTER_INTERVAL = 15
OBSERVED_AFTER_END = (60, 60, 75)  # minutes of readings after the end
RECHECK_AT = (180, 110)  # a blood pressure at or above this (systolic or diastolic) is measured again ...
RECHECK_AFTER = 5  # ... this many minutes later (the protocol's "recheck now")
SHARE_O2_RECORDED = 0.6  # sessions whose SpO2 readings say whether the patient was on supplemental oxygen

OUTCOMES = (("resolved", 0.9), ("recovering", 0.06), ("ongoing", 0.02), ("unknown", 0.02))
CAUSALITY = (("probable", 0.55), ("possible", 0.35), ("certain", 0.05), ("unlikely", 0.05))
SERIOUS_SHARE_OF_SEVERE = 0.2
