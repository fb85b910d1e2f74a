"""What the ``evaluation_checklist`` chapter calls besides :mod:`lsnotes.robustness`: the papers'
budgets it quotes, the claims it asserts about the audits, and its sentence on the table of every
model. Tested in ``tests/test_chapter_evaluation_checklist.py``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Mapping, Sequence

from lsnotes import claims as C
from lsnotes import papers
from lsnotes.present import Claims, Text

#: The two audited models the chapter's claims are about (the two ends of the book's story).
CLAIMED = ("LS", "PGD-AT")
#: Training labels of multi-step adversarial training in :func:`lsnotes.robustness.book_models`
#: rows (FGSM-AT is single-step: not one of them).
MULTI_STEP_AT = ("PGD-AT", "TRADES", "SGLR", "TRADES+SGLR")


def paper_budgets() -> SimpleNamespace:
    """The L∞ budgets the papers give for CIFAR-10, as printed in the papers' JSON: ``fu`` (the
    attacks of Fu et al., section 4) and ``yu`` (the training attack of Yu et al.'s published
    script). Goibert & Dohmatob's budgets are not legible in the text we read, so there is none."""
    setting = lambda paper, key: Text(papers.paper(paper)["settings"][key]["value"])  # noqa: E731
    return SimpleNamespace(fu=setting("fu2020", "linf_eps"), yu=setting("yu2024", "train_eps"))


def pgd_gap(report) -> float:
    """How much PGD-k alone overestimates a model's robustness: its accuracy minus the
    per-example worst case over the whole battery (≥ 0, since the worst case counts PGD-k)."""
    pgd = report.accuracy(report.main_attack)
    if pgd is None:
        raise C.MissingMeasurement(f"{report.model_name}: PGD-{report.main_attack} did not run")
    return pgd - report.robust_acc


def audit_claims(reports: Mapping[str, object]) -> Claims:
    """The four asserted claims about the audited label-smoothing and PGD-AT models.

    Each compares two measurements that could come out either way: the stronger attacks find
    more than PGD-20 on LS beyond the audit's noise tolerance (the indicator); PGD-20 overstates
    LS's worst case by more than it overstates PGD-AT's; PGD-AT trips no serious indicator;
    PGD-AT keeps more than LS in the worst case. A model that was not audited is not a claim
    that quietly drops out: :class:`~lsnotes.present.ClaimFailed` names it.
    """
    missing = [name for name in CLAIMED if reports.get(name) is None]
    if missing:
        raise C.MissingMeasurement(
            f"the claims need audits of {', '.join(CLAIMED)}; not audited in this run: "
            f"{', '.join(missing)} (not in the model cache yet, or not in `audited`)")
    ls, at = C.measured(reports, *CLAIMED, what="audits")
    claims = {
        "stronger attacks beat PGD-20 on LS by more than the audit's tolerance":
            bool(ls.indicator("stronger_attacks_beat_pgd").fired),
        "PGD-20 overstates LS's worst case by more than PGD-AT's":
            C.exceeds(pgd_gap(ls), pgd_gap(at)),
        "PGD-AT trips no serious indicator": not at.serious,
        "PGD-AT keeps more than LS in the worst case": C.exceeds(at.robust_acc, ls.robust_acc),
    }
    return Claims(claims, asserted=list(claims), title="What the audits show")


def at_versus_ce(rows: Sequence[Mapping]) -> Text:
    """One sentence: the best multi-step adversarially trained model of the table against plain
    cross-entropy under PGD-20 (or why the table cannot compare them)."""
    adversarial = [r for r in rows if r["training"] in MULTI_STEP_AT]
    standard_ce = [r for r in rows if r["training"] == "standard" and r["method"] == "ce"]
    if not adversarial or not standard_ce:
        return Text("The cache does not hold both a cross-entropy and a multi-step "
                    "adversarially trained model yet, so the table cannot compare them.")
    best = max(adversarial, key=lambda r: r["pgd20"])
    ce = standard_ce[0]
    more = "more" if best["pgd20"] > ce["pgd20"] else "no more"
    return Text(f"The best multi-step adversarially trained model ({best['label']}) keeps "
                f"{best['pgd20']:.2f} PGD-20 accuracy, {more} than plain cross-entropy "
                f"({ce['pgd20']:.2f}), at clean accuracy {best['clean']:.2f} against "
                f"{ce['clean']:.2f}.")


def full_profile_note():
    """What the chapter shows where the full-profile (GPU) results have not been recorded."""
    return Text("The full-profile results (GPU) have not been recorded yet; they are produced "
                "by running this chapter with profile='full' after the other chapters.")


def story_texts(story: Mapping[str, str]) -> SimpleNamespace:
    """The audits' story (:func:`lsnotes.robustness.book_models.story`) as attributes the prose
    quotes with ``{eval}`` (``story.ls_sentence``), each a :class:`~lsnotes.present.Text`."""
    return SimpleNamespace(**{key: Text(value) for key, value in story.items()})
