"""Lines for the session's terminal summary (shown with or without `-s`), e.g. a run's random seed.

Kept out of conftest.py: pytest imports that as a top-level `conftest` module, and a test importing
`tests.integration.conftest` would get a second copy with another stash key.
"""

from __future__ import annotations

import pytest

REPORT_LINES = pytest.StashKey[list[str]]()


def report_line(config: pytest.Config, line: str) -> None:
    """Add `line` to the "integration runs" section of the terminal summary."""
    config.stash.setdefault(REPORT_LINES, []).append(line)


def write_report(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(REPORT_LINES, [])
    if lines:
        terminalreporter.section("integration runs")
        for line in lines:
            terminalreporter.write_line(line)
