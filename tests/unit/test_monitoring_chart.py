"""The session monitoring chart: a normal, a hypertensive and a desaturating session drawn as PNG and PDF.

Each reading's interpretation is made by the real per-reading rules (`rules.limits(...).judge`, what the mappers
write), from the default protocol. What the chart drew is read from the figure before it is saved (artists by
`gid`, see `chart_draw`), so a reading left out, moved, or not marked fails here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.collections import LineCollection, PathCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Annotation

from service.monitoring import default_protocol, load_protocol
from service.monitoring.chart import (
    CHARTED,
    PDF,
    PNG,
    ChartInput,
    Point,
    marked,
    protocol_limits,
    render,
)
from service.monitoring.chart_draw import DPI, HEIGHT_IN, PANELS, WIDTH_IN, drawn
from service.monitoring.rules import limits

PROTOCOL = default_protocol()
EST = dt.timezone(dt.timedelta(hours=-5))
START = dt.datetime(2026, 3, 2, 9, 30, tzinfo=EST)
END = START + dt.timedelta(minutes=40)
ABNORMAL = {"H", "HH", "L", "LL"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# minutes from the start of each reading: two before (arrival, baseline), every 10 min during (one at 40), every
# 15 min after for an hour
MINUTES = (-25, -5, 10, 20, 30, 40, 55, 70, 85, 100)


def _phase(at: dt.datetime, start: dt.datetime = START, end: dt.datetime | None = END) -> str:
    return "before" if at < start else "during" if end is None or at <= end else "after"


def _point(
    measure: str, minute: float, value: float, start: dt.datetime = START, end: dt.datetime | None = END
) -> Point:
    """A reading with the interpretation the mappers would write for it (the real per-reading rules)."""
    at = start + dt.timedelta(minutes=minute)
    found = limits(PROTOCOL, measure, _phase(at, start, end))
    return Point(at, value, None if found is None else found.judge(value))


def _session(systolic: list[float], diastolic: list[float], heart: list[float], spo2: list[float], **kw) -> ChartInput:
    def series(measure: str, values: list[float]) -> tuple[Point, ...]:
        return tuple(_point(measure, m, v) for m, v in zip(MINUTES, values, strict=True))

    return ChartInput(
        session_key=kw.pop("key", "p000001.s03"),
        started_at=START,
        ended_at=END,
        limits=protocol_limits(PROTOCOL),
        protocol_title=PROTOCOL.title,
        systolic=series("systolic", systolic),
        diastolic=series("diastolic", diastolic),
        heart_rate=series("heart_rate", heart),
        spo2=series("spo2", spo2),
        **kw,
    )


NORMAL = _session(
    [124, 122, 132, 138, 136, 130, 126, 124, 122, 121],
    [78, 76, 82, 86, 84, 80, 78, 77, 76, 76],
    [74, 72, 78, 82, 80, 77, 74, 73, 72, 72],
    [98, 98, 97, 97, 97, 97, 98, 98, 98, 98],
    discharge_met_at=START + dt.timedelta(minutes=100),
)
HYPERTENSIVE = _session(
    [132, 130, 158, 186, 194, 172, 150, 138, 132, 130],
    [84, 82, 96, 112, 116, 104, 94, 88, 84, 82],
    [78, 76, 88, 96, 98, 90, 82, 80, 78, 77],
    [97, 97, 97, 96, 96, 97, 97, 97, 97, 97],
    key="p000002.s04",
)
DESATURATING = _session(
    [118, 116, 124, 128, 126, 122, 118, 116, 116, 115],
    [74, 72, 78, 80, 78, 76, 74, 73, 72, 72],
    [70, 68, 72, 74, 66, 70, 70, 69, 68, 68],
    [97, 97, 95, 92, 87, 93, 96, 97, 97, 97],
    key="p000003.s02",
)
SESSIONS = {"normal": NORMAL, "hypertensive": HYPERTENSIVE, "desaturating": DESATURATING}


def _artists(fig: Figure, gid_prefix: str) -> list:
    return [a for ax in fig.axes for a in ax.get_children() if (a.get_gid() or "").startswith(gid_prefix)]


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


@pytest.mark.parametrize("name", SESSIONS)
def test_each_session_renders_as_a_png_of_the_documented_size_and_a_one_page_pdf(name: str) -> None:
    png, pdf = render(SESSIONS[name], PNG), render(SESSIONS[name], PDF)
    assert _png_size(png) == (int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI))
    assert pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF")
    assert pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") == 1


@pytest.mark.parametrize("media_type", [PNG, PDF])
def test_the_same_data_gives_the_same_bytes_and_other_data_other_bytes(media_type: str) -> None:
    images = {name: render(chart, media_type) for name, chart in SESSIONS.items()}
    assert render(NORMAL, media_type) == images["normal"]
    assert len(set(images.values())) == 3
    one_reading_moved = _session(
        [124, 122, 132, 138, 136, 130, 126, 124, 122, 121],
        [78, 76, 82, 86, 84, 80, 78, 77, 76, 76],
        [74, 72, 78, 82, 80, 77, 74, 73, 72, 72],
        [98, 98, 97, 97, 96, 97, 98, 98, 98, 98],  # one SpO2 of 97 read as 96
        discharge_met_at=START + dt.timedelta(minutes=100),
    )
    assert render(one_reading_moved, media_type) != images["normal"]


def test_the_bytes_do_not_depend_on_the_process_or_its_hash_seed() -> None:
    """No creation date, software name or set order in the file: another process draws the same bytes."""
    here = {media: hashlib.sha256(render(HYPERTENSIVE, media)).hexdigest() for media in (PNG, PDF)}
    script = (
        "import hashlib, sys\n"
        "from tests.unit.test_monitoring_chart import HYPERTENSIVE, PDF, PNG, render\n"
        "print(*(hashlib.sha256(render(HYPERTENSIVE, m)).hexdigest() for m in (PNG, PDF)))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "SOURCE_DATE_EPOCH": "0"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == [here[PNG], here[PDF]]


@pytest.mark.parametrize("name", SESSIONS)
def test_every_plotted_point_is_a_reading_at_its_minute_from_the_start(name: str) -> None:
    chart = SESSIONS[name]
    with drawn(chart) as fig:
        for measure, points in chart.series():
            (line,) = _artists(fig, f"readings:{measure}")
            assert isinstance(line, Line2D)
            expected = [((p.at - START).total_seconds() / 60, p.value) for p in points]
            assert [tuple(xy) for xy in line.get_xydata()] == expected


def _ringed(fig: Figure) -> dict[tuple[str, int], set[tuple[float, float]]]:
    out: dict[tuple[str, int], set[tuple[float, float]]] = {}
    for collection in _artists(fig, "marked:"):
        assert isinstance(collection, PathCollection)
        _, measure, tier = collection.get_gid().split(":")
        out[(measure, int(tier))] = {(float(x), float(y)) for x, y in collection.get_offsets()}
    return out


def _expected_rings(chart: ChartInput) -> dict[tuple[str, int], set[tuple[float, float]]]:
    """Every reading whose interpretation is abnormal, ringed by its tier (HH / LL critical)."""
    out: dict[tuple[str, int], set[tuple[float, float]]] = {}
    for measure, points in chart.series():
        for p in points:
            if p.level in ABNORMAL:
                tier = 2 if p.level in ("HH", "LL") else 1
                out.setdefault((measure, tier), set()).add((chart.minutes(p.at), p.value))
    return out


@pytest.mark.parametrize("name", SESSIONS)
def test_each_out_of_limit_reading_is_marked_and_no_other(name: str) -> None:
    chart = SESSIONS[name]
    with drawn(chart) as fig:
        assert _ringed(fig) == _expected_rings(chart)


def test_the_hypertensive_and_desaturating_sessions_show_their_critical_readings() -> None:
    with drawn(NORMAL) as fig:
        assert _ringed(fig) == {}
    with drawn(HYPERTENSIVE) as fig:
        rings = _ringed(fig)
        assert rings[("systolic", 2)] == {(20.0, 186.0), (30.0, 194.0)}  # >= 180
        assert rings[("diastolic", 2)] == {(20.0, 112.0), (30.0, 116.0)}  # >= 110
        assert (10.0, 158.0) in rings[("systolic", 1)]
    with drawn(DESATURATING) as fig:
        rings = _ringed(fig)
        assert rings[("spo2", 2)] == {(30.0, 87.0)}  # < 90
        assert rings[("spo2", 1)] == {(20.0, 92.0), (40.0, 93.0)}  # < 94


def test_the_most_extreme_value_of_each_run_of_critical_readings_is_written_beside_it() -> None:
    """Rechecks 5-10 minutes apart would stack their values: each run (less than 12 minutes apart) shows its most
    extreme one; every reading of the run is still ringed."""
    with drawn(HYPERTENSIVE) as fig:
        written = {
            (ax.get_ylabel(), a.get_text(), a.xy) for ax in fig.axes for a in ax.texts if isinstance(a, Annotation)
        }
        assert written == {("systolic BP (mmHg)", "194", (30.0, 194.0)), ("diastolic BP (mmHg)", "116", (30.0, 116.0))}
    with drawn(DESATURATING) as fig:
        written = {(a.get_text(), a.xy) for ax in fig.axes for a in ax.texts if isinstance(a, Annotation)}
        assert written == {("87", (30.0, 87.0))}


def test_a_reading_past_a_drawn_limit_is_marked_whatever_its_interpretation_says() -> None:
    """A reading sent without an interpretation (or judged `N` under older limits) beyond a drawn limit is marked
    by the limit; one judged HH under other limits is marked HH though inside the lines: never hidden."""
    odd = ChartInput(
        "p000009.s01",
        START,
        END,
        protocol_limits(PROTOCOL),
        PROTOCOL.title,
        systolic=(
            Point(START + dt.timedelta(minutes=20), 190, None),
            Point(START + dt.timedelta(minutes=30), 150, "N"),
            Point(START + dt.timedelta(minutes=40), 120, "HH"),
        ),
    )
    assert {(m.point.value, m.level, m.tier) for m in marked(odd)} == {(190, "HH", 2), (150, "H", 1), (120, "HH", 2)}
    with drawn(odd) as fig:
        assert _ringed(fig) == {("systolic", 2): {(20.0, 190.0), (40.0, 120.0)}, ("systolic", 1): {(30.0, 150.0)}}


def _segments(fig: Figure, gid: str) -> list[tuple[float, float, float]]:
    """(y, x from, x to) of each drawn limit line with this gid."""
    out = []
    for lines in _artists(fig, gid):
        if lines.get_gid() != gid:  # `...:H` is also the start of `...:HH`
            continue
        assert isinstance(lines, LineCollection)
        for (x0, y0), (x1, _) in lines.get_segments():
            out.append((float(y0), float(x0), float(x1)))
    return out


def test_the_limits_drawn_are_the_protocols_each_over_its_phase(tmp_path: Path) -> None:
    """Default limits at their values; a clinic protocol with a more sensitive during-infusion heart-rate limit
    moves the line over the infusion only."""
    with drawn(NORMAL) as fig:
        left, right = fig.axes[0].get_xlim()
        assert _segments(fig, "limit:systolic:during:HH") == [(180.0, 0.0, 40.0)]
        assert _segments(fig, "limit:systolic:before:HH") == [(180.0, left, 0.0)]
        assert _segments(fig, "limit:systolic:after:H") == [(140.0, 40.0, right)]
        assert _segments(fig, "limit:spo2:after:LL") == [(90.0, 40.0, right)]
        assert _segments(fig, "limit:diastolic:during:L") == []  # the defaults have no low diastolic limit
    text = _default_text()
    stricter = text.replace(
        '[readings.heart_rate.any.H]\nwhen = "heart_rate > 110"',
        '[readings.heart_rate.before.H]\nwhen = "heart_rate > 110"\nsource = "x"\n\n'
        '[readings.heart_rate.after.H]\nwhen = "heart_rate > 110"\nsource = "x"\n\n'
        '[readings.heart_rate.during.H]\nwhen = "heart_rate > 100"',
    )
    assert stricter != text
    (tmp_path / "clinic.toml").write_text(stricter.replace('version = "1"', 'version = "1-clinic"'))
    clinic = load_protocol(tmp_path / "clinic.toml")
    chart = ChartInput(
        "p000001.s03", START, END, protocol_limits(clinic), clinic.title, heart_rate=(_point("heart_rate", 20, 105),)
    )
    with drawn(chart) as fig:
        left, right = fig.axes[0].get_xlim()
        assert _segments(fig, "limit:heart_rate:during:H") == [(100.0, 0.0, 40.0)]
        assert _segments(fig, "limit:heart_rate:after:H") == [(110.0, 40.0, right)]
        assert _ringed(fig) == {("heart_rate", 1): {(20.0, 105.0)}}  # beyond the clinic's line, though judged N


def _default_text() -> str:
    from importlib import resources

    return (resources.files("service.monitoring") / "default-protocol.toml").read_text(encoding="utf-8")


def test_readings_in_any_utc_offset_are_placed_by_their_instant() -> None:
    """The same instants written in UTC, UTC+05:30 and UTC-08:00 draw the same chart, to the byte."""
    expected = render(HYPERTENSIVE, PNG)
    for hours in (0, 5.5, -8):
        zone = dt.timezone(dt.timedelta(hours=hours))
        moved = {
            measure: tuple(Point(p.at.astimezone(zone), p.value, p.level) for p in points)
            for measure, points in HYPERTENSIVE.series()
        }
        chart = ChartInput(
            HYPERTENSIVE.session_key, START, END.astimezone(zone), HYPERTENSIVE.limits, PROTOCOL.title, **moved
        )
        assert render(chart, PNG) == expected


def test_the_infusion_is_shaded_and_the_discharge_time_marked() -> None:
    with drawn(NORMAL) as fig:
        spans = _artists(fig, "infusion")
        assert len(spans) == len(fig.axes) == len(CHARTED)  # one per panel
        for span in spans:
            xs = _span_x(span)
            assert (min(xs), max(xs)) == (0.0, 40.0)
        lines = _artists(fig, "discharge")
        assert lines and all(tuple(line.get_xdata()) == (100.0, 100.0) for line in lines)
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        assert "protocol discharge criteria all met from 11:10" in texts
    with drawn(HYPERTENSIVE) as fig:  # not known: not drawn
        assert _artists(fig, "discharge") == []


def _span_x(span) -> list[float]:
    if isinstance(span, Rectangle):
        return [span.get_x(), span.get_x() + span.get_width()]
    assert isinstance(span, PolyCollection)
    return [float(x) for path in span.get_paths() for x, _ in path.vertices]


def test_an_infusion_in_progress_is_shaded_to_the_right_edge_and_one_not_given_is_not_shaded() -> None:
    running = ChartInput(
        "p000001.s05",
        START,
        None,
        protocol_limits(PROTOCOL),
        PROTOCOL.title,
        systolic=(_point("systolic", 20, 150, end=None),),
    )
    with drawn(running) as fig:
        right = fig.axes[0].get_xlim()[1]
        assert max(_span_x(_artists(fig, "infusion")[0])) == right
        assert _segments(fig, "limit:systolic:after:H") == []
    not_given = ChartInput(
        "p000001.s06",
        START,
        None,
        protocol_limits(PROTOCOL),
        PROTOCOL.title,
        systolic=(Point(START - dt.timedelta(minutes=10), 172, "H"),),
        infused=False,
    )
    with drawn(not_given) as fig:
        assert _artists(fig, "infusion") == []
        assert _segments(fig, "limit:systolic:during:H") == []
        assert _ringed(fig) == {("systolic", 1): {(-10.0, 172.0)}}


def test_a_measure_without_readings_says_so_rather_than_looking_normal() -> None:
    chart = ChartInput("p000001.s07", START, END, protocol_limits(PROTOCOL), PROTOCOL.title, systolic=NORMAL.systolic)
    with drawn(chart) as fig:
        said = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert said.count("no readings") == len(CHARTED) - 1


def test_the_chart_never_says_the_patient_may_leave() -> None:
    """The discharge mark names the protocol's criteria, as the summary does; never "ready to leave"."""
    with drawn(NORMAL) as fig:
        words = [t.get_text().lower() for t in fig.texts + fig.legends[0].get_texts()]
        words += [t.get_text().lower() for ax in fig.axes for t in ax.texts]
    assert any("discharge criteria" in w for w in words)
    assert not any(w in text for text in words for w in ("ready", "may leave", "fit for", "safe to"))


def test_naive_times_and_other_media_types_are_refused() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        ChartInput("k", START.replace(tzinfo=None), None, (), PROTOCOL.title)
    with pytest.raises(ValueError, match="UTC offset"):
        ChartInput("k", START, None, (), PROTOCOL.title, spo2=(Point(dt.datetime(2026, 3, 2, 10, 0), 97, "N"),))
    with pytest.raises(ValueError, match="image/png or application/pdf"):
        render(NORMAL, "image/svg+xml")


def test_a_reading_days_away_is_counted_not_stretched_over_the_axis() -> None:
    """A reading years from the infusion (a wrong date) once made the x axis span millions of ticks and the
    drawing take minutes. It is left out of the x range and counted in the title; the axis keeps its ticks few."""
    far = Point(START - dt.timedelta(days=3 * 365), 250, "HH")
    chart = ChartInput(
        "p000001.s07",
        START,
        END,
        protocol_limits(PROTOCOL),
        PROTOCOL.title,
        systolic=(far, *NORMAL.systolic),
        diastolic=NORMAL.diastolic,
    )
    with drawn(chart) as fig:
        left, right = fig.axes[0].get_xlim()
        assert left >= -24 * 60 - 5 and right <= 40 + 24 * 60 + 5
        assert len(fig.axes[len(PANELS) - 1].get_xticks()) <= 20
        said = [t.get_text() for t in fig.texts]
        assert any(s.startswith("1 reading more than 24 h from the infusion not drawn") for s in said), said
    with drawn(NORMAL) as fig:
        assert not any("not drawn" in t.get_text() for t in fig.texts)
