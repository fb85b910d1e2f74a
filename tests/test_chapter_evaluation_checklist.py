"""The evaluation_checklist chapter's helpers (lsnotes.chapters.evaluation_checklist): each claim
holds on inputs shaped like this book's audits and fails on inputs for which it must, and a
missing audit fails loudly instead of dropping its claims."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lsnotes import papers
from lsnotes.chapters import evaluation_checklist as ec
from lsnotes.present import ClaimFailed


def report(name, pgd, worst, *, stronger_fired=True, serious=()):
    return SimpleNamespace(
        model_name=name, main_attack="pgd20", robust_acc=worst, serious=list(serious),
        accuracy=lambda attack: {"pgd20": pgd}.get(attack),
        indicator=lambda key: SimpleNamespace(fired=stronger_fired))


def reports(**changes):
    found = {"LS": report("LS", 0.42, 0.28), "PGD-AT": report("PGD-AT", 0.60, 0.58,
                                                              stronger_fired=False)}
    found.update(changes)
    return found


def test_audit_claims_hold_on_the_books_story():
    claims = ec.audit_claims(reports())
    assert all(claims.claims.values()) and len(claims.claims) == 4
    assert ec.pgd_gap(reports()["LS"]) == pytest.approx(0.14)


@pytest.mark.parametrize("changes, broken", [
    (dict(LS=report("LS", 0.42, 0.41, stronger_fired=False)), "stronger attacks beat"),
    (dict(LS=report("LS", 0.30, 0.28)), "overstates LS's worst case"),
    (dict(**{"PGD-AT": report("PGD-AT", 0.6, 0.58, serious=["Unavailable gradients"])}),
     "no serious indicator"),
    (dict(**{"PGD-AT": report("PGD-AT", 0.27, 0.25)}), "keeps more than LS"),
])
def test_audit_claims_fail_when_they_do_not_hold(changes, broken):
    with pytest.raises(ClaimFailed, match=broken):
        ec.audit_claims(reports(**changes))


def test_a_missing_audit_fails_loudly():
    with pytest.raises(ClaimFailed, match="not audited in this run: PGD-AT"):
        ec.audit_claims({"LS": reports()["LS"]})
    with pytest.raises(ClaimFailed, match="LS, PGD-AT"):
        ec.audit_claims({})
    with pytest.raises(ClaimFailed, match="did not run"):
        ec.pgd_gap(report("LS", None, 0.2))


def test_paper_budgets_come_from_the_papers_tables():
    budgets = ec.paper_budgets()
    assert budgets.fu == papers.paper("fu2020")["settings"]["linf_eps"]["value"]
    assert budgets.yu == papers.paper("yu2024")["settings"]["train_eps"]["value"]
    assert repr(budgets.fu) == str(budgets.fu)  # shows without quotes in prose


def row(label, training, method, clean, pgd20):
    return dict(label=label, training=training, method=method, clean=clean, pgd20=pgd20)


def test_at_versus_ce_names_the_best_multi_step_model_or_says_it_cannot():
    rows = [row("CE", "standard", "ce", 0.9, 0.1), row("FGSM-AT", "FGSM-AT", "ce", 0.8, 0.9),
            row("PGD-AT", "PGD-AT", "ce", 0.8, 0.5), row("TRADES", "TRADES", "ce", 0.8, 0.4)]
    sentence = ec.at_versus_ce(rows)
    assert "(PGD-AT) keeps 0.50" in sentence and "more than plain" in sentence
    rows[2]["pgd20"] = rows[3]["pgd20"] = 0.05
    assert "no more than" in ec.at_versus_ce(rows)
    assert "cannot compare" in ec.at_versus_ce(rows[:2])  # FGSM-AT is not multi-step


def test_story_texts_are_attributes_that_show_as_text():
    story = ec.story_texts({"ls_sentence": "LS falls.", "one_example": "4.2"})
    assert story.ls_sentence == "LS falls." and repr(story.one_example) == "4.2"
    assert "not been recorded" in ec.full_profile_note()
