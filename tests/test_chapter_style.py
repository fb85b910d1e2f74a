"""What a reader sees of each chapter's source, checked without running it: results before
plumbing (visible code cells short, no line wider than the book's code box), numbers in prose as
``{eval}`` (which JupyterLab and the book both render), tables as ``lsnotes.present.Table``."""

from __future__ import annotations

import re

import jupytext
import pytest

from conftest import REPO, toc_chapters

#: Lines a visible code cell may have, and characters per line (the book's code box at a
#: 1280-pixel window shows about 77 monospace characters, 75 inside a "show code" toggle).
MAX_VISIBLE_LINES = 15
MAX_LINE_CHARS = 75
HIDDEN_INPUT_TAGS = {"hide-input", "remove-input", "remove-cell", "hide-cell"}

CHAPTERS = [c for c in toc_chapters() if c != "bibliography"]


def visible_code_cells(name: str, parameters: bool = False, toggled: bool = False):
    """(index, source) of the code cells a reader sees; the parameters cell (a list of knobs,
    which may be long) and the cells behind a "show code" toggle only if asked: they need not be
    short, but must fit the page once shown."""
    notebook = jupytext.read(REPO / "book" / f"{name}.md")
    for index, cell in enumerate(notebook.cells):
        tags = set(cell.metadata.get("tags", []))
        if cell.cell_type != "code" or tags & {"remove-cell", "remove-input"}:
            continue
        if tags & HIDDEN_INPUT_TAGS and not toggled:
            continue
        if parameters or "parameters" not in tags:
            yield index, cell.source


@pytest.mark.parametrize("name", CHAPTERS)
def test_visible_code_cells_are_short_and_fit_the_page(name):
    long_cells = {i: len(src.splitlines()) for i, src in visible_code_cells(name)
                  if len(src.splitlines()) > MAX_VISIBLE_LINES}
    assert not long_cells, (f"{name}: visible code cells longer than {MAX_VISIBLE_LINES} lines "
                            f"(cell index: lines) {long_cells}; move plumbing into lsnotes or hide it")
    wide = [line for _, src in visible_code_cells(name, parameters=True, toggled=True)
            for line in src.splitlines()
            if len(line) > MAX_LINE_CHARS]
    assert not wide, f"{name}: visible lines over {MAX_LINE_CHARS} characters: {wide[:3]}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_prose_numbers_and_tables_use_forms_both_renderers_show(name):
    source = (REPO / "book" / f"{name}.md").read_text()
    assert "{glue" not in source and "myst_nb import glue" not in source, (
        f"{name}: glue does not render in JupyterLab; quote numbers with {{eval}}")
    assert not re.search(r"Markdown\(\s*[\"'f]*\|", source) and "Markdown(\"\\n\".join" not in source, (
        f"{name}: a table built as a Markdown string; use lsnotes.present.Table")


#: A chapter shows its work: at most this share of its code lines may sit in hidden cells, and
#: those hold plotting style only (no function or class is defined there).
MAX_HIDDEN_SHARE = 0.20


def code_line_counts(name: str) -> tuple[int, int, list[str]]:
    """(visible code lines, hidden code lines, names defined in hidden cells) of a chapter;
    blank lines are not counted."""
    notebook = jupytext.read(REPO / "book" / f"{name}.md")
    visible = hidden = 0
    hidden_defs = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        lines = [line for line in cell.source.splitlines() if line.strip()]
        if set(cell.metadata.get("tags", [])) & HIDDEN_INPUT_TAGS:
            hidden += len(lines)
            hidden_defs += re.findall(r"^\s*(?:async\s+)?(?:def|class)\s+(\w+)", cell.source, re.M)
        else:
            visible += len(lines)
    return visible, hidden, hidden_defs


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapters_show_their_work(name):
    visible, hidden, hidden_defs = code_line_counts(name)
    assert not hidden_defs, f"{name}: functions or classes defined in hidden cells: {hidden_defs}"
    total = visible + hidden
    assert hidden <= MAX_HIDDEN_SHARE * total, (
        f"{name}: {hidden} of {total} code lines are hidden ({hidden / max(total, 1):.0%}); "
        f"at most {MAX_HIDDEN_SHARE:.0%} may be (plotting style only)")


def test_the_hidden_share_counts_what_it_should(tmp_path, monkeypatch):
    book = tmp_path / "book"
    book.mkdir()
    (book / "x.md").write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n    format_name: myst\n"
        "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
        "```{code-cell} ipython3\n:tags: [hide-input]\n\ndef helper():\n    return 1\n```\n\n"
        "```{code-cell} ipython3\nhelper()\n\n```\n")
    monkeypatch.setattr(__import__(__name__), "REPO", tmp_path)
    assert code_line_counts("x") == (1, 2, ["helper"])


#: A solution's code sits in a collapsible box narrower than the page's code box.
MAX_SOLUTION_LINE_CHARS = 72


def solution_code_lines(name: str) -> list[str]:
    """Code lines of the cells between a chapter's solution-start and solution-end markers."""
    inside = in_code = False
    found = []
    for line in (REPO / "book" / f"{name}.md").read_text().splitlines():
        if "{solution-start}" in line:
            inside = True
        elif "{solution-end}" in line:
            inside = False
        elif line.startswith("```{code-cell}"):
            in_code = True
        elif in_code and line.startswith("```"):
            in_code = False
        elif inside and in_code:
            found.append(line)
    return found


@pytest.mark.parametrize("name", CHAPTERS)
def test_solution_code_fits_its_box(name):
    wide = [line for line in solution_code_lines(name) if len(line) > MAX_SOLUTION_LINE_CHARS]
    assert not wide, f"{name}: solution lines over {MAX_SOLUTION_LINE_CHARS} characters: {wide[:3]}"


def proof_openings(source: str) -> list[str]:
    """The first line of every ``prf:proof`` body (options skipped)."""
    lines, openings = source.splitlines(), []
    for i, line in enumerate(lines):
        if re.match(r"^`{3,}\{prf:proof\}", line):
            body = (ln for ln in lines[i + 1:] if ln.strip() and not ln.startswith(":"))
            openings.append(next(body, ""))
    return openings


#: sphinx-proof writes "Proof. " in front of a proof's first line, so that line must open a
#: paragraph: a list, display maths or a fence there is flattened into text ("Proof. 1. ... . 2.").
NOT_A_PARAGRAPH = re.compile(r"^\s*(\d+[.)]\s|[-*+]\s|\$\$|`{3,}|:{3,}|#)")


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_proof_opens_with_a_paragraph(name):
    bad = [line for line in proof_openings((REPO / "book" / f"{name}.md").read_text())
           if NOT_A_PARAGRAPH.match(line)]
    assert not bad, f"{name}: proofs that open with a list, maths or a fence: {bad}"


def test_a_proof_opening_with_a_list_is_found():
    source = "````{prf:proof}\n:class: x\n\n1. **Step.** text\n2. more\n````\n"
    assert [line for line in proof_openings(source) if NOT_A_PARAGRAPH.match(line)] == [
        "1. **Step.** text"]
    assert not NOT_A_PARAGRAPH.match("**Step 1.** By $x$")
