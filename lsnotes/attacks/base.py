"""What every attack shares: input checks, the ε-ball (bounds and projection), the losses
attacks maximise, best-iterate tracking and explicit random generators."""

from __future__ import annotations

import contextlib
import math
import torch
import torch.nn.functional as F
import warnings
import zlib
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
    # relative error of ulp(1)/|δ| in a small δ (and a δ of one ulp cannot shrink by a factor
    # near 1 at all). Shrink the ones still too long, harder each time, then halve them; any
    # left over (ε below the rounding of x + δ) fall back to x itself, whose δ = 0 is in every ball.
    eps_t = torch.tensor(eps, dtype=x.dtype, device=x.device)
    if float(eps_t) > eps:  # the dtype rounded ε upwards; compare with the next value below
        eps_t = torch.nextafter(eps_t, torch.zeros_like(eps_t))
    shrinks = [1 - 2.0 ** (-20 + 2 * attempt) for attempt in range(9)] + [0.5] * 12
    for shrink_by in shrinks:
        too_long = _per_example_norm(x_adv - x) > eps_t
        if not too_long.any():
            return x_adv
        shrink = torch.where(too_long, shrink_by, 1.0).to(x.dtype)
        x_adv = (x + (x_adv - x) * _view_per_example(shrink, x)).clamp(0, 1)
    too_long = _per_example_norm(x_adv - x) > eps_t
    return torch.where(_view_per_example(too_long, x), x, x_adv)


class NonFiniteGradientWarning(RuntimeWarning):
    """An attack met non-finite input gradients (nan or inf, e.g. a backward pass of 0·∞): those
    examples made no move on that step. The audit counts these warnings per attack."""


class NonFiniteImageWarning(RuntimeWarning):
    """An attack produced a non-finite image; the clean input was returned in its place."""


def finite_gradient(grad: torch.Tensor, where: str) -> torch.Tensor:
    """``grad`` with each example whose gradient holds a nan or inf set to zero: a non-finite
    gradient is treated as absent, so that step makes no move. Warns
    (:class:`NonFiniteGradientWarning`) with the number of such examples."""
    finite = torch.isfinite(grad.flatten(1)).all(1)
    if bool(finite.all()):
        return grad
    warnings.warn(NonFiniteGradientWarning(
        f"{where}: {int((~finite).sum())} example(s) had non-finite input gradients (nan or inf); "
        f"they made no move on that step"), stacklevel=3)
    return torch.where(_view_per_example(finite, grad), grad, torch.zeros_like(grad))


def finite_images(x_adv: torch.Tensor, x: torch.Tensor, where: str) -> torch.Tensor:
    """``x_adv`` with any example holding a nan or inf replaced by the clean ``x``: no attack
    returns a non-finite image (or counts one as a success)."""
    finite = torch.isfinite(x_adv.flatten(1)).all(1)
    if bool(finite.all()):
        return x_adv
    warnings.warn(NonFiniteImageWarning(
        f"{where}: {int((~finite).sum())} non-finite adversarial example(s) replaced by the clean "
        f"input"), stacklevel=3)
    return torch.where(_view_per_example(finite, x_adv), x_adv, x.to(x_adv.dtype))


def _input_gradient(losses: torch.Tensor, x_adv: torch.Tensor, where: str = "attack") -> torch.Tensor:
    """d(sum of losses)/d(input); zero where the graph does not reach the input (a cut graph is
    a zero gradient to an attacker: it cannot move) and for examples whose gradient is not finite."""
    if not losses.requires_grad:
        return torch.zeros_like(x_adv)
    grad, = torch.autograd.grad(losses.sum(), x_adv, allow_unused=True)
    return torch.zeros_like(x_adv) if grad is None else finite_gradient(grad, where)


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
        better &= torch.isfinite(x_new.detach().flatten(1)).all(1)  # never keep a nan image
        self.x = torch.where(_view_per_example(better, self.x), x_new.detach(), self.x)
        self.wrong = torch.where(better, wrong, self.wrong)
        self.loss = torch.where(better, loss, self.loss)

    def offer_scored(self, model, x_new: torch.Tensor, y: torch.Tensor, loss: str) -> None:
        """Score ``x_new`` with one forward pass, then :meth:`offer` it."""
        with torch.no_grad():
            logits = model(x_new)
        self.offer(x_new, logits.argmax(1) != y, attack_loss(logits, y, loss))


def predict_logits(model, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The model's outputs on ``x``, batch by batch, in eval mode and without autograd: the one
    batched-predict helper of :mod:`lsnotes.attacks` and :mod:`lsnotes.robustness`."""
    with frozen_model(model), torch.no_grad():
        return torch.cat([model(chunk) for chunk in x.split(batch_size)])


def predict(model, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The predicted class per example (see :func:`predict_logits`)."""
    return predict_logits(model, x, batch_size).argmax(1)



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
        grad = torch.where(torch.isfinite(grad), grad, torch.zeros_like(grad))  # no host sync
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
