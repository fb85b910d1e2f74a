"""The chapter "Training with label smoothing", second half: the margin distribution, its input
gradient, calibration and the chapter's saved results (the first half, and the model keys and
labels used here, are in :mod:`lsnotes.chapters.training_with_ls`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Mapping, Sequence

import ipywidgets
import numpy as np

from lsnotes import claims as C
from lsnotes import plots, widgets
from lsnotes.chapters.training_with_ls import CE_KEY, label, m_star, method_name, recorded_time
from lsnotes.present import Claims, Table, Text, fixed, share

# ----------------------------------------------------------------------------- margin histograms


def margin_bins(per_example: Mapping, count: int = 60) -> np.ndarray:
    """Shared histogram bins: from the lowest margin (at most −10) to the 99th percentile."""
    margins = np.concatenate([np.asarray(s["margin"].cpu()) for s in per_example.values()])
    return np.linspace(max(-10.0, float(margins.min())), float(np.quantile(margins, 0.99)), count)


def draw_margins(ax, per_example: Mapping, method: str, alphas: Sequence, bins,
                 num_classes: int) -> None:
    """CE (grey, filled) and ``method`` at each α of ``alphas`` (outlines, darker for larger α),
    with m* dashed where it exists and the decision boundary at 0."""
    ax.hist(np.asarray(per_example[CE_KEY]["margin"].cpu()), bins=bins, density=True,
            color=plots.METHOD_COLORS["ce"], alpha=0.3, label="CE")
    color = plots.METHOD_COLORS[method]
    for i, alpha in enumerate(alphas):
        shade = 0.45 + 0.55 * (i + 1) / len(alphas)
        ax.hist(np.asarray(per_example[method, alpha, 1.0]["margin"].cpu()), bins=bins,
                density=True, histtype="step", lw=2.0, color=color, alpha=shade,
                label=f"α = {alpha:g}")
        target = m_star(method, alpha, num_classes)
        if np.isfinite(target):
            ax.axvline(target, color=color, alpha=shade, ls="--", lw=1.2)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("margin $z_y - \\max_{k\\ne y} z_k$")
    ax.set_ylabel("density")


def margin_panels(per_example: Mapping, methods: Sequence, alpha_grid: Sequence,
                  num_classes: int):
    """One panel per method (every α of the grid in it, against CE), two panels a row: large
    enough to read at the book's page width."""
    bins = margin_bins(per_example)
    ncols = 2
    nrows = -(-len(methods) // ncols)
    fig, axes = plots.new_figure(nrows, ncols, width=10, height=3.4 * nrows, sharex=True)
    axes = np.atleast_1d(axes)
    for ax, method in zip(axes.ravel(), methods):
        draw_margins(ax, per_example, method, alpha_grid, bins, num_classes)
        ax.set_title(method_name(method))
        ax.tick_params(labelbottom=True)  # sharex hides them above the last row
        ax.legend(title="dashed: $m^\\star$" if method in ("szegedy", "sls") else None)
    for ax in axes.ravel()[len(methods):]:
        ax.set_visible(False)
    return fig


def margin_explorer(per_example: Mapping, methods: Sequence, alpha_grid: Sequence,
                    num_classes: int):
    """The widget: one method and α against CE; in the built book, :func:`margin_panels`."""
    bins = margin_bins(per_example)
    n = len(next(iter(per_example.values()))["margin"])

    def draw(fig, method, alpha):
        ax = fig.subplots()
        draw_margins(ax, per_example, method, [alpha], bins, num_classes)
        ax.set_title(f"{method_name(method)}: margin on {n} test images")
        ax.legend()

    mid = alpha_grid[len(alpha_grid) // 2]
    controls = {"method": ipywidgets.Dropdown(options=list(methods), value=methods[0],
                                              description="method"),
                "alpha": widgets.snapping_slider("α", alpha_grid, value=mid)}
    return widgets.interactive_figure(
        draw, controls, margin_panels(per_example, methods, alpha_grid, num_classes),
        width=7.5, height=4.2, caption="Margin histogram of one LS model against CE")


# ----------------------------------------------------------------------------- margin gradients

def gradient_medians(grad_stats: Mapping) -> SimpleNamespace:
    """Per model, over the correctly classified examples (margin > 0): the gradient norms and
    linearised distances (``.values``) and their medians."""
    values = {}
    for key, (gap, norm) in grad_stats.items():
        right = gap > 0
        if not bool(right.any()):
            raise ValueError(f"grad_stats[{key!r}] has no correctly classified example")
        values[key] = {"grad_l1": norm[right].cpu(), "radius": (gap / norm)[right].cpu()}
    grad = {k: v["grad_l1"].median().item() for k, v in values.items()}
    radius = {k: v["radius"].median().item() for k, v in values.items()}
    return SimpleNamespace(values=values, grad=grad, radius=radius,
                           table=Table(["model", "median ‖∇ₓg‖₁", "median r_lin (px)"],
                                       [[label(k), fixed(grad[k], 2), fixed(radius[k], 4)]
                                        for k in values]))


def gradient_claims(medians: SimpleNamespace) -> SimpleNamespace:
    ls = [k for k in medians.grad if k != CE_KEY]
    if CE_KEY not in medians.grad or not ls:
        raise ValueError("the gradient medians must hold CE and at least one LS model")
    flatter = [k for k in ls if medians.grad[k] < medians.grad[CE_KEY]]
    farther = [k for k in ls if medians.radius[k] > medians.radius[CE_KEY]]
    claims = {"most variants have a smaller median margin gradient than CE":
              C.most(medians.grad[k] < medians.grad[CE_KEY] for k in ls)}
    return SimpleNamespace(
        claims=Claims(claims, asserted=list(claims), title="Our run: margin gradients"),
        n_flatter=share(len(flatter), len(ls)), n_farther=share(len(farther), len(ls)),
        ce_radius=fixed(medians.radius[CE_KEY], 4))


def draw_gradient_densities(medians: SimpleNamespace, eps: float):
    """Densities of log10 ‖∇ₓg‖₁ (top) and of log10 r_lin (bottom), stacked to read at page
    width."""
    fig, axes = plots.new_figure(2, 1, width=7.5, height=7.5)
    for key, v in medians.values.items():
        for ax, name in zip(axes, ("grad_l1", "radius")):
            ax.hist(v[name].clamp_min(1e-6).log10().numpy(), bins=40, density=True,
                    histtype="step", lw=2.0, color=plots.METHOD_COLORS[key[0]], label=label(key))
    plots.label_axes(axes[0], "$\\log_{10} \\|\\nabla_x g\\|_1$ (logit units/pixel)", "density",
                     "margin gradient")
    plots.label_axes(axes[1], "$\\log_{10} r_{\\text{lin}}$ (pixels)", "density",
                     "linearised L∞ distance to the boundary")
    axes[1].axvline(np.log10(eps), color="black", ls="--", label=f"zoo ε = {eps:g}")
    axes[0].legend(ncols=2)
    axes[1].legend(ncols=2)
    return fig


# ----------------------------------------------------------------------------- calibration

def calibration_table(clean_acc: Mapping, calibration: Mapping) -> Table:
    return Table(["model", "clean accuracy", "mean confidence", "ECE"],
                 [[label(k), fixed(clean_acc[k]), fixed(c["mean_confidence"]), fixed(c["ece"])]
                  for k, c in calibration.items()])


def draw_reliability(calibration: Mapping, keys: Sequence, smallest_alpha: float):
    fig, ax = plots.new_figure(width=6.5, height=5.0)
    ax.plot([0, 1], [0, 1], color="black", lw=0.8, label="perfect calibration")
    for key in keys:
        c = calibration[key]
        used = c["count"] > 0
        style = "-" if key[1] <= smallest_alpha else "--"
        ax.plot(c["conf"][used], c["acc"][used], "o" + style, ms=4,
                color=plots.METHOD_COLORS[key[0]], label=f"{label(key)} (ECE {c['ece']:.3f})")
    plots.label_axes(ax, "confidence max$_k$ softmax (bin average)", "accuracy in the bin",
                     "reliability diagram")
    ax.legend()
    return fig


def calibration_claims(clean_acc: Mapping, calibration: Mapping, favours_y: Sequence,
                       alpha_grid: Sequence, quick: bool) -> SimpleNamespace:
    """CE's over-confidence and strong Szegedy LS's under-confidence. The prose relies on the
    first in the quick profile and on the second whenever Szegedy LS was trained."""
    ce_gap = calibration[CE_KEY]["mean_confidence"] - clean_acc[CE_KEY]
    strong = ("szegedy", alpha_grid[-1], 1.0)
    under = [k for k in favours_y if calibration[k]["mean_confidence"] < clean_acc[k]]
    claims = {
        "CE's mean confidence exceeds its accuracy by less than 0.05 (not strongly "
        "over-confident)": C.below(ce_gap, 0.05),
        "Szegedy LS at the top of the grid has a worse ECE than CE and is under-confident":
            None if strong not in calibration  # not trained in this setting
            else (calibration[strong]["ece"] > calibration[CE_KEY]["ece"]
                  and calibration[strong]["mean_confidence"] < clean_acc[strong]),
    }
    relied_on = list(claims)[int(not quick):1 + (strong in calibration)]
    return SimpleNamespace(
        claims=Claims(claims, asserted=relied_on, title="Our run: calibration"),
        ce_ece=fixed(calibration[CE_KEY]["ece"]), ce_gap=fixed(ce_gap),
        n_under=share(len(under), max(len(favours_y), 1)),
        strong_ece=fixed(calibration[strong]["ece"]) if strong in calibration else Text("—"))


# ----------------------------------------------------------------------------- saved results

def results_record(clean_acc, summary, calibration, results, medians, fgsm_at_acc, fgsm_at,
                   num_classes: int) -> dict:
    """The chapter's numbers as JSON-ready ``{"models": {name: numbers}}``."""
    def name(key):
        method, alpha, temperature = key
        return f"{method}/alpha={alpha:g}/T={temperature:g}"

    models = {}
    for k in clean_acc:
        c = {n: v for n, v in calibration[k].items() if n not in ("acc", "conf", "count")}
        models[name(k)] = {"clean_acc": clean_acc[k], **summary[k], **c,
                           "m_star": m_star(k[0], k[1], num_classes),
                           "train_s": recorded_time(results[k]),
                           "from_cache": results[k].from_cache}
        if k in medians.grad:
            models[name(k)].update(median_grad_l1=medians.grad[k],
                                   median_linear_radius=medians.radius[k])
    models["fgsm_at"] = {"clean_acc": fgsm_at_acc, "train_s": recorded_time(fgsm_at),
                         "from_cache": fgsm_at.from_cache}
    return {"models": models}


def full_profile(recorded: dict | None, full_setting, n_models: int):
    """The full profile's recorded table, or what running it would take (an estimate we chose:
    5–10 s per ResNet-18 CIFAR-10 epoch on one H100-class GPU; an FGSM-AT epoch costs two)."""
    if recorded is None:
        epochs = n_models * full_setting.epochs + 2 * full_setting.at_epochs
        low, high = (epochs * s / 3600 for s in (5, 10))
        return Text(f"The full-profile run ({full_setting.paper}, {full_setting.epochs} epochs "
                    f"per model, {n_models} models and FGSM-AT) has not been recorded yet; on one "
                    f"H100-class GPU it should take roughly {low:.1f}–{high:.1f} hours in all.")
    nan = float("nan")
    return Table(["model (full profile, GPU)", "clean accuracy", "median mean gap", "m*", "ECE"],
                 [[n, fixed(r["clean_acc"]), fixed(r.get("mean_gap", nan), 2),
                   fixed(r.get("m_star", nan), 2), fixed(r.get("ece", nan))]
                  for n, r in recorded["results"]["models"].items()])
