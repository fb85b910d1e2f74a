"""Checks on the model itself, before any attack: does it fit the data (:func:`check_model`),
does the loss have an input gradient, is the forward pass random, does it call autograd?
Used by :func:`lsnotes.robustness.audit`."""

from __future__ import annotations

import math
import sys

import torch

from lsnotes import attacks as attack_lib

def model_device(model) -> torch.device:
    parameter = next(iter(model.parameters()), None)
    buffer = next(iter(model.buffers()), None)
    for tensor in (parameter, buffer):
        if tensor is not None:
            return tensor.device
    return torch.device("cpu")


def check_model(model, x, n_classes: int | None = None, batch: int = 8) -> torch.Tensor:
    """Raise ``ValueError`` unless ``model`` maps a batch of x to finite logits, one per class.

    Returns the outputs on ``x[:batch]``. ``n_classes`` is the number the dataset has (None: any
    number >= 2).
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    sample = x[:batch]
    try:
        with attack_lib.frozen_model(model), torch.no_grad():
            out = model(sample)
    except Exception as err:  # noqa: BLE001 - the reader's code: report, do not crash
        raise ValueError(f"the model fails on a batch of shape {tuple(sample.shape)} in [0, 1]: "
                         f"{type(err).__name__}: {_first_line(err)}") from None
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"the model must return a tensor of logits; it returned "
                         f"{type(out).__name__}")
    wanted = f"({len(sample)}, {n_classes})" if n_classes else f"({len(sample)}, K)"
    if out.dim() != 2 or out.shape[0] != len(sample) or out.shape[1] < 2 \
            or (n_classes is not None and out.shape[1] != n_classes):
        raise ValueError(f"the model returns outputs of shape {tuple(out.shape)} for "
                         f"{len(sample)} inputs; expected {wanted}: one logit per class")
    if not torch.isfinite(out).all():
        raise ValueError("the model returns non-finite outputs (nan or inf) on inputs in [0, 1]")
    return out


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""


def _predict(model, x, batch_size: int) -> torch.Tensor:
    return attack_lib.predict_logits(model, x, batch_size)


def _input_gradient_norms(model, x, y, loss: str, batch_size: int):
    """Per-example L1 norm of the loss gradient w.r.t. the input, or (None, why) if there is none."""
    norms = []
    with attack_lib.frozen_model(model):
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            xb = xb.clone().requires_grad_(True)
            try:
                with torch.enable_grad():
                    values = attack_lib.attack_loss(model(xb), yb, loss)
            except Exception as err:  # noqa: BLE001 - e.g. .numpy() on a tensor that needs grad
                return None, (f"the forward pass fails on an input that requires grad: "
                              f"{type(err).__name__}: {_first_line(err)}")
            if not values.requires_grad:
                return None, "the output does not depend on the input through autograd"
            try:
                grad, = torch.autograd.grad(values.sum(), xb, allow_unused=True)
            except RuntimeError as err:
                return None, _first_line(err)
            if grad is None:
                return None, "the loss is not connected to the input in the autograd graph"
            per_example = grad.flatten(1).abs().sum(1)
            finite = torch.isfinite(grad.flatten(1)).all(1)
            norms.append(torch.where(finite, per_example, torch.full_like(per_example, math.nan)))
    return torch.cat(norms), None


def _output_spread(model, x, repeats: int, batch_size: int):
    """AutoAttack's randomness test per example: the largest L2 distance between normalised
    outputs of ``repeats`` calls on the same input, and whether the predicted class changed."""
    outputs = [_predict(model, x, batch_size) for _ in range(repeats)]
    normalised = [o / (o.norm(dim=1, keepdim=True) + 1e-10) for o in outputs]
    spread = torch.zeros(len(x), device=x.device)
    for a in range(repeats):
        for b in range(a + 1, repeats):
            spread = torch.maximum(spread, (normalised[a] - normalised[b]).norm(dim=1))
    flips = torch.stack([o.argmax(1) for o in outputs]).ne(outputs[0].argmax(1)).any(0)
    return spread, flips


def _autograd_calls_in_forward(model, x) -> int:
    """How often one forward pass calls into autograd's grad/backward (AutoAttack's "dynamic")."""
    calls = 0
    names = {"grad", "backward", "_make_grads"}

    def profile(frame, event, arg):
        nonlocal calls
        code = frame.f_code
        if event == "call" and code.co_name in names and "autograd" in code.co_filename:
            calls += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        with torch.enable_grad():
            model(x)
    except Exception:  # noqa: BLE001 - a dynamic defence may fail outside its own set-up
        pass
    finally:
        sys.setprofile(previous)
    return calls
