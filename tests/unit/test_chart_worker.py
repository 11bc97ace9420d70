"""The chart worker process ends with the process it draws for: a killed service leaves no worker behind."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A process that draws one chart through the worker, prints the worker's pid, and is then killed outright
# (SIGKILL: no atexit, no shutdown; what happens to a service the kernel or an operator kills).
SCRIPT = """
import asyncio, os, signal
from service.demo.charts import examples
from service.monitoring import summary_chart
from service.monitoring.chart import PNG

async def main():
    await summary_chart.draw(examples()["normal"], PNG)
    print(next(iter(summary_chart._pool._processes)), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_the_chart_worker_ends_when_the_process_it_draws_for_is_killed() -> None:
    parent = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert parent.returncode == -signal.SIGKILL, parent.stderr[-2000:]
    worker = int(parent.stdout.strip())
    try:
        handle = os.pidfd_open(worker)  # readable once the process has ended (no polling, no sleep)
    except ProcessLookupError:
        return  # already gone
    try:
        ended, _, _ = select.select([handle], [], [], 30)
    finally:
        os.close(handle)
    if not ended:
        os.kill(worker, signal.SIGKILL)  # do not leave it behind either way
    assert ended, f"chart worker {worker} outlived the process it draws for"
