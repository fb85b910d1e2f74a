"""Checkers for the exercises of the chapter ``adversarial_ls``."""

from __future__ import annotations

import sympy as sp
import torch
import torch.nn.functional as F

from .. import losses
from .cases import compare, sympy_spot_checks
from .core import as_sympy, exercise


def _label_with_mass_on(index, y, num_classes, alpha):
    return (1 - alpha) * F.one_hot(y, num_classes).double() + \
        alpha * F.one_hot(index, num_classes).double()


@exercise("adversarial_ls-worst_label", "function",
          "worst_label(z, y, alpha): the label in the TV ball that maximises the cross-entropy")
def check_worst_label(answer) -> int:
    cases = [("K = 6, α = 0.2", 6, 0.2, False), ("K = 2, α = 0.5", 2, 0.5, False),
             ("α = 1", 4, 1.0, False), ("the true class has the smallest logit", 5, 0.3, True)]
    for seed, (case, num_classes, alpha, true_is_min) in enumerate(cases):
        gen = torch.Generator().manual_seed(200 + seed)
        z = torch.randn(8, num_classes, generator=gen, dtype=torch.float64)
        y = torch.randint(num_classes, (8,), generator=gen)
        if true_is_min:
            z.scatter_(1, y[:, None], z.min(1, keepdim=True).values - 1.0)
        reference = losses.smoothed_labels(z, y, "als", alpha)
        wrong_min = z.scatter(1, y[:, None], float("inf")).argmin(1)
        compare(answer(case, z.clone(), y.clone(), alpha), reference, case, [
            (_label_with_mass_on(z.argmax(1), y, num_classes, alpha),
             "the worst label puts its α on the class the model believes in least: the "
             "smallest logit, not the largest"),
            (_label_with_mass_on(wrong_min, y, num_classes, alpha),
             "the vertex is the smallest logit over all K classes: when the true class has "
             "it, the mass stays on the true class"),
            (reference + alpha * F.one_hot(y, num_classes).double(),
             "a label sums to 1: the true class keeps 1 − α, not 1")],
            "q = (1 − α) δ_y + α δ_k for the k that maximises −log softmax(z)_k")
    return len(cases)


@exercise("adversarial_ls-two_class_penalty", "sympy",
          "the penalty SLS, ALS and SBLS all add for K = 2 (true class 0, z0 > z1)")
def check_two_class_penalty(answer) -> int:
    expr = as_sympy(answer)
    alpha, z0, z1 = sp.symbols("alpha z0 z1", real=True)
    reference = losses.induced_penalty("sls").sympy_penalty([z0, z1], 0, alpha)
    points = [dict(alpha=0.3, z0=1.5, z1=-0.5), dict(alpha=0.8, z0=4.0, z1=3.0),
              dict(alpha=1.0, z0=0.25, z1=-2.0)]
    for method in ("als", "sbls"):  # the three coincide at these points (guards this checker)
        other = losses.induced_penalty(method).sympy_penalty([z0, z1], 0, alpha)
        assert all(abs(float((other - reference).subs(
            {alpha: p["alpha"], z0: p["z0"], z1: p["z1"]}))) < 1e-12 for p in points)
    return sympy_spot_checks(expr, reference, (alpha, z0, z1), points, "your expression", [
        (reference / 2, "that is Szegedy's label: uniform over both classes puts α/2 back on "
                        "the true class"),
        (-reference, "check the sign: the penalty grows with the margin z0 − z1")],
        "with two classes every method puts its α on the one wrong class: apply Theorem 1")
