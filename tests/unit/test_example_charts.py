"""The example charts in docs/charts/: three demo sessions of the kinds they are named for, drawn as committed.

The sessions go through the real mappers, so their marks are the interpretations an EHR receives; the kinds are
checked here against the sheet's limits (../shared/monitoring-protocol.md section 2) on the raw readings.
"""

from __future__ import annotations

from functools import cache

import pytest

from service.demo.charts import KINDS, OUT, examples
from service.monitoring.chart import PNG, ChartInput, marked, render


@cache
def _examples() -> dict[str, ChartInput]:
    return examples()


def test_the_examples_are_a_normal_a_hypertensive_and_a_desaturating_session() -> None:
    charts = _examples()
    assert tuple(charts) == KINDS
    normal, hypertensive, desaturating = (charts[kind] for kind in KINDS)
    assert normal.systolic and normal.ended_at is not None
    assert all(90 <= p.value <= 140 for p in normal.systolic) and all(p.value <= 90 for p in normal.diastolic)
    assert all(50 <= p.value <= 110 for p in normal.heart_rate) and all(p.value >= 94 for p in normal.spo2)
    assert marked(normal) == ()
    critical_bp = {p.at for p in hypertensive.systolic if p.value >= 180}
    critical_bp |= {p.at for p in hypertensive.diastolic if p.value >= 110}
    assert len(critical_bp) >= 2
    assert any(p.value < 90 for p in desaturating.spo2)
    assert {m.level for m in marked(desaturating) if m.measure == "spo2"} >= {"LL"}


@pytest.mark.parametrize("kind", KINDS)
def test_the_committed_chart_is_what_the_code_draws(kind: str) -> None:
    path = OUT / f"{kind}.png"
    assert path.exists(), f"{path} missing: run `make charts`"
    assert path.read_bytes() == render(_examples()[kind], PNG), f"{path} is stale: run `make charts` and commit it"
