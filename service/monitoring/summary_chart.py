"""The chart of a session summary: what the server holds for the session, drawn as `chart.py` draws it.

Pure: the summary in (`summary.summarise`), a `ChartInput` out; the readings with the interpretation each carries
on the server, the infusion's period from the Procedure, the protocol's limits and the time the discharge criteria
were met. So the chart the DiagnosticReport presents, and the one `GET .../$monitoring-summary` answers with
`Accept: image/png`, show exactly what the summary says (docs/clinical-safety.md, H-53).
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from service.monitoring.chart import CHARTED, ChartInput, Point, protocol_limits, render
from service.monitoring.summary import Summary

NOT_INFUSED = ("not_done",)
"""Session statuses with no infusion to shade."""


def chart_input(summary: Summary) -> ChartInput | None:
    """What the chart of `summary` draws; None for a session with no start to draw from (planned, unreadable)."""
    held = summary.held
    if held.started_at is None:
        return None
    series: dict[str, list[Point]] = {measure: [] for measure in CHARTED}
    for reading in held.readings:  # in order already (by instant, then reference)
        for measure, value in reading.values.items():
            if measure in series:
                series[measure].append(Point(reading.at, value, reading.levels.get(measure)))
    return ChartInput(
        session_key=held.key,
        started_at=held.started_at,
        ended_at=held.ended_at,
        limits=protocol_limits(summary.protocol),
        protocol_title=summary.protocol.title,
        discharge_met_at=summary.discharge.met_from,
        infused=held.status not in NOT_INFUSED,
        systolic=tuple(series["systolic"]),
        diastolic=tuple(series["diastolic"]),
        heart_rate=tuple(series["heart_rate"]),
        spo2=tuple(series["spo2"]),
    )


_pool: ProcessPoolExecutor | None = None
PARENT_CHECK_S = 1.0
"""How often the chart worker checks that the process it draws for is still alive."""


def _orphan_watch(parent: int) -> None:
    """In the worker: end it once the process that started it is gone, whatever it was drawing (a killed
    service must not leave a worker behind, still drawing for no one)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


async def draw(chart: ChartInput, media_type: str) -> bytes:
    """`render` in a worker process of this process's own, one chart at a time. matplotlib holds the interpreter
    lock while it draws (about a quarter of a second a chart): drawn in the service's own process, even in a
    thread, it would slow every request the event loop serves meanwhile. The worker starts with the first chart
    (`spawn`: a fresh interpreter, nothing inherited from the server's threads), serves every later one and is
    joined when the process exits; one that died is replaced on the next chart."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_orphan_watch,
            initargs=(os.getpid(),),
        )
    try:
        return await asyncio.get_running_loop().run_in_executor(_pool, render, chart, media_type)
    except BrokenProcessPool:
        _pool = None  # the next chart starts a new worker
        raise


def shutdown() -> None:
    """Stop the worker now: charts not yet started are dropped (their reports are drawn by the next refresh)."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


async def draw_summary(summary: Summary, media_type: str) -> bytes | None:
    """The chart of `summary` (`draw`); None when it has nothing to draw from."""
    chart = chart_input(summary)
    return None if chart is None else await draw(chart, media_type)


class Drawn:
    """The charts this process drew, as input digest -> digest of the encoded image, the newest `size` kept: a
    report whose server copy already presents the chart of the same input is not drawn again (a quarter of a
    second of CPU each), even when its readings were rewritten since."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._seen: OrderedDict[bytes, bytes] = OrderedDict()

    @staticmethod
    def _key(chart: ChartInput) -> bytes:
        return hashlib.sha256(repr(chart).encode()).digest()  # frozen dataclasses: the repr is the whole input

    def presents(self, chart: ChartInput, encoded: str) -> bool:
        """Whether `encoded` (base64) is the image this process drew of `chart`."""
        return self._seen.get(self._key(chart)) == hashlib.sha256(encoded.encode()).digest()

    def remember(self, chart: ChartInput, encoded: str) -> None:
        key = self._key(chart)
        self._seen[key] = hashlib.sha256(encoded.encode()).digest()
        self._seen.move_to_end(key)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
