"""Straight-through (BPDA) views of a model whose gradients are cut or shattered.

Backward Pass Differentiable Approximation (Athalye et al., 2018): keep the forward pass exactly,
replace a step that blocks the gradient by the identity on the backward pass. Two views:

- :class:`StraightThroughInput` needs no configuration. The whole forward pass receives a
  detached input (so numpy steps and ``.detach()`` work). Every submodule *with parameters* that
  is called on a tensor cut from the graph gets ``s + (t − s).detach()``, where ``s`` is the
  latest tensor that still carries the gradient with as many values per example (the input, or
  a layer's output): the value it saw, with the identity as its gradient. Parameter-free steps
  before the first layer with weights (quantisation, JPEG in numpy, a detach, a normalisation: a
  positive per-channel scale, which keeps the gradient's sign) are thus the identity to an
  attacker; so is a ``.detach()`` between two layers. A submodule run under ``torch.no_grad()``
  is run again with autograd on (its exact gradient). A cut that changes the number of values
  per example is out of its reach: name the layer (:class:`StraightThroughLayer`).
- :class:`StraightThroughLayer` replaces one named submodule that maps a tensor to one of the
  same shape by the identity on the backward pass (the audit's ``bpda_layer``).
"""

from __future__ import annotations

import torch
from torch import nn


class StraightThroughInput(nn.Module):
    """``model`` with every cut in its autograd graph bridged (see the module doc)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        carriers = [x]  # tensors that carry the gradient, most recent last
        weighted = [m for m in self.model.modules()
                    if m is not self.model and any(True for _ in m.parameters(recurse=False))]
        handles = [m.register_forward_pre_hook(lambda m, a: _bridge(a, carriers))
                   for m in weighted]
        handles += [m.register_forward_hook(lambda m, a, out: _regrow(m, a, out, carriers))
                    for m in self.model.modules() if m is not self.model]
        try:
            return self.model(x.detach())
        finally:
            for handle in handles:
                handle.remove()


def _bridge(args, carriers):
    """Before a layer with weights: an input cut from the graph is connected, as the identity,
    to the latest gradient-carrying tensor with as many values per example."""
    if not args or not isinstance(args[0], torch.Tensor) or not torch.is_grad_enabled():
        return None
    seen = args[0]
    if seen.requires_grad:
        carriers.append(seen)
    if seen.requires_grad or not seen.is_floating_point():
        return None
    for source in reversed(carriers):
        if source.shape[0] == seen.shape[0] and source[0].numel() == seen[0].numel():
            source = source.reshape(seen.shape).to(seen.dtype)
            return (source + (seen - source).detach(), *args[1:])
    return None


def _regrow(module, args, out, carriers):
    """After any submodule: if its input carried the gradient and its output does not (it ran
    under ``torch.no_grad()`` or detached), run it again with autograd on; failing that, pass
    the gradient through as the identity where the shapes allow."""
    inp = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if not isinstance(out, torch.Tensor) or inp is None or not inp.requires_grad \
            or out.requires_grad or not out.is_floating_point():
        if isinstance(out, torch.Tensor) and out.requires_grad:
            carriers.append(out)
        return None
    with torch.enable_grad():
        again = module.forward(*args)
    if isinstance(again, torch.Tensor) and again.requires_grad and again.shape == out.shape:
        out = out + (again - again.detach())  # the value seen, the gradient of the recomputation
    elif inp[0].numel() == out[0].numel() and inp.shape[0] == out.shape[0]:
        out = inp.reshape(out.shape) + (out - inp.reshape(out.shape)).detach()
    else:
        return None
    carriers.append(out)
    return out


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


def unreached(view: nn.Module, x: torch.Tensor) -> bool:
    """Whether the loss of ``view`` on ``x`` still has no gradient with respect to ``x``."""
    x = x.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            out = view(x)
            if not out.requires_grad:
                return True
            grad, = torch.autograd.grad(out.logsumexp(1).sum(), x, allow_unused=True)
    except RuntimeError:
        return True
    return grad is None or not bool((grad != 0).any())


def cut_modules(model: nn.Module, x: torch.Tensor) -> list:
    """Names of the submodules whose input carries the gradient but whose output does not (the
    candidates for ``bpda_layer``), in the order they run; the model's own input counts as
    carrying it."""
    found, names = [], {m: n for n, m in model.named_modules() if n}

    def look(module, args, out):
        inp = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if inp is not None and inp.requires_grad and isinstance(out, torch.Tensor) \
                and not out.requires_grad and names[module] not in found:
            found.append(names[module])

    handles = [m.register_forward_hook(look) for m in names]
    try:
        with torch.enable_grad():
            model(x.detach().clone().requires_grad_(True))
    except Exception:  # noqa: BLE001 - e.g. a numpy step on a tensor that requires grad
        pass
    finally:
        for handle in handles:
            handle.remove()
    return found
