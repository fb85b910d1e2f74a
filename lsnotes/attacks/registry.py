"""The attacks by name: :data:`ATTACKS` (each with the settings we chose), :func:`run_attack`
and :func:`transfer`."""

from __future__ import annotations

import inspect
import torch
from dataclasses import dataclass, field
from typing import Callable

from lsnotes.checks import choice
from lsnotes.attacks.base import check_batch, check_fits, finite_images, frozen_model, project, _check_eps, _generator, predict
from lsnotes.attacks.gradient import bim, fgsm, multitargeted, odi, pgd, tanh_linf
from lsnotes.attacks.minimal import carlini_wagner_l2, deepfool
from lsnotes.attacks.autoattack import apgd_ce, autoattack, square

@dataclass(frozen=True)
class AttackSpec:
    """A named attack: ``make(model, x, y, eps, generator, **overrides) -> x_adv``."""

    name: str
    description: str
    make: Callable
    defaults: dict = field(default_factory=dict)
    accepts: Callable | None = None  # the function whose keyword arguments overrides may set

    def settings(self, overrides: dict | None = None) -> dict:
        """The settings a run with ``overrides`` uses: the registered ones, overridden."""
        return {**self.defaults, **(overrides or {})}


def _spec(name, description, fn, **defaults):
    def make(model, x, y, eps, generator=None, **overrides):
        kwargs = {**defaults, **overrides}
        return fn(model, x, y, eps, generator=generator, **kwargs)
    return AttackSpec(name, description, make, defaults, fn)


def _minimal_l2_spec(name, description, fn, **defaults):
    """A minimal-L2 attack (no budget of its own) whose result is clipped into the L∞ ε-ball."""
    def make(model, x, y, eps, generator=None, **overrides):
        check_batch(x)
        eps = _check_eps(eps, "linf", x)
        _generator(generator)  # deterministic: accepted for the registry's uniform call, unused
        x_adv = fn(model, x, y, **{**defaults, **overrides})[0]
        return finite_images(project(x_adv, x, eps, "linf"), x, name)
    return AttackSpec(name, description, make, defaults, fn)


def _autoattack_examples(model, x, y, eps, generator=None, **overrides):
    return autoattack(model, x, y, eps, generator=generator, **overrides)[0]


ATTACKS: dict[str, AttackSpec] = {spec.name: spec for spec in [
    _spec("fgsm", "FGSM: one signed step of 2ε from x (= step ε after clipping)", fgsm),
    _spec("bim", "BIM: 10 signed steps of 2ε/10 from x, CE, best iterate", bim, steps=10),
    _spec("pgd10", "PGD-10: random start, 10 steps of 2ε/10, CE", pgd, steps=10),
    _spec("pgd20", "PGD-20: random start, 20 steps of 2ε/20, CE", pgd, steps=20),
    _spec("pgd40", "PGD-40: random start, 40 steps of 2ε/40, CE", pgd, steps=40),
    _spec("pgd_cw", "PGD-CW: random start, 20 steps of 2ε/20, CW margin loss", pgd, steps=20,
          loss="cw"),
    _spec("multitargeted", "MultiTargeted: one 20-step margin PGD per other class (K − 1 runs)",
          multitargeted, steps=20),
    _spec("odi", "ODI: 2 diversified steps of ε, then 20-step margin PGD; 5 restarts", odi,
          odi_steps=2, steps=20, restarts=5),
    _spec("apgd_ce", "APGD-CE (original code): 100 iterations, 1 restart", apgd_ce),
    AttackSpec("autoattack", "AutoAttack standard (original code): APGD-CE, APGD-T, FAB-T, Square",
               _autoattack_examples, {}, autoattack),
    _minimal_l2_spec("deepfool", "DeepFool (L2, 10 classes, overshoot 0.02) clipped into the ε-ball",
                     deepfool, num_classes=10),
    _minimal_l2_spec("cw_l2", "Carlini–Wagner L2 (6 binary steps × 100 Adam steps) clipped into the ε-ball",
                     carlini_wagner_l2, binary_steps=6, max_iter=100),
    _spec("tanh_linf", "tanh-substitution L∞ attack: 20 Adam steps (lr 0.1) on the CW margin",
          tanh_linf, steps=20, step_size=0.1),
    _spec("square", "Square Attack (original code), 5000 queries", square),
]}


def run_attack(name: str, model, x, y, eps, *, generator=None, **overrides) -> torch.Tensor:
    """Run the attack registered as ``name`` (see :data:`ATTACKS`); returns the adversarial batch.

    ``overrides`` replace the registered settings (e.g. ``steps=100``, ``restarts=10``); names the
    attack does not take raise ``ValueError``.
    """
    spec = ATTACKS[choice("attack", name, ATTACKS)]
    allowed = set(inspect.signature(spec.accepts).parameters) - {"model", "x", "y", "eps"}
    for key in overrides:
        if key not in allowed:
            raise ValueError(f"attack {name!r} takes no setting {key!r}; it takes {sorted(allowed)}")
    return spec.make(model, x, y, eps, generator=generator, **overrides)


def transfer(source_model, target_model, x, y, attack: str = "pgd20", eps: float = 0.1, *,
             generator=None, **overrides):
    """Craft examples on ``source_model`` with a registered attack and score them on ``target_model``.

    Returns ``(x_adv, target_correct)`` with ``target_correct`` a bool tensor per example.
    """
    choice("attack", attack, ATTACKS)
    y = check_batch(x, y)
    check_fits(target_model, x, y)
    x_adv = run_attack(attack, source_model, x, y, eps, generator=generator, **overrides)
    with frozen_model(target_model):
        correct = predict(target_model, x_adv) == y
    return x_adv, correct
