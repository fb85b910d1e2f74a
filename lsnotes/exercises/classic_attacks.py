"""Checkers for the exercises of the chapter ``classic_attacks``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import attacks
from .cases import compare, images, labels, tiny_model
from .core import exercise


def _input_gradient(model, x, y):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    return grad


NO_SIGN_HINT = "use the sign of the gradient: under an L∞ budget every pixel moves by ε"


@exercise("classic_attacks-fgsm", "function",
          "fgsm(model, x, y, eps): the fast gradient sign method, from scratch")
def check_fgsm(answer) -> int:
    cases = [("K = 10, ε = 0.1", 10, 0.1, False), ("K = 2, ε = 0.05", 2, 0.05, False),
             ("pixels at 0 and 1, ε = 0.3", 5, 0.3, True), ("ε = 0", 3, 0.0, False)]
    for seed, (case, num_classes, eps, saturated) in enumerate(cases):
        model = tiny_model(num_classes, 500 + seed)
        x, y = images(16, 500 + seed, saturated=saturated), labels(16, num_classes, 500 + seed)
        reference = attacks.fgsm(model, x, y, eps)
        grad = _input_gradient(model, x, y)
        compare(answer(case, model, x.clone(), y.clone(), eps), reference, case, [
            (x + eps * grad.sign(), "clip to [0, 1]: the adversarial image must stay an image"),
            ((x - eps * grad.sign()).clamp(0, 1), "gradient sign: FGSM *ascends* the loss, "
                                                  "it adds ε·sign(∇ₓ loss)"),
            ((x + eps * grad).clamp(0, 1), NO_SIGN_HINT),
            ((x + eps * grad / len(x)).clamp(0, 1), NO_SIGN_HINT)],  # the mean's gradient
            "one step of ε·sign(∇ₓ CE(model(x), y)) from x, then clip to [0, 1]", tol=1e-6)
    return len(cases)


def _linear_distance(weight, bias, x, y, classes="all", norm_of="difference"):
    z = x @ weight.T + bias
    gaps = z.gather(1, y[:, None]) - z                     # N×K: z_y − z_k
    if norm_of == "difference":
        norms = (weight[y][:, None, :] - weight[None]).norm(dim=2)
    else:
        norms = weight.norm(dim=1)[y][:, None].expand_as(gaps)
    distance = (gaps / norms.clamp_min(1e-300)).scatter(1, y[:, None], float("inf"))
    if classes == "runner-up":
        runner_up = z.scatter(1, y[:, None], -float("inf")).argmax(1)
        return distance.gather(1, runner_up[:, None]).squeeze(1)
    return distance.min(1).values


@exercise("classic_attacks-linear_distance", "function",
          "linear_distance(weight, bias, x, y): the L2 distance to the nearest decision boundary "
          "of a linear classifier")
def check_linear_distance(answer) -> int:
    cases = [("K = 6, d = 20", 6, 20), ("K = 2, d = 5", 2, 5), ("K = 10, d = 3", 10, 3)]
    for seed, (case, num_classes, dim) in enumerate(cases):
        gen = torch.Generator().manual_seed(600 + seed)
        weight = torch.randn(num_classes, dim, generator=gen, dtype=torch.float64)
        weight[0] *= 5  # uneven row norms: the runner-up need not be the nearest boundary
        bias = torch.randn(num_classes, generator=gen, dtype=torch.float64)
        x = torch.randn(12, dim, generator=gen, dtype=torch.float64)
        y = (x @ weight.T + bias).argmax(1)  # correctly classified points
        reference = _linear_distance(weight, bias, x, y)
        compare(answer(case, weight.clone(), bias.clone(), x.clone(), y.clone()), reference, case, [
            (_linear_distance(weight, bias, x, y, classes="runner-up"),
             "the nearest boundary need not be the runner-up class's: take the minimum over "
             "every wrong class k"),
            (_linear_distance(weight, bias, x, y, norm_of="true row"),
             "the boundary between y and k is (w_y − w_k)·x + b_y − b_k = 0: divide by the norm "
             "of the difference of the rows")],
            "per example: min over k ≠ y of (z_y − z_k) / ‖w_y − w_k‖₂")
    return len(cases)
