"""Expectation over transformation (EOT) for models whose forward pass is random.

A randomised defence (noise in the forward pass, random resizing, dropout left on) answers each
call with one draw. Scoring an example by one draw per attack turns the audit's per-example worst
case into "wrong on at least one of many independent draws", which noise alone makes lower than
what the model reliably resists; attacking one draw's gradient aims at a target that moves.
:class:`ExpectedModel` shows such a model to the audit as its expected prediction.

The rule the audit states for a random model: an example counts as correct (clean, or under an
attack's final example) only if the class with the highest probability averaged over
``draws`` fresh forward passes is its label. Attacks follow the gradient of the same average over
fewer passes (Athalye et al. 2018's EOT; AutoAttack's ``version="rand"`` averages 20 gradients).
"""

from __future__ import annotations

import torch
from torch import nn

from lsnotes.checks import positive_int

#: Forward passes per prediction when the audit scores a random model.
SCORE_DRAWS = 32
#: Forward passes per gradient when the audit attacks a random model (cheap EOT).
GRADIENT_DRAWS = 4


class ExpectedModel(nn.Module):
    """``model``'s expected prediction over ``draws`` calls, as logits: the log of the mean
    softmax. Its argmax is the class with the highest average probability; cross-entropy on it is
    the loss of the averaged prediction, and its input gradient averages the draws' gradients
    (weighted by their probabilities)."""

    def __init__(self, model: nn.Module, draws: int):
        super().__init__()
        self.model = model
        self.draws = positive_int("draws", draws)

    def forward(self, x):
        mean = sum(self.model(x).float().softmax(1) for _ in range(self.draws)) / self.draws
        return torch.log(mean + 1e-12)


def is_random(spread: torch.Tensor, flips: torch.Tensor, alpha: float) -> bool:
    """AutoAttack's test: some input's normalised outputs moved by more than ``alpha`` between
    calls, or its predicted class changed."""
    return bool(((spread > alpha) | flips).any())
