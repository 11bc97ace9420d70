"""The demo-data generator: contract-valid, deterministic, streamed, ordered, and clinically plausible."""

from __future__ import annotations

import io
import itertools
import re
import statistics
import time
import tracemalloc
from collections import Counter, defaultdict
from datetime import date, datetime

import orjson
import pytest
from typer.testing import CliRunner

from schemas import RecordInvalid, parse_record
from service.cli import app
from service.demo import generate_records, write_ndjson
from service.demo.course import clinic_time
from service.demo.stream import EMBEDDED_LISTS
from service.demo.tables import DEPRESSION_SCALES, SCALES_BY_INDICATION
from service.instruments import DEFINITIONS, assess, score

KEY = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SYNTHETIC_MRN = re.compile(r"^SYN[-,|$\\]\d{6}$")
CHILD_KINDS = ("vital_sign", "monitoring_score", "adverse_event", "phq9_assessment", "assessment")
INSTRUMENTS = {"cssrs_screen", "cssrs_screen_slc", "gad7", "pcl5", "ybocs", "madrs", "qids_sr16"}
SCALE_OF = {"gad": "gad7", "ptsd": "pcl5", "ocd": "ybocs"}
TIME_FIELDS = ("started_at", "measured_at", "onset_at", "completed_at")
ALL_EVENTS = {
    "nausea",
    "vomiting",
    "headache",
    "dizziness",
    "elevated_blood_pressure",
    "tachycardia",
    "hallucinations",
    "dissociation",
    "emergence_reaction",
    "anxiety",
    "agitation",
    "excessive_sedation",
    "blurred_vision",
    "diplopia",
    "other",
}
SCALES_BY_INSTRUMENT = {
    shape.instrument: shape for shape in [*SCALES_BY_INDICATION.values(), *(s for s, _ in DEPRESSION_SCALES)]
}
ALL_VITALS = {"blood_pressure", "heart_rate", "respiratory_rate", "spo2", "temperature", "body_weight"}


def _ndjson(patients: int, seed: int) -> bytes:
    out = io.BytesIO()
    write_ndjson(generate_records(patients, seed), out)
    return out.getvalue()


def _children(session: dict) -> list[tuple[str, dict]]:
    return [(kind, child) for kind, name in EMBEDDED_LISTS.items() for child in session.get(name, [])]


def _all_records(patients: int, seed: int) -> list[tuple[str, dict]]:
    """Every record, embedded children included, as (kind, record)."""
    out = []
    for record in generate_records(patients, seed):
        out.append((record["kind"], record))
        if record["kind"] == "infusion_session":
            out += _children(record)
    return out


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("seed", [1, 2, 2026])
def test_every_record_satisfies_the_record_contract(seed: int) -> None:
    problems = []
    for record in generate_records(30, seed):
        try:
            parse_record(record)
        except RecordInvalid as error:
            problems += [(record["key"], str(issue)) for issue in error.issues]
    assert problems == []


def test_the_ndjson_lines_parse_back_to_the_generated_records() -> None:
    lines = _ndjson(5, 3).splitlines()
    assert [orjson.loads(line) for line in lines] == list(generate_records(5, 3))


def test_same_seed_same_bytes_and_another_seed_other_bytes() -> None:
    first = _ndjson(20, 42)
    assert first == _ndjson(20, 42)
    assert first != _ndjson(20, 43)


def test_more_patients_only_append_records_and_counts_grow_linearly() -> None:
    small, large = _ndjson(20, 5).splitlines(), _ndjson(80, 5).splitlines()
    assert large[: len(small)] == small  # patient n is the same whatever the count
    per_patient = len(large) / 80
    assert 100 <= per_patient <= 300
    assert 0.8 <= (len(small) / 20) / per_patient <= 1.25
    assert list(generate_records(0, 5)) == []


def test_fifty_patients_cover_every_kind_event_instrument_and_vital_type() -> None:
    records = _all_records(50, 1)
    kinds = Counter(kind for kind, _ in records)
    assert set(kinds) == {"infusion_session", *CHILD_KINDS}
    assert {r["event"] for k, r in records if k == "adverse_event"} == ALL_EVENTS
    assert {r["instrument"] for k, r in records if k == "monitoring_score"} == {"cadss", "moaas", "rass"}
    assert {r["instrument"] for k, r in records if k == "assessment"} == INSTRUMENTS
    assert {r["type"] for k, r in records if k == "vital_sign"} == ALL_VITALS
    sessions = [r for k, r in records if k == "infusion_session"]
    assert {s["status"] for s in sessions} == {"completed", "stopped", "not_done"}
    assert {s["dose"]["rate"]["unit"] for s in sessions if "dose" in s} == {"mg/kg/h", "mg/min", "mL/h"}


def test_children_follow_their_session_as_lines_or_embedded_in_it() -> None:
    seen_sessions: set[str] = set()
    embedded = standalone = 0
    for record in generate_records(60, 8):
        if record["kind"] == "infusion_session":
            seen_sessions.add(record["key"])
            children = _children(record)
            if children:
                embedded += 1
                assert all("patient" not in child and child["session_key"] == record["key"] for _, child in children)
            else:
                standalone += 1
        elif "session_key" in record:
            assert record["session_key"] in seen_sessions  # written after its session
            assert record["patient"]["mrn"]
    assert 0.1 <= embedded / (embedded + standalone) <= 0.3


def test_per_patient_records_are_contiguous_and_in_time_order() -> None:
    finished: set[str] = set()
    current, last_session_start, last_child_time = None, None, None
    for record in generate_records(40, 9):
        mrn = record["patient"]["mrn"]
        if mrn != current:
            assert mrn not in finished
            if current:
                finished.add(current)
            current, last_session_start, last_child_time = mrn, None, None
        when = _at(next(record[f] for f in TIME_FIELDS if f in record))
        if record["kind"] == "infusion_session":
            assert last_session_start is None or when > last_session_start
            last_session_start, last_child_time = when, None
            for name in EMBEDDED_LISTS.values():
                times = [_at(next(c[f] for f in TIME_FIELDS if f in c)) for c in record.get(name, [])]
                assert times == sorted(times)
        else:
            assert last_child_time is None or when >= last_child_time
            last_child_time = when


def test_keys_are_unique_and_well_formed() -> None:
    keys = [record["key"] for _, record in _all_records(100, 11)]
    assert len(keys) == len(set(keys))
    assert all(KEY.match(key) for key in keys)


def test_mrns_are_clearly_synthetic_and_a_few_need_search_escaping() -> None:
    mrns = {r["patient"]["mrn"] for r in generate_records(200, 12)}
    assert len(mrns) == 200
    assert all(SYNTHETIC_MRN.match(mrn) for mrn in mrns)
    odd = [mrn for mrn in mrns if mrn[3] != "-"]
    assert 0.01 <= len(odd) / len(mrns) <= 0.1


def test_generation_streams() -> None:
    records = generate_records(10**9, 1)
    started = time.perf_counter()
    first = list(itertools.islice(records, 3))
    assert time.perf_counter() - started < 1.0
    assert first[0]["kind"] == "infusion_session" and first[0]["key"] == "p000001.s01"


def test_memory_does_not_grow_with_the_patient_count() -> None:
    peaks = []
    for patients in (10, 100):
        tracemalloc.start()
        try:
            for _ in generate_records(patients, 1):
                pass
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0] + 64 * 1024


def test_dates_lie_in_the_two_years_before_the_anchor_with_a_clinic_offset() -> None:
    starts = [_at(r["started_at"]) for r in generate_records(100, 13) if r["kind"] == "infusion_session"]
    assert min(starts).date() >= date(2023, 12, 1)
    assert max(starts).date() < date(2026, 1, 1)
    assert {s.utcoffset().total_seconds() / 3600 for s in starts} == {-5, -4}
    assert all(s.weekday() < 5 and 8 <= s.hour < 16 for s in starts)


@pytest.mark.parametrize(
    ("day", "offset"),
    [((2025, 3, 8), "-05:00"), ((2025, 3, 9), "-04:00"), ((2025, 11, 1), "-04:00"), ((2025, 11, 2), "-05:00")],
)
def test_clinic_time_follows_us_eastern_daylight_saving(day: tuple[int, int, int], offset: str) -> None:
    assert clinic_time(date(*day), 9 * 60 + 30).isoformat().endswith(f"T09:30:00{offset}")


def test_the_course_looks_like_ketamine_treatment() -> None:
    records = _all_records(300, 21)
    sessions = [r for k, r in records if k == "infusion_session"]
    given = [s for s in sessions if s["status"] != "not_done"]
    by_session: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for kind, record in records:
        if kind != "infusion_session" and "session_key" in record:
            by_session[record["session_key"]].append((kind, record))

    # courses of about six infusions over two to three weeks, mostly 0.5 mg/kg over 40 minutes
    per_patient = Counter(s["patient"]["mrn"] for s in given)
    assert statistics.median(per_patient.values()) == 6
    assert statistics.median(s["dose"]["mg_per_kg"] for s in given) == 0.5
    assert all(0 < s["dose"]["mg_per_kg"] <= 1.0 for s in given)
    minutes = [
        (_at(s["ended_at"]) - _at(s["started_at"])).total_seconds() / 60 for s in given if s["status"] == "completed"
    ]
    assert statistics.median(minutes) == 40
    assert 0.02 <= sum(s["status"] == "stopped" for s in sessions) / len(sessions) <= 0.07
    assert all(s["stop_reason"] for s in sessions if s["status"] == "stopped")

    # adverse events at plausible rates, mostly mild
    events = [r for k, r in records if k == "adverse_event"]
    assert 0.08 <= sum(e["event"] == "nausea" for e in events) / len(given) <= 0.2
    assert sum(e["severity"] == "mild" for e in events) / len(events) >= 0.65

    # transient systolic rise of ~10-25 mmHg; CADSS highest during the infusion
    rises, cadss_peak_during = [], []
    for session in given:
        children = by_session[session["key"]] + _children(session)
        start, end = _at(session["started_at"]), _at(session["ended_at"])
        bps = sorted(
            (_at(r["measured_at"]), r["systolic"])
            for k, r in children
            if k == "vital_sign" and r["type"] == "blood_pressure"
        )
        if bps:
            rises.append(max(s for _, s in bps) - bps[0][1])
        cadss = [
            (r["score"], _at(r["measured_at"]))
            for k, r in children
            if k == "monitoring_score" and r["instrument"] == "cadss"
        ]
        if cadss:
            cadss_peak_during.append(start < max(cadss)[1] <= end)
    assert 10 <= statistics.median(rises) <= 30
    assert sum(cadss_peak_during) / len(cadss_peak_during) >= 0.9

    # PHQ-9: baselines mostly 15-24; about half respond (>= 50% fall) by session six
    phq9: dict[str, list[int]] = defaultdict(list)
    for kind, record in records:
        if kind == "phq9_assessment" and "session_key" in record:
            phq9[record["session_key"].split(".")[0]].append(sum(record["items"]))
    baselines = [totals[0] for totals in phq9.values()]
    assert 15 <= statistics.median(baselines) <= 22
    full = [totals for totals in phq9.values() if len(totals) >= 6]
    responders = sum(totals[5] <= totals[0] / 2 for totals in full) / len(full)
    assert 0.3 <= responders <= 0.7
    assert any(r["items"][8] > 0 for k, r in records if k == "phq9_assessment")


def test_the_command_writes_the_same_bytes_to_a_file_and_to_stdout(tmp_path) -> None:
    target = tmp_path / "demo.ndjson"
    runner = CliRunner()
    to_file = runner.invoke(app, ["demo-data", "--patients", "4", "--seed", "7", "-o", str(target)])
    to_stdout = runner.invoke(app, ["demo-data", "--patients", "4", "--seed", "7"])
    assert to_file.exit_code == 0 and to_stdout.exit_code == 0
    assert target.read_bytes() == _ndjson(4, 7)
    assert to_stdout.stdout_bytes == _ndjson(4, 7)


def _courses(patients: int, seed: int) -> dict[str, dict]:
    """Per MRN: the indications, and the assessments in time order with the session they came with."""
    out: dict[str, dict] = {}
    for kind, record in _all_records(patients, seed):
        course = out.setdefault(
            record.get("patient", {}).get("mrn", ""), {"indications": [], "assessments": [], "visits": set()}
        )
        course["visits"].add(record["key"].split(".")[1] if "patient" in record else None)
        if kind == "infusion_session":
            course["indications"] = record["indications"]
            for child in record.get("assessments", []):
                out[record["patient"]["mrn"]]["assessments"].append(child)
        elif kind == "assessment":
            course["assessments"].append(record)
    out.pop("", None)  # embedded children carry no patient: counted with their session above
    for course in out.values():
        course["visits"].discard(None)  # `s03` for a session, `fu1` for the follow-up
        course["assessments"].sort(key=lambda a: _at(a["completed_at"]))
    return out


def test_every_patient_has_the_cssrs_recent_screener_at_intake_and_since_last_contact_later() -> None:
    for mrn, course in _courses(120, 31).items():
        screens = [a for a in course["assessments"] if a["instrument"].startswith("cssrs")]
        assert screens[0]["instrument"] == "cssrs_screen", mrn
        assert screens[0]["key"].endswith(".s01.cssrs_screen")
        # one screener a visit: a course stopped after two sessions, without a follow-up, has two
        assert len(screens) == len(course["visits"]) >= 2, mrn
        assert {a["instrument"] for a in screens[1:]} == {"cssrs_screen_slc"}, mrn
        if "suicidal_ideation" in course["indications"]:  # a wish to be dead and active thoughts, reported at intake
            assert screens[0]["items"][:2] == [True, True], mrn


def test_each_indication_brings_its_scale_and_the_course_improves_as_published_series_do() -> None:
    """GAD-7, PCL-5 and Y-BOCS for the comorbid indications, MADRS or QIDS-SR16 for some depression patients,
    taken at intake and at course reviews; over a full course most patients' totals fall by a third or more,
    and some do not respond (tables.SCALES_BY_INDICATION cites the series these shapes follow)."""
    drops: dict[str, list[float]] = defaultdict(list)
    depression_scales = 0
    courses = _courses(300, 21)
    for mrn, course in courses.items():
        by_instrument: dict[str, list[dict]] = defaultdict(list)
        for a in course["assessments"]:
            if ".fu1." not in a["key"]:
                by_instrument[a["instrument"]].append(a)
        for indication, instrument in SCALE_OF.items():
            assert (indication in course["indications"]) == (instrument in by_instrument), (mrn, instrument)
        assert not ({"madrs", "qids_sr16"} <= set(by_instrument)), mrn  # one of them at most
        depression_scales += bool({"madrs", "qids_sr16"} & set(by_instrument))
        for instrument, taken in by_instrument.items():
            if instrument.startswith("cssrs"):
                continue
            assert taken[0]["key"].endswith(f".s01.{instrument}") or ".s02." in taken[0]["key"], mrn  # at intake
            totals = [score(DEFINITIONS[instrument], a["items"]).total for a in taken]
            assert all(a.get("total", t) == t for a, t in zip(taken, totals, strict=True))
            if len(taken) == len(SCALES_BY_INSTRUMENT[instrument].schedule) and totals[0] > 0:
                drops[instrument].append(100 * (totals[0] - totals[-1]) / totals[0])
    assert 0.25 <= depression_scales / len(courses) <= 0.55
    everything = [d for values in drops.values() for d in values]
    assert 30 <= statistics.median(everything) <= 55
    assert 0.1 <= sum(d < 20 for d in everything) / len(everything) <= 0.4  # some non-responders
    for instrument in ("gad7", "pcl5", "madrs", "qids_sr16"):
        assert len(drops[instrument]) >= 10 and 20 <= statistics.median(drops[instrument]) <= 60, instrument


def test_a_few_safety_answers_are_positive_and_they_fade_over_the_course() -> None:
    raised: dict[str, list[bool]] = defaultdict(list)
    safety = {"madrs": 9, "qids_sr16": 11}  # item 10 (>= 2 raises), item 12 (>= 1 raises)
    positive_safety_items: Counter[str] = Counter()
    for course in _courses(300, 21).values():
        for a in course["assessments"]:
            result = assess(DEFINITIONS[a["instrument"]], a["items"])
            raised[a["instrument"]].append(result.raises_flag)
            if a["instrument"] in safety and result.positives:
                positive_safety_items[a["instrument"]] += 1
    share = {instrument: sum(flags) / len(flags) for instrument, flags in raised.items()}
    assert 0.05 <= share["cssrs_screen"] <= 0.3  # at intake
    assert 0 < share["cssrs_screen_slc"] <= 0.03 < share["cssrs_screen"]  # later, as the ideation fades
    assert positive_safety_items["madrs"] >= 3 and share["madrs"] <= 0.15  # item 10 >= 2 occasionally
    assert positive_safety_items["qids_sr16"] >= 3 and share["qids_sr16"] <= 0.3
    assert share["gad7"] == share["pcl5"] == share["ybocs"] == 0  # no safety item
