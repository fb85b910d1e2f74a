"""The predicates a chapter's claims are made of: named, tested, and able to fail.

A claim in :class:`lsnotes.present.Claims` is a statement with whether this run bears it out.
Computed inline (``ls["pgd20"] > ce["pgd20"]``) it can go wrong quietly: ``nan > 0.2`` is
``False``, ``all([])`` is ``True``, a missing model is skipped. The predicates here make those
cases loud, and each is tested with inputs for which it must fail (``tests/test_claims.py``), so
a claim built from them cannot hold by construction::

    from lsnotes import claims as C
    ls, ce = C.measured(robust_acc, "LS", "CE", what="robust_acc")   # absent/None: fails
    Claims({"LS beats CE under PGD-20": C.exceeds(ls["pgd20"], ce["pgd20"]),
            "most LS models beat CE": C.most(a > ce["fgsm"] for a in ls_fgsm)},
           asserted=["LS beats CE under PGD-20"])

Each predicate returns a :class:`Check` (truthy when it holds) that shows what it compared
("0.431 > 0.219"); :class:`~lsnotes.present.Claims` prints that beside the statement.

**Missing inputs.** ``None``, NaN, an absent key (:func:`measured`) or an empty collection raise
:class:`MissingMeasurement`, which is both a :class:`~lsnotes.present.ClaimFailed` and a
``ValueError``: a claim about numbers this run did not produce is not "false", it is unmeasured,
and the chapter stops saying so. Inputs of the wrong type (a bool where a number is meant, a
string) raise ``ValueError`` naming the parameter.

**Not by construction.** A claim about every item of an empty list would hold whatever the data
(``all([]) is True``): :func:`every`, :func:`most`, :func:`none_of` and :func:`share_at_least`
refuse an empty collection, and :func:`strictly_decreasing`/:func:`strictly_increasing` need two
values. Tolerances must be ≥ 0 (:func:`within`), margins finite. :data:`PREDICATES` lists every
predicate; the test suite requires a counter-example for each.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from lsnotes.present import ClaimFailed, is_outcome as _is_bool

PREDICATES: dict[str, Callable[..., "Check"]] = {}


class MissingMeasurement(ClaimFailed, ValueError):
    """A claim's input was not measured in this run (``None``, NaN, an absent key, nothing)."""


@dataclass(frozen=True)
class Check:
    """The outcome of one predicate: whether it ``holds`` and what it compared (``shown``)."""

    predicate: str
    holds: bool
    shown: str

    def __bool__(self) -> bool:
        return self.holds

    def __str__(self) -> str:
        return self.shown


def _predicate(function: Callable[..., Check]) -> Callable[..., Check]:
    PREDICATES[function.__name__] = function
    return function


def _number(name: str, value: Any) -> float:
    if value is None:
        raise MissingMeasurement(f"{name} was not measured in this run (None)")
    if isinstance(value, (bool, str)) or not (isinstance(value, numbers.Real)
                                              or hasattr(value, "__float__")):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):  # a tensor of several numbers
        raise ValueError(f"{name} must be a single real number; got {value!r}") from None
    if math.isnan(number):
        raise MissingMeasurement(f"{name} was not measured in this run (NaN)")
    return number


def _margin(name: str, value: Any) -> float:
    number = _number(name, value)
    if math.isinf(number) or number < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0; got {value!r}")
    return number


def _flags(name: str, flags: Iterable[Any]) -> list[bool]:
    if isinstance(flags, (str, bytes)) or not isinstance(flags, Iterable):
        raise ValueError(f"{name} must be an iterable of bools; got {flags!r}")
    out = []
    for i, flag in enumerate(flags):
        if flag is None:
            raise MissingMeasurement(f"{name}[{i}] was not measured in this run (None)")
        if not _is_bool(flag):
            raise ValueError(f"{name}[{i}] must be a bool; got {flag!r}")
        out.append(bool(flag))
    if not out:
        raise MissingMeasurement(f"{name} is empty: a claim about every, most or none of no "
                                 "items holds (or fails) whatever the data")
    return out


def _numbers(name: str, values: Iterable[Any], minimum: int) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a sequence of numbers; got {values!r}")
    out = [_number(f"{name}[{i}]", v) for i, v in enumerate(values)]
    if len(out) < minimum:
        raise MissingMeasurement(f"{name} must hold at least {minimum} measured values; "
                                 f"got {len(out)}")
    return out


def _g(x: float) -> str:
    return f"{x:.4g}"


# ----------------------------------------------------------------------------- comparisons

@_predicate
def exceeds(value, reference, *, by=0.0) -> Check:
    """``value > reference + by``: "LS beats CE", "by more than 10 points" (``by=0.10``)."""
    v, r, b = _number("value", value), _number("reference", reference), _margin("by", by)
    shown = f"{_g(v)} > {_g(r)}" + (f" + {_g(b)}" if b else "")
    return Check("exceeds", v > r + b, shown)


@_predicate
def below(value, reference, *, by=0.0) -> Check:
    """``value < reference − by``: "MultiTargeted lowers LS below its PGD-20 accuracy"."""
    v, r, b = _number("value", value), _number("reference", reference), _margin("by", by)
    shown = f"{_g(v)} < {_g(r)}" + (f" − {_g(b)}" if b else "")
    return Check("below", v < r - b, shown)


@_predicate
def at_most(value, bound) -> Check:
    """``value ≤ bound``: "the drop is at most 5 points"."""
    v, b = _number("value", value), _number("bound", bound)
    return Check("at_most", v <= b, f"{_g(v)} ≤ {_g(b)}")


@_predicate
def at_least(value, bound) -> Check:
    """``value ≥ bound``: "changes the label of at least 90 %"."""
    v, b = _number("value", value), _number("bound", bound)
    return Check("at_least", v >= b, f"{_g(v)} ≥ {_g(b)}")


@_predicate
def within(value, reference, tolerance) -> Check:
    """``|value − reference| ≤ tolerance``: "within 3 points of CE"."""
    v, r = _number("value", value), _number("reference", reference)
    t = _margin("tolerance", tolerance)
    return Check("within", abs(v - r) <= t, f"|{_g(v)} − {_g(r)}| ≤ {_g(t)}")


@_predicate
def one_of(value, allowed: Sequence[Any]) -> Check:
    """``value in allowed``: "the best LS model is ALS or BLS"."""
    if value is None:
        raise MissingMeasurement("value was not measured in this run (None)")
    allowed = tuple(allowed)
    if not allowed:
        raise ValueError("allowed must name at least one value")
    return Check("one_of", value in allowed, f"{value!r} in {allowed!r}")


# ----------------------------------------------------------------------------- collections

@_predicate
def every(flags: Iterable[Any]) -> Check:
    """All of a non-empty collection hold: "every headline model …"."""
    f = _flags("flags", flags)
    return Check("every", all(f), f"{sum(f)} of {len(f)}")


@_predicate
def none_of(flags: Iterable[Any]) -> Check:
    """None of a non-empty collection holds: "no LS example is broken"."""
    f = _flags("flags", flags)
    return Check("none_of", not any(f), f"{sum(f)} of {len(f)}")


@_predicate
def most(flags: Iterable[Any]) -> Check:
    """Strictly more than half of a non-empty collection hold: "most LS models beat CE"."""
    f = _flags("flags", flags)
    return Check("most", sum(f) > len(f) / 2, f"{sum(f)} of {len(f)} > half")


@_predicate
def share_at_least(flags: Iterable[Any], share) -> Check:
    """At least ``share`` (in (0, 1]) of a non-empty collection hold."""
    f = _flags("flags", flags)
    s = _number("share", share)
    if not 0 < s <= 1:
        raise ValueError(f"share must be in (0, 1]; got {share!r}")
    return Check("share_at_least", sum(f) >= s * len(f), f"{sum(f)} of {len(f)} ≥ {_g(s)}")


@_predicate
def strictly_decreasing(values: Iterable[Any]) -> Check:
    """Each value below the one before (two values at least): "the range shrinks as α grows"."""
    v = _numbers("values", values, minimum=2)
    return Check("strictly_decreasing", all(b < a for a, b in zip(v, v[1:])),
                 " > ".join(map(_g, v)))


@_predicate
def strictly_increasing(values: Iterable[Any]) -> Check:
    """Each value above the one before (two values at least)."""
    v = _numbers("values", values, minimum=2)
    return Check("strictly_increasing", all(b > a for a, b in zip(v, v[1:])),
                 " < ".join(map(_g, v)))


@_predicate
def all_close(actual, expected, *, atol) -> Check:
    """Arrays equal elementwise to within ``atol`` (same shape, nothing missing)."""
    t = _margin("atol", atol)
    a, e = _two_arrays(actual, expected)
    worst = float(np.max(np.abs(a - e)))
    return Check("all_close", worst <= t, f"max |difference| {_g(worst)} ≤ {_g(t)}")


@_predicate
def differs(actual, expected, *, atol) -> Check:
    """Arrays differ somewhere by more than ``atol`` (the negation of :func:`all_close`)."""
    t = _margin("atol", atol)
    a, e = _two_arrays(actual, expected)
    worst = float(np.max(np.abs(a - e)))
    return Check("differs", worst > t, f"max |difference| {_g(worst)} > {_g(t)}")


def _two_arrays(actual, expected):
    arrays = []
    for name, value in (("actual", actual), ("expected", expected)):
        if value is None:
            raise MissingMeasurement(f"{name} was not measured in this run (None)")
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an array of numbers; got {value!r}") from None
        if array.size == 0 or np.isnan(array).any():
            raise MissingMeasurement(f"{name} is empty or holds NaN (not measured)")
        arrays.append(array)
    a, e = arrays
    if a.shape != e.shape and a.size != 1 and e.size != 1:
        raise ValueError(f"actual and expected must have one shape; got {a.shape} and {e.shape}")
    return a, e


# ----------------------------------------------------------------------------- inputs

def measured(mapping: Mapping[Any, Any], *keys: Any, what: str = "results") -> Any:
    """The values of ``keys`` in ``mapping``, failing loudly on an absent key or ``None``.

    One key gives its value, several a tuple: ``ls, at = measured(reports, "LS", "PGD-AT",
    what="reports")``. Use it instead of ``mapping.get(key)`` and an ``if``.
    """
    if not isinstance(mapping, Mapping):
        raise ValueError(f"mapping must be a mapping; got {type(mapping).__name__}")
    if not keys:
        raise ValueError("keys must name at least one key")
    values = []
    for key in keys:
        if key not in mapping or mapping[key] is None:
            have = ", ".join(repr(k) for k in mapping if mapping[k] is not None) or "nothing"
            raise MissingMeasurement(f"{what}[{key!r}] was not measured in this run "
                                     f"(measured: {have})")
        values.append(mapping[key])
    return values[0] if len(values) == 1 else tuple(values)
