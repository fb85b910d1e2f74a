"""Attacks that follow the input gradient inside the ε-ball: FGSM, BIM, PGD (L∞/L2, CE or the
margin loss, restarts), MultiTargeted, ODI and the tanh-substitution L∞ attack."""

from __future__ import annotations

import math
import torch
from tqdm.auto import tqdm
from typing import Callable

from lsnotes.checks import choice, flag, number_in, positive_int
from lsnotes.attacks.base import attack_loss, check_batch, check_fits, frozen_model, linf_bounds, LOSSES, project, _Adam, _ascent_direction, _BestIterate, _check_eps, _check_target, _generator, _input_gradient, finite_gradient, finite_images, _random_start, _steps_bar, _uniform

def pgd(model, x, y, eps, *, steps: int = 20, step_size: float | None = None, norm: str = "linf",
        loss: str = "ce", restarts: int = 1, random_start: bool = True, x_init=None, target=None,
        keep_best: bool = True, generator=None, progress: bool = False,
        on_step: Callable[[int, int, torch.Tensor, torch.Tensor], None] | None = None
        ) -> torch.Tensor:
    """Projected gradient ascent (Madry et al. 2018), batched, with restarts.

    ``step_size`` defaults to 2ε/steps. L∞ steps follow the gradient's sign, L2 steps its
    per-example direction. ``loss`` is ``"ce"`` or ``"cw"`` (margin); with ``target`` (a wrong
    class per example) the attack pushes each example towards it (see :func:`attack_loss`).
    ``x_init`` replaces the start of the first restart. Per example the result is the worst case
    over restarts and, when ``keep_best`` (the default), over the iterates of each run:
    misclassified first, then the highest loss. ``keep_best=False`` with one restart returns the
    final iterate. Where the loss has no gradient with respect to the input (a cut graph), the step
    is zero, as for a zero gradient.

    ``on_step(restart, step, losses, wrong)``, if given, sees every iterate's per-example attack
    loss and whether it is misclassified (step 0 is the start, step ``steps`` the last iterate):
    what :func:`lsnotes.robustness.pgd_trace.traced_pgd` records for the indicators of attack failure.
    """
    y = check_batch(x, y)
    eps = _check_eps(eps, norm, x)
    steps = positive_int("steps", steps)
    restarts = positive_int("restarts", restarts)
    choice("loss", loss, LOSSES)
    step_size = 2 * eps / steps if step_size is None else number_in("step_size", step_size, 0)
    if x_init is not None and (not isinstance(x_init, torch.Tensor) or x_init.shape != x.shape
                               or not x_init.is_floating_point()):
        raise ValueError(f"x_init must be a float tensor of x's shape {tuple(x.shape)}")
    if x_init is not None and not torch.isfinite(x_init).all():
        raise ValueError("x_init must hold finite values (no nan or inf)")
    target = _check_target(target, y, x)
    random_start, keep_best = flag("random_start", random_start), flag("keep_best", keep_best)
    generator = _generator(generator)
    if on_step is not None and not callable(on_step):
        raise ValueError(f"on_step must be a function (restart, step, losses, wrong); got {on_step!r}")
    check_fits(model, x, y, target)
    x = x.detach()

    low, high = linf_bounds(x, eps) if norm == "linf" else (None, None)
    # The last iterate needs its own forward pass only if something will compare or record it.
    score_last = keep_best or restarts > 1 or on_step is not None
    with frozen_model(model):
        bar = _steps_bar(restarts * steps, progress, "pgd")
        for restart in range(restarts):
            if restart == 0 and x_init is not None:
                x_adv = project(x_init.detach().to(x.dtype), x, eps, norm)
            elif random_start:
                x_adv = _random_start(x, eps, norm, generator, low, high)
            else:
                x_adv = x.clone()
            run = _BestIterate(x_adv)
            for step in range(steps + 1):
                if step == steps and not score_last:
                    run.x = x_adv.detach()
                    break
                x_adv.requires_grad_(step < steps)
                with torch.set_grad_enabled(step < steps):
                    logits = model(x_adv)
                    losses = attack_loss(logits, y, loss, target)
                wrong = logits.argmax(1) != y
                if on_step is not None:
                    on_step(restart, step, losses.detach(), wrong)
                if keep_best:
                    run.offer(x_adv, wrong, losses)
                elif step == steps:  # keep_best=False: the final iterate, whatever its score
                    run.x, run.wrong, run.loss = x_adv.detach(), wrong, losses.detach()
                if step == steps:
                    break
                grad = _input_gradient(losses, x_adv, "pgd")
                x_adv = torch.add(x_adv.detach(), _ascent_direction(grad, norm), alpha=step_size)
                if norm == "linf":  # bounds computed once per call, not per step
                    x_adv = torch.clamp(x_adv, low, high)
                else:
                    x_adv = project(x_adv, x, eps, norm)
                bar.update(1)
            if restart == 0:
                best = run
            else:
                best.offer(run.x, run.wrong, run.loss)
        bar.close()
    return finite_images(best.x.detach(), x, "pgd")


def fgsm(model, x, y, eps, *, loss: str = "ce", generator=None) -> torch.Tensor:
    """FGSM as in Fu et al. (2020): one signed step of 2ε from x, clipped into the ε-ball.

    Clipping makes it identical to Goodfellow et al.'s step of ε; no random start. Taught in the
    classic_attacks chapter, whose exercise ``classic_attacks-fgsm`` has the reader write it.
    """
    return pgd(model, x, y, eps, steps=1, step_size=2 * number_in("eps", eps, 0.0, 1.0), loss=loss,
               random_start=False, keep_best=False, generator=generator)


def bim(model, x, y, eps, steps: int = 10, step_size: float | None = None, *,
        generator=None, progress: bool = False) -> torch.Tensor:
    """Basic iterative method (Kurakin et al. 2017): PGD on CE from x itself, no random start.

    ``step_size`` defaults to 2ε/steps; the best iterate per example is kept.
    """
    return pgd(model, x, y, eps, steps=steps, step_size=step_size, random_start=False,
               generator=generator, progress=progress)


def multitargeted(model, x, y, eps, *, steps: int = 20, step_size: float | None = None,
                  restarts: int | None = None, norm: str = "linf", generator=None,
                  progress: bool = False) -> torch.Tensor:
    """MultiTargeted PGD (Gowal et al. 2019): restart r maximises ``z_t − z_y`` for one class t.

    Targets are the non-true classes in decreasing order of their clean logit; ``restarts``
    defaults to K − 1 (every other class once) and wraps around when larger. Random start each run.
    """
    y = check_batch(x, y)
    eps = _check_eps(eps, norm, x)
    positive_int("steps", steps)
    if step_size is not None:
        number_in("step_size", step_size, 0)
    if restarts is not None:
        restarts = positive_int("restarts", restarts)
    generator = _generator(generator)
    n_classes = check_fits(model, x, y)
    restarts = n_classes - 1 if restarts is None else restarts
    with frozen_model(model):
        with torch.no_grad():
            logits = model(x)
        ranked = logits.scatter(1, y[:, None], -math.inf).argsort(1, descending=True)[:, : n_classes - 1]
        best = _BestIterate(x)
        for r in tqdm(range(restarts), desc="multitargeted", disable=not flag("progress", progress),
                      leave=False):
            target = ranked[:, r % (n_classes - 1)]
            x_adv = pgd(model, x, y, eps, steps=steps, step_size=step_size, norm=norm, loss="cw",
                        target=target, generator=generator)
            best.offer_scored(model, x_adv, y, "cw")
    return finite_images(best.x, x, "odi")


def odi(model, x, y, eps, *, odi_steps: int = 2, odi_step_size: float | None = None,
        steps: int = 20, step_size: float | None = None, restarts: int = 5, norm: str = "linf",
        generator=None, progress: bool = False) -> torch.Tensor:
    """Output-diversified initialisation (Tashiro et al. 2020) followed by margin-loss PGD.

    Each restart draws w ~ U[−1, 1]^K, takes ``odi_steps`` signed steps of ``odi_step_size``
    (default ε) maximising wᵀf(x′) from a uniform random start, then runs CW-loss PGD from there.
    The per-example worst case over restarts is returned.
    """
    y = check_batch(x, y)
    eps = _check_eps(eps, norm, x)
    odi_steps = positive_int("odi_steps", odi_steps)
    restarts = positive_int("restarts", restarts)
    positive_int("steps", steps)
    if step_size is not None:
        number_in("step_size", step_size, 0)
    odi_step_size = eps if odi_step_size is None else number_in("odi_step_size", odi_step_size, 0)
    generator = _generator(generator)
    n_classes = check_fits(model, x, y)
    best = _BestIterate(x)
    with frozen_model(model):
        for _ in tqdm(range(restarts), desc="odi", disable=not flag("progress", progress), leave=False):
            w = _uniform((len(x), n_classes), generator, x)
            x_adv = project(x + eps * _uniform(x.shape, generator, x), x, eps, norm)
            for _ in range(odi_steps):
                x_adv.requires_grad_(True)
                grad = _input_gradient((w * model(x_adv)).sum(1), x_adv, "odi")
                x_adv = project(x_adv.detach() + odi_step_size * _ascent_direction(grad, norm),
                                x, eps, norm)
            x_adv = pgd(model, x, y, eps, steps=steps, step_size=step_size, norm=norm, loss="cw",
                        x_init=x_adv, random_start=False, generator=generator)
            best.offer_scored(model, x_adv, y, "cw")
    return best.x


def tanh_linf(model, x, y, eps, *, steps: int = 20, step_size: float = 0.1, loss: str = "cw",
              generator=None, progress: bool = False) -> torch.Tensor:
    """Fu et al.'s change-of-variables L∞ attack: x′ = lo + (hi − lo)(tanh w + 1)/2.

    The box is [max(x − ε, 0), min(x + ε, 1)], so every iterate is feasible without projection.
    We take Adam steps (learning rate ``step_size``) on w, starting from w = atanh of x's position
    in the box, maximising the CW margin (or CE), and keep each example's best iterate.
    """
    y = check_batch(x, y)
    eps = _check_eps(eps, "linf", x)
    steps = positive_int("steps", steps)
    step_size = number_in("step_size", step_size, 0)
    choice("loss", loss, LOSSES)
    _generator(generator)  # deterministic: accepted for the registry's uniform call, unused
    check_fits(model, x, y)
    x = x.detach()
    low, high = linf_bounds(x, eps)
    width = high - low
    position = torch.where(width > 0, (x - low) / width.clamp_min(1e-12), torch.full_like(x, 0.5))
    w = torch.atanh((2 * position - 1).clamp(-(1 - 1e-6), 1 - 1e-6))
    optimizer = _Adam(step_size)
    best = _BestIterate(x)
    with frozen_model(model):
        for step in tqdm(range(steps + 1), desc="tanh_linf", disable=not flag("progress", progress),
                         leave=False):
            w.requires_grad_(step < steps)
            x_adv = torch.maximum(torch.minimum(low + width * (torch.tanh(w) + 1) / 2, high), low)
            logits = model(x_adv)
            losses = attack_loss(logits, y, loss)
            best.offer(x_adv, logits.argmax(1) != y, losses)
            if step == steps:
                break
            grad, = torch.autograd.grad(-losses.sum(), w)
            w = optimizer.descent(w.detach(), finite_gradient(grad, "tanh_linf"))
    return finite_images(best.x, x, "tanh_linf")
