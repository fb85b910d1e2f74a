"""Checkers for the exercises of the chapter ``gradient_masking``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import attacks
from .cases import compare, compare_number
from .core import as_number, exercise


@exercise("gradient_masking-margin_loss", "function",
          "cw_loss(logits, y): Carlini and Wagner's margin loss, per example")
def check_margin_loss(answer) -> int:
    cases = [("K = 10", 10, False), ("K = 2", 2, False), ("tied wrong logits", 4, True)]
    for seed, (case, num_classes, tied) in enumerate(cases):
        gen = torch.Generator().manual_seed(700 + seed)
        z = 2 * torch.randn(9, num_classes, generator=gen, dtype=torch.float64)
        y = torch.randint(num_classes, (9,), generator=gen)
        if tied:
            z = z.round()
        reference = attacks.margin_loss(z, y)
        true = z.gather(1, y[:, None]).squeeze(1)
        compare(answer(case, z.clone(), y.clone()), reference, case, [
            (z.max(1).values - true, "exclude the true class from the max: otherwise the loss "
                                     "is never above 0 and the attack cannot tell how far it is"),
            (-reference, "check the sign: an attack maximises this loss, so it must grow as "
                         "the example becomes misclassified")],
            "max over k ≠ y of z_k, minus z_y")
    return len(cases)


def _saturation_margin(dtype, num_classes=10, step=0.01, top=60.0):
    """The smallest margin m on a grid from which CE's gradient in z_y is exactly 0 (and stays)."""
    margins = torch.arange(0.0, top, step, dtype=torch.float64)
    z = torch.zeros(len(margins), num_classes, dtype=dtype)
    z[:, 0] = margins.to(dtype)
    z.requires_grad_(True)
    F.cross_entropy(z, torch.zeros(len(margins), dtype=torch.long), reduction="sum").backward()
    alive = (z.grad[:, 0] != 0).nonzero()
    return float(margins[int(alive.max()) + 1])


@exercise("gradient_masking-saturation", "number",
          "the margin m (K = 10, z_y = m, other logits 0) from which float32 cross-entropy has "
          "an exactly zero gradient")
def check_saturation(answer) -> int:
    value = as_number(answer)
    compare_number(value, _saturation_margin(torch.float32), "K = 10, float32", 0.1, [
        (_saturation_margin(torch.float64), "that is float64's threshold: measure with float32 "
                                            "logits, torch's default")],
        "scan m with torch.nn.functional.cross_entropy on float32 logits and find where "
        "z.grad[:, y] becomes exactly 0")
    return 1


@exercise("gradient_masking-worst_case", "function",
          "worst_case_accuracy(correct): robust accuracy over several attacks, per example")
def check_worst_case(answer) -> int:
    cases = [("5 attacks, 40 examples", 5, 40, 0.8), ("one attack", 1, 30, 0.5),
             ("every attack fails", 3, 20, 1.0)]
    for seed, (case, num_attacks, n, survive) in enumerate(cases):
        gen = torch.Generator().manual_seed(800 + seed)
        correct = torch.rand(num_attacks, n, generator=gen) < survive
        reference = correct.all(0).double().mean()
        per_attack = correct.double().mean(1)
        compare(answer(case, correct.clone()), reference, case, [
            (per_attack.min(), "the worst case is per example: an example counts only if it "
                               "survives every attack; the weakest attack's accuracy "
                               "overestimates it"),
            (per_attack.mean(), "an average over attacks is not a worst case")],
            "the fraction of examples (columns) that every attack (row) leaves correct")
    return len(cases)
