"""Straight-through (BPDA) views of a model whose gradients are cut or shattered.

Backward Pass Differentiable Approximation (Athalye et al., 2018): keep the forward pass exactly,
replace a step that blocks the gradient by the identity on the backward pass. Two views:

- :class:`StraightThroughInput` needs no configuration: the whole forward pass receives a detached
  input (so numpy steps and ``.detach()`` work), and the first submodule *with parameters* that
  is called with a tensor of the input's shape gets ``x + (t − x).detach()`` — the value it saw,
  with the identity as its gradient. Whatever parameter-free steps the model applies to its
  input before its first layer with weights (quantisation, JPEG in numpy, a detach, a
  normalisation: a positive per-channel scale, which keeps the gradient's sign) are thus
  treated as the identity by an attacker. A cut after that layer is out of its reach.
- :class:`StraightThroughLayer` replaces one named submodule that maps a tensor to one of the
  same shape by the identity on the backward pass (the audit's ``bpda_layer``).
"""

from __future__ import annotations

import torch
from torch import nn


class StraightThroughInput(nn.Module):
    """``model`` with its input preprocessing differentiated as the identity (see module doc)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        state = {"done": False}

        def connect(module, args):
            if state["done"] or not args or not isinstance(args[0], torch.Tensor):
                return None
            seen = args[0]
            if seen.shape != x.shape or not seen.is_floating_point():
                return None
            state["done"] = True
            return (x + (seen.to(x.dtype) - x).detach(), *args[1:])

        # parameter-free steps (rounding, a numpy transform, normalisation) are what is skipped
        handles = [m.register_forward_pre_hook(connect) for m in self.model.modules()
                   if m is not self.model and any(True for _ in m.parameters())]
        try:
            return self.model(x.detach())
        finally:
            for handle in handles:
                handle.remove()


class StraightThroughLayer(nn.Module):
    """``model`` with the submodule ``layer`` (a name from ``model.named_modules()``) run on a
    detached input and differentiated as the identity."""

    def __init__(self, model: nn.Module, layer: str):
        super().__init__()
        names = dict(model.named_modules())
        if not isinstance(layer, str) or layer not in names or layer == "":
            listing = ", ".join(n for n in names if n) or "none"
            raise ValueError(f"bpda_layer must name a submodule of the model; got {layer!r} "
                             f"(it has: {listing[:300]})")
        self.model, self.layer = model, layer
        self._target = names[layer]

    def forward(self, x):
        saved = {}

        def before(module, args):
            saved["input"] = args[0]
            return (args[0].detach(), *args[1:])

        def after(module, args, out):
            inp = saved.pop("input")
            if not isinstance(out, torch.Tensor) or out.shape != inp.shape:
                raise ValueError(f"bpda_layer {self.layer!r} must map a tensor to one of the same "
                                 f"shape to be replaced by the identity")
            return inp + (out - inp).detach()

        handles = [self._target.register_forward_pre_hook(before),
                   self._target.register_forward_hook(after)]
        try:
            return self.model(x)
        finally:
            for handle in handles:
                handle.remove()
