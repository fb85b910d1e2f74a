"""Adversarial attacks used in the book, all batched, in [0, 1] pixel space, on CPU or CUDA.

Every attack here obeys the same contract, which the tests check on random models and inputs:

- it never changes the model: weights, their ``.grad`` and ``requires_grad`` flags and the
  train/eval mode are as they were afterwards (the model is run in eval mode *during* the attack,
  so batch-norm statistics are not updated by adversarial batches);
- its output lies in [0, 1] and, for the L∞ attacks, *exactly* inside the ε-ball in the
  input's floating-point type (bounds rounded outwards by ``x ± ε`` are nudged one ulp back in);
- its randomness comes from the ``generator`` argument (a fixed seed-0 generator when omitted),
  never from the global RNG — the AutoAttack-based attacks run inside ``torch.random.fork_rng``
  because the original implementation re-seeds the global RNG;
- bad arguments raise ``ValueError`` naming the parameter (via :mod:`lsnotes.checks`).

Step sizes follow Fu et al. (2020), Table 3: FGSM is one signed step of 2ε from x (clipped back
into the ball, so it coincides with the classic step of ε), PGD^k takes k steps of 2ε/k from a
uniform random start. The other settings we chose are stated in :data:`ATTACKS`.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lsnotes.checks import choice, number_in, positive_int

NORMS = ("linf", "l2")
LOSSES = ("ce", "cw")


# ----------------------------------------------------------------------------- shared plumbing

@contextlib.contextmanager
def frozen_model(model: torch.nn.Module):
    """Run ``model`` in eval mode with its parameters out of autograd; restore both afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    model.eval()
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def check_batch(x, y=None) -> None:
    """Raise ``ValueError`` unless x is a float batch in [0, 1] and y matching integer labels."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor; got {type(x).__name__}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (N, ...) with N >= 1; got {tuple(x.shape)}")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("x must hold pixel values in [0, 1]")
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32):
            raise ValueError("y must be an integer tensor of class labels")
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape ({x.shape[0]},) to match x; got {tuple(y.shape)}")
        if y.numel() and y.min() < 0:
            raise ValueError("y must hold class indices >= 0")


def _check_labels_fit(logits: torch.Tensor, y: torch.Tensor) -> None:
    if y.max() >= logits.shape[1]:
        raise ValueError(f"y holds class {int(y.max())} but the model has {logits.shape[1]} outputs")


def _generator(generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        return torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None; got {generator!r}")
    return generator


def _uniform(shape, generator: torch.Generator, like: torch.Tensor, low=-1.0, high=1.0):
    draw = torch.rand(shape, generator=generator, device=generator.device, dtype=like.dtype)
    return (low + (high - low) * draw).to(like.device)


def _seed_from(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())


def _per_example_norm(delta: torch.Tensor) -> torch.Tensor:
    return delta.flatten(1).norm(dim=1)


def _view_per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


def linf_bounds(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel bounds of the L∞ ε-ball intersected with [0, 1], exact in ``x``'s dtype."""
    eps_t = torch.tensor(eps, dtype=x.dtype, device=x.device)
    if float(eps_t) > eps:  # the dtype rounded ε upwards; use the next value below
        eps_t = torch.nextafter(eps_t, torch.zeros_like(eps_t))
    low = (x - eps_t).clamp(0, 1)
    high = (x + eps_t).clamp(0, 1)
    # x ± ε rounds to the nearest float, which can sit one ulp outside the ball
    for _ in range(4):
        outside_high = (high - x) > eps_t
        outside_low = (x - low) > eps_t
        if not (outside_high.any() or outside_low.any()):
            break
        high = torch.where(outside_high, torch.nextafter(high, x), high)
        low = torch.where(outside_low, torch.nextafter(low, x), low)
    return low, high


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str = "linf") -> torch.Tensor:
    """Project ``x_adv`` onto the ε-ball around ``x`` (L∞ or L2) intersected with [0, 1]."""
    if norm == "linf":
        low, high = linf_bounds(x, eps)
        return torch.maximum(torch.minimum(x_adv, high), low)
    delta = x_adv - x
    scale = (eps / _per_example_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    x_adv = (x + delta * _view_per_example(scale, x)).clamp(0, 1)
    # clamping to the box only shortens δ; rounding may still leave it a hair too long
    too_long = _per_example_norm(x_adv - x) > eps
    if too_long.any():
        shrink = _view_per_example(torch.where(too_long, 1 - 1e-6, 1.0).to(x.dtype), x)
        x_adv = (x + (x_adv - x) * shrink).clamp(0, 1)
    return x_adv


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini–Wagner margin ``max_{j≠y} z_j − z_y`` per example (> 0 means misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], -math.inf)
    return others.max(1).values - true


def attack_loss(logits, y, loss: str = "ce", target=None) -> torch.Tensor:
    """Per-example loss an attack *maximises*: CE or CW margin, untargeted or towards ``target``.

    Targeted versions: ``-CE(z, t)`` and ``z_t − z_y`` (the MultiTargeted loss of Gowal et al.).
    """
    if target is None:
        if loss == "ce":
            return F.cross_entropy(logits, y, reduction="none")
        return margin(logits, y)
    if loss == "ce":
        return -F.cross_entropy(logits, target, reduction="none")
    return logits.gather(1, target[:, None]).squeeze(1) - logits.gather(1, y[:, None]).squeeze(1)


def _better(wrong_new, loss_new, wrong_best, loss_best):
    """Misclassified beats correct; among equals, the higher loss wins."""
    return (wrong_new & ~wrong_best) | ((wrong_new == wrong_best) & (loss_new > loss_best))


def _predict(model, x, batch_size: int = 1024) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(chunk).argmax(1) for chunk in x.split(batch_size)])


class _Adam:
    """Adam (Kingma & Ba) ascent on one tensor, elementwise, so each example evolves on its own.

    Written out because ``torch.optim`` costs seconds of imports on first use, and we need none of
    its machinery (param groups, state dicts) for one tensor.
    """

    def __init__(self, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.m = self.v = None
        self.t = 0

    def descent(self, param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if self.m is None:
            self.m, self.v = torch.zeros_like(grad), torch.zeros_like(grad)
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        m_hat = self.m / (1 - self.beta1 ** self.t)
        v_hat = self.v / (1 - self.beta2 ** self.t)
        return param - self.lr * m_hat / (v_hat.sqrt() + self.eps)


def _steps_bar(total: int, progress: bool, desc: str):
    return tqdm(total=total, desc=desc, disable=not progress, leave=False)


# ----------------------------------------------------------------------------- gradient attacks

def maximise_in_ball(model, x, objective, eps, steps, step_size, random_start, generator):
    """Training-time inner maximiser: signed-gradient ascent on any ``objective(logits)``.

    Unlike :func:`pgd` it keeps no per-example bookkeeping and returns the final iterate: the
    trainer calls it every batch (cross-entropy for PGD-AT/SGLR/FGSM training, the KL to the clean
    output for TRADES). It stays in ‖x' − x‖∞ ≤ ε and [0, 1]; the caller sets the model's mode.
    """
    if random_start:
        delta = (torch.rand(x.shape, device=x.device, generator=generator) * 2 - 1) * eps
    else:
        delta = torch.zeros_like(x)
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(model(x + delta)), delta)
        delta = (delta.detach() + step_size * grad.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def pgd(model, x, y, eps, *, steps: int = 20, step_size: float | None = None, norm: str = "linf",
        loss: str = "ce", restarts: int = 1, random_start: bool = True, x_init=None, target=None,
        keep_best: bool = True, generator=None, progress: bool = False) -> torch.Tensor:
    """Projected gradient ascent (Madry et al. 2018), batched, with restarts.

    ``step_size`` defaults to 2ε/steps. L∞ steps follow the gradient's sign, L2 steps its
    per-example direction. ``loss`` is ``"ce"`` or ``"cw"`` (margin); with ``target`` the attack
    pushes each example towards its target class (see :func:`attack_loss`). ``x_init`` replaces
    the start of the first restart. Per example the result is the worst case over restarts and,
    when ``keep_best`` (the default), over the iterates of each run: misclassified first, then
    the highest loss. ``keep_best=False`` with one restart returns the final iterate.
    """
    check_batch(x, y)
    eps = number_in("eps", eps, 0)
    steps = positive_int("steps", steps)
    restarts = positive_int("restarts", restarts)
    choice("norm", norm, NORMS)
    choice("loss", loss, LOSSES)
    step_size = 2 * eps / steps if step_size is None else number_in("step_size", step_size, 0)
    if x_init is not None and (not isinstance(x_init, torch.Tensor) or x_init.shape != x.shape):
        raise ValueError(f"x_init must be a tensor of x's shape {tuple(x.shape)}")
    if target is not None and (not isinstance(target, torch.Tensor) or target.shape != y.shape):
        raise ValueError(f"target must be a label tensor of y's shape {tuple(y.shape)}")
    generator = _generator(generator)
    x = x.detach()

    low, high = linf_bounds(x, eps) if norm == "linf" else (None, None)
    with frozen_model(model):
        best_x = x.clone()
        best_wrong = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        best_loss = torch.full((len(x),), -math.inf, device=x.device)
        bar = _steps_bar(restarts * steps, progress, "pgd")
        for restart in range(restarts):
            if restart == 0 and x_init is not None:
                x_adv = project(x_init.detach().to(x.dtype), x, eps, norm)
            elif random_start:
                noise = _uniform(x.shape, generator, x)
                if norm == "l2":  # a random direction, scaled to a random radius in [0, ε]
                    radius = eps * _uniform((len(x),), generator, x, 0, 1)
                    noise = noise / _view_per_example(_per_example_norm(noise).clamp_min(1e-12), x)
                    noise = noise * _view_per_example(radius, x)
                    x_adv = project(x + noise, x, eps, norm)
                else:
                    x_adv = torch.clamp(x + eps * noise, low, high)
            else:
                x_adv = x.clone()
            run_x, run_wrong, run_loss = x_adv.clone(), best_wrong & False, torch.full_like(best_loss, -math.inf)
            # The last iterate needs its own forward pass only if something will compare it.
            score_last = keep_best or restarts > 1
            for step in range(steps + 1):
                if step == steps and not score_last:
                    run_x = x_adv.detach()
                    break
                x_adv.requires_grad_(step < steps)
                with torch.set_grad_enabled(step < steps):
                    logits = model(x_adv)
                    if restart == 0 and step == 0:
                        _check_labels_fit(logits, y)
                    losses = attack_loss(logits, y, loss, target)
                if keep_best or step == steps:
                    wrong = logits.argmax(1) != y
                    better = _better(wrong, losses.detach(), run_wrong, run_loss) if keep_best \
                        else torch.ones_like(wrong)
                    run_x = torch.where(_view_per_example(better, x), x_adv.detach(), run_x)
                    run_wrong = torch.where(better, wrong, run_wrong)
                    run_loss = torch.where(better, losses.detach(), run_loss)
                if step == steps:
                    break
                grad, = torch.autograd.grad(losses.sum(), x_adv)
                if norm == "linf":
                    direction = grad.sign()
                else:
                    direction = grad / _view_per_example(_per_example_norm(grad).clamp_min(1e-12), x)
                x_adv = torch.add(x_adv.detach(), direction, alpha=step_size)
                if norm == "linf":  # bounds computed once per call, not per step
                    x_adv = torch.clamp(x_adv, low, high)
                else:
                    x_adv = project(x_adv, x, eps, norm)
                bar.update(1)
            if restart == 0:
                best_x, best_wrong, best_loss = run_x, run_wrong, run_loss
            else:
                better = _better(run_wrong, run_loss, best_wrong, best_loss)
                best_x = torch.where(_view_per_example(better, x), run_x, best_x)
                best_wrong = torch.where(better, run_wrong, best_wrong)
                best_loss = torch.where(better, run_loss, best_loss)
        bar.close()
    return best_x.detach()


def fgsm(model, x, y, eps, *, loss: str = "ce", generator=None) -> torch.Tensor:
    """FGSM as in Fu et al. (2020): one signed step of 2ε from x, clipped into the ε-ball.

    Clipping makes it identical to Goodfellow et al.'s step of ε; no random start.
    """
    return pgd(model, x, y, eps, steps=1, step_size=2 * number_in("eps", eps, 0), loss=loss,
               random_start=False, keep_best=False, generator=generator)


def bim(model, x, y, eps, steps: int = 10, step_size: float | None = None, *,
        generator=None, progress: bool = False) -> torch.Tensor:
    """Basic iterative method (Kurakin et al. 2017): PGD on CE from x itself, no random start.

    ``step_size`` defaults to 2ε/steps; the best iterate per example is kept.
    """
    return pgd(model, x, y, eps, steps=steps, step_size=step_size, random_start=False,
               generator=generator, progress=progress)


def _merge_worst(model, x, y, best, candidate, loss: str = "cw"):
    """Per example keep whichever of ``best``/``candidate`` is misclassified, else higher loss."""
    with torch.no_grad():
        lb, lc = model(best), model(candidate)
        wrong_b, wrong_c = lb.argmax(1) != y, lc.argmax(1) != y
        take = _better(wrong_c, attack_loss(lc, y, loss), wrong_b, attack_loss(lb, y, loss))
    return torch.where(_view_per_example(take, x), candidate, best)


def multitargeted(model, x, y, eps, *, steps: int = 20, step_size: float | None = None,
                  restarts: int | None = None, norm: str = "linf", generator=None,
                  progress: bool = False) -> torch.Tensor:
    """MultiTargeted PGD (Gowal et al. 2019): restart r maximises ``z_t − z_y`` for one class t.

    Targets are the non-true classes in decreasing order of their clean logit; ``restarts``
    defaults to K − 1 (every other class once) and wraps around when larger. Random start each run.
    """
    check_batch(x, y)
    generator = _generator(generator)
    with frozen_model(model), torch.no_grad():
        logits = model(x)
    _check_labels_fit(logits, y)
    n_classes = logits.shape[1]
    restarts = n_classes - 1 if restarts is None else positive_int("restarts", restarts)
    ranked = logits.scatter(1, y[:, None], -math.inf).argsort(1, descending=True)[:, : n_classes - 1]
    best = None
    with frozen_model(model):
        for r in tqdm(range(restarts), desc="multitargeted", disable=not progress, leave=False):
            target = ranked[:, r % (n_classes - 1)]
            x_adv = pgd(model, x, y, eps, steps=steps, step_size=step_size, norm=norm, loss="cw",
                        target=target, generator=generator)
            best = x_adv if best is None else _merge_worst(model, x, y, best, x_adv)
    return best


def odi(model, x, y, eps, *, odi_steps: int = 2, odi_step_size: float | None = None,
        steps: int = 20, step_size: float | None = None, restarts: int = 5, norm: str = "linf",
        generator=None, progress: bool = False) -> torch.Tensor:
    """Output-diversified initialisation (Tashiro et al. 2020) followed by margin-loss PGD.

    Each restart draws w ~ U[−1, 1]^K, takes ``odi_steps`` signed steps of ``odi_step_size``
    (default ε) maximising wᵀf(x′) from a uniform random start, then runs CW-loss PGD from there.
    The per-example worst case over restarts is returned.
    """
    check_batch(x, y)
    eps = number_in("eps", eps, 0)
    odi_steps = positive_int("odi_steps", odi_steps)
    restarts = positive_int("restarts", restarts)
    choice("norm", norm, NORMS)
    odi_step_size = eps if odi_step_size is None else number_in("odi_step_size", odi_step_size, 0)
    generator = _generator(generator)
    best = None
    with frozen_model(model):
        n_classes = model(x[:1]).shape[1]
        for _ in tqdm(range(restarts), desc="odi", disable=not progress, leave=False):
            w = _uniform((len(x), n_classes), generator, x)
            x_adv = project(x + eps * _uniform(x.shape, generator, x), x, eps, norm)
            for _ in range(odi_steps):
                x_adv.requires_grad_(True)
                grad, = torch.autograd.grad((w * model(x_adv)).sum(), x_adv)
                if norm == "linf":
                    direction = grad.sign()
                else:
                    direction = grad / _view_per_example(_per_example_norm(grad).clamp_min(1e-12), x)
                x_adv = project(x_adv.detach() + odi_step_size * direction, x, eps, norm)
            x_adv = pgd(model, x, y, eps, steps=steps, step_size=step_size, norm=norm, loss="cw",
                        x_init=x_adv, random_start=False, generator=generator)
            best = x_adv if best is None else _merge_worst(model, x, y, best, x_adv)
    return best


def tanh_linf(model, x, y, eps, *, steps: int = 20, step_size: float = 0.1, loss: str = "cw",
              generator=None, progress: bool = False) -> torch.Tensor:
    """Fu et al.'s change-of-variables L∞ attack: x′ = lo + (hi − lo)(tanh w + 1)/2.

    The box is [max(x − ε, 0), min(x + ε, 1)], so every iterate is feasible without projection.
    We take Adam steps (learning rate ``step_size``) on w, starting from w = atanh of x's position
    in the box, maximising the CW margin (or CE), and keep each example's best iterate.
    """
    check_batch(x, y)
    eps = number_in("eps", eps, 0)
    steps = positive_int("steps", steps)
    step_size = number_in("step_size", step_size, 0)
    choice("loss", loss, LOSSES)
    x = x.detach()
    low, high = linf_bounds(x, eps)
    width = high - low
    position = torch.where(width > 0, (x - low) / width.clamp_min(1e-12), torch.full_like(x, 0.5))
    w = torch.atanh((2 * position - 1).clamp(-(1 - 1e-6), 1 - 1e-6))
    optimiser = _Adam(step_size)
    with frozen_model(model):
        best_x = x.clone()
        best_wrong = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        best_loss = torch.full((len(x),), -math.inf, device=x.device)
        for step in tqdm(range(steps + 1), desc="tanh_linf", disable=not progress, leave=False):
            w.requires_grad_(step < steps)
            x_adv = torch.maximum(torch.minimum(low + width * (torch.tanh(w) + 1) / 2, high), low)
            logits = model(x_adv)
            if step == 0:
                _check_labels_fit(logits, y)
            losses = attack_loss(logits, y, loss)
            wrong = logits.argmax(1) != y
            better = _better(wrong, losses.detach(), best_wrong, best_loss)
            best_x = torch.where(_view_per_example(better, x), x_adv.detach(), best_x)
            best_wrong = torch.where(better, wrong, best_wrong)
            best_loss = torch.where(better, losses.detach(), best_loss)
            if step == steps:
                break
            grad, = torch.autograd.grad(-losses.sum(), w)
            w = optimiser.descent(w.detach(), grad)
    return best_x


# ----------------------------------------------------------------------------- minimal-norm attacks

def _difference_gradients(logits, x, classes: torch.Tensor):
    """The differences z_k − z_label and their gradients for the candidate classes.

    ``logits`` come from a forward pass on ``x`` (which requires grad). ``classes`` (N, C) lists
    per example the label first, then the C − 1 candidates. Returns f (N, C − 1) and the
    gradients w (N, C − 1, ...) from C − 1 backward passes, each over the whole batch. (Batching
    them with ``is_grads_batched`` was 10 % slower on CPU: vmap loops over convolution backward
    anyway, then stacks the results.)
    """
    n, c = classes.shape
    label_hot = F.one_hot(classes[:, 0], logits.shape[1]).to(logits.dtype)
    # seeds[j] back-propagates z_{classes[:, j+1]} − z_label for every example at once
    seeds = F.one_hot(classes[:, 1:].T, logits.shape[1]).to(logits.dtype) - label_hot
    f = (logits.gather(1, classes[:, 1:]) - logits.gather(1, classes[:, :1])).detach()
    grads = x.new_empty((n, c - 1, *x.shape[1:]))
    for j in range(c - 1):
        grads[:, j], = torch.autograd.grad(logits, x, grad_outputs=seeds[j], retain_graph=j < c - 2)
    return f, grads


def deepfool(model, x, *, num_classes: int | None = None, overshoot: float = 0.02,
             max_iter: int = 50, progress: bool = False):
    """DeepFool (Moosavi-Dezfooli et al. 2016), minimal L2, vectorised over batch and classes.

    The label to leave is the model's clean prediction; only the ``num_classes`` classes with the
    highest clean logits are considered (all when None). Each step costs one forward pass and
    C − 1 backward passes, each over all examples still correctly labelled (no loop over
    images). Returns ``(x_adv, l2_norms, success)``; x_adv = clip(x + (1 + overshoot)·r_total,
    0, 1).
    """
    check_batch(x)
    overshoot = number_in("overshoot", overshoot, 0)
    max_iter = positive_int("max_iter", max_iter)
    x = x.detach()
    with frozen_model(model):
        with torch.no_grad():
            clean_logits = model(x)
        n_total = clean_logits.shape[1]
        num_classes = n_total if num_classes is None else positive_int("num_classes", num_classes, 2)
        classes = clean_logits.argsort(1, descending=True)[:, : min(num_classes, n_total)]
        label = classes[:, 0]
        r_total = torch.zeros_like(x)
        x_adv = x.clone()
        active = torch.ones(len(x), dtype=torch.bool, device=x.device)
        for _ in tqdm(range(max_iter), desc="deepfool", disable=not progress, leave=False):
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            x_in = x_adv[idx].requires_grad_(True)
            logits = model(x_in)
            still = logits.argmax(1) == label[idx]
            if not still.all():  # drop the newly fooled before paying C − 1 backward passes
                active[idx[~still]] = False
                idx = idx[still]
                if idx.numel() == 0:
                    break
                x_in = x_adv[idx].requires_grad_(True)
                logits = model(x_in)
            f, w = _difference_gradients(logits, x_in, classes[idx])  # (n, C-1), (n, C-1, ...)
            w_norm = w.flatten(2).norm(dim=2).clamp_min(1e-12)
            distance = f.abs() / w_norm
            nearest = distance.argmin(1)
            w_near = w[torch.arange(len(idx)), nearest]
            f_near = f[torch.arange(len(idx)), nearest]
            scale = (f_near.abs() + 1e-4) / w_norm[torch.arange(len(idx)), nearest] ** 2
            r_total[idx] += _view_per_example(scale, w_near) * w_near
            x_adv[idx] = (x[idx] + (1 + overshoot) * r_total[idx]).clamp(0, 1)
        success = _predict(model, x_adv) != label
    return x_adv, _per_example_norm(x_adv - x), success


def carlini_wagner_l2(model, x, y, *, c_init: float = 1e-2, binary_steps: int = 9,
                      max_iter: int = 100, lr: float = 0.01, kappa: float = 0.0, x0: str = "x",
                      progress: bool = False):
    """Carlini & Wagner's L2 attack (2017) with a per-example binary search over c.

    minimise ‖x′ − x‖² + c·max(z_y − max_{j≠y} z_j, −κ) over w, x′ = (tanh w + 1)/2, by Adam
    (``lr``, fresh state each binary step). The start is w = atanh(2·x0 − 1) with x0 = x or
    x0 = 0 (Fu et al., Table 5); atanh's input is clamped to ±(1 − 1e-6) so pixels at 0 or 1
    stay movable (Adam rescales their tiny gradients). c starts at ``c_init`` (our choice; C&W
    used 1e-3), halves towards success and grows ×10 until the first success. Returns
    ``(x_adv, l2_norms, success)``: the smallest successful example, x itself where none was found.
    """
    check_batch(x, y)
    c_init = number_in("c_init", c_init, 0, low_open=True)
    binary_steps = positive_int("binary_steps", binary_steps)
    max_iter = positive_int("max_iter", max_iter)
    lr = number_in("lr", lr, 0, low_open=True)
    kappa = number_in("kappa", kappa, 0)
    choice("x0", x0, ("x", "zero"))
    x = x.detach()
    start = x if x0 == "x" else torch.zeros_like(x)
    w_start = torch.atanh((2 * start - 1).clamp(-(1 - 1e-6), 1 - 1e-6))
    n = len(x)
    c = torch.full((n,), c_init, device=x.device)
    lower = torch.zeros(n, device=x.device)
    upper = torch.full((n,), 1e10, device=x.device)
    best_l2 = torch.full((n,), math.inf, device=x.device)
    best_x = x.clone()
    bar = _steps_bar(binary_steps * max_iter, progress, "cw_l2")
    with frozen_model(model):
        for _ in range(binary_steps):
            w = w_start.clone()
            optimiser = _Adam(lr)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            for step in range(max_iter + 1):
                w.requires_grad_(step < max_iter)
                x_adv = ((torch.tanh(w) + 1) / 2).clamp(0, 1)
                logits = model(x_adv)
                dist = (x_adv - x).flatten(1).pow(2).sum(1)
                gap = -margin(logits, y)                         # z_y − max_{j≠y} z_j
                with torch.no_grad():
                    hit = (gap <= -kappa) & (logits.argmax(1) != y)
                    l2 = dist.sqrt()
                    improve = hit & (l2 < best_l2)
                    best_l2 = torch.where(improve, l2, best_l2)
                    best_x = torch.where(_view_per_example(improve, x), x_adv.detach(), best_x)
                    succeeded |= hit
                if step == max_iter:
                    break
                objective = dist + c * gap.clamp_min(-kappa)
                grad, = torch.autograd.grad(objective.sum(), w)
                w = optimiser.descent(w.detach(), grad)
                bar.update(1)
            upper = torch.where(succeeded, torch.minimum(upper, c), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, c))
            c = torch.where(upper < 1e9, (lower + upper) / 2, c * 10)
    bar.close()
    success = torch.isfinite(best_l2)
    return best_x, torch.where(success, best_l2, torch.zeros_like(best_l2)), success


# ----------------------------------------------------------------------------- AutoAttack (original code)

class _Flatten4d(torch.nn.Module):
    """Shows a model of (N, *S) inputs to AutoAttack, which expects images, as (N, 1, 1, |S|)."""

    def __init__(self, model, shape):
        super().__init__()
        self.model, self.shape = model, tuple(shape)

    def forward(self, x):
        return self.model(x.reshape(len(x), *self.shape))


def _as_images(model, x):
    if x.dim() == 4:
        return model, x, lambda t: t
    shape = x.shape[1:]
    return _Flatten4d(model, shape), x.reshape(len(x), 1, 1, -1), lambda t: t.reshape(len(t), *shape)


@contextlib.contextmanager
def _private_global_rng(device: torch.device):
    """Restore the global RNG the original code re-seeds; silence its legacy-API warnings."""
    import warnings

    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="size_average and reduce args")
        yield


def _import_autoattack():
    """Import the original AutoAttack code, patching the one torch API it uses that was removed.

    pyautoattack 0.2.0's FAB imports ``torch.autograd.gradcheck.zero_gradients`` (gone since
    torch 1.9); we supply the old three-line function when it is missing.
    """
    import importlib

    gradcheck = importlib.import_module("torch.autograd.gradcheck")  # the module, not the function
    if not hasattr(gradcheck, "zero_gradients"):
        def zero_gradients(tensor):
            if isinstance(tensor, torch.Tensor) and tensor.grad is not None:
                tensor.grad.detach_()
                tensor.grad.zero_()
        gradcheck.zero_gradients = zero_gradients
    import autoattack

    return autoattack


AUTOATTACK_PARTS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")


def autoattack(model, x, y, eps, *, norm: str = "linf", version: str = "standard",
               attacks_to_run=None, n_classes: int | None = None, seed: int | None = None,
               generator=None, batch_size: int = 250, progress: bool = False):
    """AutoAttack (Croce & Hein 2020) through the original ``pyautoattack`` code.

    Returns ``(x_adv, broken_by)``: ``broken_by[i]`` is ``"clean"`` when example i is misclassified
    without attack, the name of the first attack in the cascade that broke it, or ``None`` when it
    stayed robust. Results equal ``AutoAttack.run_standard_evaluation`` on the same seed (each
    attack runs on the examples the previous ones left standing, exactly as there). For fewer than
    10 classes the targeted attacks use K − 1 targets. ``seed`` defaults to a draw from
    ``generator``; the global RNG the original code re-seeds is restored afterwards.
    """
    AutoAttack = _import_autoattack().AutoAttack

    check_batch(x, y)
    eps = number_in("eps", eps, 0)
    choice("norm", norm, NORMS)
    choice("version", version, ("standard", "plus", "rand", "custom"))
    if version == "custom":
        if not attacks_to_run:
            raise ValueError(f"version='custom' needs attacks_to_run from {AUTOATTACK_PARTS}")
        for part in attacks_to_run:
            choice("attacks_to_run entry", part, AUTOATTACK_PARTS)
    seed = _seed_from(_generator(generator)) if seed is None else positive_int("seed", seed, 0)
    with frozen_model(model):
        wrapped, images, back = _as_images(model, x.detach())
        with torch.no_grad():
            logits = wrapped(images)
        _check_labels_fit(logits, y)
        n_classes = logits.shape[1] if n_classes is None else positive_int("n_classes", n_classes, 2)
        adversary = AutoAttack(wrapped, norm="Linf" if norm == "linf" else "L2", eps=eps, seed=seed,
                               verbose=False, version=version, device=x.device,
                               attacks_to_run=list(attacks_to_run or []))
        if version == "custom":
            adversary.attacks_to_run = list(attacks_to_run)
        adversary.apgd_targeted.n_target_classes = min(adversary.apgd_targeted.n_target_classes, n_classes - 1)
        adversary.fab.n_target_classes = min(adversary.fab.n_target_classes, n_classes - 1)
        broken_by: list[str | None] = [None] * len(x)
        robust = logits.argmax(1) == y
        for i in (~robust).nonzero().flatten().tolist():
            broken_by[i] = "clean"
        x_adv = images.clone()
        cascade = list(adversary.attacks_to_run)
        with _private_global_rng(x.device):
            for part in tqdm(cascade, desc="autoattack", disable=not progress, leave=False):
                idx = robust.nonzero().flatten()
                if idx.numel() == 0:
                    break
                adversary.attacks_to_run = [part]
                out = adversary.run_standard_evaluation(images[idx], y[idx], bs=batch_size)
                with torch.no_grad():
                    fooled = torch.cat([wrapped(c).argmax(1) for c in out.split(batch_size)]) != y[idx]
                x_adv[idx[fooled]] = out[fooled]
                robust[idx[fooled]] = False
                for i in idx[fooled].tolist():
                    broken_by[i] = part
        x_adv = project(back(x_adv), x, eps, norm)
    return x_adv, broken_by


def apgd_ce(model, x, y, eps, *, norm: str = "linf", steps: int = 100, restarts: int = 1,
            seed: int | None = None, generator=None) -> torch.Tensor:
    """APGD on cross-entropy (Croce & Hein 2020) through ``autoattack.autopgd_pt.APGDAttack``.

    Original defaults: 100 iterations, ρ = 0.75, one restart. Examples already misclassified
    are returned unchanged (as the original does).
    """
    _import_autoattack()
    from autoattack.autopgd_pt import APGDAttack

    check_batch(x, y)
    eps = number_in("eps", eps, 0)
    choice("norm", norm, NORMS)
    steps = positive_int("steps", steps)
    restarts = positive_int("restarts", restarts)
    seed = _seed_from(_generator(generator)) if seed is None else positive_int("seed", seed, 0)
    with frozen_model(model), _private_global_rng(x.device):
        wrapped, images, back = _as_images(model, x.detach())
        attack = APGDAttack(wrapped, n_iter=steps, norm="Linf" if norm == "linf" else "L2",
                            n_restarts=restarts, eps=eps, seed=seed, loss="ce", device=x.device)
        _, adv = attack.perturb(images, y, cheap=True)
        return project(back(adv.detach()), x, eps, norm)


def square(model, x, y, eps, *, norm: str = "linf", n_queries: int = 5000, p_init: float = 0.8,
           seed: int | None = None, generator=None) -> torch.Tensor:
    """Square Attack (Andriushchenko et al. 2020), black-box, via ``autoattack.square``.

    AutoAttack's settings: margin loss, p_init = 0.8, one restart, 5000 queries by default.
    """
    _import_autoattack()
    from autoattack.square import SquareAttack

    check_batch(x, y)
    eps = number_in("eps", eps, 0)
    choice("norm", norm, NORMS)
    n_queries = positive_int("n_queries", n_queries)
    seed = _seed_from(_generator(generator)) if seed is None else positive_int("seed", seed, 0)
    with frozen_model(model), _private_global_rng(x.device), torch.no_grad():
        wrapped, images, back = _as_images(model, x.detach())
        attack = SquareAttack(wrapped, p_init=p_init, n_queries=n_queries, eps=eps,
                              norm="Linf" if norm == "linf" else "L2", n_restarts=1, seed=seed,
                              verbose=False, device=x.device, resc_schedule=False)
        adv = attack.perturb(images, y)
        return project(back(adv.detach()), x, eps, norm)


# ----------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class AttackSpec:
    """A named attack: ``make(model, x, y, eps, generator, **overrides) -> x_adv``."""

    name: str
    description: str
    make: Callable
    defaults: dict = field(default_factory=dict)
    accepts: Callable | None = None  # the function whose keyword arguments overrides may set


def _linf_clip(result, x, eps):
    x_adv = result[0] if isinstance(result, tuple) else result
    return project(x_adv, x, eps, "linf")


def _spec(name, description, fn, **defaults):
    def make(model, x, y, eps, generator=None, **overrides):
        kwargs = {**defaults, **overrides}
        return fn(model, x, y, eps, generator=generator, **kwargs)
    return AttackSpec(name, description, make, defaults, fn)


def _minimal_l2_spec(name, description, fn, needs_labels, **defaults):
    def make(model, x, y, eps, generator=None, **overrides):
        number_in("eps", eps, 0)
        kwargs = {**defaults, **overrides}
        result = fn(model, x, y, **kwargs) if needs_labels else fn(model, x, **kwargs)
        return _linf_clip(result, x, eps)
    return AttackSpec(name, description, make, defaults, fn)


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
               lambda model, x, y, eps, generator=None, **kw: autoattack(
                   model, x, y, eps, generator=generator, **kw)[0], {}, autoattack),
    _minimal_l2_spec("deepfool", "DeepFool (L2, 10 classes, overshoot 0.02) clipped into the ε-ball",
                     deepfool, needs_labels=False, num_classes=10),
    _minimal_l2_spec("cw_l2", "Carlini–Wagner L2 (6 binary steps × 100 Adam steps) clipped into the ε-ball",
                     carlini_wagner_l2, needs_labels=True, binary_steps=6, max_iter=100),
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
    x_adv = run_attack(attack, source_model, x, y, eps, generator=generator, **overrides)
    with frozen_model(target_model):
        correct = _predict(target_model, x_adv) == y
    return x_adv, correct
