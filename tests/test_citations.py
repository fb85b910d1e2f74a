"""Citation links: readable in JupyterLab, citations in the built book, faithful to the .bib."""

from __future__ import annotations

import json

import pytest

from conftest import REPO
from lsnotes import citations
from lsnotes.sphinx_ext import roles_in_source

BIB = REPO / "book" / "references.bib"
CHAPTERS = sorted((REPO / "book").glob("*.md"))


@pytest.fixture(scope="module")
def entries():
    return citations.bibliography(BIB)


def test_entries_read_as_author_year(entries):
    assert entries["fu2020label"].text("t") == "Fu et al. (2020)"
    assert entries["goibert2019adversarial"].text("p") == "Goibert and Dohmatob, 2019"
    assert entries["muller2019does"].text("t") == "Müller et al. (2019)"  # LaTeX accents decoded
    assert entries["goibert2019code"].text("t") == "Goibert (2019)"
    assert entries["madry2018towards"].url == "https://arxiv.org/abs/1706.06083"


def test_every_entry_has_an_address_a_reader_can_follow(entries):
    assert not [key for key, entry in entries.items() if not entry.url.startswith("https://")]


@pytest.mark.parametrize("role, link", [
    ("{cite:t}`fu2020label` show",
     "[Fu et al. (2020)](https://arxiv.org/abs/2009.08233 'cite:t fu2020label') show"),
    ("PGD {cite:p}`madry2018towards`.",
     "PGD ([Madry et al., 2018](https://arxiv.org/abs/1706.06083 'cite:p madry2018towards'))."),
    ("{cite:p}`guo2017calibration,muller2019does`",
     "([Guo et al., 2017](https://arxiv.org/abs/1706.04599 'cite:p guo2017calibration'); "
     "[Müller et al., 2019](https://arxiv.org/abs/1906.02629 'cite:p muller2019does'))"),
])
def test_roles_and_links_convert_both_ways(entries, role, link):
    assert citations.from_roles(role, entries) == link
    assert citations.to_roles(link) == role
    assert citations.problems(link, entries) == []


def test_a_wrapped_link_keeps_the_line_count():
    text = "as\n[Fu et al.\n(2020)](https://arxiv.org/abs/2009.08233 'cite:t fu2020label') say\nend"
    converted = citations.to_roles(text)
    assert "{cite:t}`fu2020label`" in converted
    assert converted.count("\n") == text.count("\n")


def test_ordinary_links_are_left_alone():
    text = "see [the code](https://github.com/x/y) and [Fig. 1](#fig-one 'a title')"
    assert citations.to_roles(text) == text


@pytest.mark.parametrize("text, complaint", [
    ("{cite:t}`fu2020label`", "raw role"),
    ("[Fu (2020)](https://arxiv.org/abs/2009.08233 'cite:t fu2020label')", "text should read"),
    ("[Fu et al. (2020)](https://arxiv.org/abs/0000.00000 'cite:t fu2020label')",
     "address should be"),
    ("[Nobody (2020)](https://x.org 'cite:t nobody2020')", "no entry"),
    ("[Fu et al. (2020)](https://arxiv.org/abs/2009.08233 'cite:x fu2020label')", "style must be"),
    ("PGD [Madry et al., 2018](https://arxiv.org/abs/1706.06083 'cite:p madry2018towards').",
     "inside parentheses"),
])
def test_problems_name_what_is_wrong(entries, text, complaint):
    found = citations.problems(text, entries)
    assert len(found) == 1 and complaint in found[0], found


def test_from_roles_refuses_unknown_keys_and_styles(entries):
    with pytest.raises(ValueError, match="unknown key"):
        citations.from_roles("{cite:t}`nobody2020`", entries)
    with pytest.raises(ValueError, match="style must be one of t, p"):
        citations.from_roles("{cite:ps}`fu2020label`", entries)
    with pytest.raises(ValueError, match="style must be one of t, p"):
        citations.link(entries["fu2020label"], "q")


def test_a_missing_bibliography_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no BibTeX file at"):
        citations.bibliography(tmp_path / "none.bib")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_citations_read_as_their_entries(entries, chapter):
    assert citations.problems(chapter.read_text(encoding="utf-8"), entries) == []


def test_the_book_cites_with_links():
    assert sum(len(citations.LINK.findall(p.read_text(encoding="utf-8"))) for p in CHAPTERS) > 50


def test_sphinx_turns_links_in_notebook_cells_into_roles():
    # nbformat stores a cell's source as lines: a wrapped link spans two JSON strings
    notebook = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": [
            "as [Fu et al.\n", "(2020)](https://arxiv.org/abs/2009.08233 'cite:t fu2020label')"]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "print('[a](b \\'cite:t fu2020label\\')')"}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    converted = json.loads(roles_in_source(json.dumps(notebook), ".ipynb"))
    assert converted["cells"][0]["source"] == "as {cite:t}`fu2020label`\n"
    assert converted["cells"][1]["source"] == notebook["cells"][1]["source"]  # code untouched
    markdown = "[Fu et al. (2020)](https://arxiv.org/abs/2009.08233 'cite:t fu2020label')"
    assert roles_in_source(markdown, ".md") == "{cite:t}`fu2020label`"
