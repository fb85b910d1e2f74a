"""PGD that records every iterate: the per-step losses and predictions the indicators of
silent success and incomplete optimisation read.

:func:`traced_pgd` is :func:`lsnotes.attacks.pgd` (random start, each example's best iterate
kept), written out again with the public pieces of :mod:`lsnotes.attacks` so it can keep the
trace; with the same arguments and generator it returns the same examples (a test checks this).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lsnotes import attacks as attack_lib
from lsnotes.robustness.indicators import RISE_THRESHOLD, rise_window
from lsnotes.checks import choice, positive_int

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
        """Pintor et al.'s incomplete optimisation, per example, on the loss trace of its best
        run (the one reaching the highest loss, whose iterate is returned where none was
        misclassified): a run left behind may still be climbing where the best has converged."""
        runs = torch.nan_to_num(self.losses, nan=0.0, posinf=1e30, neginf=-1e30)
        best = runs.max(1).values.argmax(0)
        trace = runs.gather(0, best.expand(1, *runs.shape[1:]))[0]
        low, high = trace.min(0).values, trace.max(0).values
        scaled = (trace - low) / (high - low).clamp_min(1e-12)
        best_so_far = scaled.cummax(0).values
        window = rise_window(len(trace) - 1)
        return (best_so_far[-1] - best_so_far[-1 - window]) > RISE_THRESHOLD


def traced_pgd(model, x, y, eps, *, steps: int = 20, step_size: float | None = None,
               norm: str = "linf", loss: str = "ce", restarts: int = 1,
               generator: torch.Generator | None = None) -> PGDTrace:
    """:func:`lsnotes.attacks.pgd` (random start, best iterate kept) recording every iterate's
    per-example loss and whether it is misclassified."""
    choice("norm", norm, NORMS)
    steps = positive_int("steps", steps)
    restarts = positive_int("restarts", restarts)
    losses = [[] for _ in range(restarts)]
    wrong = [[] for _ in range(restarts)]

    def record(restart, step, step_losses, step_wrong):
        losses[restart].append(step_losses)
        wrong[restart].append(step_wrong)

    x_adv = attack_lib.pgd(model, x, y, eps, steps=steps, step_size=step_size, norm=norm,
                           loss=loss, restarts=restarts, generator=generator, on_step=record)
    return PGDTrace(x_adv, torch.stack([torch.stack(run) for run in losses]),
                    torch.stack([torch.stack(run) for run in wrong]))
