"""What the chapter ``toy_problem`` checks and draws, written once and tested.

Everything here reads the exact solution in :mod:`lsnotes.toy`; nothing is sampled. The chapter
calls each function in one visible line:

- :func:`bayes_claims`: the Bayes classifier of ``lsnotes.toy`` against its posterior;
- :func:`figure_a`: class densities, Bayes and ALS boundaries, the attacked band (sliders);
- :func:`adversarial_curves`, :func:`draw_figure_b`, :func:`panel_facts`,
  :func:`figure_b_table`, :func:`figure_b_claims`: adversarial accuracy against ε (Figure B);
- :func:`draw_heatmap`, :func:`draw_figure_c`, :func:`figure_c_claims`,
  :func:`discussion_claims`: the boundary ALS learns, and what it buys, against α.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from lsnotes import checks, plots, present, toy
from lsnotes import claims as C

TWO_THIRDS = 2.0 / 3.0
#: α drawn in Figure B, and the γ of its panels.
FIGURE_B_ALPHAS = (0.0, 0.1, 0.5, 1.0)
FIGURE_B_GAMMAS = (0.5, 0.55, 0.6, TWO_THIRDS)
#: ε on which Figure B and its facts are computed: [0, 1) (every curve is 0 at ε = 1).
EPS_FINE = np.linspace(0, 1, 1001)[:-1]
_PLUS, _MINUS = "#1f77b4", "#ff7f0e"  # class +1, class −1


def _gammas(name: str, gammas) -> list[float]:
    values = [checks.number_in(f"{name} entry", g, *toy.GAMMA_RANGE) for g in gammas]
    if not values:
        raise ValueError(f"{name} must hold at least one prior γ in {toy.GAMMA_RANGE}")
    return values


def bayes_claims(gamma_grid) -> dict[str, C.Check]:
    """Four checks of ``toy``'s Bayes classifier, each holding only if it holds at every γ of
    ``gamma_grid``: the posterior on [−1, 0]; ``bayes_boundary`` is where the posterior crosses
    1/2 (at 1999 points inside (−1, 1)); no boundary among those points is more accurate on clean
    data; ``bayes_accuracy`` matches (γ/2 + 1 − γ)(1 − ε)² on ε = 0, 0.1, …, 1."""
    gammas = _gammas("gamma_grid", gamma_grid)
    x_left = np.linspace(-1, 0, 201)[1:]  # (-1, 0]: both densities > 0
    x_all = np.linspace(-1, 1, 2001)[1:-1]  # inside the support
    eps_grid = np.linspace(0, 1, 11)
    rows = []
    for g in gammas:
        boundary = toy.bayes_boundary(g)
        # Predict +1 where the posterior exceeds 1/2 (a tie goes to −1).
        by_posterior = np.where(toy.posterior(x_all, g) > 0.5 + 1e-12, 1, -1)
        rows.append((
            np.allclose(toy.posterior(x_left, g), g / (g + 2 * (1 - g))),
            np.array_equal(by_posterior, toy.predict(x_all, -boundary)),
            toy.accuracy(-x_all, 0.0, g).max() <= toy.bayes_accuracy(0.0, g) + 1e-12,
            np.allclose(toy.bayes_accuracy(eps_grid, g), (g / 2 + 1 - g) * (1 - eps_grid) ** 2)))
    statements = (
        "on [−1, 0] the posterior of +1 is γ / (γ + 2(1 − γ))",
        "predicting +1 where the posterior exceeds 1/2 is toy.predict at the boundary "
        "toy.bayes_boundary(γ), at 1999 points inside (−1, 1)",
        "no boundary among those 1999 is more accurate on clean data",
        "toy.bayes_accuracy(ε, γ) = (γ/2 + 1 − γ)(1 − ε)², ε = 0, 0.1, …, 1",
    )
    return {s: C.every(column) for s, column in zip(statements, zip(*rows))}


# ----------------------------------------------------------------------------- Figure A

def draw_setup(ax, alpha: float, eps: float, gamma: float, legend: bool = True) -> None:
    """Both class densities times their priors, the Bayes boundary (dashed), the ALS boundary
    −b_α (red), and shaded the points an attack of budget ``eps`` flips."""
    xs = np.linspace(-1.2, 1.2, 481)
    plus = gamma * toy.class_density(xs, +1)
    minus = (1 - gamma) * toy.class_density(xs, -1)
    ax.plot(xs, plus, color=_PLUS, label="γ·f₊ (class +1)")
    ax.plot(xs, minus, color=_MINUS, label="(1−γ)·f₋ (class −1)")
    boundary = -toy.als_bias(alpha, gamma)
    ax.axvline(toy.bayes_boundary(gamma), color=plots.METHOD_COLORS["bayes"], ls="--",
               label="Bayes boundary")
    ax.axvline(boundary, color=plots.METHOD_COLORS["als"], label="ALS boundary")
    # Correct now, wrong after the attack: within eps of the boundary on the correct side.
    ax.fill_between(xs, 0, plus, where=(xs > boundary) & (xs <= boundary + eps),
                    color=_PLUS, alpha=0.35, label="flipped by the attack")
    ax.fill_between(xs, 0, minus, where=(xs < boundary) & (xs >= boundary - eps),
                    color=_MINUS, alpha=0.35)
    ax.set_xlabel("x (input)")
    ax.set_ylabel("prior × density")
    if legend:
        ax.legend(loc="upper right", fontsize=8)


def figure_a(alpha: float, eps: float, gamma: float,
             panel_alphas: Sequence[float] = (0.0, 0.5, 1.0),
             panel_eps: Sequence[float] = (0.1, 0.3)):
    """Figure A with sliders for α, ε and γ (JupyterLab) and, for the built book, one panel per
    (α, ε): α across, ε down, at ``gamma``, with one legend below the panels."""
    from lsnotes import widgets

    alpha = checks.number_in("alpha", alpha, 0.0, 1.0)
    eps = checks.number_in("eps", eps, 0.0, 1.0)
    gamma = checks.number_in("gamma", gamma, *toy.GAMMA_RANGE)
    panels = [(checks.number_in("panel_alphas entry", a, 0.0, 1.0),
               checks.number_in("panel_eps entry", e, 0.0, 1.0))
              for e in panel_eps for a in panel_alphas]
    if not panels:
        raise ValueError("panel_alphas and panel_eps must each hold at least one value")

    def draw(fig, alpha, eps, gamma):
        ax = fig.subplots()
        draw_setup(ax, alpha, eps, gamma)
        als = toy.accuracy(toy.als_bias(alpha, gamma), eps, gamma)
        ax.set_title(f"γ={gamma:.3f}, ε={eps:.2f}: adv. acc. ALS {als:.3f}, "
                     f"Bayes {toy.bayes_accuracy(eps, gamma):.3f}", fontsize=10)

    static = plots.small_multiples(
        panels, lambda ax, v: draw_setup(ax, *v, gamma, legend=False),
        ncols=len(panel_alphas), width=2.6, height=2.3, title_fmt="α = {0[0]:g}, ε = {0[1]:g}")
    for ax in static.axes:
        if ax.get_subplotspec().colspan.start:  # y label on the first column only
            ax.set_ylabel("")
        if not ax.get_subplotspec().is_last_row():
            ax.set_xlabel("")
    handles, labels = static.axes[0].get_legend_handles_labels()
    static.legend(handles, labels, loc="outside lower center", ncols=3)
    return widgets.interactive_figure(
        draw,
        {"alpha": widgets.float_slider("α", 0.0, 1.0, 0.05, alpha),
         "eps": widgets.float_slider("ε", 0.0, 1.0, 0.05, eps),
         "gamma": widgets.float_slider("γ", 0.5, 2 / 3, 1 / 60, gamma)},
        static, caption="Figure A: class densities, Bayes and ALS boundaries, attacked band")


# ----------------------------------------------------------------------------- Figure B

def adversarial_curves(gamma: float, alphas: Sequence[float] = FIGURE_B_ALPHAS,
                       eps=EPS_FINE) -> tuple[np.ndarray, dict[float, np.ndarray]]:
    """(Bayes accuracy on ``eps``, {α: accuracy of the ALS minimiser b_α on ``eps``})."""
    gamma = checks.number_in("gamma", gamma, *toy.GAMMA_RANGE)
    eps = np.asarray(eps, dtype=float)
    curves = {float(a): toy.accuracy(toy.als_bias(a, gamma), eps, gamma) for a in alphas}
    if not curves:
        raise ValueError("alphas must hold at least one α")
    return toy.bayes_accuracy(eps, gamma), curves


def draw_figure_b(gammas: Sequence[float] = FIGURE_B_GAMMAS,
                  alphas: Sequence[float] = FIGURE_B_ALPHAS) -> Figure:
    """Adversarial accuracy against ε: Bayes (dashed) and the ALS minimiser at each α, one panel
    per prior γ, one legend for all."""
    gammas = _gammas("gammas", gammas)

    def draw(ax, g):
        bayes, als = adversarial_curves(g, alphas)
        ax.plot(EPS_FINE, bayes, color="black", ls="--", label="Bayes")
        shades = np.linspace(0.35, 1.0, len(als))
        for (a, curve), shade in zip(als.items(), shades):
            ax.plot(EPS_FINE, curve, color=plots.METHOD_COLORS["als"], alpha=shade,
                    label=f"ALS, α = {a:g}" + (" (= CE)" if a == 0 else ""))
        plots.label_axes(ax, "attack budget ε", "adversarial accuracy")

    fig = plots.small_multiples(gammas, draw, ncols=2, width=3.4, height=2.7,
                                title_fmt="γ = {:.3f}")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3)
    return fig


def runs(mask, eps=EPS_FINE) -> str:
    """The intervals of ``eps`` where ``mask`` holds, as text ("0.10–0.35, 0.50–0.99")."""
    mask = np.asarray(mask, dtype=bool)
    eps = np.asarray(eps, dtype=float)
    if mask.shape != eps.shape or mask.ndim != 1:
        raise ValueError(f"mask must have the shape of eps {eps.shape}; got {mask.shape}")
    if mask.all():
        return "every ε"
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(int), [0]))))
    starts, stops = edges[0::2], edges[1::2] - 1
    return ", ".join(f"{eps[i]:.2f}–{eps[j]:.2f}" for i, j in zip(starts, stops)) or "none"


def panel_facts(gamma: float, alphas: Sequence[float] = FIGURE_B_ALPHAS) -> SimpleNamespace:
    """What one panel of Figure B shows, on :data:`EPS_FINE`: ``bayes`` and ``als`` (the curves),
    ``all_above`` (every ALS curve ≥ Bayes, per ε), ``ce_top`` (α = 0 ≥ every curve, per ε; needs
    0 in ``alphas``), ``overtakes`` (the ε from which every ALS curve stays ≥ Bayes; 1.0 if
    never on the grid)."""
    bayes, als = adversarial_curves(gamma, alphas)
    if 0.0 not in als:
        raise ValueError(f"alphas must include 0 (plain cross-entropy); got {tuple(alphas)}")
    all_above = np.all([c >= bayes - 1e-12 for c in als.values()], axis=0)
    ce_top = np.all([als[0.0] >= c - 1e-12 for c in als.values()], axis=0)
    below = np.flatnonzero(~all_above)
    if not below.size:
        overtakes = 0.0
    elif below[-1] + 1 < EPS_FINE.size:
        overtakes = float(EPS_FINE[below[-1] + 1])
    else:
        overtakes = 1.0  # never on the grid
    return SimpleNamespace(gamma=float(gamma), bayes=bayes, als=als, all_above=all_above,
                           ce_top=ce_top, overtakes=overtakes)


def figure_b_table(facts: Sequence[SimpleNamespace]) -> present.Table:
    """One row per panel: clean accuracies, where ALS overtakes Bayes, where CE is on top."""
    if not facts:
        raise ValueError("facts must hold at least one panel (from panel_facts)")
    return present.Table(
        ["γ", "Bayes, clean", "CE, clean", "every ALS curve ≥ Bayes from ε =",
         "CE (α = 0) the top curve for ε in"],
        [[f"{f.gamma:.3f}", f"{f.bayes[0]:.4f}", f"{f.als[0.0][0]:.4f}", f"{f.overtakes:.3f}",
          runs(f.ce_top)] for f in facts])


def figure_b_claims(facts: Sequence[SimpleNamespace], gamma_star: float) -> dict[str, C.Check]:
    """What Figure B shows, from :func:`panel_facts` of panels in increasing γ that include
    γ = 1/2 and γ = 2/3; ``gamma_star`` is the prior above which CE is most robust."""
    by_gamma = {f.gamma: f for f in facts}
    for needed in (0.5, TWO_THIRDS):
        if needed not in by_gamma:
            raise ValueError(f"facts must include the panel γ = {needed:.3f}; "
                             f"got γ = {sorted(by_gamma)}")
    gammas = sorted(by_gamma)
    below_23 = [g for g in gammas if g < TWO_THIRDS]
    above_star = [g for g in gammas if g > gamma_star]
    if not below_23 or not above_star:
        raise ValueError("facts must include panels below 2/3 and above gamma_star")
    large = EPS_FINE >= 0.5
    top, half = by_gamma[TWO_THIRDS], by_gamma[0.5]
    return {
        "at γ = 2/3, every ALS curve is at or above Bayes at every ε": C.every(top.all_above),
        "at γ = 2/3, α = 0 (plain CE) is the top curve at every ε": C.every(top.ce_top),
        "at every γ < 2/3 drawn, Bayes is more accurate than every ALS boundary on clean data":
            C.every(C.exceeds(by_gamma[g].bayes[0], c[0])
                    for g in below_23 for c in by_gamma[g].als.values()),
        "at every γ drawn, every ALS curve overtakes Bayes before ε = 1, the later the smaller γ":
            C.every(C.below(by_gamma[g].overtakes, 1) for g in gammas)
            and C.strictly_decreasing(by_gamma[g].overtakes for g in gammas),
        "at every γ > $\\gamma^\\star$ drawn, CE is the top curve at every ε ≥ 1/2":
            C.every(C.every(by_gamma[g].ce_top[large]) for g in above_star),
        "at γ = 1/2, some ALS curve is above CE at every ε ≥ 1/2":
            C.every(np.any([c[large] > half.als[0.0][large] + 1e-12
                            for a, c in half.als.items() if a > 0], axis=0)),
    }


# ----------------------------------------------------------------------------- Figure C

def draw_heatmap(gamma: float, alpha_grid=np.linspace(0, 1, 41),
                 eps_grid=np.linspace(0, 1, 51)) -> Figure:
    """Adversarial accuracy of the ALS minimiser over (ε across, α up) at ``gamma``."""
    gamma = checks.number_in("gamma", gamma, *toy.GAMMA_RANGE)
    alpha_grid, eps_grid = np.asarray(alpha_grid, float), np.asarray(eps_grid, float)
    heat = toy.accuracy(toy.als_bias(alpha_grid, gamma)[:, None], eps_grid[None, :], gamma)
    fig, ax = plots.new_figure(width=6.4, height=4.2)
    image = ax.imshow(heat, origin="lower", aspect="auto", cmap="viridis",
                      extent=(eps_grid[0], eps_grid[-1], alpha_grid[0], alpha_grid[-1]))
    fig.colorbar(image, ax=ax, label="adversarial accuracy")
    plots.label_axes(ax, "attack budget ε", "ALS strength α")
    ax.grid(False)
    return fig


def draw_figure_c(alpha_grid, gammas: Sequence[float] = FIGURE_B_GAMMAS) -> Figure:
    """The population minimiser b against α: ALS (solid) and SLS (dotted) for each prior, and
    the Bayes classifier's b = 0 (dashed)."""
    gammas = _gammas("gammas", gammas)
    alpha_grid = np.asarray(alpha_grid, dtype=float)
    fig, ax = plots.new_figure(width=6.4, height=4.0)
    blues = ("#9ecae1", "#6baed6", "#3182bd", "#08519c")
    for g, colour in zip(gammas, blues * len(gammas)):
        ax.plot(alpha_grid, toy.als_bias(alpha_grid, g), color=colour, label=f"ALS, γ={g:.3f}")
        ax.plot(alpha_grid, toy.sls_bias(alpha_grid, g), color=colour, ls=":")
    ax.plot([], [], color="0.4", ls=":", label="SLS (same colours)")
    ax.axhline(-toy.bayes_boundary(gammas[-1]), color="black", ls="--", label="Bayes (b = 0)")
    plots.label_axes(ax, "smoothing strength α", "learned bias b (boundary at x = −b)")
    ax.legend(fontsize=9)
    return fig


def figure_c_claims(alpha_grid, gammas: Sequence[float], gamma_star: float) -> dict[str, C.Check]:
    """How b_α moves with α on either side of ``gamma_star``; ``gammas`` must hold priors on
    both sides of it."""
    alpha_grid = np.asarray(alpha_grid, dtype=float)
    if alpha_grid.ndim != 1 or alpha_grid.size < 2:
        raise ValueError("alpha_grid must hold at least two values of α")
    paths = {g: toy.als_bias(alpha_grid, g) for g in sorted(set(_gammas("gammas", gammas)))}
    towards = [g for g in paths if g > gamma_star]
    away = [g for g in paths if g < gamma_star]
    if not towards or not away:
        raise ValueError(f"gammas must hold priors on both sides of gamma_star {gamma_star:.3f}")
    return {
        "$b_\\alpha > 0$ (the boundary stays left of Bayes) for every α ≤ 1":
            C.every(C.exceeds(p.min(), 0) for p in paths.values()),
        "for γ > $\\gamma^\\star$, $b_\\alpha$ falls steadily as α grows (towards Bayes)":
            C.every(C.strictly_decreasing(paths[g]) for g in towards),
        "for γ < $\\gamma^\\star$, $b_\\alpha$ rises as α grows, staying below the balance point":
            C.every(C.strictly_increasing(paths[g])
                    and C.below(paths[g][-1], toy.squeeze_limit_bias(g)) for g in away),
    }


def discussion_claims(alpha_grid, budget: float = 0.2) -> tuple[dict[str, C.Check], SimpleNamespace]:
    """The claims of the chapter's discussion at γ = 2/3, and the numbers its prose quotes
    (``b_ce``, ``b_als_1``, ``clean`` and the accuracies ``ce``, ``als_1``, ``bayes`` at
    ``budget``, as :class:`lsnotes.present.Text`)."""
    alpha_grid = np.asarray(alpha_grid, dtype=float)
    if alpha_grid.ndim != 1 or alpha_grid.size < 2 or alpha_grid[0] != 0:
        raise ValueError("alpha_grid must start at α = 0 and hold at least two values")
    budget = checks.number_in("budget", budget, 0.0, 1.0, low_open=True)
    g = TWO_THIRDS
    b_ce, b_als_1 = toy.ce_bias(g), toy.als_bias(1.0, g)
    paths = toy.als_bias(alpha_grid, g)
    heat = toy.accuracy(paths[:, None], EPS_FINE[None, 1:], g)
    left_of_bayes = toy.accuracy(np.linspace(0, 1, 101)[1:, None], EPS_FINE[None, :], g)
    at = {"ce": toy.accuracy(b_ce, budget, g), "als_1": toy.accuracy(b_als_1, budget, g),
          "bayes": toy.bayes_accuracy(budget, g)}
    claims = {
        "at γ = 2/3, CE's boundary is further from Bayes than ALS's at every α > 0":
            C.below(paths[1:].max(), b_ce),
        "at γ = 2/3, the ALS penalty's balance point is the Bayes boundary":
            C.within(toy.squeeze_limit_bias(g), 0.0, 1e-12),
        "at γ = 2/3, every ALS boundary has the Bayes clean accuracy":
            C.all_close(toy.accuracy(paths, 0.0, g), toy.bayes_accuracy(0.0, g), atol=1e-8),
        "at γ = 2/3, more α means lower adversarial accuracy at every ε > 0":
            C.at_most(np.diff(heat, axis=0).max(), 1e-12),
        "at γ = 2/3, every boundary in [−1, 0) is at least as accurate as Bayes under every "
        "attack": C.at_least((left_of_bayes - toy.bayes_accuracy(EPS_FINE, g)).min(), -1e-12),
        f"at γ = 2/3 and ε = {budget:g}: CE > ALS (α = 1) > Bayes":
            C.strictly_decreasing([at["ce"], at["als_1"], at["bayes"]]),
    }
    numbers = SimpleNamespace(b_ce=present.fixed(b_ce, 4), b_als_1=present.fixed(b_als_1, 4),
                              clean=present.fixed(toy.bayes_accuracy(0.0, g), 4),
                              **{k: present.fixed(v, 4) for k, v in at.items()})
    return claims, numbers

