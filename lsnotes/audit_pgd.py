"""PGD that records every iterate: the per-step losses and predictions the indicators of
silent success and incomplete optimisation read.

:func:`traced_pgd` is :func:`lsnotes.attacks.pgd` (random start, each example's best iterate
kept), written out again with the public pieces of :mod:`lsnotes.attacks` so it can keep the
trace; with the same arguments and generator it returns the same examples (a test checks this).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lsnotes import attacks as attack_lib
from lsnotes.audit_indicators import RISE_THRESHOLD, rise_window
from lsnotes.checks import choice, number_in, positive_int

NORMS = ("linf", "l2")


@dataclass
class PGDTrace:
    """A PGD run with every iterate scored: ``losses``/``wrong`` are (restarts, steps + 1, N)."""

    x_adv: torch.Tensor          # per example the best iterate over runs (as attacks.pgd returns)
    losses: torch.Tensor
    wrong: torch.Tensor

    @property
    def broken(self) -> torch.Tensor:
        return self.wrong.flatten(0, 1).any(0)

    def silent_success(self) -> torch.Tensor:
        """Some iterate of a run was misclassified, yet that run's last iterate is not."""
        return (self.wrong.any(1) & ~self.wrong[:, -1]).any(0)

    def still_rising(self) -> torch.Tensor:
        """Pintor et al.'s incomplete optimisation, per example, on the first run's loss trace."""
        trace = torch.nan_to_num(self.losses[0], nan=0.0, posinf=1e30, neginf=-1e30)
        low, high = trace.min(0).values, trace.max(0).values
        scaled = (trace - low) / (high - low).clamp_min(1e-12)
        best_so_far = scaled.cummax(0).values
        window = rise_window(len(trace) - 1)
        return (best_so_far[-1] - best_so_far[-1 - window]) > RISE_THRESHOLD


def _better(wrong_new, loss_new, wrong_best, loss_best):
    """attacks.pgd's rule: misclassified beats correct; among equals, the higher loss wins."""
    return (wrong_new & ~wrong_best) | ((wrong_new == wrong_best) & (loss_new > loss_best))


def _per_example(values, like):
    return values.view(-1, *([1] * (like.dim() - 1)))


def _random_start(x, eps, norm, generator, low, high):
    """attacks.pgd's random start, drawn in the same order from the same generator."""
    def uniform(shape, lo=-1.0, hi=1.0):
        draw = torch.rand(shape, generator=generator, device=generator.device, dtype=x.dtype)
        return (lo + (hi - lo) * draw).to(x.device)

    noise = uniform(x.shape)
    if norm == "linf":
        return torch.clamp(x + eps * noise, low, high)
    radius = eps * uniform((len(x),), 0, 1)
    noise = noise / _per_example(noise.flatten(1).norm(dim=1).clamp_min(1e-12), x)
    return attack_lib.project(x + noise * _per_example(radius, x), x, eps, "l2")


def traced_pgd(model, x, y, eps, *, steps: int = 20, step_size: float | None = None,
               norm: str = "linf", loss: str = "ce", restarts: int = 1,
               generator: torch.Generator | None = None) -> PGDTrace:
    """:func:`lsnotes.attacks.pgd` (random start, best iterate kept) recording every iterate.

    With the same arguments and generator state it returns the same examples as ``attacks.pgd``
    (a test checks this). Where the loss has no gradient with respect to the input (a cut graph)
    the step is zero, as for a zero gradient, instead of an error.
    """
    attack_lib.check_batch(x, y)
    eps = number_in("eps", eps, 0)
    steps = positive_int("steps", steps)
    restarts = positive_int("restarts", restarts)
    choice("norm", norm, NORMS)
    step_size = 2 * eps / steps if step_size is None else number_in("step_size", step_size, 0)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    x = x.detach()
    low, high = attack_lib.linf_bounds(x, eps) if norm == "linf" else (None, None)
    all_losses, all_wrong = [], []
    with attack_lib.frozen_model(model):
        best_x, best_wrong, best_loss = x.clone(), None, None
        for restart in range(restarts):
            x_adv = _random_start(x, eps, norm, generator, low, high)
            run_x, run_wrong = x_adv.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
            run_loss = torch.full((len(x),), -math.inf, device=x.device)
            losses, wrongs = [], []
            for step in range(steps + 1):
                x_adv.requires_grad_(step < steps)
                with torch.set_grad_enabled(step < steps):
                    logits = model(x_adv)
                    values = attack_lib.attack_loss(logits, y, loss)
                wrong = logits.argmax(1) != y
                losses.append(values.detach())
                wrongs.append(wrong)
                better = _better(wrong, values.detach(), run_wrong, run_loss)
                run_x = torch.where(_per_example(better, x), x_adv.detach(), run_x)
                run_wrong = torch.where(better, wrong, run_wrong)
                run_loss = torch.where(better, values.detach(), run_loss)
                if step == steps:
                    break
                direction = _ascent_direction(values, x_adv, norm)
                x_adv = torch.add(x_adv.detach(), direction, alpha=step_size)
                x_adv = torch.clamp(x_adv, low, high) if norm == "linf" else \
                    attack_lib.project(x_adv, x, eps, norm)
            all_losses.append(torch.stack(losses))
            all_wrong.append(torch.stack(wrongs))
            if restart == 0:
                best_x, best_wrong, best_loss = run_x, run_wrong, run_loss
            else:
                better = _better(run_wrong, run_loss, best_wrong, best_loss)
                best_x = torch.where(_per_example(better, x), run_x, best_x)
                best_wrong = torch.where(better, run_wrong, best_wrong)
                best_loss = torch.where(better, run_loss, best_loss)
    return PGDTrace(best_x.detach(), torch.stack(all_losses), torch.stack(all_wrong))


def _ascent_direction(values, x_adv, norm):
    if not values.requires_grad:
        return torch.zeros_like(x_adv)
    grad, = torch.autograd.grad(values.sum(), x_adv, allow_unused=True)
    if grad is None:
        return torch.zeros_like(x_adv)
    if norm == "linf":
        return grad.sign()
    return grad / _per_example(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)
