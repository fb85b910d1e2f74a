"""AutoAttack, APGD-CE and Square (Croce & Hein 2020; Andriushchenko et al. 2020) through the
original ``pyautoattack`` code, behind the same contract as :mod:`lsnotes.attacks` (which
re-exports them and registers them in :data:`lsnotes.attacks.ATTACKS`).

The three wrappers share one opening, :func:`_original_code`: it checks the arguments, draws the
seed the original code wants from ``generator`` when none is given, shows the model to the
original code as an image classifier, and runs it with the model frozen and the global RNG
(which the original code re-seeds) restored afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import warnings

import torch
from dataclasses import dataclass
from tqdm.auto import tqdm

from lsnotes.checks import choice, flag, non_negative_int, number_in, positive_int
from lsnotes.attacks.base import check_batch, check_fits, finite_images, frozen_model, project, _check_eps, _generator, predict

AUTOATTACK_PARTS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")


class _Flatten4d(torch.nn.Module):
    """Shows a model of (N, *S) inputs to AutoAttack, which expects images, as (N, 1, 1, |S|)."""

    def __init__(self, model, shape):
        super().__init__()
        self.model, self.shape = model, tuple(shape)

    def forward(self, x):
        return self.model(x.reshape(len(x), *self.shape))


#: The distribution that holds the original code: ``pip install pyautoattack`` (pinned in
#: requirements.txt). Another package, torchattacks, ships its own older copy as a top-level
#: ``autoattack`` module; importing by this name means that copy is never picked up by accident.
ORIGINAL_PACKAGE = "pyautoattack"

# pyautoattack reports its checks (randomness, probabilities, Square beating the others) on a
# logger; the audit computes them itself, so they are kept quiet unless a user configures logging
_LOGGER = logging.getLogger("lsnotes.attacks.autoattack")
_LOGGER.addHandler(logging.NullHandler())


def _import_autoattack(module: str = ""):
    """The original AutoAttack code: ``pyautoattack`` or one of its modules (``"square"``)."""
    return importlib.import_module(ORIGINAL_PACKAGE + (f".{module}" if module else ""))


@dataclass
class _Opening:
    """What a wrapper hands the original code."""

    wrapped: torch.nn.Module      # the model, taking ``images``
    images: torch.Tensor          # x as (N, C, H, W) (x itself when it is a batch of images)
    y: torch.Tensor               # int64 labels
    eps: float
    norm_name: str                # "Linf" or "L2", the original code's spelling
    seed: int
    n_classes: int


@contextlib.contextmanager
def _original_code(model, x, y, eps, norm, seed, generator):
    """Check the arguments, then yield an :class:`_Opening` with the model frozen and the
    global RNG forked (restored on exit)."""
    y = check_batch(x, y)
    eps = _check_eps(eps, norm, x)
    generator = _generator(generator)
    seed = None if seed is None else non_negative_int("seed", seed)
    n_classes = check_fits(model, x, y)
    seed = _seed_from(generator) if seed is None else seed  # drawn once every check has passed
    x = x.detach()
    if x.dim() == 4:
        wrapped, images = model, x
    else:
        wrapped, images = _Flatten4d(model, x.shape[1:]), x.reshape(len(x), 1, 1, -1)
    devices = [x.device] if x.device.type == "cuda" else []
    with frozen_model(model), torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="size_average and reduce args")
        yield _Opening(wrapped, images, y, eps, "Linf" if norm == "linf" else "L2", seed, n_classes)


def _seed_from(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())


def autoattack(model, x, y, eps, *, norm: str = "linf", version: str = "standard",
               attacks_to_run=None, n_classes: int | None = None, seed: int | None = None,
               generator=None, batch_size: int = 250, progress: bool = False):
    """AutoAttack (Croce & Hein 2020) through the original ``pyautoattack`` code.

    Returns ``(x_adv, broken_by)``: ``broken_by[i]`` is ``"clean"`` when example i is misclassified
    without attack, the name of the first attack in the cascade that broke it (its example, as
    returned, is misclassified), or ``None`` when it stayed robust. Results equal
    ``AutoAttack.run_standard_evaluation`` on the same seed (each attack runs on the examples the
    previous ones left standing, exactly as there). For fewer than 10 classes the targeted attacks
    use K − 1 targets. ``seed`` defaults to a draw from ``generator``; the global RNG the original
    code re-seeds is restored afterwards.

    ``version="custom"`` runs the chosen parts of the standard cascade *with the standard
    version's settings* (L∞/L2: one APGD restart, one FAB restart, 9 target classes). The original
    code leaves a custom cascade at its constructor's defaults instead (five restarts of APGD-CE,
    APGD-DLR and FAB), which costs up to five times as much and is not what "APGD-CE + APGD-DLR
    of AutoAttack" means anywhere in the book.
    """
    choice("version", version, ("standard", "plus", "rand", "custom"))
    if version == "custom":
        if not attacks_to_run or isinstance(attacks_to_run, str):
            raise ValueError(f"version='custom' needs attacks_to_run, a list from {AUTOATTACK_PARTS}")
        for part in attacks_to_run:
            choice("attacks_to_run entry", part, AUTOATTACK_PARTS)
    if n_classes is not None:
        n_classes = positive_int("n_classes", n_classes, 2)
    batch_size = positive_int("batch_size", batch_size)
    progress = flag("progress", progress)
    AutoAttack = _import_autoattack().AutoAttack
    with _original_code(model, x, y, eps, norm, seed, generator) as run:
        y = run.y
        n_classes = run.n_classes if n_classes is None else min(n_classes, run.n_classes)
        adversary = AutoAttack(run.wrapped, norm=run.norm_name, eps=run.eps, seed=run.seed,
                               version=version, device=x.device,
                               attacks=list(attacks_to_run) if version == "custom" else None)
        adversary.verbose, adversary.logger = False, _LOGGER
        if version == "custom":  # the standard version's settings (its _set_version, L∞/L2)
            adversary.apgd.n_restarts = adversary.fab.n_restarts = 1
            adversary.apgd_targeted.n_restarts = 1
            adversary.apgd_targeted.n_target_classes = adversary.fab.n_target_classes = 9
        adversary.apgd.logger = adversary.apgd_targeted.logger = _LOGGER
        adversary.apgd_targeted.n_target_classes = min(adversary.apgd_targeted.n_target_classes, n_classes - 1)
        adversary.fab.n_target_classes = min(adversary.fab.n_target_classes, n_classes - 1)
        robust = predict(model, x) == y
        broken_by: list[str | None] = [None if r else "clean" for r in robust.tolist()]
        x_adv = x.detach().clone()
        for part in tqdm(list(adversary.attacks_to_run), desc="autoattack", disable=not progress,
                         leave=False):
            idx = robust.nonzero().flatten()
            if idx.numel() == 0:
                break
            adversary.attacks_to_run = [part]
            out, _ = _keeping_tracer(adversary.run_standard_evaluation, run.images[idx], y[idx],
                                     batch_size=batch_size)
            # judge the example we return (projected into the ball), not the raw output
            out = finite_images(project(_to_shape(out, x), x[idx], run.eps, norm), x[idx],
                                "autoattack")
            fooled = predict(model, out, batch_size) != y[idx]
            x_adv[idx[fooled]] = out[fooled]
            robust[idx[fooled]] = False
            for i in idx[fooled].tolist():
                broken_by[i] = part
    return x_adv, broken_by


def _keeping_tracer(function, *args, **kwargs):
    """Call ``function``, then restore the trace function (a debugger's, coverage's) that
    pyautoattack's check for dynamic defences switches off with ``sys.settrace(None)``."""
    tracer = sys.gettrace()
    try:
        return function(*args, **kwargs)
    finally:
        sys.settrace(tracer)


def _to_shape(images: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return images.detach().reshape(len(images), *like.shape[1:])


def apgd_ce(model, x, y, eps, *, norm: str = "linf", steps: int = 100, restarts: int = 1,
            seed: int | None = None, generator=None) -> torch.Tensor:
    """APGD on cross-entropy (Croce & Hein 2020) through ``pyautoattack.autopgd_base.APGDAttack``.

    Original defaults: 100 iterations, ρ = 0.75, one restart. Examples already misclassified
    are returned unchanged (as the original does).
    """
    steps = positive_int("steps", steps)
    restarts = positive_int("restarts", restarts)
    APGDAttack = _import_autoattack("autopgd_base").APGDAttack

    with _original_code(model, x, y, eps, norm, seed, generator) as run:
        attack = APGDAttack(run.wrapped, n_iter=steps, norm=run.norm_name, n_restarts=restarts,
                            eps=run.eps, seed=run.seed, loss="ce", device=x.device,
                            logger=_LOGGER)
        adv = attack.perturb(run.images, run.y)
        return finite_images(project(_to_shape(adv, x), x.detach(), run.eps, norm), x, "apgd_ce")


def square(model, x, y, eps, *, norm: str = "linf", n_queries: int = 5000, p_init: float = 0.8,
           seed: int | None = None, generator=None) -> torch.Tensor:
    """Square Attack (Andriushchenko et al. 2020), black-box, via ``pyautoattack.square``.

    AutoAttack's settings: margin loss, p_init = 0.8 (the initial fraction of pixels a square
    covers, in (0, 1]), one restart, 5000 queries by default.
    """
    n_queries = positive_int("n_queries", n_queries)
    p_init = number_in("p_init", p_init, 0.0, 1.0, low_open=True)
    SquareAttack = _import_autoattack("square").SquareAttack

    with _original_code(model, x, y, eps, norm, seed, generator) as run, torch.no_grad():
        attack = SquareAttack(run.wrapped, p_init=p_init, n_queries=n_queries, eps=run.eps,
                              norm=run.norm_name, n_restarts=1, seed=run.seed, verbose=False,
                              device=x.device, resc_schedule=False)
        adv = attack.perturb(run.images, run.y)
        return finite_images(project(_to_shape(adv, x), x.detach(), run.eps, norm), x, "square")
