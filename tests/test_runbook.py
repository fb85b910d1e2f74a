"""lsnotes.runbook: table of contents, parameter checks, batch execution on a tiny throwaway book."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import CHAPTER_HEADER as HEADER
from lsnotes import cli, runbook

REPO = Path(__file__).resolve().parents[1]


TINY_CHAPTER = HEADER + textwrap.dedent("""\
    # Tiny chapter

    ```{code-cell} ipython3
    :tags: [parameters]
    profile = "quick"
    seed = 0
    device = "auto"
    alpha = 0.1
    ```

    ```{code-cell} ipython3
    import lsnotes.checks
    params = lsnotes.checks.chapter_params(profile, seed, device)
    alpha = lsnotes.checks.number_in("alpha", alpha, 0, 1)
    ```

    ```{code-cell} ipython3
    open("written_by_tiny.txt", "w").write(f"{params.profile} {alpha}")
    ```

    Back to [the preface](preface.md).
    """)

PREFACE = HEADER + "# Preface\n\nProse only, no code.\n"

TOC = textwrap.dedent("""\
    format: jb-book
    root: book/preface
    parts:
      - caption: Part
        chapters:
          - file: book/tiny
            sections:
              - file: book/not_written_yet
    """)


@pytest.fixture
def tiny_book(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_toc.yml").write_text(TOC)
    (tmp_path / "_config.yml").write_text((REPO / "_config.yml").read_text())
    (tmp_path / "book" / "preface.md").write_text(PREFACE)
    (tmp_path / "book" / "tiny.md").write_text(TINY_CHAPTER)
    (tmp_path / "book" / "references.bib").write_text("")
    return tmp_path


def test_toc_entries_in_reading_order(tiny_book):
    assert runbook.toc_entries(tiny_book / "_toc.yml") == [
        "book/preface", "book/tiny", "book/not_written_yet"]


def test_toc_of_this_repository_names_the_toy_problem():
    assert "toy_problem" in [c.name for c in runbook.book_chapters(REPO)]


def test_select_chapters_keeps_toc_order_and_rejects_unknown_names(tiny_book):
    chapters = runbook.book_chapters(tiny_book)
    picked = runbook.select_chapters(chapters, ["tiny", "book/preface"])
    assert [c.name for c in picked] == ["preface", "tiny"]
    with pytest.raises(ValueError, match=r"unknown chapter\(s\) \['nope'\].*preface, tiny"):
        runbook.select_chapters(chapters, ["nope"])


@pytest.mark.parametrize("text, expected", [
    ("alpha=0.3", ("alpha", 0.3)), ("n=3", ("n", 3)), ("name=sls", ("name", "sls")),
    ("grid=[0.1, 0.2]", ("grid", [0.1, 0.2])), ("flag=True", ("flag", True))])
def test_parse_param(text, expected):
    assert runbook.parse_param(text) == expected


@pytest.mark.parametrize("bad", ["alpha", "=3", "2x=1"])
def test_parse_param_rejects_malformed(bad):
    with pytest.raises(ValueError, match="name=value"):
        runbook.parse_param(bad)


def test_chapter_parameters():
    standard = {"profile": "quick", "seed": 0, "device": "auto"}
    defines = ["profile", "seed", "device", "alpha"]
    assert runbook.chapter_parameters(defines, standard, {"alpha": 0.2}, "c") == {
        **standard, "alpha": 0.2}
    # A prose-only chapter gets nothing injected.
    assert runbook.chapter_parameters([], standard, {}, "preface") == {}
    with pytest.raises(ValueError, match=r"chapter 'c' has no parameter\(s\) \['beta'\]"):
        runbook.chapter_parameters(defines, standard, {"beta": 1}, "c")


def test_links_between_chapters_point_at_staged_notebooks():
    staged = {"book/preface", "book/tiny"}
    text = "See [p](preface.md), [a](preface.md#sec), [x](other.md) and [w](https://a.b/c.md)."
    assert runbook._link_to_staged(text, "book/tiny", staged) == (
        "See [p](preface.ipynb), [a](preface.ipynb#sec), [x](other.md) and "
        "[w](https://a.b/c.md).")


def test_unknown_parameter_fails_before_anything_executes(tiny_book):
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['beta'\].*alpha"):
        runbook.run_book(["tiny"], params={"beta": 1}, root=tiny_book, out="out",
                         progress=False)
    assert not (tiny_book / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["run-book", "--chapters", "nope"], "unknown chapter(s) ['nope']"),
    (["run-book", "--chapters", "tiny", "--param", "beta=1"], "no parameter(s) ['beta']"),
    (["run-book", "--param", "seed=1"], "--seed"),
])
def test_cli_rejects_bad_input_with_one_line(tiny_book, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tiny_book)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tiny_book / "_build").exists()


@pytest.mark.chapters
@pytest.mark.slow
def test_run_book_executes_reports_and_continues_past_failures(tiny_book, monkeypatch, capsys):
    monkeypatch.chdir(tiny_book)
    code = cli.main(["run-book", "--no-progress", "--seed", "3", "--chapters",
                     "tiny,preface,not_written_yet", "--out", "executed"])
    assert code == 1  # not_written_yet is missing, the others ran
    summary = json.loads((tiny_book / "executed" / "summary.json").read_text())
    by_name = {c["chapter"]: c for c in summary["chapters"]}
    assert [c["chapter"] for c in summary["chapters"]] == ["preface", "tiny", "not_written_yet"]
    assert by_name["not_written_yet"]["status"] == "missing"
    assert "book/not_written_yet.md does not exist" in by_name["not_written_yet"]["error"]
    tiny = by_name["tiny"]
    assert tiny["status"] == "ok" and tiny["error"] == ""
    assert tiny["parameters"] == {"profile": "quick", "seed": 3, "device": "auto"}
    assert tiny["wall_s"] > 0 and tiny["peak_memory_mb"] > 10
    assert tiny["device"] in ("cpu", "cuda")
    assert by_name["preface"]["parameters"] == {}
    # The kernel ran in book/, so relative paths in chapters work.
    assert (tiny_book / "book" / "written_by_tiny.txt").read_text() == "quick 0.1"
    assert (tiny_book / "executed" / "tiny.ipynb").is_file()
    assert "failed: not_written_yet" in capsys.readouterr().out
    # --param reaches the chapter.
    assert runbook.run_book(["tiny"], params={"alpha": 0.5}, root=tiny_book, out="executed",
                            progress=False)[0].status == "ok"
    assert (tiny_book / "book" / "written_by_tiny.txt").read_text() == "quick 0.5"


def _execute_with(chapter: runbook.Chapter, tmp_path: Path, **parameters) -> runbook.ChapterResult:
    notebook = runbook.load_chapter_notebook(chapter)
    defaults = {"profile": "quick", "seed": 0, "device": "auto"}
    return runbook.execute_chapter(chapter, notebook, defaults | parameters, tmp_path,
                                   cwd=chapter.source.parent, device="cpu")


@pytest.mark.chapters
@pytest.mark.slow
@pytest.mark.parametrize("parameters, message", [
    ({"profile": "fast"}, "ValueError: profile must be one of 'quick', 'full'; got 'fast'"),
    ({"alpha": 3}, "ValueError: alpha must be a finite number in [0, 1]; got 3"),
])
def test_bad_parameter_fails_at_the_check_cell_of_a_tiny_chapter(tiny_book, tmp_path,
                                                                 parameters, message):
    chapter = runbook.select_chapters(runbook.book_chapters(tiny_book), ["tiny"])[0]
    result = _execute_with(chapter, tmp_path, **parameters)
    assert result.status == "failed"
    assert result.error == message
    assert "params = lsnotes.checks.chapter_params(profile, seed, device)" in result.failed_cell


@pytest.mark.chapters
@pytest.mark.slow
def test_bad_profile_fails_at_the_check_cell_of_a_real_chapter(tmp_path):
    written = [c for c in runbook.book_chapters(REPO) if c.source.is_file()
               and "profile" in runbook.defined_parameters(runbook.load_chapter_notebook(c))]
    if not written:
        pytest.skip("no chapter with a parameters cell is written yet")
    result = _execute_with(written[-1], tmp_path, profile="fast")
    assert result.status == "failed"
    assert "ValueError: profile must be one of 'quick', 'full'; got 'fast'" in result.error
    assert result.wall_s < 120, "a bad parameter must fail at once, not after the work"


@pytest.mark.chapters
@pytest.mark.slow
def test_build_book_builds_html_from_executed_notebooks(tiny_book, monkeypatch, capsys):
    (tiny_book / "_toc.yml").write_text("format: jb-book\nroot: book/preface\n"
                                        "chapters:\n  - file: book/tiny\n")
    monkeypatch.chdir(tiny_book)
    assert cli.main(["build-book", "--no-progress"]) == 0
    assert f"HTML: {tiny_book / '_build' / 'html' / 'index.html'}" in capsys.readouterr().out
    stage = tiny_book / "_build" / "stage"
    assert yaml.safe_load((stage / "_config.yml").read_text())["execute"][
        "execute_notebooks"] == "off"
    staged = sorted(p.name for p in (stage / "book").iterdir())
    assert staged == ["preface.ipynb", "references.bib", "tiny.ipynb", "written_by_tiny.txt"]
    tiny_html = (tiny_book / "_build" / "html" / "book" / "tiny.html").read_text()
    assert 'href="preface.html"' in tiny_html  # the .md link survived staging
    assert "written_by_tiny.txt" in tiny_html


@pytest.mark.chapters
@pytest.mark.slow
def test_both_builds_fail_on_a_cell_error(tiny_book, monkeypatch):
    (tiny_book / "_toc.yml").write_text("format: jb-book\nroot: book/preface\n"
                                        "chapters:\n  - file: book/tiny\n")
    (tiny_book / "book" / "tiny.md").write_text(TINY_CHAPTER + textwrap.dedent("""
        ```{code-cell} ipython3
        raise RuntimeError("a chapter cell failed")
        ```
        """))
    monkeypatch.chdir(tiny_book)
    assert cli.main(["build-book", "--no-progress"]) == 1
    summary = json.loads((tiny_book / "_build" / "executed" / "summary.json").read_text())
    assert "a chapter cell failed" in {c["chapter"]: c for c in summary["chapters"]}["tiny"]["error"]
    # A reader's plain `jupyter-book build .` executes the chapters itself and must fail too.
    jupyter_book = str(Path(sys.executable).parent / "jupyter-book")
    plain = subprocess.run([jupyter_book, "build", ".", "--path-output", "plain"], cwd=tiny_book, capture_output=True,
                           text=True, timeout=600)
    assert plain.returncode != 0, plain.stdout[-2000:]
    assert "a chapter cell failed" in plain.stdout + plain.stderr


def test_kernel_environment_fills_unset_variables_keeps_user_values_and_restores(monkeypatch):
    first, second = list(runbook.KERNEL_ENV)
    monkeypatch.delenv(first, raising=False)
    monkeypatch.setenv(second, "12345")
    with runbook.kernel_environment():
        assert os.environ[first] == runbook.KERNEL_ENV[first]
        assert os.environ[second] == "12345"
    assert first not in os.environ and os.environ[second] == "12345"
