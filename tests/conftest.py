"""Shared pytest set-up: a per-stage timing summary at the end of every run, and the
session-scoped fixtures that execute the book once and build it once per ``pytest`` run."""

from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path

import pytest

_stage_seconds: dict[str, float] = collections.defaultdict(float)
_session_start = time.time()

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "_build"
ARTIFACTS = REPO / "artifacts"


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

import fuzzing  # noqa: E402,F401  (loads the hypothesis profile: derandomised unless make fuzz)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared, loaded 2-core box they lose 10×
    to 50× (an elementwise op on 40k numbers: 35 ms with two threads, 0.6 ms with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: The user's choice of attack-result folder, before the tests pointed it at a temporary one.
_USERS_RESULTS = os.environ.get("LSNOTES_RESULTS")


@pytest.fixture(autouse=True)
def results_in_a_temporary_folder(tmp_path, monkeypatch):
    """Each test starts with an empty attack-result cache of its own: nothing a test computed
    (or faked) is served to another, and nothing lands in the user's cache. The book's chapters
    (``executed_book``) use the real one, as ``make book`` does."""
    monkeypatch.setenv("LSNOTES_RESULTS", str(tmp_path / "attack-results"))


def _restore_results_folder():
    if _USERS_RESULTS is None:
        os.environ.pop("LSNOTES_RESULTS", None)
    else:
        os.environ["LSNOTES_RESULTS"] = _USERS_RESULTS


@pytest.fixture(scope="session")
def linear():
    """The trained linear model on the blob problem that attack and evaluation tests share."""
    from tiny_models import trained_linear

    return trained_linear()


def toc_chapters() -> list[str]:
    """Short names of the chapters in ``_toc.yml``, in reading order (for parametrisation)."""
    from lsnotes import runbook

    return [c.name for c in runbook.book_chapters(REPO)]


#: The jupytext front matter every chapter (and every test chapter) starts with.
CHAPTER_HEADER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


@pytest.fixture(scope="session")
def executed_book():
    """Every chapter executed once (quick profile) into ``_build/executed``, or reused from the
    execution cache when unchanged (see ``lsnotes.runbook.execution_key``): name -> result.

    With ``LSNOTES_REUSE_EXECUTED=1`` the notebooks of an earlier ``lsnotes run-book`` (its
    ``summary.json``) are reused, to iterate on the build and browser checks quickly."""
    from lsnotes import runbook

    summary = BUILD / "executed" / "summary.json"
    if os.environ.get("LSNOTES_REUSE_EXECUTED") == "1" and summary.is_file():
        chapters = json.loads(summary.read_text())["chapters"]
        return {c["chapter"]: runbook.ChapterResult(**c) for c in chapters}
    # Chapters unchanged since their last execution (here or by `make book`) are reused.
    tests_results = os.environ.get("LSNOTES_RESULTS")
    _restore_results_folder()
    try:
        results = runbook.run_book(None, profile="quick", out=BUILD / "executed", root=REPO,
                                   progress=False)
    finally:
        if tests_results is not None:
            os.environ["LSNOTES_RESULTS"] = tests_results
    return {r.chapter: r for r in results}


@pytest.fixture(scope="session")
def built_book(executed_book):
    """The HTML built once from the executed notebooks (no re-execution): a BookBuild."""
    from lsnotes import runbook

    stage = runbook.stage_book(REPO, BUILD / "executed", BUILD / "stage")
    code, html, log = runbook.build_html(stage, BUILD, capture=True)
    return BookBuild(code, html, log, executed_book)


class BookBuild:
    def __init__(self, returncode: int, html: Path, log: str, chapters: dict):
        self.returncode = returncode
        self.html = html
        self.log = log
        self.chapters = chapters

    def page(self, chapter_name: str) -> Path:
        from lsnotes import runbook

        entries = {c.name: c.entry for c in runbook.book_chapters(REPO)}
        return self.html / f"{entries[chapter_name]}.html"
