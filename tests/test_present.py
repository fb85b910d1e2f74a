"""lsnotes.present (numbers for prose, tables, claims) and the {eval} path from a chapter's prose
to the built book: evaluated while papermill runs the chapter, stored as jupyterlab-myst stores it,
substituted when the book is staged."""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import CHAPTER_HEADER
from lsnotes import cli, runbook
from lsnotes.present import Claims, ClaimFailed, Table, Text, fixed, percent, share, signed_points

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- values

def test_text_shows_as_itself_without_quotes():
    value = percent(0.4213)
    assert value == "42.1 %" and repr(value) == "42.1 %" and isinstance(value, str)
    assert repr("plain") == "'plain'"  # what Text exists to avoid


@pytest.mark.parametrize("call, shown", [
    (lambda: percent(0.5), "50.0 %"), (lambda: percent(1 / 3, 2), "33.33 %"),
    (lambda: percent(float("nan")), "—"), (lambda: signed_points(0.052), "+5.2"),
    (lambda: signed_points(-0.1), "-10.0"), (lambda: fixed(0.5, 2), "0.50"),
    (lambda: share(3, 5), "3 of 5"),
])
def test_formats(call, shown):
    assert call() == shown


@pytest.mark.parametrize("call, name", [
    (lambda: percent(math.inf), "fraction"), (lambda: percent("high"), "fraction"),
    (lambda: percent(True), "fraction"), (lambda: fixed(0.5, -1), "digits"),
    (lambda: signed_points(-math.inf), "difference"), (lambda: share(6, 5), "count"),
    (lambda: share(1, 0), "total"),
])
def test_bad_values_are_refused_by_name(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ----------------------------------------------------------------------------- tables

def test_table_is_markdown_with_numbers_right_aligned():
    table = Table(["model", "PGD-20", "note"], [["CE", percent(0.21), "a|b"], ["LS", "42.1 %", "x"]],
                  title="Robust accuracy")
    lines = table._repr_markdown_().splitlines()
    assert lines[0] == "**Robust accuracy**"
    assert lines[2] == "| model | PGD-20 | note |"
    assert lines[3] == "| :-- | --: | :-- |"
    assert lines[4] == "| CE | 21.0 % | a\\|b |"  # a pipe inside a cell cannot split the row
    assert table.records()[1] == {"model": "LS", "PGD-20": "42.1 %", "note": "x"}


def test_table_refuses_ragged_rows_and_unknown_alignment():
    with pytest.raises(ValueError, match=r"rows\[1\]"):
        Table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(ValueError, match="align column"):
        Table(["a"], [[1]], align={"b": "left"})
    with pytest.raises(ValueError, match="align"):
        Table(["a"], [[1]], align={"a": "centre"})


def test_beside_interleaves_paper_and_our_rows():
    from lsnotes.present import beside

    table = beside(["clean", "PGD-20"], [("Madry", ["86.83", "51.24"], "PGD-AT", [percent(0.8), percent(0.59)])],
                   paper="Fu et al.", ours="quick")
    assert table.records() == [{"model": "Madry (Fu et al.)", "clean": "86.83", "PGD-20": "51.24"},
                               {"model": "PGD-AT (quick)", "clean": "80.0 %", "PGD-20": "59.0 %"}]
    assert table.align["PGD-20"] == "right"


def test_a_paper_table_displays_as_a_table_with_its_source():
    from lsnotes import papers

    shown = papers.table("fu2020", "table4")._repr_markdown_()
    assert shown.startswith("| Defense | clean |") and "Source: fu2020_full_text.txt" in shown


# ----------------------------------------------------------------------------- claims

def test_claims_list_every_statement_and_assert_the_ones_the_prose_uses():
    claims = Claims({"LS beats CE": True, "transfer is stronger": False}, asserted=["LS beats CE"])
    shown = claims._repr_markdown_()
    assert "- ✔ holds (asserted): LS beats CE" in shown
    assert "- ✘ does not hold here: transfer is stronger" in shown
    assert claims.holds("LS beats CE") and not claims.holds("transfer is stronger")


def test_a_false_asserted_claim_stops_the_chapter():
    with pytest.raises(ClaimFailed, match="transfer is stronger"):
        Claims({"transfer is stronger": False}, asserted=["transfer is stronger"])
    with pytest.raises(ValueError, match="asserted statement"):
        Claims({"a": True}, asserted=["b"])


# ----------------------------------------------------------------------------- {eval} to the book

def test_fill_inline_expressions_escapes_and_names_what_is_missing():
    stored = [{"expression": "acc", "result": {"status": "ok", "data": {"text/plain": "42.1 %"}}},
              {"expression": "name", "result": {"status": "ok", "data": {"text/plain": "'LS *α*'"}}}]
    filled = runbook.fill_inline_expressions("{eval}`acc` for {eval}`name`.", stored, "ch")
    assert filled == "42.1 % for LS \\*α\\*."  # quotes off, MyST specials escaped
    with pytest.raises(ValueError, match=r"ch: .*\{eval\}`other`"):
        runbook.fill_inline_expressions("{eval}`other`", stored, "ch")
    assert runbook.fill_inline_expressions("{eval}`other`", stored, "ch", strict=False) == "[not computed]"


EVAL_CHAPTER = CHAPTER_HEADER + textwrap.dedent("""\

    # Numbers in prose

    ```{code-cell} ipython3
    from lsnotes.present import Table, percent
    accuracy = percent(0.4213)
    label = "LS alpha 0.9"
    ```

    The model keeps {eval}`accuracy` under attack ({eval}`label`), and $x^2$ is typeset.

    ```{code-cell} ipython3
    Table(["model", "accuracy"], [["CE", percent(0.2)], ["LS", accuracy]])
    ```
    """)


@pytest.fixture
def eval_book(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/numbers\n")
    (tmp_path / "_config.yml").write_text((REPO / "_config.yml").read_text())
    (tmp_path / "book" / "numbers.md").write_text(EVAL_CHAPTER)
    (tmp_path / "book" / "references.bib").write_text("")
    return tmp_path


@pytest.mark.chapters
@pytest.mark.slow
def test_prose_numbers_reach_the_executed_notebook_and_the_built_page(eval_book, monkeypatch):
    monkeypatch.chdir(eval_book)
    assert cli.main(["build-book", "--no-progress"]) == 0
    executed = nbformat.read(eval_book / "_build" / "executed" / "numbers.ipynb", as_version=4)
    prose = next(c for c in executed.cells if "{eval}" in c.source)
    stored = {e["expression"]: e["result"] for e in prose.metadata["user_expressions"]}
    assert stored["accuracy"]["data"]["text/plain"] == "42.1 %"
    html = (eval_book / "_build" / "html" / "book" / "numbers.html").read_text()
    assert "The model keeps 42.1 % under attack (LS alpha 0.9)" in html
    assert "{eval}" not in html
    assert html.count("<table") == 1 and "| model |" not in html  # a real table, not pipes
    assert '<script defer="defer" src="../_static/mathjax/tex-chtml.js">' in html  # no CDN
    assert (eval_book / "_build" / "html" / "_static" / "mathjax" / "tex-chtml.js").is_file()


@pytest.mark.chapters
@pytest.mark.slow
def test_an_undefined_name_in_the_prose_fails_the_chapter(eval_book, monkeypatch):
    chapter = eval_book / "book" / "numbers.md"
    chapter.write_text(chapter.read_text() + "\nAnd {eval}`no_such_number` too.\n")
    monkeypatch.chdir(eval_book)
    results = runbook.run_book(None, root=eval_book, progress=False)
    assert results[0].status == "failed"
    assert "no_such_number" in results[0].error and "NameError" in results[0].error


def test_every_prose_expression_in_the_book_is_one_a_plain_build_can_evaluate():
    """A plain `jupyter-book build .` (inline execution) evaluates only names matching the
    configured pattern; jupyterlab-myst and run-book accept any expression, so keep to names."""
    pattern = yaml.safe_load((REPO / "_config.yml").read_text())["sphinx"]["config"][
        "nb_eval_name_regex"]
    bad = {}
    for chapter in sorted((REPO / "book").glob("*.md")):
        found = runbook.INLINE_EXPRESSION.findall(chapter.read_text())
        bad.update({f"{chapter.name}: {e}": e for e in found if not re.match(pattern, e)})
    assert not bad, f"{{eval}} expressions a plain build rejects: {sorted(bad)}"
