"""Resource.text: the short generated narrative each mapped resource carries (escaped XHTML, no clock or locale).

Every narrative says only what its own resource holds (so the re-sync diff, which ignores `text`,
never leaves a stale one behind for a changed value), in the words of codes.py. Dates are written
by hand as `2 Mar 2026 09:30 UTC+01:00`, in the offset the time was recorded in. Free text (stop
reasons, adverse-event descriptions, names) is escaped with the rest of the sentence. Narratives
hold PHI (a Patient's name and MRN, clinicians' free text): they belong in the resource, never in a log.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

from service.mappers import codes
from service.mappers.build import Json, number

XHTML_NS = codes.XHTML
DIV_OPEN = f'<div xmlns="{XHTML_NS}"><p>'
DIV_CLOSE = "</p></div>"
GENERATED = "generated"
# Escaped exactly as HAPI writes a div back (& < > and the double quote; the apostrophe and CR
# literal, as XML allows in character data), so that the server's copy equals ours byte for byte.
# XML 1.0 has no U+FFFE or U+FFFF (record text may hold them): they become U+FFFD.
_ESCAPES = (
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
    ('"', "&quot;"),
    ("\ufffe", "\ufffd"),
    ("\uffff", "\ufffd"),
)


def escape(text: str) -> str:
    """`text` as XHTML character data (a `<p>`'s text, never an attribute): markup and `"` escaped."""
    for char, replacement in _ESCAPES:
        if char in text:
            text = text.replace(char, replacement)
    return text


def narrative(sentence: str, entered_in_error: bool = False) -> Json:
    """Resource.text: status `generated` and the sentence, escaped, as one paragraph of a FHIR div."""
    if entered_in_error:
        sentence = codes.NARRATIVE_ENTERED_IN_ERROR + sentence
    return {"status": GENERATED, "div": DIV_OPEN + escape(sentence) + DIV_CLOSE}


def day(value: dt.date) -> str:
    """`2 Mar 2026`: day, English month abbreviation, year (no locale)."""
    return f"{value.day} {codes.MONTHS[value.month - 1]} {value.year}"


@lru_cache(maxsize=128)
def _offset(delta: dt.timedelta | None) -> str:
    """` UTC`, ` UTC-04:00`: an offset as the narrative says it (a handful per corpus, so cached)."""
    if delta is None:
        return ""
    minutes = int(delta.total_seconds()) // 60
    if minutes == 0:
        return " UTC"
    hours, rest = divmod(abs(minutes), 60)
    return f" UTC{'+' if minutes > 0 else '-'}{hours:02d}:{rest:02d}"


def at(value: dt.datetime) -> str:
    """`2 Mar 2026 09:30 UTC+01:00`: the time in the offset it was recorded in (`UTC` when zero)."""
    month = codes.MONTHS[value.month - 1]
    return f"{value.day} {month} {value.year} {value.hour:02d}:{value.minute:02d}{_offset(value.utcoffset())}"


def span(start: dt.datetime, end: dt.datetime | None) -> str:
    """A period: `2 Mar 2026 09:30-10:10 UTC` within one day and offset, else `<at> to <at>`; open: `<at>`."""
    if end is None:
        return at(start)
    if start.date() == end.date() and start.utcoffset() == end.utcoffset():
        offset = _offset(start.utcoffset())
        return f"{day(start)} {start.hour:02d}:{start.minute:02d}-{end.hour:02d}:{end.minute:02d}{offset}"
    return f"{at(start)} to {at(end)}"


def unit(ucum: str) -> str:
    """The unit as a clinician writes it (`°C`, `mmHg`, `/min`)."""
    return codes.NARRATIVE_UNITS.get(ucum) or codes.UNIT_TEXT[ucum]


def observed(head: str, when: str, during: bool, entered_in_error: bool, tail: str | None = None) -> Json:
    """`<head>, <when>[, during infusion][. <tail>]`: the narrative of one Observation."""
    sentence = f"{head}, {when}, {codes.NARRATIVE_DURING}" if during else f"{head}, {when}"
    if tail is not None:
        sentence += f". {tail}"
    return narrative(sentence, entered_in_error)


# --- Patient ---


def patient(info: Any) -> Json:
    """`Patient Jane Q Doe, MRN 123, born 2 Mar 1980`: only what the Patient resource holds of identity."""
    name = " ".join([*(info.given or []), *([info.family] if info.family is not None else [])])
    sentence = (
        f"{codes.NARRATIVE_PATIENT} {name}, MRN {info.mrn}" if name else f"{codes.NARRATIVE_PATIENT} MRN {info.mrn}"
    )
    if info.birth_date is not None:
        sentence += f", born {day(info.birth_date)}"
    return narrative(sentence)


# --- Session: Procedure, MedicationAdministration, Encounter, dosing weight ---


def indication(name: str) -> str:
    """The words of an indication, as Procedure.reasonCode.text says it."""
    return codes.TRD_TEXT if name == "trd" else codes.INDICATIONS[name].display


def _reasons(record: Any) -> str:
    if not record.indications:
        return ""
    return f", {codes.NARRATIVE_FOR} " + "; ".join(indication(name) for name in record.indications)


def _stop_reason(record: Any) -> str:
    return "" if record.stop_reason is None else f". Reason: {record.stop_reason}"


def _status(fhir_status: str) -> str:
    """`, <status word>` unless entered in error (the narrative then starts with it instead)."""
    return "" if fhir_status == codes.ENTERED_IN_ERROR else f", {codes.STATUS_WORDS[fhir_status]}"


def procedure(record: Any) -> Json:
    """`Ketamine infusion, completed, 2 Mar 2026 09:30-10:10 UTC, for <indications>[. Reason: <stop reason>]`."""
    status = codes.PROCEDURE_STATUS[record.status]
    period = "" if record.status == "not_done" else f", {span(record.started_at, record.ended_at)}"
    sentence = f"{codes.PROCEDURE_TEXT}{_status(status)}{period}{_reasons(record)}{_stop_reason(record)}"
    return narrative(sentence, status == codes.ENTERED_IN_ERROR)


def encounter(record: Any) -> Json:
    """`Ketamine infusion visit, finished, <period>, for <indications>` (a cancelled visit has no period)."""
    status = codes.ENCOUNTER_STATUS[record.status]
    period = "" if record.status == "not_done" else f", {span(record.started_at, record.ended_at)}"
    return narrative(
        f"{codes.ENCOUNTER_TEXT}{_status(status)}{period}{_reasons(record)}", status == codes.ENTERED_IN_ERROR
    )


def administration(record: Any, dose_text: str | None) -> Json:
    """`35 mg ketamine IV (0.5 mg/kg) ... over 40 min, completed, <period>`; not done: what was intended.

    `dose_text` is the dosage's own text (`session.dosage_text`), None without a dose.
    """
    status = codes.MED_ADMIN_STATUS[record.status]
    when = span(record.started_at, record.ended_at)
    if record.status == "not_done":
        intended = "" if dose_text is None else f" (intended: {dose_text})"
        sentence = f"{codes.NARRATIVE_KETAMINE} {codes.NARRATIVE_NOT_GIVEN}{intended}, {when}"
    else:
        head = codes.NARRATIVE_KETAMINE if dose_text is None else dose_text
        sentence = f"{head}{_status(status)}, {when}"
    return narrative(sentence + _stop_reason(record), status == codes.ENTERED_IN_ERROR)


def dosing_weight(weight_kg: float, when: dt.datetime, entered_in_error: bool) -> Json:
    """`Dosing weight 70 kg, 2 Mar 2026 09:30 UTC`."""
    head = f"{codes.DOSING_WEIGHT_TEXT} {number(weight_kg)} {unit(codes.UNIT_KG)}"
    return observed(head, at(when), False, entered_in_error)


# --- Children: vital signs, monitoring scores, PHQ-9, adverse events ---


def vital_sign(record: Any, during: bool, entered_in_error: bool, interpreted: str | None = None) -> Json:
    """`Heart rate 80 /min, <when>[, during infusion][. <interpretation>]`; `Blood pressure 128/82 mmHg, ...`;
    `interpreted` is the Observation's own interpretation in words (`interpretation.words`)."""
    label = codes.VITALS[record.type].text
    if record.type == "blood_pressure":
        value = f"{number(record.systolic)}/{number(record.diastolic)} {unit('mm[Hg]')}"
    else:
        value = f"{number(record.value)} {unit(record.unit)}"
    return observed(f"{label} {value}", at(record.measured_at), during, entered_in_error, interpreted)


def monitoring_score(record: Any, during: bool, entered_in_error: bool, interpreted: str | None = None) -> Json:
    """`MOAA/S score 2, <when>[, during infusion][. Critical abnormal]`."""
    label = codes.MONITORING_SCALES[record.instrument].display
    return observed(f"{label} {record.score}", at(record.measured_at), during, entered_in_error, interpreted)


def phq9_item(number_: int, score: int, when: str, during: bool, entered_in_error: bool) -> Json:
    """`PHQ-9 item 2 (<question>): Several days, <when>`; a positive item 9 says so."""
    item = codes.PHQ9_ITEMS[number_ - 1]
    head = f"{codes.NARRATIVE_PHQ9_ITEM} {number_} ({item.display}): {codes.PHQ9_ANSWERS[score].display}"
    tail = codes.PHQ9_ITEM9_POSITIVE.display if number_ == 9 and score > 0 else None
    return observed(head, when, during, entered_in_error, tail)


def phq9_difficulty(difficulty: str, when: str, during: bool, entered_in_error: bool) -> Json:
    """`PHQ-9 difficulty: Somewhat difficult, <when>`."""
    head = f"{codes.NARRATIVE_PHQ9_DIFFICULTY}: {codes.PHQ9_DIFFICULTY_ANSWERS[difficulty].display}"
    return observed(head, when, during, entered_in_error)


def phq9_total(total: int, item9_positive: bool, when: str, during: bool, entered_in_error: bool) -> Json:
    """`PHQ-9 total 14 (moderate depression), <when>`; with a positive item 9, the suicide-risk note."""
    severity = codes.phq9_severity(total).display
    head = f"{codes.NARRATIVE_PHQ9_TOTAL} {total} ({severity[0].lower()}{severity[1:]})"
    return observed(head, when, during, entered_in_error, codes.PHQ9_ITEM9_NOTE if item9_positive else None)


def phq9_panel(with_difficulty: bool, when: str, during: bool, entered_in_error: bool) -> Json:
    """`PHQ-9 panel (9 items, difficulty, total score), <when>`: the panel holds only its members."""
    head = codes.NARRATIVE_PHQ9_PANEL_DIFFICULTY if with_difficulty else codes.NARRATIVE_PHQ9_PANEL
    return observed(head, when, during, entered_in_error)


def flag(when: str, entered_in_error: bool) -> Json:
    """The Flag's text and since when: `Suicide risk: ... Since 2 Mar 2026 09:30 UTC.`"""
    return narrative(f"{codes.FLAG_TEXT} {codes.NARRATIVE_SINCE} {when}.", entered_in_error)


def adverse_event(record: Any, serious: codes.Code) -> Json:
    """`Adverse event: Nausea (<description>); moderate, non-serious; onset <when>; outcome resolved; ...`."""
    event = codes.AE_EVENTS[record.event].display
    described = "" if record.description is None else f" ({record.description})"
    severity = codes.AE_SEVERITIES[record.severity].display.lower()
    sentence = (
        f"{codes.NARRATIVE_ADVERSE_EVENT}: {event}{described}; {severity}, {serious.display.lower()}; "
        f"onset {at(record.onset_at)}; outcome {codes.AE_OUTCOMES[record.outcome].display.lower()}"
    )
    if record.action_taken is not None:
        sentence += f"; action: {codes.AE_ACTIONS[record.action_taken].display.lower()}"
    if record.causality is not None:
        sentence += f"; causality: {codes.AE_CAUSALITIES[record.causality].display.lower()}"
    return narrative(sentence)


# --- Assessments (any rating scale): every label comes from the instrument's definition ---


def assessment_response(title: str, answered: int, when: str, entered_in_error: bool) -> Json:
    """`GAD-7 answers (7 answered), <when>`: the QuestionnaireResponse."""
    return narrative(f"{title} {codes.NARRATIVE_RESPONSE} ({answered} answered), {when}", entered_in_error)


def assessment_answer(label: str, words: str, positive: bool, when: str, during: bool, entered_in_error: bool) -> Json:
    """`MADRS item 3: 4, <when>`; a positive safety answer says so."""
    return observed(f"{label}: {words}", when, during, entered_in_error, codes.NARRATIVE_POSITIVE if positive else None)


def assessment_score(label: str, value: int, band: str | None, when: str, during: bool, entered_in_error: bool) -> Json:
    """`GAD-7 total score 12 (moderate anxiety), <when>`; a subscale has no band."""
    head = f"{label} {value}" if band is None else f"{label} {value} ({band[0].lower()}{band[1:]})"
    return observed(head, when, during, entered_in_error)


def assessment_triage(label: str, level: str, note: str, when: str, during: bool, entered_in_error: bool) -> Json:
    """`C-SSRS screener triage category: Moderate, <when>. <note>`."""
    return observed(f"{label}: {level}", when, during, entered_in_error, note)


def assessment_panel(title: str, members: int, when: str, during: bool, entered_in_error: bool) -> Json:
    """`Y-BOCS panel (13 results), <when>`: the panel holds only its members."""
    return observed(f"{title} {codes.NARRATIVE_PANEL} ({members} results)", when, during, entered_in_error)


def assessment_flag(when: str, entered_in_error: bool) -> Json:
    """The Flag's text and since when: `Suicide risk: ... Since 2 Mar 2026 09:30 UTC.`"""
    return narrative(f"{codes.ASSESSMENT_FLAG_TEXT} {codes.NARRATIVE_SINCE} {when}.", entered_in_error)
