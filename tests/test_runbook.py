"""lsnotes.runbook: table of contents, parameter checks, batch execution on a tiny throwaway book."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import CHAPTER_HEADER as HEADER
from lsnotes import cli, execution_cache, runbook

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


# ----------------------------------------------------------------------------- reusing executions

COUNTING_CHAPTER = HEADER + textwrap.dedent("""\
    # {title}

    ```{{code-cell}} ipython3
    :tags: [parameters]
    profile = "quick"
    seed = 0
    device = "auto"
    ```

    ```{{code-cell}} ipython3
    with open("runs_{name}.txt", "a") as log:
        log.write("ran\\n")
    value = {value}
    print("value is", value)
    ```

    The value is {{eval}}`value`.
    """)


def _counting_book(root: Path, values: dict[str, int]) -> Path:
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/" + next(iter(values)) + "\n"
                                   "chapters:\n" + "".join(f"  - file: book/{name}\n"
                                                           for name in list(values)[1:]))
    for name, value in values.items():
        write_counting_chapter(root, name, value)
    return root


def write_counting_chapter(root: Path, name: str, value: int, title: str = "A chapter") -> None:
    (root / "book" / f"{name}.md").write_text(
        COUNTING_CHAPTER.format(name=name, value=value, title=title))


def _runs(root: Path, name: str) -> int:
    path = root / "book" / f"runs_{name}.txt"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _shown_value(result: runbook.ChapterResult) -> str:
    notebook = nbformat.read(result.notebook, as_version=4)
    stored = [c.metadata["user_expressions"] for c in notebook.cells
              if c.cell_type == "markdown" and "user_expressions" in c.metadata]
    return runbook._shown_text(stored[0][0]["result"])


@pytest.mark.chapters
@pytest.mark.slow
def test_editing_one_chapter_re_executes_that_chapter_alone(tmp_path):
    book = _counting_book(tmp_path / "book_root", {"first": 1, "second": 2})

    def run(**options):
        results = runbook.run_book(None, root=book, out="executed", progress=False, **options)
        assert all(r.status == "ok" for r in results), [r.error for r in results]
        return {r.chapter: r for r in results}

    first_run = run()
    assert not any(r.reused for r in first_run.values())
    assert (_runs(book, "first"), _runs(book, "second")) == (1, 1)
    assert first_run["first"].cell_seconds and all(
        c["seconds"] >= 0 for c in first_run["first"].cell_seconds)
    assert first_run["first"].cell_seconds[-1]["first_line"].startswith("with open(")

    # Nothing changed: both reused, neither executed, same outputs and {eval} values.
    again = run()
    assert all(r.reused for r in again.values())
    assert (_runs(book, "first"), _runs(book, "second")) == (1, 1)
    assert _shown_value(again["second"]) == "2"
    assert again["first"].executed_wall_s == first_run["first"].executed_wall_s

    # A prose edit reuses the outputs under the new text.
    write_counting_chapter(book, "first", 1, title="A retitled chapter")
    retitled = run()
    assert retitled["first"].reused and _runs(book, "first") == 1
    staged = nbformat.read(retitled["first"].notebook, as_version=4)
    assert "A retitled chapter" in staged.cells[0].source
    assert _shown_value(retitled["first"]) == "1"

    # A code edit re-executes that chapter alone.
    write_counting_chapter(book, "second", 20)
    edited = run()
    assert edited["first"].reused and not edited["second"].reused
    assert (_runs(book, "first"), _runs(book, "second")) == (1, 2)
    assert _shown_value(edited["second"]) == "20"
    summary = json.loads((book / "executed" / "summary.json").read_text())
    assert [c["reused"] for c in summary["chapters"]] == [True, False]

    # Other parameters are another execution; --force executes anyway.
    assert not any(r.reused for r in run(seed=5).values())
    assert (_runs(book, "first"), _runs(book, "second")) == (2, 3)
    forced = run(force=True)
    assert not any(r.reused for r in forced.values())
    assert (_runs(book, "first"), _runs(book, "second")) == (3, 4)


def _notebook(*cells):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3"}
    for kind, source, tags in cells:
        make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        notebook.cells.append(make(source, metadata={"tags": list(tags)}))
    return notebook


BASE_CELLS = [("code", "x = 1", ["parameters"]), ("markdown", "x is {eval}`x`.", []),
              ("code", "x = 2", []), ("markdown", "now {eval}`x`.", [])]
PACKAGE = {"version": "1", "python": "3.11", "files": "abc"}


def _key(cells=BASE_CELLS, parameters=None, device="cpu", package=PACKAGE):
    return execution_cache.execution_key(_notebook(*cells), parameters or {"seed": 0}, device, package)


def test_execution_key_changes_with_what_execution_depends_on_only():
    base = _key()
    same = [
        _key([("code", "x = 1", ["parameters", "hide-input"]), ("markdown", "X is {eval}`x`!", []),
              *BASE_CELLS[2:]]),                        # display tags, prose around an {eval}
        _key(BASE_CELLS + [("markdown", "More prose.", [])]),  # a prose-only cell
    ]
    assert same == [base] * len(same)
    changed = {
        "code": _key([BASE_CELLS[0], BASE_CELLS[1], ("code", "x = 3", []), BASE_CELLS[3]]),
        "execution tag": _key([BASE_CELLS[0], BASE_CELLS[1], ("code", "x = 2", ["raises-exception"]),
                               BASE_CELLS[3]]),
        "expression": _key(BASE_CELLS[:3] + [("markdown", "now {eval}`x + 1`.", [])]),
        # The same expression one code cell earlier reads another state of the kernel.
        "expression position": _key([BASE_CELLS[0], ("markdown", "now {eval}`x`.", []),
                                     BASE_CELLS[2], ("markdown", "x is {eval}`x`.", []),
                                     ("markdown", "{eval}`x`", [])]),
        "parameters": _key(parameters={"seed": 1}),
        "device": _key(device="cuda"),
        "package version": _key(package={**PACKAGE, "version": "2"}),
        "package files": _key(package={**PACKAGE, "files": "abd"}),
    }
    assert base not in changed.values() and len(set(changed.values())) == len(changed), changed


def test_package_fingerprint_covers_every_module_and_requirements(monkeypatch, tmp_path):
    before = runbook.package_fingerprint()
    assert before == runbook.package_fingerprint()
    real_read = Path.read_bytes

    def edited(path):
        data = real_read(path)
        return data + b"# edited\n" if path.name in ("cache.py", "requirements.txt") else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    after = runbook.package_fingerprint()
    assert after["files"] != before["files"] and after["version"] == before["version"]


def _executed_copy(notebook, outputs: dict[str, str], answers: list):
    """What papermill makes of ``notebook``: an injected cell after the parameters cell,
    outputs, timings, and the {eval} values of the markdown cells (in order)."""
    executed = nbformat.from_dict(json.loads(json.dumps(notebook)))
    cells = []
    answers = iter(answers)
    for cell in executed.cells:
        cells.append(cell)
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                   text=outputs[cell.source])]
            cell.metadata["papermill"] = {"duration": 0.5}
            if "parameters" in cell.metadata["tags"]:
                cells.append(nbformat.v4.new_code_cell(
                    "seed = 3", metadata={"tags": ["injected-parameters"]}))
        else:
            found = runbook.INLINE_EXPRESSION.findall(cell.source)
            if found:
                cell.metadata["user_expressions"] = [
                    {"expression": e, "result": {"status": "ok", "data": {"text/plain": next(answers)}}}
                    for e in found]
    executed.cells = cells
    return executed


def test_reuse_outputs_puts_stored_results_under_the_new_text():
    executed = _executed_copy(_notebook(*BASE_CELLS), {"x = 1": "one", "x = 2": "two"}, ["1", "2"])
    edited = _notebook(("code", "x = 1", ["parameters", "hide-input"]),
                       ("markdown", "Reworded: {eval}`x`.", []), ("markdown", "Aside.", []),
                       BASE_CELLS[2], BASE_CELLS[3])
    merged = execution_cache.reuse_outputs(edited, executed)
    assert [c.cell_type for c in merged.cells] == ["code", "code", "markdown", "markdown", "code",
                                                   "markdown"]
    assert merged.cells[0].metadata["tags"] == ["parameters", "hide-input"]  # new tags
    assert merged.cells[1].source == "seed = 3"                              # injected kept
    assert merged.cells[2].source == "Reworded: {eval}`x`."                  # new prose
    assert [runbook._shown_text(c.metadata["user_expressions"][0]["result"])
            for c in (merged.cells[2], merged.cells[5])] == ["1", "2"]       # by position
    assert merged.cells[4].outputs[0]["text"] == "two"
    assert execution_cache.cell_seconds(merged)[0] == {"cell": 0, "seconds": 0.5, "first_line": "x = 1"}
    # Cells that do not line up are not merged.
    assert execution_cache.reuse_outputs(_notebook(*BASE_CELLS[:2]), executed) is None


def test_execution_cache_discards_a_damaged_entry_and_keeps_the_newest(tmp_path):
    store = execution_cache.ExecutionCache(tmp_path / "cache")
    notebook_path = tmp_path / "executed.ipynb"
    nbformat.write(_notebook(*BASE_CELLS), notebook_path)
    keys = [f"{i:032x}" for i in range(6)]
    for key in keys:
        store.store("chap", key, notebook_path, {"chapter": "chap", "status": "ok", "key": key})
    # Only the newest entries are kept.
    kept = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(kept) == execution_cache.KEEP_PER_CHAPTER and f"chap-{keys[-1]}" in kept
    notebook, record = store.load("chap", keys[-1])
    assert record["key"] == keys[-1] and len(notebook.cells) == len(BASE_CELLS)
    assert store.load("chap", keys[0]) is None  # pruned
    assert store.load("other", keys[-1]) is None
    # A damaged notebook is warned about, deleted and reads as missing.
    entry = tmp_path / "cache" / f"chap-{keys[-1]}"
    (entry / "notebook.ipynb").write_text("{}")
    with pytest.warns(UserWarning, match="discarding executed chapter"):
        assert store.load("chap", keys[-1]) is None
    assert not entry.exists()


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_thread_count_is_refused_before_any_work(tiny_book, monkeypatch, value):
    monkeypatch.setenv(runbook.THREADS_VARIABLE, value)
    with pytest.raises(ValueError, match="LSNOTES_THREADS must be a positive integer"):
        runbook.run_book(["tiny"], root=tiny_book, out="out", progress=False)
    assert not (tiny_book / "out").exists()


def test_kernel_threads_share_the_cores_and_follow_the_override(monkeypatch):
    monkeypatch.delenv(runbook.THREADS_VARIABLE, raising=False)
    cores = len(os.sched_getaffinity(0))
    assert runbook.kernel_threads() == cores
    assert runbook.kernel_threads(concurrent=cores * 2) == 1
    monkeypatch.setenv(runbook.THREADS_VARIABLE, "3")
    assert runbook.kernel_threads() == 3
    variables = runbook.kernel_variables()
    assert variables["OMP_NUM_THREADS"] == variables["MKL_NUM_THREADS"] == "3"


def test_kernels_wait_passively_unless_the_user_chose(monkeypatch):
    for name in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", runbook.THREADS_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    with runbook.kernel_environment():
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        assert os.environ["OMP_NUM_THREADS"] == str(runbook.kernel_threads())
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with runbook.kernel_environment():
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.parametrize("command", ["run-book", "build-book"])
def test_force_is_an_option_of_both_commands(command):
    parser = cli.build_parser()
    assert parser.parse_args([command, "--force"]).force is True
    assert parser.parse_args([command]).force is False
