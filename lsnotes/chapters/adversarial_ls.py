"""What the chapter ``adversarial_ls`` draws: Boltzmann weights against the temperature.

The chapter computes the weights itself (``lsnotes.losses.smoothing_distribution``); this module
only draws them, so the chapter shows every number and hides no plotting code.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from lsnotes import plots


def draw_bls_weights(temperatures, weights, logits, label: int) -> Figure:
    """Each class's Boltzmann weight ``weights[:, k]`` against ``temperatures`` (log scale).

    The class of the smallest of ``logits`` (one vector, one entry per class: where the weights
    concentrate as T → 0, ALS's class) and the true class ``label`` are drawn thick; the lines 1/K (uniform over all classes, Szegedy's label, the hot
    limit) and 1/(K − 1) (SLS's weight on a wrong class) for reference. ``weights`` has one row per
    temperature and one column per class; every row must be a distribution.
    """
    temperatures = np.asarray(temperatures, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if temperatures.ndim != 1 or temperatures.size < 2 or np.any(temperatures <= 0):
        raise ValueError("temperatures must be a 1-D array of at least two positive values; "
                         f"got shape {temperatures.shape}")
    if weights.ndim != 2 or weights.shape[0] != temperatures.size or weights.shape[1] < 2:
        raise ValueError("weights must have one row per temperature and at least two columns; "
                         f"got shape {weights.shape} for {temperatures.size} temperatures")
    if not np.allclose(weights.sum(axis=1), 1.0) or np.any(weights < 0):
        raise ValueError("every row of weights must be a probability distribution")
    num_classes = weights.shape[1]
    logits = np.asarray(logits, dtype=float).reshape(-1)
    if logits.size != num_classes:
        raise ValueError(f"logits must hold one value per class ({num_classes}); "
                         f"got {logits.size}")
    if not isinstance(label, (int, np.integer)) or not 0 <= label < num_classes:
        raise ValueError(f"label must be a class index in 0..{num_classes - 1}; got {label!r}")
    smallest = int(np.argmin(logits))
    colors = plots.METHOD_COLORS
    fig, ax = plots.new_figure(width=7.0, height=4.2)
    for k in range(num_classes):
        if k == smallest:
            style = dict(color=colors["als"], lw=2.5)
        elif k == label:
            style = dict(color=colors["ce"], lw=2.5)
        else:
            style = dict(color=colors["bls"], lw=1, alpha=0.6)
        ax.plot(temperatures, weights[:, k], **style)
    ax.axhline(1 / num_classes, color=colors["szegedy"], ls="--",
               label="uniform over K (T → ∞)")
    ax.axhline(1 / (num_classes - 1), color=colors["sls"], ls=":",
               label="SLS weight 1/(K−1)")
    ax.plot([], [], color=colors["als"], lw=2.5, label="smallest logit (ALS as T → 0)")
    ax.plot([], [], color=colors["ce"], lw=2.5, label="true class")
    ax.plot([], [], color=colors["bls"], lw=1, label="other classes")
    ax.set_xscale("log")
    plots.label_axes(ax, "temperature T (log scale)", "BLS weight $r_k$")
    ax.legend(loc="center right")
    return fig
