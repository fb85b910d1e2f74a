"""Checkers for the exercises of the chapter ``toy_problem``."""

from __future__ import annotations

import sympy as sp
from scipy import optimize

from .. import toy
from .cases import compare_number, sympy_spot_checks
from .core import as_number, as_sympy, exercise

CLIP_HINT = ("clip the probabilities: P(X > t) is 1 for t ≤ −1 and 0 for t ≥ 1, and the −1 "
             "class lives on [−1, 0] only")


@exercise("toy_problem-accuracy", "function",
          "toy_accuracy(b, eps, gamma): the accuracy under an ε-attack of the boundary −b")
def check_accuracy(answer) -> int:
    cases = [
        ("ε = 0, b = −0.3, γ = 2/3", -0.3, 0.0, 2 / 3,
         "without an attack acc = γ P₊(X > −b) + (1 − γ) P₋(X < −b): check the two CDFs"),
        ("γ = 1/2, b = 0.1, ε = 0.3", 0.1, 0.3, 0.5,
         "the +1 points survive if X > −b + ε and the −1 points if X < −b − ε; weight them "
         "by γ and 1 − γ"),
        ("ε = 0.1, b = 0.4 (boundary left of 0)", 0.4, 0.1, 2 / 3,
         "for t < 0 the +1 mass above t is the whole right half of the triangle plus "
         "part of the left half"),
        ("ε = 0.9, b = −0.2", -0.2, 0.9, 2 / 3, CLIP_HINT),
        ("boundary outside the support, b = 1.5, ε = 0.2", 1.5, 0.2, 0.5, CLIP_HINT),
    ]
    for case, b, eps, gamma, hint in cases:
        value = as_number(answer(case, b, eps, gamma), case)
        compare_number(value, float(toy.accuracy(b, eps, gamma)), case, 1e-6, (), hint)
    return len(cases)


def _sls_term_reference():
    """α E[Y(X + b)] by integrating the two class densities (Y = ±1)."""
    alpha, gamma, b, x = sp.symbols("alpha gamma b x", real=True)
    plus = sp.integrate((x + b) * (1 + x), (x, -1, 0)) + sp.integrate((x + b) * (1 - x), (x, 0, 1))
    minus = sp.integrate((x + b) * 2 * (1 + x), (x, -1, 0))
    return alpha, gamma, b, sp.expand(alpha * (gamma * plus - (1 - gamma) * minus))


@exercise("toy_problem-sls_term", "sympy",
          "the term SLS adds to the cross-entropy risk of the toy problem, in alpha, gamma, b")
def check_sls_term(answer) -> int:
    expr = as_sympy(answer)
    alpha, gamma, b, reference = _sls_term_reference()
    points = [dict(alpha=a, gamma=g, b=v) for a, g, v in
              ((0.3, 2 / 3, -0.2), (0.5, 0.5, 0.4), (1.0, 0.6, 1.3), (0.1, 0.55, -0.9))]
    for p in points:  # the package's risks differ by the same term (guards this checker)
        gap = toy.sls_risk(p["b"], p["alpha"], p["gamma"]) - toy.ce_risk(p["b"], p["gamma"])
        assert abs(gap - float(reference.subs({alpha: p["alpha"], gamma: p["gamma"], b: p["b"]}))) < 1e-9
    return sympy_spot_checks(expr, reference, (alpha, gamma, b), points, "your expression", [
        (-reference, "check the sign: SLS moves α onto the wrong logit, which adds α Y(X + b)"),
        (alpha * (2 * gamma - 1) * b, "E[X | Y = −1] is −1/3, not 0: the −1 triangle sits on "
                                      "[−1, 0]")],
        "with two classes SLS adds α (z_y − z_other) = α Y (X + b); take its expectation")


def _half_accuracy_eps(b):
    clean = float(toy.accuracy(b, 0.0))
    return optimize.brentq(lambda e: float(toy.accuracy(b, e)) - clean / 2, 0.0, 1.0, xtol=1e-12)


@exercise("toy_problem-half_accuracy_eps", "number",
          "the ε at which the ALS boundary (α = 0.5, γ = 2/3) keeps half its clean accuracy")
def check_half_accuracy_eps(answer) -> int:
    value = as_number(answer)
    reference = _half_accuracy_eps(float(toy.als_bias(0.5)))
    compare_number(value, reference, "ALS, α = 0.5, γ = 2/3", 1e-3, [
        (_half_accuracy_eps(toy.ce_bias()), "that is the cross-entropy boundary: use b_α of "
                                            "ALS at α = 0.5 (lsnotes.toy.als_bias)"),
        (_half_accuracy_eps(-toy.bayes_boundary()), "that is the Bayes boundary: use b_α of "
                                                    "ALS at α = 0.5 (lsnotes.toy.als_bias)")],
        "solve acc(b_α, ε) = acc(b_α, 0)/2 for ε in [0, 1] (e.g. scipy.optimize.brentq)")
    return 1
