"""How well a model does on a batch: which examples it gets right, its accuracy, and its
accuracy under the short PGD the trainer monitors with; and the trainer's inner attack."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lsnotes.attacks import check_batch, frozen_model, maximise_in_ball, predict
from lsnotes.checks import non_negative_int, number_in, positive_int


def adversarial_examples(model, x, objective, eps, steps, step_size, random_start, generator):
    """The single place the trainer calls its inner attack (evaluation mode, no BN updates)."""
    was_training = model.training
    model.eval()
    try:
        return maximise_in_ball(model, x, objective, eps, steps, step_size, random_start, generator)
    finally:
        model.train(was_training)


def cross_entropy_objective(labels):
    return lambda logits: F.cross_entropy(logits.float(), labels)


def _check_eval_inputs(model, x, y, batch_size) -> int:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    check_batch(x, y)
    return positive_int("batch_size", batch_size)


def _check_labels_fit(model, x, y, device) -> None:
    """Refuse labels the model has no output for (one forward pass of one example)."""
    with torch.no_grad():
        n_classes = model(x[:1].to(device)).shape[1]
    if int(y.max()) >= n_classes:
        raise ValueError(f"y holds class {int(y.max())} but the model has {n_classes} outputs")


def correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Which examples ``model`` (evaluation mode) classifies correctly: a bool tensor on ``y``'s
    device; the model's mode is restored."""
    batch_size = _check_eval_inputs(model, x, y, batch_size)
    device = next(model.parameters()).device
    with frozen_model(model), torch.no_grad():
        _check_labels_fit(model, x, y, device)
    predicted = predict(model, x.to(device), batch_size)  # the package's one batched predict
    return (predicted == y.to(device)).to(y.device)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Clean accuracy of ``model`` (evaluation mode) on ``(x, y)``; its mode is restored."""
    return int(correct(model, x, y, batch_size).sum()) / len(y)


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 10,
                    seed: int = 0, batch_size: int = 500) -> float:
    """Accuracy under a 10-step L∞ PGD (step ε/4, random start): a quick training-time monitor.

    The model runs in evaluation mode; its mode is restored.
    """
    batch_size = _check_eval_inputs(model, x, y, batch_size)
    eps = number_in("eps", eps, 0.0, 1.0)
    steps = positive_int("steps", steps)
    seed = non_negative_int("seed", seed)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    correct = 0
    try:
        _check_labels_fit(model, x, y, device)
        for start in range(0, len(y), batch_size):
            xb = x[start:start + batch_size].to(device)
            yb = y[start:start + batch_size].to(device).long()
            x_adv = adversarial_examples(model, xb, cross_entropy_objective(yb), eps, steps,
                                         eps / 4, True, generator)
            with torch.no_grad():
                correct += int((model(x_adv).argmax(1) == yb).sum())
    finally:
        model.train(was_training)
    return correct / len(y)
