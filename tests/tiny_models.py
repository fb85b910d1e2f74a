"""Tiny, seconds-to-train problems the attack and evaluation tests share."""

from __future__ import annotations

import torch
from torch import nn

SHAPE = (1, 6, 6)
N_CLASSES = 10


def blobs(n: int, seed: int):
    """Ten Gaussian blobs in [0, 1]^(1×6×6): a task a linear model learns in a second."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(N_CLASSES, *SHAPE, generator=torch.Generator().manual_seed(123))
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    x = (centres[y] + 0.25 * torch.randn(n, *SHAPE, generator=g)).clamp(0, 1)
    return x, y


def trained_linear(steps: int = 150, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, N_CLASSES))
    x, y = blobs(512, seed=1 + seed)
    for _ in range(steps):  # plain gradient descent: torch.optim's first use costs seconds
        grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), model.parameters())
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= 0.5 * g
    return model.eval()
