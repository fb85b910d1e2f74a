"""Smoothed labels and their losses: Szegedy, SLS, ALS, BLS, SBLS (Goibert & Dohmatob 2019).

Every label-smoothing (LS) variant replaces the one-hot label :math:`\\delta_y` by

.. math:: q = (1-\\alpha)\\,\\delta_y + \\alpha\\, r, \\qquad r \\in \\Delta_K,

where the *smoothing distribution* ``r`` depends on the method (and, for ALS/BLS/SBLS, on the
logits ``z``). Theorem 1 of Goibert & Dohmatob turns the smoothed cross-entropy into plain
cross-entropy plus a logit-squeezing penalty:

.. math:: -\\sum_k q_k \\log \\mathrm{softmax}(z)_k
          = \\mathrm{CE}(z, y) + \\alpha \\sum_k r_k (z_y - z_k).

Both sides are implemented independently (:func:`smoothed_cross_entropy` and
:func:`penalty_loss`) so that tests and the theory chapters can check the theorem numerically.

``r`` is always computed from *detached* logits: it is a label, not a path for gradients, so
both forms have the gradient ``softmax(z) - q``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from . import checks

METHODS = ("ce", "szegedy", "sls", "als", "bls", "sbls")
#: The label-smoothing variants: every method but plain cross-entropy.
LS_METHODS = METHODS[1:]
REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------- validation
def _check_shapes(logits, labels) -> torch.Tensor:
    """Check types, dtypes and shapes (no host synchronisation); return labels as int64."""
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"logits must be a torch.Tensor of shape (B, K); got {type(logits).__name__}")
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be a torch.Tensor of shape (B,); got {type(labels).__name__}")
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (B, K) with K >= 2 classes; got {tuple(logits.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("logits must hold at least one example (B >= 1); got an empty batch")
    if not logits.is_floating_point():
        raise ValueError(f"logits must have a floating dtype; got {logits.dtype}")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must have shape (B,) = ({logits.shape[0]},) to match logits "
                         f"{tuple(logits.shape)}; got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must have an integer dtype (class indices); got {labels.dtype}")
    return labels.long()


def _check_logits_labels(logits, labels) -> torch.Tensor:
    """Check shapes, dtypes, label range and finiteness; return labels as int64.

    The value checks cost one device-to-host synchronisation, which is why the trainer checks
    its first batch this way and the rest with :func:`_check_shapes` only.
    """
    labels = _check_shapes(logits, labels)
    num_classes = logits.shape[1]
    detached = logits.detach()
    problems = torch.stack([(~torch.isfinite(detached)).any(),
                            ((labels < 0) | (labels >= num_classes)).any()]).tolist()
    if problems[0]:
        raise ValueError("logits must be finite (no NaN or inf)")
    if problems[1]:
        raise ValueError(f"labels must lie in [0, {num_classes - 1}] for K = {num_classes} classes")
    return labels


def _check_method(method: str) -> str:
    return checks.choice("method", method, METHODS)


def _check_alpha(alpha) -> float:
    return checks.number_in("alpha", alpha, 0.0, 1.0)


def _check_temperature(temperature) -> float:
    return checks.number_in("temperature", temperature, 0.0, math.inf, low_open=True)


def _reduce(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    checks.choice("reduction", reduction, REDUCTIONS)
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    return per_example


def _split_ties(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Uniform distribution over the True entries of each row (ties share the mass equally)."""
    mask = mask.to(dtype)
    return mask / mask.sum(dim=1, keepdim=True)


# ----------------------------------------------------------------------------- labels
def smoothing_distribution(logits: torch.Tensor, labels: torch.Tensor, method: str,
                           temperature: float = 1.0) -> torch.Tensor:
    """The smoothing distribution ``r`` (B×K, rows sum to 1), from detached logits.

    - ``"ce"``: ``r = δ_y`` (so ``q = δ_y`` whatever α is: plain cross-entropy).
    - ``"szegedy"``: uniform over **all K** classes (what
      ``torch.nn.CrossEntropyLoss(label_smoothing=α)`` does).
    - ``"sls"``: standard LS of Goibert & Dohmatob, uniform over the **K−1 wrong** classes.
    - ``"als"``: adversarial LS, all mass on the arg-min logit over all K classes; tied minima
      share it equally. (If the true class has the smallest logit, ``r = δ_y``.)
    - ``"bls"``: Boltzmann LS, ``r = softmax(−z / T)`` over **all K classes**, including the true
      class: how we read Goibert & Dohmatob's definition (the text we have does not show the
      formula). Hence T→0 gives ALS and T→∞ gives uniform over K (Szegedy's label), *not* the
      K−1 SLS label. Goibert & Dohmatob state that BLS lies between ALS and SLS; with r over all
      K classes the hot limit is Szegedy's label (SLS at strength α(K−1)/K), which is what this
      function computes.
    - ``"sbls"``: second-best LS, all mass on the largest *wrong* logit (ties share it).
    """
    _check_method(method)
    temperature = _check_temperature(temperature)
    return _smoothing_distribution(logits, _check_logits_labels(logits, labels), method, temperature)


def _smoothing_distribution(logits, labels, method, temperature) -> torch.Tensor:
    z = logits.detach()
    batch, num_classes = z.shape
    is_true = F.one_hot(labels, num_classes).bool()
    if method == "ce":
        return is_true.to(z.dtype)
    if method == "szegedy":
        return torch.full_like(z, 1.0 / num_classes)
    if method == "sls":
        return _split_ties(~is_true, z.dtype)
    if method == "als":
        return _split_ties(z == z.min(dim=1, keepdim=True).values, z.dtype)
    if method == "bls":
        return torch.softmax(-z / temperature, dim=1)
    # sbls: exclude the true class before looking for the largest logit.
    wrong = z.masked_fill(is_true, -math.inf)
    return _split_ties(wrong == wrong.max(dim=1, keepdim=True).values, z.dtype)


def smoothed_labels(logits: torch.Tensor, labels: torch.Tensor, method: str, alpha: float,
                    temperature: float = 1.0) -> torch.Tensor:
    """``q = (1−α) δ_y + α r`` (B×K). For ``"ce"`` α is ignored and ``q = δ_y``."""
    alpha = _check_alpha(alpha)
    r = smoothing_distribution(logits, labels, method, temperature)
    return _mix(r, labels.long(), alpha)


def _mix(r: torch.Tensor, labels: torch.Tensor, alpha: float) -> torch.Tensor:
    one_hot = F.one_hot(labels, r.shape[1]).to(r.dtype)
    return (1.0 - alpha) * one_hot + alpha * r


# ----------------------------------------------------------------------------- losses
def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, method: str,
                           alpha: float = 0.0, temperature: float = 1.0,
                           reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy against the smoothed label: ``−Σ_k q_k log softmax(z)_k``."""
    checks.choice("reduction", reduction, REDUCTIONS)
    q = smoothed_labels(logits, labels, method, alpha, temperature)
    # torch's fused soft-target cross-entropy computes exactly -sum_k q_k log softmax(z)_k.
    return F.cross_entropy(logits, q.to(logits.dtype), reduction=reduction)


def penalty_loss(logits: torch.Tensor, labels: torch.Tensor, method: str, alpha: float = 0.0,
                 temperature: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Theorem 1's form: ``CE(z, y) + α Σ_k r_k (z_y − z_k)``.

    Kept as an independent implementation of the theorem (tests compare it with
    :func:`smoothed_cross_entropy`); it is not the training loss, because on CPU it measured
    slightly slower (one more gather and reduction) than the soft-target cross-entropy.
    """
    checks.choice("reduction", reduction, REDUCTIONS)
    alpha = _check_alpha(alpha)
    r = smoothing_distribution(logits, labels, method, temperature)
    labels = labels.long()
    cross_entropy = F.cross_entropy(logits, labels, reduction="none")
    if method == "ce" or alpha == 0.0:
        return _reduce(cross_entropy, reduction)
    true_logit = logits.gather(1, labels[:, None])
    squeeze = (r * (true_logit - logits)).sum(dim=1)
    return _reduce(cross_entropy + alpha * squeeze, reduction)


def loss_function(method: str, alpha: float = 0.0, temperature: float = 1.0, *,
                  check_values: bool = True) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``loss(logits, labels)`` (mean over the batch) for the trainer.

    Uses :func:`smoothed_cross_entropy` (torch's fused soft-target cross-entropy), which on a
    shared 2-core CPU measured slightly faster per forward+backward than :func:`penalty_loss`
    (B = 128, K = 10 and B = 512, K = 100); the two agree to float precision (Theorem 1).

    ``check_values=False`` skips the finiteness and label-range checks, which need a
    device-to-host synchronisation per call; types, dtypes and shapes are still checked. It is
    for a training loop that checked its labels and its first batch already.
    """
    _check_method(method)
    alpha = _check_alpha(alpha)
    temperature = _check_temperature(temperature)
    check_values = checks.flag("check_values", check_values)
    validate = _check_logits_labels if check_values else _check_shapes

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = validate(logits, labels)
        q = _mix(_smoothing_distribution(logits, labels, method, temperature), labels, alpha)
        return F.cross_entropy(logits, q.to(logits.dtype))

    loss.__name__ = f"{method}_loss"
    loss.__doc__ = f"Label-smoothed loss: method={method!r}, alpha={alpha}, temperature={temperature}."
    return loss


# ----------------------------------------------------------------------------- Table 1
@dataclass(frozen=True)
class InducedPenalty:
    """What Theorem 1 turns one LS method into: its smoothing label and logit-squeezing penalty.

    ``smoothing_latex`` and ``penalty_latex`` are the rows of the chapter's Table 1;
    :meth:`sympy_penalty` builds the same penalty for explicit symbolic logits so the table can
    be checked against the numbers :func:`penalty_loss` computes.
    """

    method: str
    name: str
    smoothing_latex: str
    penalty_latex: str

    def sympy_penalty(self, logits, true_class: int, alpha, temperature=None):
        """The penalty ``α Σ_k r_k (z_y − z_k)`` for a list of sympy logit symbols."""
        import sympy as sp

        z = list(logits)
        y = int(true_class)
        gaps = [z[y] - zk for zk in z]
        if self.method == "ce":
            return sp.Integer(0)
        if self.method == "szegedy":
            return alpha * sp.Rational(1, len(z)) * sum(gaps)
        if self.method == "sls":
            return alpha * sp.Rational(1, len(z) - 1) * sum(gaps)
        if self.method == "als":
            return alpha * (z[y] - sp.Min(*z))
        if self.method == "sbls":
            return alpha * (z[y] - sp.Max(*[zk for k, zk in enumerate(z) if k != y]))
        temperature = sp.Symbol("T", positive=True) if temperature is None else temperature
        weights = [sp.exp(-zk / temperature) for zk in z]
        return alpha * sum(w * g for w, g in zip(weights, gaps)) / sum(weights)


_INDUCED = {
    "ce": InducedPenalty("ce", "Cross-entropy (no smoothing)", r"\text{(none)}", r"0"),
    "szegedy": InducedPenalty(
        "szegedy", "Szegedy LS (uniform over all K)", r"r_k = \frac{1}{K}",
        r"\frac{\alpha}{K}\sum_{k=1}^{K} (z_y - z_k) = \alpha\,(z_y - \bar z)"),
    "sls": InducedPenalty(
        "sls", "Standard LS (SLS)", r"r_k = \frac{1}{K-1}\,[k \neq y]",
        r"\frac{\alpha}{K-1}\sum_{k \neq y} (z_y - z_k)"),
    "als": InducedPenalty(
        "als", "Adversarial LS (ALS)", r"r = \delta_{\arg\min_k z_k}",
        r"\alpha\,(z_y - \min_k z_k)"),
    "bls": InducedPenalty(
        "bls", "Boltzmann LS (BLS)", r"r_k = \frac{e^{-z_k/T}}{\sum_{j=1}^{K} e^{-z_j/T}}",
        r"\alpha \sum_{k=1}^{K} \frac{e^{-z_k/T}}{\sum_j e^{-z_j/T}}\,(z_y - z_k)"),
    "sbls": InducedPenalty(
        "sbls", "Second-best LS (SBLS)", r"r = \delta_{\arg\max_{k \neq y} z_k}",
        r"\alpha\,(z_y - \max_{k \neq y} z_k)"),
}


def induced_penalty(method: str) -> InducedPenalty:
    """Table 1 row for ``method``: the smoothing label and the penalty Theorem 1 adds to CE."""
    return _INDUCED[_check_method(method)]


# ----------------------------------------------------------------------------- margins
MARGIN_CONVENTIONS = ("szegedy", "sls")


def equilibrium_margin(alpha: float, num_classes: int, convention: str = "szegedy") -> float:
    """The logit margin ``m* = z_y − z_k`` that minimises the smoothed loss (Fu et al.'s view).

    For logits ``z_y = c + m`` and ``z_k = c`` (k ≠ y), the smoothed loss is minimised where
    ``softmax(z)_y = q_y``. Solving gives the closed forms

    - ``"szegedy"`` (uniform over all K, the LS Fu et al. train with):
      ``m* = log(1 + K (1−α) / α)``;
    - ``"sls"`` (uniform over the K−1 wrong classes): ``m* = log((K−1)(1−α) / α)``.

    α = 0 gives ``inf`` (plain CE keeps growing the margin). The SLS form is negative for
    α > (K−1)/K, where the smoothed label puts less mass on y than on each wrong class.
    """
    alpha = _check_alpha(alpha)
    num_classes = checks.positive_int("num_classes", num_classes, minimum=2)
    checks.choice("convention", convention, MARGIN_CONVENTIONS)
    if alpha == 0.0:
        return math.inf
    if convention == "szegedy":
        return math.log1p(num_classes * (1.0 - alpha) / alpha)
    if alpha == 1.0:
        return -math.inf
    return math.log((num_classes - 1) * (1.0 - alpha) / alpha)
