"""Checkers for the exercises of the chapter ``evaluation_checklist``."""

from __future__ import annotations

import math

import torch
from scipy import stats

from .cases import compare, compare_number, images
from .core import as_number, exercise


def _examples_needed(z, half_width=0.01, accuracy=0.5):
    return math.ceil((z * math.sqrt(accuracy * (1 - accuracy)) / half_width) ** 2)


@exercise("evaluation_checklist-examples_needed", "number",
          "how many examples a 95 % interval of ±1 point needs at 50 % accuracy")
def check_examples_needed(answer) -> int:
    value = as_number(answer)
    z = float(stats.norm.ppf(0.975))
    compare_number(value, _examples_needed(z), "95 %, ±1 point, accuracy 50 %", 0.5, [
        (_examples_needed(1.0), "a 95 % interval spans about 1.96 standard errors on each side, "
                                "not one"),
        (math.ceil(z * 0.5 / 0.01), "the standard error falls like 1/√n: square to get n"),
        (_examples_needed(z, half_width=1.0), "one point is 0.01 on the accuracy scale")],
        "the standard error of an accuracy p on n examples is √(p(1 − p)/n); a 95 % interval "
        "is ±1.96 of them; solve for the smallest whole n")
    return 1


@exercise("evaluation_checklist-unbounded_eps", "function",
          "unbounded_eps(x): the smallest L∞ budget that lets an attacker reach any image")
def check_unbounded_eps(answer) -> int:
    cases = [("random images", images(8, 1000)), ("pixels at 0 and 1", images(8, 1001, saturated=True)),
             ("a grey image (every pixel 0.5)", torch.full((2, 1, 4, 4), 0.5))]
    for case, x in cases:
        flat = x.flatten(1)
        reference = torch.maximum(flat, 1 - flat).max(1).values
        compare(answer(case, x.clone()), reference, case, [
            (torch.ones(len(x)), "ε = 1 always suffices, but the smallest budget depends on the "
                                 "image"),
            (flat.max(1).values, "a pixel must be able to reach 0 *and* 1: its distance to the "
                                 "farther end is max(x, 1 − x)"),
            ((1 - flat).max(1).values, "a pixel must be able to reach 0 *and* 1: its distance to "
                                       "the farther end is max(x, 1 − x)")],
            "per image: the largest distance from any pixel to the farther end of [0, 1]")
    return len(cases)
