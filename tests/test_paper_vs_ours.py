"""The paper's claim and our run's result are two visibly different blocks
(:class:`lsnotes.present.PaperReports`, :class:`lsnotes.present.OurRun`): the markdown they emit,
and what MyST makes of it (an admonition with its own class), as the book's parser reads it."""

from __future__ import annotations

from pathlib import Path

import docutils.core
import docutils.nodes
import pytest
from myst_parser.parsers.docutils_ import Parser

from lsnotes import papers
from lsnotes.present import (OUR_RUN_CLASS, PAPER_REPORTS_CLASS, Claims, OurRun, PaperReports,
                             Table, paper_label)

REPO = Path(__file__).resolve().parents[1]


def admonitions(markdown: str) -> list[docutils.nodes.admonition]:
    tree = docutils.core.publish_doctree(markdown, parser=Parser(),
                                         settings_overrides={"report_level": 5})
    return list(tree.findall(docutils.nodes.admonition))


def title_of(node) -> str:
    return next(node.findall(docutils.nodes.title)).astext()


@pytest.mark.parametrize("paper, label", [
    ("fu2020", "Fu et al. (2020)"), ("goibert2019", "Goibert & Dohmatob (2019)"),
    ("yu2024", "Yu et al. (2024)")])
def test_paper_label_is_authors_and_year_from_the_json(paper, label):
    assert paper_label(paper) == label


def test_paper_reports_is_an_admonition_with_its_class_and_the_papers_name():
    block = PaperReports("fu2020", "Their LS model keeps little under AutoAttack.")
    markdown = block._repr_markdown_()
    assert markdown.splitlines()[:2] == [
        "```{admonition} The paper reports: Fu et al. (2020)",
        f":class: note {PAPER_REPORTS_CLASS}"]
    [node] = admonitions(markdown)
    assert PAPER_REPORTS_CLASS in node["classes"]
    assert title_of(node) == "The paper reports: Fu et al. (2020)"
    assert "keeps little under AutoAttack" in node.astext()


def test_our_run_is_a_different_admonition_holding_tables_and_claims():
    table = Table(["model", "AA"], [["LS", "12.0 %"]])
    claims = Claims({"LS beats CE": True}, asserted=["LS beats CE"])
    markdown = OurRun("We measured this.", table, claims, scale="quick profile").to_markdown()
    [node] = admonitions(markdown)
    assert OUR_RUN_CLASS in node["classes"] and PAPER_REPORTS_CLASS not in node["classes"]
    assert title_of(node) == "Our run (quick profile)"
    assert len(list(node.findall(docutils.nodes.table))) == 1
    assert "✔ holds (asserted): LS beats CE" in node.astext()


def test_a_papers_table_goes_inside_with_its_source():
    t5 = papers.table("fu2020", "table5")
    [node] = admonitions(PaperReports("fu2020", t5).to_markdown())
    assert len(list(node.findall(docutils.nodes.table))) == 1
    assert f"Source: {t5.location}" in node.astext()


def test_a_body_with_a_code_fence_gets_a_longer_fence():
    body = "```python\nx = 1\n```"
    markdown = OurRun(body).to_markdown()
    assert markdown.startswith("````{admonition}") and markdown.endswith("\n````")
    [node] = admonitions(markdown)
    assert len(list(node.findall(docutils.nodes.literal_block))) == 1


def test_the_two_blocks_side_by_side_stay_two():
    markdown = (PaperReports("yu2024", "They report a gain.").to_markdown() + "\n\n"
                + OurRun("We see none.").to_markdown())
    nodes = admonitions(markdown)
    assert [n["classes"][-1] for n in nodes] == [PAPER_REPORTS_CLASS, OUR_RUN_CLASS]


@pytest.mark.parametrize("call, name", [
    (lambda: PaperReports("fu2021", "x"), "paper"),
    (lambda: PaperReports("fu2020"), "at least one part"),
    (lambda: OurRun(), "at least one part"),
    (lambda: OurRun("  "), r"parts\[0\]"),
    (lambda: OurRun(0.42), r"parts\[0\]"),
])
def test_bad_input_is_refused(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_the_css_styles_both_classes():
    css = (REPO / "_static" / "lsnotes.css").read_text(encoding="utf-8")
    for css_class in (PAPER_REPORTS_CLASS, OUR_RUN_CLASS):
        assert f"div.admonition.{css_class} {{" in css
