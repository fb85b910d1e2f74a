"""Checkers for the exercises of the chapter ``logit_squeezing``."""

from __future__ import annotations

import math

import sympy as sp
from scipy import optimize

from .. import losses
from .cases import compare_number, sympy_spot_checks
from .core import CaseFailed, as_number, as_sympy, exercise


@exercise("logit_squeezing-large_K", "sympy",
          "g(alpha) with m*_Szegedy = log K + g(alpha) + o(1) as K → ∞")
def check_large_k(answer) -> int:
    expr = as_sympy(answer)
    alpha = sp.symbols("alpha", positive=True)
    if any(s.name == "K" for s in expr.free_symbols):
        raise CaseFailed("your expression", "g depends on α only: the K-dependence is the "
                                            "log K in front of it")
    reference = sp.log((1 - alpha) / alpha)
    points = [dict(alpha=a) for a in (0.1, 0.5, 0.9, 0.01)]
    for point in points:  # the limit of the package's m* − log K (guards this checker)
        big = 1e12
        limit = losses.equilibrium_margin(point["alpha"], 10**12) - math.log(big)
        assert abs(limit - float(reference.subs(alpha, point["alpha"]))) < 1e-6
    return sympy_spot_checks(expr, reference, (alpha,), points, "your expression", [
        (-reference, "check the sign: for small α the margin is large, so g(α) > 0 there"),
        (sp.log(1 - alpha), "a factor 1/α is missing: keep the whole K(1 − α)/α"),
        (sp.log(1 / alpha), "a factor 1 − α is missing: keep the whole K(1 − α)/α")],
        "for large K, 1 + K(1 − α)/α ≈ K(1 − α)/α")


def _penalty_margin(beta, num_classes, factor=2.0, wrong=None):
    """Root of the derivative of log(1 + (K−1)e^{−m}) + β m² (two-level logits)."""
    wrong = num_classes - 1 if wrong is None else wrong

    def slope(m):
        return factor * beta * m - wrong / (math.exp(m) + wrong)
    return optimize.brentq(slope, 0.0, 100.0, xtol=1e-14)


@exercise("logit_squeezing-logit_penalty", "function",
          "penalty_margin(beta, K): the equilibrium margin of CE + β m² in the two-level model")
def check_logit_penalty(answer) -> int:
    cases = [("β = 0.01, K = 10", 0.01, 10), ("β = 0.1, K = 2", 0.1, 2),
             ("β = 1, K = 100", 1.0, 100)]
    for case, beta, num_classes in cases:
        reference = _penalty_margin(beta, num_classes)
        value = as_number(answer(case, beta, num_classes), case)
        compare_number(value, reference, case, 1e-4 * (1 + reference), [
            (_penalty_margin(beta, num_classes, factor=1.0),
             "a factor 2 is missing: the derivative of β m² is 2βm"),
            (_penalty_margin(beta, num_classes, wrong=num_classes),
             "there are K − 1 wrong logits at 0, not K")],
            "minimise log(1 + (K − 1)e^{−m}) + β m² over m (set its derivative to 0)")
    return len(cases)
