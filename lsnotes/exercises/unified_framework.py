"""Checkers for the exercises of the chapter ``unified_framework``."""

from __future__ import annotations

import sympy as sp
import torch

from .. import losses
from .cases import compare, sympy_spot_checks
from .core import exercise


@exercise("unified_framework-sls_gradient", "function",
          "sls_gradient(z, y, alpha): the gradient of the SLS-smoothed cross-entropy in the logits")
def check_sls_gradient(answer) -> int:
    cases = [("K = 5, α = 0.3", 5, 0.3), ("K = 2, α = 0.4", 2, 0.4),
             ("α = 0", 4, 0.0), ("α = 1", 3, 1.0)]
    for seed, (case, num_classes, alpha) in enumerate(cases):
        gen = torch.Generator().manual_seed(100 + seed)
        z = 3 * torch.randn(6, num_classes, generator=gen, dtype=torch.float64)
        y = torch.randint(num_classes, (6,), generator=gen)
        leaf = z.clone().requires_grad_(True)
        losses.smoothed_cross_entropy(leaf, y, "sls", alpha, reduction="sum").backward()
        p = torch.softmax(z, 1)
        one_hot = torch.nn.functional.one_hot(y, num_classes).double()
        szegedy = losses.smoothed_labels(z, y, "szegedy", alpha)
        q = losses.smoothed_labels(z, y, "sls", alpha)
        compare(answer(case, z.clone(), y.clone(), alpha), leaf.grad, case, [
            (p - szegedy, "that is Szegedy's label (α spread over all K classes); SLS spreads "
                          "α over the K−1 wrong classes only"),
            (q - p, "check the sign: the loss falls as z_y rises while p_y < q_y, so the "
                    "y-th entry must be negative there"),
            (p - one_hot, "you dropped the smoothing: the target is the smoothed label q, "
                          "not the one-hot label")],
            "differentiate −Σ_k q_k log softmax(z)_k per example (no mean over the batch)")
    return len(cases)


def _sls_margin_reference():
    alpha, num_classes = sp.symbols("alpha K", positive=True)
    return alpha, num_classes, sp.log((num_classes - 1) * (1 - alpha) / alpha)


@exercise("unified_framework-sls_margin", "sympy",
          "the logit gap z_y − z_k at the minimum of the SLS-smoothed loss, in alpha and K")
def check_sls_margin(answer) -> int:
    from .core import as_sympy

    expr = as_sympy(answer)
    alpha, num_classes, reference = _sls_margin_reference()
    points = [dict(alpha=a, K=k) for a, k in ((0.1, 10), (0.3, 2), (0.6, 100), (0.05, 3))]
    for point in points:  # the reference agrees with the package (guards this checker)
        value = float(reference.subs({alpha: point["alpha"], num_classes: point["K"]}))
        assert abs(value - losses.equilibrium_margin(point["alpha"], point["K"], "sls")) < 1e-9
    return sympy_spot_checks(expr, reference, (alpha, num_classes), points, "your expression", [
        (sp.log(1 + num_classes * (1 - alpha) / alpha),
         "that is Szegedy's margin (α spread over all K); SLS puts α/(K−1) on each wrong class"),
        (sp.log((1 - alpha) / alpha), "a factor K−1 is missing: the K−1 wrong classes share "
                                      "the wrong-class mass in the softmax's denominator"),
        (-reference, "check the sign: the gap is z_y − z_k, positive for small α")],
        "at the minimum softmax(z) = q: solve softmax(z)_y = 1 − α for the gap")
