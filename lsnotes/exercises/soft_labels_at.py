"""Checkers for the exercises of the chapter ``soft_labels_at``."""

from __future__ import annotations

import sympy as sp
import torch

from .cases import compare
from .core import as_sympy, exercise
from .cases import sympy_spot_checks


def _refine(s, p_clean, p_adv, clean_weight, momentum):
    return momentum * s + (1 - momentum) * (clean_weight * p_clean + (1 - clean_weight) * p_adv)


@exercise("soft_labels_at-refine", "function",
          "refine(s, p_clean, p_adv, clean_weight, momentum): one SGLR update of soft labels")
def check_refine(answer) -> int:
    cases = [("K = 3, λ = 0.2, m = 0.9", 3, 0.2, 0.9), ("K = 2", 2, 0.3, 0.6),
             ("m = 0", 4, 0.2, 0.0), ("λ = 1", 5, 1.0, 0.5)]
    for seed, (case, num_classes, clean_weight, momentum) in enumerate(cases):
        gen = torch.Generator().manual_seed(900 + seed)
        s, p_clean, p_adv = (torch.softmax(torch.randn(6, num_classes, generator=gen,
                                                       dtype=torch.float64), 1) for _ in range(3))
        reference = _refine(s, p_clean, p_adv, clean_weight, momentum)
        compare(answer(case, s.clone(), p_clean.clone(), p_adv.clone(), clean_weight, momentum),
                reference, case, [
                    (_refine(s, p_adv, p_clean, clean_weight, momentum),
                     "λ weighs the *clean* prediction; the adversarial one gets 1 − λ"),
                    (_refine(s, p_clean, p_adv, clean_weight, 1 - momentum),
                     "the momentum m multiplies the old label s; 1 − m goes to the new target")],
                "p̃ = λ p(x) + (1 − λ) p(x′), then s ← m s + (1 − m) p̃")
    return len(cases)


@exercise("soft_labels_at-visits_weight", "sympy",
          "the weight left on the one-hot label after t visits, in m and t")
def check_visits_weight(answer) -> int:
    expr = as_sympy(answer)
    m, t = sp.symbols("m t", positive=True)
    reference = m**t
    points = [dict(m=mm, t=tt) for mm, tt in ((0.9, 1), (0.9, 10), (0.5, 3), (0.99, 100))]
    for p in points:  # simulate the update with fresh predictions each visit (guards this checker)
        gen = torch.Generator().manual_seed(p["t"])
        s = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        seen = torch.zeros(3, dtype=torch.float64)
        for _ in range(p["t"]):
            target = torch.softmax(torch.randn(3, generator=gen, dtype=torch.float64), 0)
            s, seen = _refine(s, target, target, 0.5, p["m"]), _refine(seen, target, target, 0.5, p["m"])
        assert abs(float((s - seen)[0]) - p["m"] ** p["t"]) < 1e-12
    return sympy_spot_checks(expr, reference, (m, t), points, "your expression", [
        ((1 - m)**t, "the momentum m multiplies the old label each visit; 1 − m goes to the "
                     "new target"),
        (m**(t + 1), "off by one: after one visit the weight is m"),
        (m**(t - 1), "off by one: after one visit the weight is m")],
        "unroll s_t = m s_{t−1} + (1 − m) p̃_t down to s_0 = e_y")
