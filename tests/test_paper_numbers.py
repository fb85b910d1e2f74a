"""No chapter types a paper's number (issue "every sentence about a paper says what the paper
says").

Every number in a prose sentence that cites Goibert & Dohmatob, Fu et al. or Yu et al. must be
computed (``{eval}``/glue) or be in that paper's ``book/papers/*.json``; the rules and exemptions
are :mod:`lsnotes.provenance`'s. One test per chapter; run one chapter's report with
``python -m lsnotes.provenance book/CHAPTER.md``.

``NOT_YET_CLEAN`` lists the chapters that still fail; they are strict xfails, so a chapter fixed
but still listed fails too ("XPASS(strict)"): remove it from the list in the same commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lsnotes import provenance

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "book").glob("*.md"))

# One chapter per line, with a blank line between, so that helpers removing different chapters
# do not conflict when their branches merge.
NOT_YET_CLEAN: set[str] = set()


def test_every_listed_chapter_exists():
    assert NOT_YET_CLEAN <= {c.stem for c in CHAPTERS}


def test_the_scan_checks_numbers_in_the_book():
    """The scanner finds the sentences that cite the papers (guards against a parser that quietly
    sees no prose: then every chapter would pass)."""
    citing = [s for c in CHAPTERS for s in provenance.prose_sentences(c.read_text("utf-8"))
              if provenance.cited_papers(s.text)]
    assert len(citing) >= 50


@pytest.mark.parametrize("chapter", [
    pytest.param(c, id=c.stem, marks=[pytest.mark.xfail(
        strict=True, reason="types paper numbers; see python -m lsnotes.provenance")]
        if c.stem in NOT_YET_CLEAN else []) for c in CHAPTERS])
def test_no_typed_paper_number(chapter):
    found = provenance.uncited_numbers(chapter.read_text(encoding="utf-8"))
    assert not found, (f"{chapter.name}: {len(found)} number(s) in sentences citing a paper are "
                       "neither computed nor in its JSON:\n" + "\n".join(map(str, found)))
