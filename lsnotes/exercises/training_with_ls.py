"""Checkers for the exercises of the chapter ``training_with_ls``."""

from __future__ import annotations

import math

import sympy as sp
import torch
import torch.nn.functional as F
from scipy import optimize

from .. import attacks, losses
from .cases import compare, compare_number, images, labels, sympy_spot_checks, tiny_model
from .core import as_number, as_sympy, exercise


def _loss_floor_reference():
    alpha, num_classes = sp.symbols("alpha K", positive=True)
    q_true, q_wrong = 1 - alpha + alpha / num_classes, alpha / num_classes
    floor = -q_true * sp.log(q_true) - (num_classes - 1) * q_wrong * sp.log(q_wrong)
    return alpha, num_classes, q_true, q_wrong, floor


@exercise("training_with_ls-loss_floor", "sympy",
          "the smallest value the Szegedy-smoothed loss can take, in alpha and K")
def check_loss_floor(answer) -> int:
    expr = as_sympy(answer)
    alpha, num_classes, q_true, q_wrong, reference = _loss_floor_reference()
    points = [dict(alpha=a, K=k) for a, k in ((0.1, 10), (0.5, 2), (0.9, 100), (0.3, 3))]
    for p in points:  # the package's loss at its equilibrium margin (guards this checker)
        z = torch.zeros(1, p["K"], dtype=torch.float64)
        z[0, 0] = losses.equilibrium_margin(p["alpha"], p["K"])
        at_optimum = float(losses.smoothed_cross_entropy(z, torch.zeros(1, dtype=torch.long),
                                                         "szegedy", p["alpha"]))
        assert abs(at_optimum - float(reference.subs({alpha: p["alpha"], num_classes: p["K"]}))) < 1e-9
    return sympy_spot_checks(expr, reference, (alpha, num_classes), points, "your expression", [
        (-reference, "check the sign: a cross-entropy is never negative"),
        (-q_true * sp.log(q_true) - q_wrong * sp.log(q_wrong),
         "there are K − 1 wrong classes, each with α/K"),
        (-(1 - alpha) * sp.log(1 - alpha) - alpha * sp.log(alpha),
         "that is the entropy of (1 − α, α); Szegedy's label is 1 − α + α/K on y and α/K on "
         "each of the K − 1 others")],
        "at the optimum softmax(z) = q, so the loss is −Σ_k q_k log q_k")


def _fit_temperature(z, y, invert=False):
    def nll(log_t):
        t = math.exp(log_t)
        return float(F.cross_entropy(z * t if invert else z / t, y))
    return math.exp(optimize.minimize_scalar(nll, bounds=(-5, 5), method="bounded",
                                             options=dict(xatol=1e-8)).x)


@exercise("training_with_ls-temperature", "function",
          "fit_temperature(logits, labels): the T > 0 minimising the cross-entropy of logits/T")
def check_temperature(answer) -> int:
    cases = [("over-confident logits, K = 10", 10, 4.0), ("under-confident logits, K = 5", 5, 0.3),
             ("K = 2", 2, 2.0)]
    for seed, (case, num_classes, scale) in enumerate(cases):
        gen = torch.Generator().manual_seed(300 + seed)
        base = 2 * torch.randn(400, num_classes, generator=gen, dtype=torch.float64)
        y = torch.multinomial(torch.softmax(base, 1), 1, generator=gen).squeeze(1)
        z = scale * base
        reference = _fit_temperature(z, y)
        value = as_number(answer(case, z.clone(), y.clone()), case)
        compare_number(value, reference, case, 1e-2 * reference, [
            (1 / reference, "T divides the logits: you returned the factor that multiplies them")],
            "minimise the mean cross-entropy of logits / T over T > 0 (e.g. "
            "scipy.optimize.minimize_scalar on log T)")
    return len(cases)


def _distance(model, x, y, norm):
    x = x.clone().requires_grad_(True)
    logits = model(x)
    gap = attacks.margin(logits, y) if norm != "all" else \
        logits.gather(1, y[:, None]).squeeze(1) - logits.max(1).values
    (grad,) = torch.autograd.grad(gap.sum(), x)
    p = {"l2": 2, "l1": 1, "all": 2}[norm]
    return (gap / grad.flatten(1).norm(p=p, dim=1)).detach()


@exercise("training_with_ls-l2_distance", "function",
          "linearised_l2_distance(model, x, y): margin over the L2 norm of its input gradient")
def check_l2_distance(answer) -> int:
    cases = [("K = 3, random images", 3, False), ("K = 2", 2, False),
             ("pixels at 0 and 1, K = 10", 10, True)]
    for seed, (case, num_classes, saturated) in enumerate(cases):
        model = tiny_model(num_classes, 400 + seed)
        x, y = images(7, 400 + seed, saturated=saturated), labels(7, num_classes, 400 + seed)
        compare(answer(case, model, x.clone(), y.clone()), _distance(model, x, y, "l2"), case, [
            (_distance(model, x, y, "l1"), "an L2 attacker meets the gradient through the L2 "
                                           "norm (the L1 norm is the L∞ attacker's)"),
            (_distance(model, x, y, "all"), "the margin compares z_y with the largest *wrong* "
                                            "logit, not the largest of all")],
            "per example: g(x) / ‖∇ₓ g(x)‖₂ with g = z_y − max_{k≠y} z_k", tol=1e-4)
    return len(cases)
