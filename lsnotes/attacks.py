"""Adversarial attacks used in the book, all batched, in [0, 1] pixel space, on CPU or CUDA.

Every attack here obeys the same contract, which the tests check on random models and inputs:

- it never changes the model: weights, their ``.grad`` and ``requires_grad`` flags and the
  train/eval mode are as they were afterwards (the model is run in eval mode *during* the attack,
  so batch-norm statistics are not updated by adversarial batches);
- its output lies in [0, 1] and, for the L∞ attacks, *exactly* inside the ε-ball in the
  input's floating-point type (bounds rounded outwards by ``x ± ε`` are nudged one ulp back in);
- its randomness comes from the ``generator`` argument (a fixed seed-0 generator when omitted),
  never from the global RNG — the AutoAttack-based attacks (:mod:`lsnotes.autoattack_original`,
  re-exported here) run inside ``torch.random.fork_rng`` because the original code re-seeds it;
- a success flag, where an attack returns one, means the returned example is misclassified with
  respect to the labels ``y`` (an example the model gets wrong already counts as a success);
- bad arguments raise ``ValueError`` naming the parameter before any work: ``x`` must be a
  non-empty float batch in [0, 1] of the model's dtype and input shape; labels (and targets) may
  have any integer dtype (they are converted to int64) and must lie in [0, K) for K outputs;
  L∞ budgets lie in [0, 1] and L2 budgets in [0, √D] (the diameter of the pixel box).

Step sizes follow Fu et al. (2020), Table 3: FGSM is one signed step of 2ε from x (clipped back
into the ball, so it coincides with the classic step of ε), PGD^k takes k steps of 2ε/k from a
uniform random start. The other settings we chose are stated in :data:`ATTACKS`.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import zlib
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lsnotes.checks import choice, flag, number_in, positive_int

NORMS = ("linf", "l2")
LOSSES = ("ce", "cw")


# ----------------------------------------------------------------------------- input checks

def seeded_generator(seed: int, *tags: str, device="cpu") -> torch.Generator:
    """A fresh generator seeded from ``seed`` and the names in ``tags``: each attack of a chapter
    draws its own fixed random stream (``seeded_generator(0, "LS", "pgd20")``), independent of how
    many draws the others made."""
    seed = positive_int("seed", seed, minimum=0)
    for tag in tags:
        if not isinstance(tag, str):
            raise ValueError(f"tags must be strings; got {tag!r}")
    salt = zlib.crc32("/".join(tags).encode()) if tags else 0
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + salt)


@contextlib.contextmanager
def frozen_model(model: torch.nn.Module):
    """Run ``model`` in eval mode with its parameters out of autograd; restore both afterwards."""
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    model.eval()
    try:
        yield model
    finally:
        for p, requires_grad in flags:
            p.requires_grad_(requires_grad)
        model.train(was_training)


def _check_labels(name: str, labels, x: torch.Tensor) -> torch.Tensor:
    """``labels`` as int64 if it is an integer tensor of shape (N,) on x's device, values >= 0."""
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex() \
            or labels.dtype == torch.bool:
        got = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"{name} must be an integer tensor of class labels; got {got}")
    if labels.shape != (x.shape[0],):
        raise ValueError(f"{name} must have shape ({x.shape[0]},) to match x; got {tuple(labels.shape)}")
    if labels.device != x.device:
        raise ValueError(f"{name} must be on x's device {x.device}; got {labels.device}")
    if labels.min() < 0:
        raise ValueError(f"{name} must hold class indices >= 0; got {int(labels.min())}")
    return labels.long()


def check_batch(x, y=None) -> torch.Tensor | None:
    """Raise ``ValueError`` unless x is a float batch in [0, 1] and y matching integer labels.

    Returns ``y`` as int64 (any integer dtype is accepted), or None when no labels were given.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a floating-point tensor; got {got}")
    if x.dim() < 2 or x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(f"x must have shape (N, ...) with N >= 1 non-empty examples; got {tuple(x.shape)}")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("x must hold finite pixel values in [0, 1]")
    return None if y is None else _check_labels("y", y, x)


def check_fits(model, x: torch.Tensor, y: torch.Tensor | None = None,
               target: torch.Tensor | None = None) -> int:
    """Raise ``ValueError`` unless ``model`` takes ``x`` (its dtype, device and shape) and returns
    (N, K) logits that y and target index; return K. One forward pass of one example, in eval
    mode. (x, y and target are assumed to have passed :func:`check_batch` already.)"""
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    weights = next((p for p in model.parameters() if p.is_floating_point()), None)
    if weights is not None and weights.dtype != x.dtype:
        raise ValueError(f"x must have the model's dtype {weights.dtype}; got {x.dtype} "
                         f"(convert with x.to({weights.dtype}))")
    if weights is not None and weights.device != x.device:
        raise ValueError(f"x must be on the model's device {weights.device}; got {x.device}")
    with frozen_model(model), torch.no_grad():
        try:
            out = model(x[:1])
        except RuntimeError as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"x of shape {tuple(x.shape)} does not fit the model: {first_line}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] < 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must return logits of shape (N, K) with K >= 2; got {shape}")
    n_classes = out.shape[1]
    for name, labels in (("y", y), ("target", target)):
        if labels is not None and labels.max() >= n_classes:
            raise ValueError(f"{name} holds class {int(labels.max())} but the model has "
                             f"{n_classes} outputs (classes 0 to {n_classes - 1})")
    return n_classes


def _check_eps(eps, norm: str, x: torch.Tensor) -> float:
    """ε within the pixel box: [0, 1] for L∞, [0, √D] for L2 (D pixels per example)."""
    choice("norm", norm, NORMS)
    if norm == "linf":
        return number_in("eps", eps, 0.0, 1.0)
    return number_in("eps", eps, 0.0, math.sqrt(x[0].numel()))


def _check_target(target, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
    if target is None:
        return None
    target = _check_labels("target", target, x)
    if (target == y).any():
        raise ValueError("target must differ from y for every example (a target is a wrong class)")
    return target


def _generator(generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        return torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None; got {generator!r}")
    return generator


# ----------------------------------------------------------------------------- shared plumbing

def _uniform(shape, generator: torch.Generator, like: torch.Tensor, low=-1.0, high=1.0):
    draw = torch.rand(shape, generator=generator, device=generator.device, dtype=like.dtype)
    return (low + (high - low) * draw).to(like.device)


def _per_example_norm(delta: torch.Tensor) -> torch.Tensor:
    return delta.flatten(1).norm(dim=1)


def _view_per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


def linf_bounds(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel bounds of the L∞ ε-ball intersected with [0, 1], exact in ``x``'s dtype."""
    eps = number_in("eps", eps, 0.0)
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
    choice("norm", norm, NORMS)
    if not isinstance(x_adv, torch.Tensor) or not isinstance(x, torch.Tensor) or x_adv.shape != x.shape:
        raise ValueError("x_adv and x must be tensors of the same shape")
    if norm == "linf":
        low, high = linf_bounds(x, eps)
        return torch.maximum(torch.minimum(x_adv, high), low)
    eps = number_in("eps", eps, 0.0)
    delta = x_adv - x
    scale = (eps / _per_example_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    x_adv = (x + delta * _view_per_example(scale, x)).clamp(0, 1)
    # Clamping to the box only shortens δ, but x + δ rounds to x's precision: near 1 that is a
    # relative error of ulp(1)/|δ| in a small δ. Shrink the ones still too long, harder each time.
    eps_t = torch.tensor(eps, dtype=x.dtype, device=x.device)
    if float(eps_t) > eps:  # the dtype rounded ε upwards; compare with the next value below
        eps_t = torch.nextafter(eps_t, torch.zeros_like(eps_t))
    for attempt in range(8):
        too_long = _per_example_norm(x_adv - x) > eps_t
        if not too_long.any():
            break
        shrink = torch.where(too_long, 1 - 2.0 ** (-20 + 2 * attempt), 1.0).to(x.dtype)
        x_adv = (x + (x_adv - x) * _view_per_example(shrink, x)).clamp(0, 1)
    return x_adv


def _input_gradient(losses: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """d(sum of losses)/d(input); zero where the graph does not reach the input (a cut graph is
    a zero gradient to an attacker: it cannot move)."""
    if not losses.requires_grad:
        return torch.zeros_like(x_adv)
    grad, = torch.autograd.grad(losses.sum(), x_adv, allow_unused=True)
    return torch.zeros_like(x_adv) if grad is None else grad


def _ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent step of unit size: the gradient's sign (L∞) or its direction (L2)."""
    if norm == "linf":
        return grad.sign()
    return grad / _view_per_example(_per_example_norm(grad).clamp_min(1e-12), grad)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The book's margin ``m = z_y − max_{k≠y} z_k`` per example (> 0: classified correctly)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], -math.inf)
    return true - others.max(1).values


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini–Wagner's margin loss ``−m = max_{k≠y} z_k − z_y``, which an attack maximises
    (> 0: misclassified)."""
    return -margin(logits, y)


def attack_loss(logits, y, loss: str = "ce", target=None) -> torch.Tensor:
    """Per-example loss an attack *maximises*: CE or CW margin, untargeted or towards ``target``.

    Targeted versions: ``-CE(z, t)`` and ``z_t − z_y`` (the MultiTargeted loss of Gowal et al.).
    """
    choice("loss", loss, LOSSES)
    if target is None:
        if loss == "ce":
            return F.cross_entropy(logits, y, reduction="none")
        return margin_loss(logits, y)
    if loss == "ce":
        return -F.cross_entropy(logits, target, reduction="none")
    return logits.gather(1, target[:, None]).squeeze(1) - logits.gather(1, y[:, None]).squeeze(1)


class _BestIterate:
    """Per example, the worst case seen so far: misclassified beats correct; among equals, the
    higher attack loss wins. ``x`` starts as the clean input with no score."""

    def __init__(self, x: torch.Tensor):
        self.x = x.detach().clone()
        self.wrong = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        self.loss = torch.full((len(x),), -math.inf, device=x.device)

    def offer(self, x_new: torch.Tensor, wrong: torch.Tensor, loss: torch.Tensor) -> None:
        """Keep ``x_new`` where it beats the current best."""
        loss = loss.detach()
        better = (wrong & ~self.wrong) | ((wrong == self.wrong) & (loss > self.loss))
        self.x = torch.where(_view_per_example(better, self.x), x_new.detach(), self.x)
        self.wrong = torch.where(better, wrong, self.wrong)
        self.loss = torch.where(better, loss, self.loss)

    def offer_scored(self, model, x_new: torch.Tensor, y: torch.Tensor, loss: str) -> None:
        """Score ``x_new`` with one forward pass, then :meth:`offer` it."""
        with torch.no_grad():
            logits = model(x_new)
        self.offer(x_new, logits.argmax(1) != y, attack_loss(logits, y, loss))


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
    return tqdm(total=total, desc=desc, disable=not flag("progress", progress), leave=False)


# ----------------------------------------------------------------------------- gradient attacks

def maximise_in_ball(model, x, objective, eps, steps, step_size, random_start, generator):
    """Training-time inner maximiser: signed-gradient ascent on any ``objective(logits)``.

    Unlike :func:`pgd` it keeps no per-example bookkeeping and returns the final iterate: the
    trainer calls it every batch (cross-entropy for PGD-AT/SGLR/FGSM training, the KL to the clean
    output for TRADES). It stays in ‖x' − x‖∞ ≤ ε and [0, 1]; the caller sets the model's mode.
    The random start draws from ``generator`` (a seed-0 generator on x's device when None).
    Only the arguments' types and ranges are checked, not x's pixel values: that would cost a
    device-to-host synchronisation per training step.
    """
    if not callable(model) or not callable(objective):
        raise ValueError("model and objective must be callables (a module, and logits -> scalar)")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or len(x) == 0:
        raise ValueError("x must be a non-empty floating-point batch of shape (N, ...)")
    eps = number_in("eps", eps, 0.0, 1.0)
    steps = positive_int("steps", steps)
    step_size = number_in("step_size", step_size, 0.0)
    if flag("random_start", random_start):
        if generator is None:
            generator = torch.Generator(device=x.device).manual_seed(0)
        elif not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None; got {generator!r}")
        delta = (torch.rand(x.shape, device=x.device, generator=generator) * 2 - 1) * eps
    else:
        delta = torch.zeros_like(x)
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(model(x + delta)), delta)
        delta = (delta.detach() + step_size * _ascent_direction(grad, "linf")).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def _random_start(x, eps, norm, generator, low, high):
    noise = _uniform(x.shape, generator, x)
    if norm == "linf":
        return torch.clamp(x + eps * noise, low, high)
    # L2: a random direction, scaled to a random radius in [0, ε]
    radius = eps * _uniform((len(x),), generator, x, 0, 1)
    noise = noise / _view_per_example(_per_example_norm(noise).clamp_min(1e-12), x)
    return project(x + noise * _view_per_example(radius, x), x, eps, norm)


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
    what :func:`lsnotes.audit_pgd.traced_pgd` records for the indicators of attack failure.
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
                grad = _input_gradient(losses, x_adv)
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
    return best.x.detach()


def fgsm(model, x, y, eps, *, loss: str = "ce", generator=None) -> torch.Tensor:
    """FGSM as in Fu et al. (2020): one signed step of 2ε from x, clipped into the ε-ball.

    Clipping makes it identical to Goodfellow et al.'s step of ε; no random start.
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
    return best.x


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
                grad, = torch.autograd.grad((w * model(x_adv)).sum(), x_adv)
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
            w = optimizer.descent(w.detach(), grad)
    return best.x


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


def deepfool(model, x, y=None, *, num_classes: int | None = None, overshoot: float = 0.02,
             max_iter: int = 50, progress: bool = False):
    """DeepFool (Moosavi-Dezfooli et al. 2016), minimal L2, vectorised over batch and classes.

    The label to leave is ``y``: an example the model already misclassifies is returned as it is
    (norm 0, a success). Without ``y`` the label to leave is the model's clean prediction and
    success means the prediction changed. Besides the label, only the ``num_classes − 1`` other
    classes with the highest clean logits are considered (all when None). Each step costs one
    forward pass and C − 1 backward passes, each over all examples still correctly labelled (no
    loop over images). Returns ``(x_adv, l2_norms, success)``, success meaning x_adv is
    misclassified; x_adv = clip(x + (1 + overshoot)·r_total, 0, 1).
    """
    y = check_batch(x, y)
    overshoot = number_in("overshoot", overshoot, 0)
    max_iter = positive_int("max_iter", max_iter)
    if num_classes is not None:
        num_classes = positive_int("num_classes", num_classes, 2)
    n_total = check_fits(model, x, y)
    num_classes = n_total if num_classes is None else min(num_classes, n_total)
    x = x.detach()
    with frozen_model(model):
        with torch.no_grad():
            clean_logits = model(x)
        label = clean_logits.argmax(1) if y is None else y
        others = clean_logits.scatter(1, label[:, None], -math.inf)
        classes = torch.cat([label[:, None], others.argsort(1, descending=True)[:, : num_classes - 1]], 1)
        r_total = torch.zeros_like(x)
        x_adv = x.clone()
        active = clean_logits.argmax(1) == label
        for _ in tqdm(range(max_iter), desc="deepfool", disable=not flag("progress", progress),
                      leave=False):
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
    ``(x_adv, l2_norms, success)``: the smallest successful (misclassified) example, x itself
    where none was found.
    """
    y = check_batch(x, y)
    c_init = number_in("c_init", c_init, 0, 1e9, low_open=True)
    binary_steps = positive_int("binary_steps", binary_steps)
    max_iter = positive_int("max_iter", max_iter)
    lr = number_in("lr", lr, 0, low_open=True)
    kappa = number_in("kappa", kappa, 0)
    choice("x0", x0, ("x", "zero"))
    check_fits(model, x, y)
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
            optimizer = _Adam(lr)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            for step in range(max_iter + 1):
                w.requires_grad_(step < max_iter)
                x_adv = ((torch.tanh(w) + 1) / 2).clamp(0, 1)
                logits = model(x_adv)
                dist = (x_adv - x).flatten(1).pow(2).sum(1)
                gap = margin(logits, y)
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
                w = optimizer.descent(w.detach(), grad)
                bar.update(1)
            upper = torch.where(succeeded, torch.minimum(upper, c), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, c))
            c = torch.where(upper < 1e9, (lower + upper) / 2, c * 10)
    bar.close()
    success = torch.isfinite(best_l2)
    return best_x, torch.where(success, best_l2, torch.zeros_like(best_l2)), success


# ----------------------------------------------------------------------------- AutoAttack (original code)

# The wrappers live in their own module, which imports the checks above from here: import it
# only now that they exist (either module may be imported first).
from lsnotes.autoattack_original import AUTOATTACK_PARTS, apgd_ce, autoattack, square  # noqa: E402, F401


# ----------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class AttackSpec:
    """A named attack: ``make(model, x, y, eps, generator, **overrides) -> x_adv``."""

    name: str
    description: str
    make: Callable
    defaults: dict = field(default_factory=dict)
    accepts: Callable | None = None  # the function whose keyword arguments overrides may set


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
        return project(x_adv, x, eps, "linf")
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
        correct = _predict(target_model, x_adv) == y
    return x_adv, correct
