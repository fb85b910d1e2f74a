"""Hidden test cases shared by the chapters' checkers: tiny random models and inputs, and the
comparison that turns a wrong answer into the hint for the mistake it matches."""

from __future__ import annotations

import math

import torch

from .core import CaseFailed


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_model(num_classes: int, seed: int, *, side: int = 4, hidden: int = 8) -> torch.nn.Module:
    """A random two-layer network on 1×side×side images: seconds to attack, never trained."""
    torch.manual_seed(seed)  # nn.Linear draws its weights from the global stream
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(side * side, hidden),
                                torch.nn.Tanh(), torch.nn.Linear(hidden, num_classes))
    return model.eval()


def images(n: int, seed: int, *, side: int = 4, saturated: bool = False) -> torch.Tensor:
    """Random images in [0, 1]; ``saturated`` puts every pixel at exactly 0 or 1."""
    x = torch.rand(n, 1, side, side, generator=generator(seed))
    return (x > 0.5).float() if saturated else x


def labels(n: int, num_classes: int, seed: int) -> torch.Tensor:
    return torch.randint(num_classes, (n,), generator=generator(seed + 1))


def as_tensor(value, case: str, shape=None, finite: bool = True) -> torch.Tensor:
    """The reader's result as a float64 tensor of ``shape``, or the case fails."""
    try:
        tensor = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError, RuntimeError):
        raise CaseFailed(case, f"expected a tensor; got {type(value).__name__}") from None
    if shape is not None and tuple(tensor.shape) != tuple(shape):
        raise CaseFailed(case, f"expected shape {tuple(shape)}; got {tuple(tensor.shape)}")
    tensor = tensor.double()
    if finite and not torch.isfinite(tensor).all():
        raise CaseFailed(case, "your result has NaN or infinite entries")
    return tensor


def close(a, b, tol: float) -> bool:
    """Equal within ``tol`` (relative to 1 + |b|); NaN matches NaN, so that a known mistake
    that divides 0 by 0 is still recognised."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        return False
    both_nan = a.isnan() & b.isnan()
    near = (a - b).abs() <= tol * (1 + b.abs())
    return bool((both_nan | near | (a == b)).all())


def compare(answer, reference, case: str, mistakes=(), default_hint: str = "", tol: float = 1e-5):
    """Pass if ``answer`` matches ``reference``; else fail with the hint of the first known
    mistake (a pair ``(wrong_value, hint)``) the answer matches, or ``default_hint``."""
    reference = torch.as_tensor(reference, dtype=torch.float64)
    answer = as_tensor(answer, case, reference.shape, finite=False)
    if close(answer, reference, tol):
        return
    for wrong, hint in mistakes:
        if close(answer, wrong, tol):
            raise CaseFailed(case, hint)
    as_tensor(answer, case)  # NaN or infinite entries get their own message
    raise CaseFailed(case, default_hint)


def compare_number(value: float, reference: float, case: str, tol: float, mistakes=(),
                   default_hint: str = "") -> None:
    """Like :func:`compare` for one number, ``tol`` absolute (stated in the exercise)."""
    if abs(value - reference) <= tol:
        return
    for wrong, hint in mistakes:
        if math.isfinite(wrong) and abs(value - wrong) <= tol:
            raise CaseFailed(case, hint)
    raise CaseFailed(case, default_hint)


def sympy_spot_checks(expr, reference, symbols, points, case: str, mistakes=(),
                      default_hint: str = "", tol: float = 1e-9) -> int:
    """A symbolic answer passes if ``simplify(expr - reference) == 0`` *and* it agrees with the
    reference at every point (a dict symbol name -> value); the first failing point is the case.
    ``mistakes`` are ``(wrong_expr, hint)``; a point where the answer matches one gets its hint."""
    import sympy as sp

    names = {s.name for s in symbols}
    unknown = sorted(s.name for s in expr.free_symbols if s.name not in names)
    if unknown:
        allowed = ", ".join(sorted(names))
        raise CaseFailed(case, f"unknown symbols {unknown}; use only {allowed} "
                               "(made with sympy.symbols, as in the answer cell)")
    by_name = {s.name: s for s in symbols}
    # the reader's symbols may carry other assumptions: substitute by name
    expr = expr.subs({s: by_name[s.name] for s in expr.free_symbols})

    def value(e, point):
        try:
            return complex(e.subs({by_name[k]: v for k, v in point.items()}).evalf())
        except (TypeError, ValueError, ZeroDivisionError):
            return complex("nan")

    for point in points:
        got, want = value(expr, point), value(reference, point)
        if abs(got - want) <= tol * (1 + abs(want)):
            continue
        where = ", ".join(f"{k} = {v}" for k, v in point.items())
        for wrong, hint in mistakes:
            if abs(got - value(wrong, point)) <= tol * (1 + abs(want)):
                raise CaseFailed(where, hint)
        raise CaseFailed(where, default_hint)
    if sp.simplify(expr - reference) != 0 and sp.simplify(sp.expand_log(expr - reference, force=True)) != 0:
        raise CaseFailed("symbolic simplification", "your expression agrees at the spot checks "
                         "but does not simplify to the answer everywhere: check its domain")
    return len(points) + 1
