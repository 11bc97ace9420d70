"""Every code system URI, code, display and unit the mappers emit, each table citing its source.

Source throughout: ../shared/clinical-coding.md (section numbers below), which was checked against
the LOINC pages, the FHIR R4 4.0.1 definitions, US Core and HL7 terminology. R4 code systems are
case-sensitive and use their R4 spellings. Local codes are relative to
`MappingConfig.local_code_system_base` (see `local_system`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    """A code in a published code system."""

    system: str
    code: str
    display: str


@dataclass(frozen=True)
class LocalCode:
    """A code in one of the service's own code systems: `<local_code_system_base>/<system_path>`."""

    system_path: str
    code: str
    display: str


# --- Code system URIs (clinical-coding.md, header; section 4 for the adverse-event systems) ---
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
MED_ADMIN_CATEGORY = "http://terminology.hl7.org/CodeSystem/medication-admin-category"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
AE_SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
AE_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
AE_CAUSALITY = "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_OBSERVATION_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
XHTML = "http://www.w3.org/1999/xhtml"  # the namespace of Resource.text.div (FHIR R4 Narrative)
VITAL_PROFILE_BASE = "http://hl7.org/fhir/StructureDefinition/"

# --- Section 5: patient identity ---
MRN_TYPE = Code(V2_0203, "MR", "Medical record number")

# --- Statuses (R4 required bindings) ---
OBSERVATION_FINAL = "final"
ENTERED_IN_ERROR = "entered-in-error"  # Procedure, MedicationAdministration and Observation alike

# --- Section 1: infusion session -> Procedure + MedicationAdministration ---
PROCEDURE_TEXT = "Ketamine infusion"
PROCEDURE_CODE = Code(SNOMED, "14152002", "Intravenous infusion")
PROCEDURE_CATEGORY = Code(SNOMED, "24642003", "Psychiatry procedure or service")
PROCEDURE_STATUS: dict[str, str] = {  # record status -> R4 event-status
    "planned": "preparation",
    "in_progress": "in-progress",
    "completed": "completed",
    "stopped": "stopped",
    "not_done": "not-done",
    "entered_in_error": "entered-in-error",
}
# R4 medication-admin-status has no "preparation": a planned session has no MedicationAdministration.
MED_ADMIN_STATUS: dict[str, str] = {
    "in_progress": "in-progress",
    "completed": "completed",
    "stopped": "stopped",
    "not_done": "not-done",
    "entered_in_error": "entered-in-error",
}
KETAMINE_CODINGS: tuple[Code, ...] = (
    Code(RXNORM, "6130", "ketamine"),  # CHECK against RxNav (clinical-coding.md section 1)
    Code(SNOMED, "373464007", "Ketamine (substance)"),
)
KETAMINE_TEXT = "ketamine hydrochloride"
MED_ADMIN_CATEGORY_OUTPATIENT = Code(MED_ADMIN_CATEGORY, "outpatient", "Outpatient")
ROUTE_INTRAVENOUS = Code(SNOMED, "47625008", "Intravenous route")
UNIT_MG = "mg"
UNIT_KG = "kg"
DOSING_WEIGHT_TEXT = "Dosing weight"  # bodyweight Observation 29463-7 (section 1, last line)
UNIT_MG_PER_KG = "mg/kg"

# --- Section 1b: indications (Procedure.reasonCode) ---
INDICATIONS: dict[str, Code] = {
    "mdd": Code(SNOMED, "370143000", "Major depressive disorder"),
    "trd": Code(SNOMED, "370143000", "Major depressive disorder"),
    "gad": Code(SNOMED, "21897009", "Generalized anxiety disorder"),
    "ptsd": Code(SNOMED, "47505003", "Posttraumatic stress disorder"),
    "ocd": Code(SNOMED, "191736004", "Obsessive-compulsive disorder"),
    "suicidal_ideation": Code(SNOMED, "6471006", "Suicidal thoughts"),
}
# No SNOMED concept for treatment-resistant depression: 370143000 plus this local code and text.
TRD_LOCAL = LocalCode("indication", "treatment-resistant-depression", "Treatment-resistant depression")
TRD_TEXT = "Major depressive disorder, treatment-resistant"

# --- Section 2: vital signs (Observation, base vital-sign profiles, category vital-signs) ---
CATEGORY_VITAL_SIGNS = Code(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")
CATEGORY_SURVEY = Code(OBSERVATION_CATEGORY, "survey", "Survey")


@dataclass(frozen=True)
class Vital:
    """How one vital-sign type is coded: profile id, LOINC codes (first is the profile's), text."""

    profile: str
    codes: tuple[Code, ...]
    text: str


VITALS: dict[str, Vital] = {
    "blood_pressure": Vital(
        "bp", (Code(LOINC, "85354-9", "Blood pressure panel with all children optional"),), "Blood pressure"
    ),
    "heart_rate": Vital("heartrate", (Code(LOINC, "8867-4", "Heart rate"),), "Heart rate"),
    "respiratory_rate": Vital("resprate", (Code(LOINC, "9279-1", "Respiratory rate"),), "Respiratory rate"),
    "spo2": Vital(
        "oxygensat",
        (
            Code(LOINC, "2708-6", "Oxygen saturation in Arterial blood"),
            Code(LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
        ),
        "Oxygen saturation (SpO2)",
    ),
    "temperature": Vital("bodytemp", (Code(LOINC, "8310-5", "Body temperature"),), "Body temperature"),
    "body_weight": Vital("bodyweight", (Code(LOINC, "29463-7", "Body weight"),), "Body weight"),
}
BP_SYSTOLIC = Code(LOINC, "8480-6", "Systolic blood pressure")
BP_DIASTOLIC = Code(LOINC, "8462-4", "Diastolic blood pressure")
# Human-readable Quantity.unit per UCUM code (Quantity.code carries the UCUM code itself).
UNIT_TEXT: dict[str, str] = {
    "mm[Hg]": "mmHg",
    "/min": "/min",
    "%": "%",
    "Cel": "Cel",
    "[degF]": "degF",
    "kg": "kg",
    "[lb_av]": "lb",
    "mg": "mg",
    "mg/kg": "mg/kg",
    "mg/kg/h": "mg/kg/h",
    "mg/min": "mg/min",
    "mL/h": "mL/h",
    "{score}": "{score}",
}

# --- Section 2: dissociation and sedation scales (no LOINC codes exist; local code system) ---
MONITORING_SCALES: dict[str, LocalCode] = {
    "cadss": LocalCode("monitoring-scale", "cadss-total", "CADSS total score"),
    "moaas": LocalCode("monitoring-scale", "moaas", "MOAA/S score"),
    "rass": LocalCode("monitoring-scale", "rass", "RASS score"),
}
MONITORING_TEXT: dict[str, str] = {
    "cadss": "Clinician-Administered Dissociative States Scale (CADSS), 23-item total",
    "moaas": "Modified Observer's Assessment of Alertness/Sedation (MOAA/S)",
    "rass": "Richmond Agitation-Sedation Scale (RASS)",
}

# A pulse-oximetry reading taken on supplemental oxygen (the record's `supplemental_o2`): a component of the SpO2
# Observation, as US Core's pulse-oximetry profile carries inhaled oxygen as components. No standard code for
# "on supplemental oxygen: yes/no" was verified here: a local code, valueBoolean.
SUPPLEMENTAL_O2 = LocalCode("vital-sign-qualifier", "supplemental-oxygen", "Supplemental oxygen")
SUPPLEMENTAL_O2_TEXT = "On supplemental oxygen"

# --- Interpretation against the clinic's monitoring protocol (../shared/monitoring-protocol.md section 4) ---
# Observation.interpretation: v3 ObservationInterpretation (terminology.hl7.org/CodeSystem/v3-ObservationInterpretation);
# H/L/HH/LL for vital signs, A/AA for the ordinal scales (MOAA/S, CADSS); N only where every direction was checked.
INTERPRETATIONS: dict[str, Code] = {
    "N": Code(V3_OBSERVATION_INTERPRETATION, "N", "Normal"),
    "H": Code(V3_OBSERVATION_INTERPRETATION, "H", "High"),
    "HH": Code(V3_OBSERVATION_INTERPRETATION, "HH", "Critical high"),
    "L": Code(V3_OBSERVATION_INTERPRETATION, "L", "Low"),
    "LL": Code(V3_OBSERVATION_INTERPRETATION, "LL", "Critical low"),
    "A": Code(V3_OBSERVATION_INTERPRETATION, "A", "Abnormal"),
    "AA": Code(V3_OBSERVATION_INTERPRETATION, "AA", "Critical abnormal"),
}
# Observation.referenceRange.type: R4 referencerange-meaning (hl7.org/fhir/R4/valueset-referencerange-meaning.html).
# `normal` carries the H / L (A) limits, `treatment` the HH / LL (AA) limits; `text` names the protocol and version.
REFERENCE_RANGE_MEANING = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"
RANGE_NORMAL = Code(REFERENCE_RANGE_MEANING, "normal", "Normal Range")
RANGE_TREATMENT = Code(REFERENCE_RANGE_MEANING, "treatment", "Treatment Range")
PHASE_WORDS: dict[str | None, str] = {
    "before": "before the infusion",
    "during": "during the infusion",
    "after": "after the infusion",
    None: "phase unknown (no session with infusion times found), so the strictest limit of any phase",
}
RANGE_PRE_INFUSION_ASSUMED = "standing for the pre-infusion score, which the session summary compares"
RANGE_PRE_INFUSION_ALSO = "the session summary also compares the pre-infusion score"
RANGE_WEAKENED = "less sensitive than the protocol's default, approved by"

# --- The per-session monitoring summary and its critical-episode Flag (../shared/monitoring-protocol.md section 4) ---
# DiagnosticReport.code: LOINC has no monitoring-report code, so a local code with text.
MONITORING_REPORT = LocalCode("monitoring-report", "infusion-monitoring-summary", "Infusion monitoring summary")
MONITORING_REPORT_TEXT = "Ketamine infusion monitoring summary"
# Session statistics after R4's Observation/$stats output: one component per statistic, codes from
# observation-statistics (hl7.org/fhir/R4/codesystem-observation-statistics.html). The Observation itself must not
# carry the vital's LOINC code (the validator would apply the vital-signs profile by code and fail a component-only
# Observation): local codes, the vital named in code.text.
OBSERVATION_STATISTICS = "http://terminology.hl7.org/CodeSystem/observation-statistics"
STATISTIC_MAXIMUM = Code(OBSERVATION_STATISTICS, "maximum", "Maximum")
STATISTIC_MINIMUM = Code(OBSERVATION_STATISTICS, "minimum", "Minimum")
STATISTIC_COUNT = Code(OBSERVATION_STATISTICS, "count", "Count")
SESSION_STATISTICS: dict[str, LocalCode] = {  # measure -> the local code of its session statistics
    "systolic": LocalCode("monitoring-statistics", "systolic-session", "Systolic blood pressure, session statistics"),
    "diastolic": LocalCode(
        "monitoring-statistics", "diastolic-session", "Diastolic blood pressure, session statistics"
    ),
    "heart_rate": LocalCode("monitoring-statistics", "heart-rate-session", "Heart rate, session statistics"),
    "respiratory_rate": LocalCode(
        "monitoring-statistics", "respiratory-rate-session", "Respiratory rate, session statistics"
    ),
    "spo2": LocalCode("monitoring-statistics", "spo2-session", "Oxygen saturation (SpO2), session statistics"),
}
# The session's critical-episode Flag (category safety), raised by the protocol's confirmed rules only. No SNOMED
# concept for "critical episode during an infusion" was verified here: a local code; code.text stays the same
# whichever rules fired (the narrative names them), so a clinician's edit of the text can be told from ours.
CRITICAL_EPISODE = LocalCode("flag", "infusion-critical-episode", "Critical episode during a ketamine infusion")
CRITICAL_EPISODE_TEXT = (
    "Critical episode during a ketamine infusion: the clinic's monitoring protocol's confirmed rules fired. "
    "See the session's monitoring summary."
)
FLAG_LAPSES_AFTER_HOURS = 24  # period.end: 24 h after the session ends (the Flag lapses without a status change)
NARRATIVE_MONITORING_SUMMARY = "Monitoring summary"
NARRATIVE_STATISTICS = "session statistics"
NARRATIVE_CRITICAL_EPISODE = "Critical episode during a ketamine infusion"

# --- Section 3: PHQ-9 (LOINC panel, items, answers LL358-3 and LL359-1) ---
# Display: LOINC's long common name of 44249-1, exactly (loinc.org/44249-1; the 44261-6 page lists it as a panel).
PHQ9_PANEL = Code(LOINC, "44249-1", "PHQ-9 quick depression assessment panel [Reported.PHQ]")
PHQ9_ITEMS: tuple[Code, ...] = (
    Code(LOINC, "44250-9", "Little interest or pleasure in doing things"),
    Code(LOINC, "44255-8", "Feeling down, depressed, or hopeless"),
    Code(LOINC, "44259-0", "Trouble falling or staying asleep, or sleeping too much"),
    Code(LOINC, "44254-1", "Feeling tired or having little energy"),
    Code(LOINC, "44251-7", "Poor appetite or overeating"),
    Code(
        LOINC,
        "44258-2",
        "Feeling bad about yourself - or that you are a failure or have let yourself or your family down",
    ),
    Code(
        LOINC,
        "44252-5",
        "Trouble concentrating on things, such as reading the newspaper or watching television",
    ),
    Code(
        LOINC,
        "44253-3",
        "Moving or speaking so slowly that other people could have noticed. Or the opposite - being so "
        "fidgety or restless that you have been moving around a lot more than usual",
    ),
    Code(LOINC, "44260-8", "Thoughts that you would be better off dead, or of hurting yourself in some way"),
)
PHQ9_DIFFICULTY = Code(
    LOINC,
    "69722-7",
    "How difficult have these problems made it for you to do your work, take care of things at home, "
    "or get along with other people?",
)
PHQ9_TOTAL = Code(LOINC, "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]")
PHQ9_ANSWERS: tuple[Code, ...] = (  # index = item score
    Code(LOINC, "LA6568-5", "Not at all"),
    Code(LOINC, "LA6569-3", "Several days"),
    Code(LOINC, "LA6570-1", "More than half the days"),
    Code(LOINC, "LA6571-9", "Nearly every day"),
)
PHQ9_DIFFICULTY_ANSWERS: dict[str, Code] = {
    "not_difficult": Code(LOINC, "LA6572-7", "Not difficult at all"),
    "somewhat": Code(LOINC, "LA6573-5", "Somewhat difficult"),
    "very": Code(LOINC, "LA6575-0", "Very difficult"),
    "extremely": Code(LOINC, "LA6574-3", "Extremely difficult"),
}
UNIT_SCORE = "{score}"
PHQ9_PANEL_TEXT = "PHQ-9"
PHQ9_TOTAL_TEXT = "PHQ-9 total score"
# Severity bands of the total (upper bound inclusive) with a local interpretation code.
PHQ9_SEVERITY: tuple[tuple[int, LocalCode], ...] = (
    (4, LocalCode("phq9-interpretation", "minimal", "Minimal depression")),
    (9, LocalCode("phq9-interpretation", "mild", "Mild depression")),
    (14, LocalCode("phq9-interpretation", "moderate", "Moderate depression")),
    (19, LocalCode("phq9-interpretation", "moderately-severe", "Moderately severe depression")),
    (27, LocalCode("phq9-interpretation", "severe", "Severe depression")),
)
# Item 9 > 0 is a suicide-risk signal the clinic must see: a second interpretation plus a note.
PHQ9_ITEM9_POSITIVE = LocalCode(
    "phq9-interpretation", "item-9-positive", "Item 9 positive: thoughts of death or self-harm reported"
)
# The standard code beside the local one, on the item-9 answer and on the total (section 6). v3
# ObservationInterpretation POS "Positive": "A presence finding of the specified component / analyte,
# organism or clinical sign based on the established threshold of the performed test or procedure"
# (terminology.hl7.org/CodeSystem/v3-ObservationInterpretation). PHQ-9 item 9 has an established
# threshold: any answer above "Not at all" is a positive screen for thoughts of death or self-harm
# that calls for a suicide-risk assessment. `A`/`AA` are about results outside a reference range, which
# a questionnaire answer has not; POS is the one whose definition fits.
INTERPRETATION_POSITIVE = Code(V3_OBSERVATION_INTERPRETATION, "POS", "Positive")
PHQ9_ITEM9_NOTE = (
    "SUICIDE RISK: PHQ-9 item 9 (thoughts that you would be better off dead, or of hurting yourself) "
    "was answered above 'Not at all'. Review suicide risk before the next infusion."
)

# --- Section 4: adverse events (R4 AdverseEvent) ---
AE_ACTUALITY = "actual"
AE_SERIOUS: dict[bool, Code] = {
    True: Code(AE_SERIOUSNESS, "Serious", "Serious"),
    False: Code(AE_SERIOUSNESS, "Non-serious", "Non-serious"),
}
# A fatal outcome is R4's most specific seriousness (section 6: SeriousResultsInDeath); read back as serious.
AE_SERIOUS_FATAL = Code(AE_SERIOUSNESS, "SeriousResultsInDeath", "Results in death")
AE_SEVERITIES: dict[str, Code] = {
    "mild": Code(AE_SEVERITY, "mild", "Mild"),
    "moderate": Code(AE_SEVERITY, "moderate", "Moderate"),
    "severe": Code(AE_SEVERITY, "severe", "Severe"),
}
AE_OUTCOMES: dict[str, Code] = {
    "resolved": Code(AE_OUTCOME, "resolved", "Resolved"),
    "recovering": Code(AE_OUTCOME, "recovering", "Recovering"),
    "ongoing": Code(AE_OUTCOME, "ongoing", "Ongoing"),
    "resolved_with_sequelae": Code(AE_OUTCOME, "resolvedWithSequelae", "Resolved with Sequelae"),
    "fatal": Code(AE_OUTCOME, "fatal", "Fatal"),
    "unknown": Code(AE_OUTCOME, "unknown", "Unknown"),
}
AE_CAUSALITIES: dict[str, Code] = {
    "certain": Code(AE_CAUSALITY, "Certain", "Certain"),
    "probable": Code(AE_CAUSALITY, "Probably-Likely", "Probably/Likely"),
    "possible": Code(AE_CAUSALITY, "Possible", "Possible"),
    "unlikely": Code(AE_CAUSALITY, "Unlikely", "Unlikely"),
    "unassessable": Code(AE_CAUSALITY, "Unassessable-Unclassifiable", "Unassessable/Unclassifiable"),
}
AE_EVENTS: dict[str, Code | LocalCode] = {
    "nausea": Code(SNOMED, "422587007", "Nausea"),
    "vomiting": Code(SNOMED, "422400008", "Vomiting"),
    "headache": Code(SNOMED, "25064002", "Headache"),
    "dizziness": Code(SNOMED, "404640003", "Dizziness"),
    "elevated_blood_pressure": Code(SNOMED, "24184005", "Finding of increased blood pressure"),
    "tachycardia": Code(SNOMED, "3424008", "Tachycardia"),
    "hallucinations": Code(SNOMED, "7011001", "Hallucinations"),
    "anxiety": Code(SNOMED, "48694002", "Anxiety"),
    "agitation": Code(SNOMED, "24199005", "Feeling agitated"),
    "excessive_sedation": Code(SNOMED, "271782001", "Drowsy"),
    "blurred_vision": Code(SNOMED, "111516008", "Blurred vision"),
    "diplopia": Code(SNOMED, "24982008", "Diplopia"),
    # No suitable SNOMED concept (44376007 dissociative disorder is a diagnosis): local codes.
    "dissociation": LocalCode("adverse-event", "dissociation", "Transient dissociation"),
    "emergence_reaction": LocalCode("adverse-event", "emergence-reaction", "Emergence reaction"),
    "other": LocalCode("adverse-event", "other", "Other adverse event"),
}
AE_ACTIONS: dict[str, LocalCode] = {  # R4 AdverseEvent has no action element: carried in an extension
    "none": LocalCode("adverse-event-action", "none", "No action taken"),
    "infusion_paused": LocalCode("adverse-event-action", "infusion-paused", "Infusion paused"),
    "infusion_slowed": LocalCode("adverse-event-action", "infusion-slowed", "Infusion rate reduced"),
    "infusion_stopped": LocalCode("adverse-event-action", "infusion-stopped", "Infusion stopped"),
    "medication_given": LocalCode("adverse-event-action", "medication-given", "Medication given"),
}

# --- Section 6: the visit (Encounter) and the suicide-risk alert (Flag) ---
ENCOUNTER_CLASS = Code(V3_ACT_CODE, "AMB", "ambulatory")  # R4 Encounter.class: an outpatient infusion visit
ENCOUNTER_TEXT = "Ketamine infusion visit"
ENCOUNTER_STATUS: dict[str, str] = {  # session status -> R4 encounter-status
    "planned": "planned",
    "in_progress": "in-progress",
    "completed": "finished",
    "stopped": "finished",  # the visit ended; the infusion stopped early (the Procedure says so)
    "not_done": "cancelled",  # "ended before it has begun": no infusion took place
    "entered_in_error": "entered-in-error",
}
FLAG_CATEGORY_SAFETY = Code(FLAG_CATEGORY, "safety", "Safety")  # "flags related to safety precautions"
FLAG_ACTIVE = "active"
# Flag.code: SNOMED 6471006 "Suicidal thoughts" (section 1b, checked there) is what PHQ-9 item 9 asks
# about; no SNOMED "at risk of suicide" concept could be verified here, so the risk is stated in text.
FLAG_CODE = (
    Code(SNOMED, "6471006", "Suicidal thoughts"),
    LocalCode("flag", "phq9-item9-positive", "PHQ-9 item 9 positive"),
)
FLAG_TEXT = "Suicide risk: PHQ-9 item 9 answered above 'Not at all'. Review before the next infusion."
# The Flag of a positive safety answer on any rating scale (`assessment` records): the same SNOMED code,
# a local code naming the trigger, and text naming no instrument's wording (instruments.md section 5).
ASSESSMENT_FLAG_CODE = (
    Code(SNOMED, "6471006", "Suicidal thoughts"),
    LocalCode("flag", "assessment-safety-positive", "Positive safety answer on a rating scale"),
)
ASSESSMENT_FLAG_TEXT = "Suicide risk: a safety answer on a rating scale was positive. Review before the next infusion."
# The R4 core extension that points a Flag at the record supporting it (hl7.org/fhir/R4/extension-flag-detail).
EXT_FLAG_DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"
# R4 core extensions of the service's Questionnaires (instruments.md section 4): an answer option's score
# (hl7.org/fhir/R4/extension-ordinalvalue, valueDecimal) and an integer item's bounds
# (extension-minvalue / extension-maxvalue, value[x] of the item's type: valueInteger).
EXT_ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
EXT_MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"

# --- Local extensions (URLs relative to local_code_system_base; see `local_system`) ---
# StructureDefinitions of each: docs/fhir/StructureDefinition-<name>.json.
EXT_AE_NOTE = "extension/adverse-event-note"  # valueString: R4 AdverseEvent has no note
EXT_AE_ACTION = "extension/adverse-event-action-taken"  # valueCodeableConcept from AE_ACTIONS
EXT_DOSE_PER_KG = "extension/dose-per-body-weight"  # on a Dosage, valueQuantity mg/kg
EXT_INTENDED_DOSAGE = "extension/intended-dosage"  # valueDosage on a not-done MedicationAdministration
EXT_SESSION = "extension/session"  # valueReference: the session a record sent on its own belongs to
EXT_EMBEDDED_IN_SESSION = "extension/embedded-in-session"  # valueReference: came embedded in that session
INTENDED_DOSAGE_PREFIX = "Intended, not administered: "


# --- Narrative words (Resource.text, built by service/mappers/narrative.py; docs/clinical-mapping.md) ---
# Plain English for clinicians, not codes. Dates are written as "2 Mar 2026 09:30 UTC+01:00" by hand:
# these month names are the only ones used, whatever the machine's locale.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
STATUS_WORDS: dict[str, str] = {  # R4 status code (event-status, encounter-status) -> narrative word
    "preparation": "planned",
    "planned": "planned",
    "in-progress": "in progress",
    "completed": "completed",
    "finished": "finished",
    "stopped": "stopped early",
    "not-done": "not done",
    "cancelled": "cancelled",
}
NARRATIVE_ENTERED_IN_ERROR = "Entered in error: "  # leads the narrative of an entered-in-error resource
NARRATIVE_RETRACTED = "Entered in error."  # a retracted copy without a narrative of ours
NARRATIVE_UNITS: dict[str, str] = {"Cel": "\u00b0C", "[degF]": "\u00b0F"}  # else UNIT_TEXT
NARRATIVE_DURING = "during infusion"
NARRATIVE_PATIENT = "Patient"
NARRATIVE_KETAMINE = "Ketamine"
NARRATIVE_NOT_GIVEN = "not administered"
NARRATIVE_FOR = "for"
NARRATIVE_PHQ9_ITEM = "PHQ-9 item"
NARRATIVE_PHQ9_DIFFICULTY = "PHQ-9 difficulty"
NARRATIVE_PHQ9_TOTAL = "PHQ-9 total"
NARRATIVE_PHQ9_PANEL = "PHQ-9 panel (9 items, total score)"
NARRATIVE_PHQ9_PANEL_DIFFICULTY = "PHQ-9 panel (9 items, difficulty, total score)"
NARRATIVE_SINCE = "Since"
NARRATIVE_RESPONSE = "answers"  # `<instrument title> answers, <when>` (QuestionnaireResponse)
NARRATIVE_PANEL = "panel"  # `<instrument title> panel (<n> results), <when>`
NARRATIVE_POSITIVE = "Positive safety answer"
NARRATIVE_ADVERSE_EVENT = "Adverse event"


def local_system(base: str, path: str) -> str:
    """The URL of a local code system or extension: `<local_code_system_base>/<path>`."""
    return f"{base.rstrip('/')}/{path}"


def phq9_severity(total: int) -> LocalCode:
    """The severity band of a PHQ-9 total (0-4 minimal ... 20-27 severe)."""
    for upper, code in PHQ9_SEVERITY:
        if total <= upper:
            return code
    raise ValueError("PHQ-9 total out of range")
