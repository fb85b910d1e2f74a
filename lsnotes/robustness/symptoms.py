"""The symptoms of gradient masking that the audit's indicators
(:mod:`lsnotes.robustness.indicators`) and the chapters' diagnostics
(:func:`lsnotes.robustness.gradient_masking_diagnostics`) both look for, each decided here once.

Both pass what they measured (per-example flags or accuracies) to these functions, so the same
measurements always get the same verdict; the two differ only in which attacks they run.
"""

from __future__ import annotations

import torch


def exceeds_noise_floor(trip: torch.Tensor, tolerance: float) -> bool:
    """A symptom fires when more than ``tolerance``·n examples trip it (and at least one does)."""
    count = int(trip.sum())
    return count > 0 and count > tolerance * len(trip)


def single_step_symptom(clean, single_broken, iterative_broken, tolerance):
    """Single-step beats iterative: the single-step attack lowers accuracy more than the
    iterative one, by more than ``tolerance``·n examples; returns ``(trip, fired)`` with ``trip``
    the correctly classified examples the single-step attack breaks and the iterative one does
    not.

    Two different attacks always break a few examples the other misses, both ways, even on a
    sound model; what says the iterative attack is stuck is the single step winning on balance,
    i.e. these examples outnumbering those only the iterative attack breaks by more than the
    noise floor. Counting ``trip`` alone accused sound adversarially trained models."""
    trip = clean & single_broken & ~iterative_broken
    only_iterative = clean & iterative_broken & ~single_broken
    net = int(trip.sum()) - int(only_iterative.sum())
    return trip, net > 0 and net > tolerance * len(trip)


def beats_white_box_symptom(white_box_standing, other_broken, tolerance):
    """Transfer (or a black-box attack) beats white-box: the examples every white-box attack
    failed on (``white_box_standing``, correctly classified ones only) that it breaks; returns
    ``(trip, fired)``."""
    trip = white_box_standing & other_broken
    return trip, exceeds_noise_floor(trip, tolerance)


def large_eps_symptom(clean, still_correct, near_zero):
    """Accuracy does not reach ~0 at a large ε: the correctly classified examples the attack
    still leaves correct there, firing above ``near_zero``·n (the audit's unconstrained ε, where
    success is guaranteed, uses ``near_zero = 0``); returns ``(trip, fired)``."""
    trip = clean & still_correct
    return trip, exceeds_noise_floor(trip, near_zero)


def accuracy_rises(accuracies, tolerance) -> bool:
    """Accuracy rises by more than ``tolerance`` between neighbours of an ordered sweep (None:
    that point failed and is skipped)."""
    values = [a for a in accuracies if a is not None]
    return any(b > a + tolerance for a, b in zip(values, values[1:]))


def overestimate_symptom(reported_acc: float, stronger_acc: float, tolerance: float):
    """An attack overestimates robustness: a stronger run (more steps, restarts, a larger step,
    other losses or starts, the worst case) lowers its accuracy by more than ``tolerance``;
    returns ``(gap, fired)``."""
    gap = reported_acc - stronger_acc
    return gap, gap > tolerance
