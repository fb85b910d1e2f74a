"""Deliberately broken defences for the audit tests: each makes attacks fail in one known way."""

from __future__ import annotations

import torch
from torch import nn

from tiny_models import N_CLASSES


class Quantised(nn.Module):
    """Rounds pixels to 4 levels first: the input gradient is zero almost everywhere."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 3) / 3)


class Noisy(nn.Module):
    """Adds Gaussian noise to the logits on every call, from its own generator."""

    def __init__(self, model, scale: float = 0.5, seed: int = 0):
        super().__init__()
        self.model, self.scale = model, scale
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x):
        logits = self.model(x)
        noise = torch.randn(logits.shape, generator=self.generator)
        return logits + self.scale * noise.to(logits.device)


class Saturating(nn.Module):
    """Logits multiplied by 1000: the softmax saturates and the cross-entropy gradient underflows
    to exactly zero on confident examples, while the margin z_j − z_y keeps its slope."""

    def __init__(self, model, scale: float = 1000.0):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return self.scale * self.model(x)


class Probabilities(nn.Module):
    """Returns softmax probabilities instead of logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).softmax(1)


class SelfAttacking(nn.Module):
    """A 'dynamic' defence: every forward pass takes a gradient step on its own input first."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        with torch.enable_grad():
            probe = x.detach().requires_grad_(True)
            grad, = torch.autograd.grad(self.model(probe).logsumexp(1).sum(), probe)
        return self.model((x - 0.01 * grad.sign()).clamp(0, 1))


class MeanPixel(nn.Module):
    """Logits that see the input only through its mean pixel t = mean(x): class 0 scores 0,
    class 1 scores ``bump(t)``, the other classes −10. With flat images around ``centre`` and
    label 0, ``bump`` alone decides where an attack succeeds along one direction."""

    def __init__(self, bump, n_classes: int = N_CLASSES):
        super().__init__()
        self.bump, self.n_classes = bump, n_classes
        self.register_buffer("others", torch.full((1, n_classes - 2), -10.0))

    def forward(self, x):
        t = x.flatten(1).mean(1)
        zero = torch.zeros_like(t)[:, None]
        return torch.cat([zero, self.bump(t)[:, None], self.others.expand(len(x), -1)], 1)


def flat_images(n: int, centre: float = 0.5, side: int = 16, seed: int = 0):
    """Images of one flat grey level plus faint noise, all labelled 0 (for :class:`MeanPixel`)."""
    g = torch.Generator().manual_seed(seed)
    x = (centre + 0.01 * torch.randn(n, 1, side, side, generator=g)).clamp(0, 1)
    return x, torch.zeros(n, dtype=torch.long)


def hump(centre: float, eps: float) -> MeanPixel:
    """Cross-entropy rises to a local maximum 0.3ε above ``centre`` while the class stays right,
    then falls; class 1 wins only beyond 0.7ε. Small steps climb the hump and stay there; one
    large step (FGSM's 2ε, clipped to ε) jumps past it."""
    top, width, cliff = centre + 0.3 * eps, 0.1 * eps, centre + 0.7 * eps
    return MeanPixel(lambda t: -1 + 0.9 * torch.exp(-((t - top) / width) ** 2)
                     + 100 * torch.relu(t - cliff))


def slab(centre: float, eps: float) -> MeanPixel:
    """Class 1 wins only in a thin slab around ``centre`` + 0.5ε, and the loss peaks inside it:
    steps of 0.4ε land in the slab and then jump out of it again."""
    middle, half_width = centre + 0.5 * eps, 0.15 * eps
    return MeanPixel(lambda t: 50 * (half_width - (t - middle).abs()))


def trained_binary_linear(steps: int = 150, seed: int = 0):
    """A two-class linear model (classes 0 and 1 of the blobs) and its data: cross-entropy and
    margin share one gradient direction, so PGD is already the optimal L∞ attack."""
    from tiny_models import blobs

    x, y = blobs(800, seed=1 + seed)
    keep = y < 2
    x, y = x[keep], y[keep]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 2))
    for _ in range(steps):
        grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), model.parameters())
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= 0.5 * g
    return model.eval()


class _BadBackward(torch.autograd.Function):
    """The identity forward; a backward that returns ``fill`` times the incoming gradient."""

    @staticmethod
    def forward(ctx, x, fill):
        ctx.fill = fill
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.fill, None


class BadGradient(nn.Module):
    """A sound model behind a layer whose backward pass is broken: ``fill = nan`` (a 0·∞ in a
    custom layer), ``inf``, or 0 (a zero gradient). The forward pass is the model's own, so
    its robustness is exactly the model's."""

    def __init__(self, model, fill: float):
        super().__init__()
        self.model, self.fill = model, fill

    def forward(self, x):
        return self.model(_BadBackward.apply(x, self.fill))


class NumpyForward(nn.Module):
    """Runs a preprocessing step in numpy (as JPEG-compression defences do): no autograd graph
    reaches the input at all."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        pixels = torch.from_numpy(x.detach().cpu().numpy().copy()).to(x.device)
        return self.model(pixels)


class NoGrad(nn.Module):
    """Computes its first layer under ``torch.no_grad()``: a graph cut at the input."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        with torch.no_grad():
            first = self.model[0](x)
        return self.model[1:](first)
