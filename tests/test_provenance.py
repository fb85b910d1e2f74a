"""The number-provenance scanner itself (:mod:`lsnotes.provenance`), on small made-up chapters.

Each case is a sentence that must be flagged or must pass; the numbers used as "the paper's" are
read from the JSON here, never typed, so the cases follow the data.
"""

from __future__ import annotations

import pytest

from lsnotes import papers, provenance

FRONT = "---\njupytext:\n  formats: md:myst\n---\n\n# A chapter\n\n"

# A number no paper's JSON holds (checked below), to play a typed, wrong paper number.
FOREIGN = "47.77"


def fu_value() -> str:
    """A printed cell of Fu et al.'s Table 4, as a string."""
    return papers.table("fu2020", "table4").printed("LS", "AA")


def numbers_flagged(markdown: str) -> list[str]:
    return [f.number for f in provenance.uncited_numbers(FRONT + markdown)]


def test_the_foreign_number_is_in_no_papers_json():
    for paper in papers.PAPERS:
        assert FOREIGN not in provenance.known_numbers(paper)


def test_known_numbers_hold_the_papers_cells_and_settings_but_not_line_numbers():
    fu = provenance.known_numbers("fu2020")
    assert fu_value() in fu
    assert "255" in fu and "8" in fu  # settings linf_eps "8/255"
    line = papers.table("fu2020", "table4").row("LS").line
    assert str(line) not in fu  # the text's line numbers are ours, not the paper's


def test_numbers_are_known_as_printed():
    """A cell printed "0.130" is not quoted as "0.13": the prose says what the paper printed."""
    known = provenance.known_numbers("goibert2019")
    cells = [v for r in papers.table("goibert2019", "fgsm").rows for v in r.values if v]
    printed = next(v for v in cells if v.endswith("0") and v.rstrip("0") not in known)
    assert numbers_flagged(f"Goibert and Dohmatob print {printed}.\n") == []
    assert numbers_flagged(f"Goibert and Dohmatob print {printed.rstrip('0')}.\n") == [
        printed.rstrip("0")]


def test_repository_facts_count_only_where_the_repository_is_cited():
    facts = papers.paper("goibert2019")["repository"]["facts"]
    eps = facts["svhn_lenet_fgsm_bim_eps"]["value"]  # one set-up's ε, read from the repository
    numbers = provenance.NUMBER.findall(eps)
    assert numbers and not set(numbers) & provenance.known_numbers("goibert2019")
    about_the_paper = f"Goibert and Dohmatob attack SVHN LeNet at ε = {eps}.\n"
    assert numbers_flagged(about_the_paper) == numbers
    citing_the_code = (f"Goibert and Dohmatob attack SVHN LeNet at ε = {eps} "
                       "{cite:p}`goibert2019code`.\n")
    assert numbers_flagged(citing_the_code) == []
    naming_the_code = (f"Goibert and Dohmatob attack SVHN LeNet at ε = {eps} "
                       "(MGoibert/Label_smoothing).\n")
    assert numbers_flagged(naming_the_code) == []


@pytest.mark.parametrize("sentence, flagged", [
    # a typed number that is not the paper's fails; the same number computed passes
    (f"{{cite:t}}`fu2020label` report {FOREIGN} % under AutoAttack.", [FOREIGN]),
    ("{cite:t}`fu2020label` report {eval}`fu_aa` % under AutoAttack.", []),
    ("{cite:t}`fu2020label` report {glue:text}`fu_aa:.2f` % under AutoAttack.", []),
    # the paper's own number, typed: present in its JSON, so it passes (it cannot drift silently)
    ("{cite:t}`fu2020label` report FU_VALUE % under AutoAttack.", []),
    # by author name, not only by key
    (f"Fu et al. report {FOREIGN} % under AutoAttack.", [FOREIGN]),
    (f"Goibert and Dohmatob's best model keeps {FOREIGN}.", [FOREIGN]),
    (f"Yu et al. report {FOREIGN} % under AutoAttack.", [FOREIGN]),
    # a number is checked against the paper the sentence cites, not any paper
    ("Yu et al. report FU_VALUE % under AutoAttack.", ["FU_VALUE"]),
    # sentences that cite none of the three papers are not checked
    (f"Our model keeps {FOREIGN} % {{cite:p}}`madry2018towards`.", []),
    (f"Our model keeps {FOREIGN} %. Fu et al. train a WideResNet.", []),
    # "et al." does not end the sentence
    (f"As Fu et al. show, it keeps {FOREIGN} %.", [FOREIGN]),
    # exemptions: parts of the paper, citation years, names with digits, pixel ranges
    ("Fu et al.'s Table 4 and Tables 3–6 and Fig. 3 and Section 3.2 and Eq. (5) agree.", []),
    ("Goibert and Dohmatob (2019) use CIFAR-10, CIFAR-100 and ResNet-18 on [0, 1] pixels.", []),
    # not exempt: a year that is no bibliography entry's, and a line of our copy of the text
    ("Goibert and Dohmatob (1987) train it.", ["1987"]),
    ("Fu et al. (lines 48123-48124) train it.", ["48123", "48124"]),
    # inline math is prose, its subscripts are notation
    (f"Fu et al. train with $\\alpha = {FOREIGN}$ and $x_0$, $\\ell_{{2}}$.", [FOREIGN]),
    ("Goibert and Dohmatob take $T \\to 0$, $(K-1)/K$ and $\\alpha = 0.25$.", ["0.25"]),
    # inline code is code
    (f"Fu et al. call `attack(steps={FOREIGN})`.", []),
    # "the papers" quotes all three: the number must be in every paper's JSON
    ("The papers' budgets are 8/255.", ["8", "255"]),
])
def test_uncited_numbers_on_one_sentence(sentence, flagged):
    sentence = sentence.replace("FU_VALUE", fu_value())
    flagged = [fu_value() if n == "FU_VALUE" else n for n in flagged]
    assert numbers_flagged(sentence + "\n") == flagged


def test_code_cells_math_blocks_and_fences_are_not_prose():
    chapter = (
        "```{code-cell} ipython3\n"
        f"x = 'Fu et al. report {FOREIGN}'\n"
        "```\n\n"
        "$$\n"
        f"\\text{{Fu et al.}} = {FOREIGN}\n"
        "$$\n\n"
        "```text\n"
        f"Fu et al. {FOREIGN}\n"
        "```\n"
    )
    assert numbers_flagged(chapter) == []


def test_directive_bodies_list_items_and_headings_are_prose():
    chapter = (
        "```{note}\n"
        ":class: dropdown\n"
        f"Fu et al. report {FOREIGN} here.\n"
        "```\n\n"
        f"- Fu et al. report {FOREIGN} in a list.\n"
        f"- a second item with {FOREIGN}, citing nobody.\n\n"
        f"## Fu et al.'s {FOREIGN} heading\n"
    )
    found = provenance.uncited_numbers(FRONT + chapter)
    assert [f.number for f in found] == [FOREIGN] * 3
    assert [f.line for f in found] == [10, 13, 16]
    assert "in a list" in found[1].sentence and str(found[1]).startswith("line 13: 47.77")


def test_a_paragraph_is_split_into_sentences_and_only_the_citing_one_is_checked():
    paragraph = (f"We measured {FOREIGN} %.\nFu et al. report {{eval}}`fu_aa` %,\n"
                 f"below our {FOREIGN} % (Table 4). Nothing else.\n")
    sentences = provenance.prose_sentences(FRONT + paragraph)
    assert [s.text[:11] for s in sentences] == [
        "A chapter", "We measured", "Fu et al. r", "Nothing els"]
    assert numbers_flagged(paragraph) == [FOREIGN]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="markdown_text must be a str"):
        provenance.uncited_numbers(b"bytes")


def test_the_command_line_reports_and_sets_the_exit_status(tmp_path, capsys):
    dirty = tmp_path / "dirty.md"
    dirty.write_text(FRONT + f"Fu et al. report {FOREIGN} %.\n", encoding="utf-8")
    clean = tmp_path / "clean.md"
    clean.write_text(FRONT + "Fu et al. report {eval}`x` %.\n", encoding="utf-8")
    assert provenance.main([str(clean)]) == 0
    assert provenance.main([str(dirty)]) == 1
    out = capsys.readouterr().out
    assert f"line 8: {FOREIGN}" in out and "1 neither computed" in out


def test_show_known_lists_typed_numbers_that_pass(tmp_path, capsys):
    chapter = tmp_path / "known.md"
    chapter.write_text(FRONT + f"Fu et al. report {fu_value()} %.\n", encoding="utf-8")
    assert provenance.main([str(chapter)]) == 0
    assert "typed, in the JSON" not in capsys.readouterr().out
    assert provenance.main(["--show-known", str(chapter)]) == 0
    assert f"line 8: {fu_value()} (typed, in the JSON" in capsys.readouterr().out
