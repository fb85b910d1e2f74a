"""The audit's battery (:class:`Battery`, :data:`BATTERIES`) and :class:`_Runner`, which runs
attacks on chosen examples and keeps, per example, whether the model is still correct."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from lsnotes import attacks as attack_lib
from lsnotes.checks import choice, number_in, positive_int
from lsnotes.robustness.eot import GRADIENT_DRAWS, SCORE_DRAWS
from lsnotes.robustness.pgd_trace import PGDTrace
from lsnotes.robustness.probes import _first_line, _predict
from lsnotes.robustness.report import AttackRow


@dataclass(frozen=True)
class Battery:
    """How hard the audit attacks: step counts, restarts, queries, the ε sweep."""

    name: str
    pgd_steps: int = 20               # PGD-k, the number people usually report
    pgd_step_factor: float = 1.0      # step = factor · 2ε/k (Fu et al.'s 2ε/k when 1)
    restarts: int = 2                 # "PGD with restarts and a larger step"
    restart_steps: int = 20
    restart_step_factor: float = 4.0
    multitargeted_targets: int | None = 3   # None: every other class
    odi_restarts: int = 2
    autoattack: str = "apgd-ce"       # APGD-CE on survivors, or "standard": all of AutoAttack
    apgd_steps: int = 50              # APGD-CE's iterations (AutoAttack's own: 100)
    square_queries: int = 100         # Square on survivors: a smoke test (AutoAttack's has 5000)
    sweep: tuple[float, ...] = (0.5, 2.0)   # multiples of ε (besides ε and the unconstrained ε)
    repeats: int = 3                  # forward passes per input for the randomness check
    escalation_queries: int = 5000    # Square on the survivors when gradients are unusable (AutoAttack's)
    eot_draws: int = SCORE_DRAWS      # random model: forward passes averaged per prediction
    eot_gradient_draws: int = GRADIENT_DRAWS  # random model: forward passes per attack gradient

    def __post_init__(self):
        for name in ("pgd_steps", "restarts", "restart_steps", "odi_restarts", "apgd_steps",
                     "square_queries", "repeats", "escalation_queries", "eot_draws",
                     "eot_gradient_draws"):
            positive_int(f"Battery.{name}", getattr(self, name))
        for name in ("pgd_step_factor", "restart_step_factor"):
            number_in(f"Battery.{name}", getattr(self, name), 0, 1e3, low_open=True)
        if self.multitargeted_targets is not None:
            positive_int("Battery.multitargeted_targets", self.multitargeted_targets)
        choice("Battery.autoattack", self.autoattack, ("apgd-ce", "standard"))
        if isinstance(self.sweep, (str, bytes)) or not all(
                isinstance(m, (int, float)) and math.isfinite(m) and m > 0 for m in self.sweep):
            raise ValueError(f"Battery.sweep must be a tuple of positive multiples of eps; got "
                             f"{self.sweep!r}")


BATTERIES = {
    "quick": Battery("quick"),
    "full": Battery("full", restarts=10, restart_steps=50, multitargeted_targets=None,
                    odi_restarts=5, autoattack="standard", square_queries=5000,
                    sweep=(0.25, 0.5, 2.0, 4.0), repeats=5),
}


# ----------------------------------------------------------------------------- the battery

def audit_generator(name: str, seed: int) -> torch.Generator:
    """One generator per attack, so adding or reordering attacks does not change the others."""
    return attack_lib.seeded_generator(seed, name)


class _Runner:
    """Runs attacks on chosen examples, keeps per-example results and PGD traces."""

    def __init__(self, model, x, y, clean, seed, batch_size, progress, stages):
        self.model, self.x, self.y, self.seed, self.batch_size = model, x, y, seed, batch_size
        self.clean = clean
        self.escalation_note: str | None = None  # what the user must do for BPDA to work
        self.standing = clean.clone()       # correct so far under every attack at ε
        self.rows: list[AttackRow] = []
        self.traces: dict[str, dict] = {}   # name -> per-example silent / rising / ran
        self.bar = tqdm(total=stages, desc="audit", disable=not progress, leave=False)
        # a random model: each example's strongest adversarial example so far (lowest mean
        # probability of its label), rescored with fresh draws at the end (see rescore_random)
        self.strongest = x.clone()
        self.lowest = torch.full((len(x),), math.inf, device=x.device)

    def row(self, name: str) -> AttackRow:
        return next(r for r in self.rows if r.name == name)

    def step(self, label: str):
        self.bar.set_description(label)

    def done(self):
        self.bar.update(1)

    def _keep_strongest(self, chunk, x_adv, logits):
        prob = logits.softmax(1).gather(1, self.y[chunk][:, None]).squeeze(1)
        better = prob < self.lowest[chunk]
        self.strongest[chunk[better]] = x_adv[better]
        self.lowest[chunk[better]] = prob[better]

    def rescore_random(self, draws: int):
        """The worst case of a random model: each example's strongest adversarial example,
        scored once more with fresh draws, so no example gets one extra noisy chance per attack
        to be wrong."""
        self.step("EOT rescoring")
        idx = self.clean.nonzero().flatten()
        correct: list = [None] * len(self.x)
        for chunk in idx.split(self.batch_size):
            right = _predict(self.model, self.strongest[chunk], self.batch_size).argmax(1) \
                == self.y[chunk]
            for i, c in zip(chunk.tolist(), right.tolist()):
                correct[i] = c
        self.rows.append(AttackRow(
            "eot_rescored", f"each example's strongest adversarial example above (lowest mean "
            f"probability of its label), scored over {draws} fresh forward passes", "all",
            correct, 0.0))
        self.done()

    def _attack(self, name, fn, idx, keep=False):
        """Per example of ``idx``: correct after ``fn``'s attack, plus traces when it is PGD."""
        generator = audit_generator(name, self.seed)
        correct, trace_parts, notes = [], [], []
        self.nonfinite = 0
        for chunk in idx.split(self.batch_size):
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always", attack_lib.NonFiniteGradientWarning)
                result = fn(self.x[chunk], self.y[chunk], generator)
            for w in seen:
                if issubclass(w.category, attack_lib.NonFiniteGradientWarning):
                    self.nonfinite += 1
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            if isinstance(result, PGDTrace):
                trace_parts.append(result)
                result = result.x_adv
            elif isinstance(result, tuple):  # (x_adv, per-example note), e.g. AutoAttack's part
                result, note = result
                notes += list(note)
            logits = _predict(self.model, result, self.batch_size)
            if keep:
                self._keep_strongest(chunk, result, logits)
            correct.append(logits.argmax(1) == self.y[chunk])
        return torch.cat(correct), trace_parts, notes

    def run(self, name, description, scope, fn, *, examples=None, update=True):
        """Attack the clean-correct examples (``scope="all"``) or those still standing."""
        self.step(name)
        if examples is None:
            examples = self.clean if scope == "all" else self.standing
        idx = examples.nonzero().flatten()
        correct: list = [None] * len(self.x)
        error, notes = None, []
        self.nonfinite = 0
        started = time.perf_counter()
        if idx.numel():
            try:
                ok, parts, notes = self._attack(name, fn, idx, keep=update)
            except (RuntimeError, ValueError, TypeError) as err:  # e.g. no gradient at all
                error = _first_line(err)
            else:
                for i, c in zip(idx.tolist(), ok.tolist()):
                    correct[i] = c
                if parts:
                    self._keep_trace(name, idx, parts)
        row = AttackRow(name, description, scope, correct, time.perf_counter() - started, error,
                        nonfinite_gradients=self.nonfinite)
        if error is None and notes:
            row.notes = [None] * len(self.x)
            for i, note in zip(idx.tolist(), notes):
                row.notes[i] = note
        if update:
            self.rows.append(row)
            broken = torch.tensor([c is False for c in correct], device=self.x.device)
            self.standing &= ~broken
        self.done()
        return row

    def _keep_trace(self, name, idx, parts):
        n = len(self.x)
        ran = torch.zeros(n, dtype=torch.bool, device=self.x.device)
        ran[idx] = True
        silent, rising, broken = (torch.zeros(n, dtype=torch.bool, device=self.x.device)
                                  for _ in range(3))
        silent[idx] = torch.cat([p.silent_success() for p in parts])
        rising[idx] = torch.cat([p.still_rising() for p in parts])
        broken[idx] = torch.cat([p.broken for p in parts])
        self.traces[name] = {"ran": ran, "silent": silent, "rising": rising, "broken": broken}


def unconstrained_eps(norm: str, x: torch.Tensor) -> float:
    """The ε at which the ball holds every image in [0, 1]: 1 for L∞, √(number of pixels) for L2."""
    return 1.0 if norm == "linf" else math.sqrt(x[0].numel())
