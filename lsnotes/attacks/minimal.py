"""Minimal-perturbation attacks (no budget of their own): DeepFool and Carlini & Wagner's L2."""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lsnotes.checks import choice, flag, number_in, positive_int
from lsnotes.attacks.base import check_batch, check_fits, finite_gradient, finite_images, frozen_model, margin, _Adam, _per_example_norm, predict, _steps_bar, _view_per_example

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
            usable = torch.isfinite(w.flatten(1)).all(1) & torch.isfinite(f).all(1)
            if not usable.all():  # a nan/inf gradient is no direction: stop moving that example
                finite_gradient(w.flatten(1), "deepfool")
                active[idx[~usable]] = False
                idx, f, w = idx[usable], f[usable], w[usable]
                if idx.numel() == 0:
                    break
            w_norm = w.flatten(2).norm(dim=2).clamp_min(1e-12)
            distance = f.abs() / w_norm
            nearest = distance.argmin(1)
            w_near = w[torch.arange(len(idx)), nearest]
            f_near = f[torch.arange(len(idx)), nearest]
            scale = (f_near.abs() + 1e-4) / w_norm[torch.arange(len(idx)), nearest] ** 2
            r_total[idx] += _view_per_example(scale, w_near) * w_near
            x_adv[idx] = (x[idx] + (1 + overshoot) * r_total[idx]).clamp(0, 1)
        x_adv = finite_images(x_adv, x, "deepfool")
        success = predict(model, x_adv) != label   # judged on the image returned
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
                w = optimizer.descent(w.detach(), finite_gradient(grad, "cw_l2"))
                bar.update(1)
            upper = torch.where(succeeded, torch.minimum(upper, c), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, c))
            c = torch.where(upper < 1e9, (lower + upper) / 2, c * 10)
    bar.close()
    best_x = finite_images(best_x, x, "cw_l2")
    with frozen_model(model):
        success = predict(model, best_x) != y     # judged on the image returned
    return best_x, _per_example_norm(best_x - x), success
