"""Draws a `ChartInput` with matplotlib's Agg renderer: three panels on one time axis, saved without varying metadata.

No pyplot: a `Figure` on its own Agg canvas. `drawn` draws under matplotlib's own defaults plus `STYLE` (whatever a
matplotlibrc on the machine says), one chart at a time (rcParams are process-wide and matplotlib is not
thread-safe), so the same input gives the same bytes. Artists carry a `gid` (`readings:<measure>`, `marked:<measure>:<tier>`, `limit:<measure>:<phase>:<level>`, `infusion`,
`discharge`) so that tests can read what was drawn before the figure is saved.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from matplotlib import rc_context, style
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator
from matplotlib.typing import LineStyleType, RcKeyType

from service.mappers import narrative
from service.monitoring.chart import ChartInput, Limit, Marked, marked
from service.monitoring.condition import limit_text

WIDTH_IN, HEIGHT_IN, DPI = 9.0, 10.0, 100
"""900 x 1000 pixels as PNG."""
STYLE: dict[RcKeyType, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # shipped inside matplotlib: the same glyphs on every machine
    # pdf.fonttype stays matplotlib's 3 (Type 3 glyphs): embedding TrueType subsets (42) doubles the PDF's cost
    "svg.hashsalt": "infusion-fhir",  # fixed ids, should an SVG ever be drawn
}
INK, GRID, SHADE = "#222222", "#DDDDDD", "#8A8A8A"
TIER_COLOURS = {1: "#E69F00", 2: "#D55E00"}  # Okabe-Ito orange and vermillion: readable with colour blindness
TIER_STYLES: dict[int, LineStyleType] = {1: "dashed", 2: "solid"}
RING_SIZES = {1: 150.0, 2: 260.0}
CLUSTER_MINUTES = 12
SERIES = {  # measure: (legend label, colour, marker), Okabe-Ito blues and greens
    "systolic": ("systolic", "#0072B2", "v"),
    "diastolic": ("diastolic", "#56B4E9", "^"),
    "heart_rate": ("heart rate", "#009E73", "o"),
    "spo2": ("SpO2", "#3B3B98", "o"),
}
SHORT = {"systolic": "SBP", "diastolic": "DBP", "heart_rate": "HR", "spo2": "SpO2"}
PANELS = (  # y label, measures, the y range always shown (readings and limits widen it). Systolic and diastolic
    # apart: in one panel the systolic low limits (90, 80) cross the diastolic readings they do not judge.
    ("systolic BP (mmHg)", ("systolic",), (75.0, 185.0)),
    ("diastolic BP (mmHg)", ("diastolic",), (50.0, 115.0)),
    ("heart rate (/min)", ("heart_rate",), (35.0, 115.0)),
    ("SpO2 (%)", ("spo2",), (88.0, 100.0)),
)
WINDOW_MINUTES = 24 * 60
"""How far before the start and after the end the chart reaches (`_window`)."""
STEPS = (15, 30, 60, 120, 180, 360, 720, 1440)
"""Minutes between x ticks, by the span shown (`_step`)."""
PNG_METADATA: dict[str, str | None] = {"Software": None}
PDF_METADATA: dict[str, str | None] = {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}


def _offset(when: dt.datetime) -> str:
    return narrative.at(when).rsplit(" ", 1)[-1] if when.utcoffset() else "UTC"


def _clock(chart: ChartInput, minutes: float) -> str:
    """The time `minutes` after the infusion start, in the start's UTC offset."""
    when = (chart.started_at + dt.timedelta(minutes=minutes)).astimezone(chart.started_at.tzinfo)
    return f"{when.hour:02d}:{when.minute:02d}"


def _window(chart: ChartInput) -> tuple[float, float]:
    """The minutes the chart can show: from `WINDOW_MINUTES` before the start to as long after the end (or the
    start, while in progress). A reading further away belongs to no view of this infusion: it is left out of
    the x range (which it would stretch to years, the infusion a pixel) and counted in the title."""
    end = 0.0 if chart.ended_at is None else chart.minutes(chart.ended_at)
    return -WINDOW_MINUTES, end + WINDOW_MINUTES


def outside(chart: ChartInput) -> int:
    """How many charted readings lie outside the chart's window (`_window`)."""
    low, high = _window(chart)
    return sum(1 for _, points in chart.series() for p in points if not low <= chart.minutes(p.at) <= high)


def _x_range(chart: ChartInput) -> tuple[float, float]:
    low, high = _window(chart)
    xs = [chart.minutes(point.at) for _, points in chart.series() for point in points]
    xs += [0.0] + [chart.minutes(t) for t in (chart.ended_at, chart.discharge_met_at) if t is not None]
    xs = [x for x in xs if low <= x <= high]
    left, right = min(xs), max(xs)
    if right - left < 60:
        right = left + 60
    return left - 5, right + 5


def _step(span: float) -> int:
    """Minutes between x ticks: the smallest of `STEPS` that keeps the ticks to about sixteen."""
    return next((step for step in STEPS if span / step <= 16), STEPS[-1])


def _phase_spans(chart: ChartInput, left: float, right: float) -> dict[str, tuple[float, float]]:
    """Where on the x axis each phase's limits apply."""
    if not chart.infused:
        return {"before": (left, right)}
    end = right if chart.ended_at is None else chart.minutes(chart.ended_at)
    spans = {"before": (left, 0.0), "during": (0.0, end)}
    if chart.ended_at is not None:
        spans["after"] = (end, right)
    return spans


def _y_range(chart: ChartInput, measures: tuple[str, ...], shown: tuple[float, float]) -> tuple[float, float]:
    values = [point.value for measure, points in chart.series() if measure in measures for point in points]
    values += [limit.value for limit in chart.limits if limit.measure in measures]
    low, high = min([shown[0], *values]), max([shown[1], *values])
    pad = (high - low) * 0.06
    return low - pad, high + pad


def _limits(ax: Axes, chart: ChartInput, measures: tuple[str, ...], spans: dict[str, tuple[float, float]]) -> None:
    """Each limit over the span of its phase, and one label per line at the right edge."""
    labels: dict[tuple[float, int], list[str]] = {}
    for limit in chart.limits:
        if limit.measure not in measures or limit.phase not in spans:
            continue
        start, end = spans[limit.phase]
        ax.hlines(
            limit.value,
            start,
            end,
            colors=TIER_COLOURS[limit.tier],
            linestyles=TIER_STYLES[limit.tier],
            linewidth=1.1,
            zorder=1,
            gid=f"limit:{limit.measure}:{limit.phase}:{limit.level}",
        )
        text = _limit_label(limit)
        shared = labels.setdefault((limit.value, limit.tier), [])
        if text not in shared:
            shared.append(text)
    right = ax.get_xlim()[1]
    for (value, tier), texts in sorted(labels.items()):
        ax.text(
            right, value, "  " + " · ".join(texts), fontsize=7, color=TIER_COLOURS[tier], va="center", clip_on=False
        )


def _limit_label(limit: Limit) -> str:
    return f"{SHORT[limit.measure]} {limit.comparison.op} {limit_text(limit.comparison.limit)} ({limit.level})"


def _readings(ax: Axes, chart: ChartInput, measures: tuple[str, ...], flagged: list[Marked]) -> None:
    """Each measure's readings as a line with a marker per reading; out-of-limit ones ringed, critical ones
    ringed larger and labelled with their value."""
    for measure in measures:
        points = sorted(getattr(chart, measure), key=lambda p: p.at)
        label, colour, symbol = SERIES[measure]
        xs = [chart.minutes(p.at) for p in points]
        ax.plot(
            xs,
            [p.value for p in points],
            color=colour,
            marker=symbol,
            markersize=5,
            linewidth=1.4,
            zorder=3,
            label=label,
            gid=f"readings:{measure}",
        )
        for tier in (1, 2):
            ringed = [m for m in flagged if m.measure == measure and m.tier == tier]
            if not ringed:
                continue
            ax.scatter(
                [chart.minutes(m.point.at) for m in ringed],
                [m.point.value for m in ringed],
                s=RING_SIZES[tier],
                facecolors="none",
                edgecolors=TIER_COLOURS[tier],
                linewidths=1.6 + 0.8 * (tier - 1),
                zorder=4,
                gid=f"marked:{measure}:{tier}",
            )
            if tier == 2:
                for m in _extremes(chart, ringed):
                    below = m.level == "LL"
                    ax.annotate(
                        f"{m.point.value:g}",
                        (chart.minutes(m.point.at), m.point.value),
                        xytext=(0, -15 if below else 9),
                        textcoords="offset points",
                        ha="center",
                        fontsize=7.5,
                        fontweight="bold",
                        color=TIER_COLOURS[2],
                    )
    if not any(getattr(chart, measure) for measure in measures):
        ax.text(0.5, 0.5, "no readings", transform=ax.transAxes, ha="center", va="center", color=SHADE)


def _extremes(chart: ChartInput, critical: list[Marked]) -> list[Marked]:
    """The most extreme reading of each run of critical readings less than `CLUSTER_MINUTES` apart (a recheck
    every 5 minutes would stack their values on top of each other): the one whose value is shown."""
    runs: list[list[Marked]] = []
    for m in sorted(critical, key=lambda m: m.point.at):
        if runs and chart.minutes(m.point.at) - chart.minutes(runs[-1][-1].point.at) < CLUSTER_MINUTES:
            runs[-1].append(m)
        else:
            runs.append([m])
    return [max(run, key=lambda m: -m.point.value if m.level == "LL" else m.point.value) for run in runs]


def _marks(ax: Axes, chart: ChartInput, right: float) -> None:
    """The infusion shaded and the discharge-criteria line."""
    if chart.infused:
        end = right if chart.ended_at is None else chart.minutes(chart.ended_at)
        ax.axvspan(0, end, facecolor=SHADE, alpha=0.16, linewidth=0, zorder=0, gid="infusion")
    if chart.discharge_met_at is not None:
        ax.axvline(chart.minutes(chart.discharge_met_at), color=INK, linestyle="dotted", linewidth=1.3, gid="discharge")


def _style(ax: Axes, label: str) -> None:
    ax.set_ylabel(label, fontsize=9, color=INK)
    ax.grid(True, color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=8, colors=INK)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], integer=True))
    ax.spines[["top", "right"]].set_visible(False)


def _title(fig: Figure, chart: ChartInput) -> None:
    start = chart.started_at
    end = None if chart.ended_at is None else chart.ended_at.astimezone(start.tzinfo)
    if not chart.infused:
        when = f"infusion not given (planned {narrative.at(start)})"
    elif end is None:
        when = f"infusion from {narrative.at(start)}, in progress"
    else:
        when = f"infusion {narrative.span(start, end)}"
    fig.text(0.07, 0.978, f"Infusion monitoring, session {chart.session_key}", fontsize=13, color=INK)
    fig.text(0.07, 0.958, when, fontsize=9, color=INK)
    fig.text(
        0.07,
        0.942,
        f"Limits: {chart.protocol_title}, each drawn over the phase it applies to",
        fontsize=9,
        color=INK,
    )
    if far := outside(chart):
        hours = WINDOW_MINUTES // 60
        said = (
            f"{far} reading{'s' if far != 1 else ''} more than {hours} h from the infusion not drawn (see the summary)"
        )
        fig.text(0.55, 0.958, said, fontsize=9, color=TIER_COLOURS[2])


def _legend(fig: Figure, chart: ChartInput) -> None:
    handles: list[Artist] = [
        Line2D([], [], color=colour, marker=symbol, markersize=5, linewidth=1.4, label=label)
        for label, colour, symbol in SERIES.values()
    ]
    handles += [
        Line2D([], [], color=TIER_COLOURS[1], linestyle=TIER_STYLES[1], label="limit (H / L)"),
        Line2D([], [], color=TIER_COLOURS[2], linestyle=TIER_STYLES[2], label="critical limit (HH / LL)"),
        Line2D([], [], linestyle="none", marker="o", markersize=10, markerfacecolor="none",
               markeredgecolor=TIER_COLOURS[1], markeredgewidth=1.6, label="out of limit"),
        Line2D([], [], linestyle="none", marker="o", markersize=12, markerfacecolor="none",
               markeredgecolor=TIER_COLOURS[2], markeredgewidth=2.4, label="critical (most extreme value shown)"),
    ]  # fmt: skip
    if chart.infused:
        handles.append(Patch(facecolor=SHADE, alpha=0.16, label="infusion"))
    if chart.discharge_met_at is not None:
        met = _clock(chart, chart.minutes(chart.discharge_met_at))
        handles.append(
            Line2D([], [], color=INK, linestyle="dotted", label=f"protocol discharge criteria all met from {met}")
        )
    fig.text(0.99, 0.004, "Documents the recorded readings; not an alarm.", fontsize=7, color=SHADE, ha="right")
    fig.legend(
        handles=handles,
        loc="lower center",
        ncols=4,
        frameon=False,
        prop={"size": 8},
        bbox_to_anchor=(0.5, 0.005),
    )


_LOCK = threading.RLock()  # re-entrant: a chart rendered while another is being inspected in the same thread


@contextmanager
def drawn(chart: ChartInput) -> Iterator[Figure]:
    """The chart as a matplotlib Figure, to save or inspect within the block (see the module)."""
    with _LOCK, style.context("default"), rc_context(STYLE):
        yield _figure(chart)


def _figure(chart: ChartInput) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(PANELS), 1, sharex=True)
    fig.subplots_adjust(left=0.08, right=0.83, top=0.885, bottom=0.12, hspace=0.1)
    left, right = _x_range(chart)
    spans = _phase_spans(chart, left, right)
    flagged = list(marked(chart))
    for ax, (label, measures, shown) in zip(axes, PANELS, strict=True):
        ax.set_xlim(left, right)
        ax.set_ylim(*_y_range(chart, measures, shown))
        _marks(ax, chart, right)
        _limits(ax, chart, measures, spans)
        _readings(ax, chart, measures, flagged)
        _style(ax, label)
    step = _step(right - left)
    axes[-1].xaxis.set_major_locator(MultipleLocator(step))
    axes[-1].set_xlabel(
        f"minutes from the infusion start ({_clock(chart, 0)} {_offset(chart.started_at)})",
        fontsize=9,
        color=INK,
    )
    top = axes[0].secondary_xaxis("top")  # clock times, on the quarter hours of the start's offset
    past = chart.started_at.minute + chart.started_at.second / 60
    top.xaxis.set_major_locator(MultipleLocator(step, offset=-past % step))
    top.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _clock(chart, x)))
    top.tick_params(labelsize=8, colors=INK)
    _title(fig, chart)
    _legend(fig, chart)
    return fig


def save(fig: Figure, out: IO[bytes], fmt: str) -> None:
    """Write `fig` as `png` or `pdf` with no creation date or software name, so the bytes depend on the data only."""
    fig.savefig(out, format=fmt, dpi=DPI, facecolor="white", metadata=PNG_METADATA if fmt == "png" else PDF_METADATA)
