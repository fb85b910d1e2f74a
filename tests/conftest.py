"""Shared pytest set-up: a per-stage timing summary at the end of every run."""

from __future__ import annotations

import collections
import os
import time

_stage_seconds: dict[str, float] = collections.defaultdict(float)
_session_start = time.time()


def _stage_of(nodeid: str) -> str:
    return nodeid.split("::")[0]


def pytest_runtest_logreport(report):
    _stage_seconds[_stage_of(report.nodeid)] += report.duration


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _stage_seconds:
        return
    terminalreporter.section("time per stage (test file)")
    for stage, seconds in sorted(_stage_seconds.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:8.1f} s  {stage}")
    terminalreporter.write_line(f"{time.time() - _session_start:8.1f} s  total wall time")


os.environ.setdefault("MPLBACKEND", "Agg")
