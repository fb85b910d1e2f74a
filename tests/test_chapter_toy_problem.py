"""lsnotes.chapters.toy_problem: the toy chapter's checks, tables and claims; each claim can fail."""

from types import SimpleNamespace

import numpy as np
import pytest

from lsnotes import toy
from lsnotes.chapters import toy_problem as chapter

GAMMA_STAR = 0.51  # between 1/2 and the drawn priors; the chapter finds it with brentq


def test_bayes_claims_hold_for_the_package_and_fail_for_a_wrong_boundary(monkeypatch):
    assert all(chapter.bayes_claims([0.5, 0.6, 2 / 3]).values())
    monkeypatch.setattr(toy, "bayes_boundary", lambda gamma: -0.3)
    claims = chapter.bayes_claims([0.6])
    assert not list(claims.values())[1]


def test_bayes_claims_fail_for_a_wrong_accuracy_formula(monkeypatch):
    monkeypatch.setattr(toy, "bayes_accuracy", lambda eps, gamma: np.asarray(eps) * 0 + 0.5)
    assert not all(chapter.bayes_claims([0.6]).values())


@pytest.mark.parametrize("bad", [[], [0.4], [0.7]])
def test_bayes_claims_refuse_missing_or_bad_priors(bad):
    with pytest.raises(ValueError, match="gamma_grid"):
        chapter.bayes_claims(bad)


def test_runs_reads_intervals():
    eps = np.linspace(0, 1, 11)[:-1]
    assert chapter.runs(np.ones(10, bool), eps) == "every ε"
    assert chapter.runs(np.zeros(10, bool), eps) == "none"
    mask = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 1], bool)
    assert chapter.runs(mask, eps) == "0.00–0.10, 0.40–0.40, 0.90–0.90"
    with pytest.raises(ValueError, match="mask"):
        chapter.runs(mask[:5], eps)


def test_panel_facts_at_two_thirds():
    facts = chapter.panel_facts(2 / 3)
    assert facts.all_above.all() and facts.ce_top.all() and facts.overtakes == 0.0
    with pytest.raises(ValueError, match="alphas"):
        chapter.panel_facts(2 / 3, alphas=(0.5, 1.0))


def test_figure_b_claims_hold_and_fail_when_a_panel_is_altered():
    facts = [chapter.panel_facts(g) for g in chapter.FIGURE_B_GAMMAS]
    assert all(chapter.figure_b_claims(facts, GAMMA_STAR).values())
    table = chapter.figure_b_table(facts)
    assert len(table.rows) == len(facts)
    broken = facts[:-1] + [SimpleNamespace(**{**vars(facts[-1]),
                                              "ce_top": np.zeros_like(facts[-1].ce_top)})]
    claims = chapter.figure_b_claims(broken, GAMMA_STAR)
    assert not claims["at γ = 2/3, α = 0 (plain CE) is the top curve at every ε"]
    reordered = [SimpleNamespace(**{**vars(f), "overtakes": 0.5}) for f in facts]
    assert not list(chapter.figure_b_claims(reordered, GAMMA_STAR).values())[3]


def test_figure_b_claims_refuse_missing_panels():
    with pytest.raises(ValueError, match="facts"):
        chapter.figure_b_claims([chapter.panel_facts(0.6)], GAMMA_STAR)
    with pytest.raises(ValueError, match="facts"):
        chapter.figure_b_table([])


def test_figure_c_claims_hold_and_fail_on_the_wrong_side_of_gamma_star():
    alphas = np.linspace(0, 1, 11)
    priors = [0.5, 0.52, 0.6, 2 / 3]
    assert all(chapter.figure_c_claims(alphas, priors, GAMMA_STAR).values())
    # A γ* placed too high counts 0.52 among the priors whose b_α should rise; it falls.
    wrong = chapter.figure_c_claims(alphas, priors, 0.55)
    assert not list(wrong.values())[2]
    with pytest.raises(ValueError, match="both sides"):
        chapter.figure_c_claims(alphas, [0.6, 2 / 3], GAMMA_STAR)
    with pytest.raises(ValueError, match="alpha_grid"):
        chapter.figure_c_claims(alphas[:1], priors, GAMMA_STAR)


def test_discussion_claims_and_numbers(monkeypatch):
    claims, quoted = chapter.discussion_claims(np.linspace(0, 1, 11), budget=0.2)
    assert all(claims.values())
    assert float(quoted.ce) > float(quoted.als_1) > float(quoted.bayes)
    with pytest.raises(ValueError, match="alpha_grid"):
        chapter.discussion_claims(np.linspace(0.1, 1, 5))
    # Were cross-entropy's boundary the Bayes boundary, CE would be no better than Bayes.
    monkeypatch.setattr(toy, "ce_bias", lambda gamma: 0.0)
    broken, _ = chapter.discussion_claims(np.linspace(0, 1, 11), budget=0.2)
    assert not list(broken.values())[0] and not list(broken.values())[-1]


def test_figures_draw_and_figure_a_reacts_to_its_sliders():
    assert chapter.draw_figure_b((0.5, 2 / 3), (0.0, 1.0)).axes
    assert chapter.draw_heatmap(0.6, np.linspace(0, 1, 3), np.linspace(0, 1, 4)).axes
    assert chapter.draw_figure_c(np.linspace(0, 1, 3), (0.5, 2 / 3)).axes
    figure = chapter.figure_a(0.5, 0.2, 2 / 3, panel_alphas=(0.0,), panel_eps=(0.1,))
    before = figure.redraw()
    assert figure.set(alpha=1.0) != before
    with pytest.raises(ValueError, match="gamma"):
        chapter.figure_a(0.5, 0.2, 0.9)


def _altered(facts, index, **changes):
    return [SimpleNamespace(**{**vars(f), **changes}) if i == index else f
            for i, f in enumerate(facts)]


@pytest.mark.parametrize("claim, index, change", [
    (0, 3, lambda f: {"all_above": np.zeros_like(f.all_above)}),   # ALS below Bayes at 2/3
    (2, 0, lambda f: {"bayes": f.bayes * 0}),                         # Bayes not the most accurate
    (4, 1, lambda f: {"ce_top": np.zeros_like(f.ce_top)}),           # CE not on top for γ > γ*
    (5, 0, lambda f: {"als": {a: f.als[0.0] for a in f.als}}),        # no ALS curve above CE
])
def test_each_figure_b_claim_can_fail(claim, index, change):
    facts = [chapter.panel_facts(g) for g in chapter.FIGURE_B_GAMMAS]
    claims = chapter.figure_b_claims(_altered(facts, index, **change(facts[index])), GAMMA_STAR)
    assert not list(claims.values())[claim]


def test_figure_b_claims_refuse_unmeasured_crossings():
    facts = [chapter.panel_facts(g) for g in chapter.FIGURE_B_GAMMAS]
    with pytest.raises(ValueError, match="not measured"):
        chapter.figure_b_claims(_altered(facts, 1, overtakes=float("nan")), GAMMA_STAR)


@pytest.mark.parametrize("bias, failing", [
    (lambda alpha, gamma: -np.asarray(alpha, float) - 0.1, 0),  # the boundary crosses Bayes
    (lambda alpha, gamma: np.asarray(alpha, float) * 0 + 0.5, 1),  # b_α does not move
])
def test_figure_c_claims_fail_for_a_wrong_minimiser(monkeypatch, bias, failing):
    monkeypatch.setattr(toy, "als_bias", bias)
    claims = chapter.figure_c_claims(np.linspace(0, 1, 11), [0.5, 0.52, 0.6, 2 / 3], GAMMA_STAR)
    assert not list(claims.values())[failing]


@pytest.mark.parametrize("name, replacement, failing", [
    ("squeeze_limit_bias", lambda gamma: 0.1, 1),
    ("bayes_accuracy", lambda eps, gamma: np.asarray(eps) * 0 + 0.5, 2),
    ("als_bias", lambda alpha, gamma: 0.5 * np.asarray(alpha, float), 3),
])
def test_each_discussion_claim_can_fail(monkeypatch, name, replacement, failing):
    monkeypatch.setattr(toy, name, replacement)
    claims, _ = chapter.discussion_claims(np.linspace(0, 1, 11), budget=0.2)
    assert not list(claims.values())[failing]
