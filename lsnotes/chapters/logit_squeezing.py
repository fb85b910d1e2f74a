"""What the chapter ``logit_squeezing`` computes beside Fu et al.'s Table 2, and its figures.

Fu et al. (2020, Section 2.2, Table 2) print an approximate range ``[lower, upper]`` of the logits
of models trained with smoothing factor α. The chapter reads those ranges from the papers' JSON
(``lsnotes.papers``) as a mapping ``{α: (lower, upper)}`` and hands them here:

- :func:`margins_beside_ranges`: their ranges and widths beside the equilibrium margin m*(α, K);
- :func:`range_claims`: what the printed ranges themselves show (the paper's numbers only);
- :func:`margin_claims`: how our closed-form m* compares with them;
- :func:`range_numbers`: the numbers the prose quotes;
- :func:`draw_margins_and_ranges`, :func:`loss_curve_explorer`: the chapter's two figures.

:func:`loss_versus_margin` is the loss the chapter teaches (it shows the same few lines).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from lsnotes import checks, losses, plots, present
from lsnotes import claims as C

#: α values drawn in the static loss-curve figure, and the K of its panels.
STATIC_ALPHAS = (0.05, 0.1, 0.3, 0.5, 0.9)
STATIC_CLASSES = (2, 10, 100)
MARGIN_GRID = np.linspace(-2.0, 12.0, 400)
_CURVE_COLOURS = [plots.METHOD_COLORS[m] for m in ("szegedy", "sls", "bls", "sbls", "als")]


def _checked_ranges(ranges) -> dict[float, tuple[float, float]]:
    """``{α: (lower, upper)}`` with α in [0, 1], lower < upper, in increasing α, at least one α > 0."""
    if not isinstance(ranges, Mapping) or not ranges:
        raise ValueError("ranges must map each smoothing factor α to its (lower, upper) range; "
                         f"got {ranges!r}")
    checked = {}
    for a, pair in ranges.items():
        a = checks.number_in("α of ranges", a, 0.0, 1.0)
        if len(pair) != 2:
            raise ValueError(f"ranges[{a}] must be a pair (lower, upper); got {pair!r}")
        lower, upper = (checks.number_in(f"ranges[{a}]", v) for v in pair)
        if not lower < upper:
            raise ValueError(f"ranges[{a}] must have lower < upper; got {pair!r}")
        checked[a] = (lower, upper)
    if not any(a > 0 for a in checked):
        raise ValueError("ranges must hold at least one smoothing factor α > 0")
    return dict(sorted(checked.items()))


def _smoothed(ranges) -> list[float]:
    return [a for a in ranges if a > 0]


def loss_versus_margin(margins, alpha_value: float, classes: int,
                       method: str = "szegedy") -> np.ndarray:
    """lsnotes' training loss on logits (m, 0, ..., 0) with true class 0, one value per margin m.

    Taught in the chapter ``logit_squeezing``, which shows the same lines and checks they agree.
    """
    classes = checks.positive_int("classes", classes, minimum=2)
    import torch

    margins = torch.as_tensor(np.asarray(margins, dtype=float).reshape(-1), dtype=torch.float64)
    logits = torch.zeros(len(margins), classes, dtype=torch.float64)
    logits[:, 0] = margins
    labels = torch.zeros(len(margins), dtype=torch.long)
    return losses.smoothed_cross_entropy(logits, labels, method, alpha_value,
                                         reduction="none").numpy()


def _shown(value: float) -> str:
    if math.isinf(value):
        return "∞"
    return present.fixed(round(value, 2) + 0.0, 2)  # + 0.0: no "-0.00"


def margins_beside_ranges(ranges, printed: Sequence[Sequence[str]] | None = None,
                          num_classes: int = 10) -> present.Table:
    """One row per α: the range's ends (``printed``, the paper's strings, when given), its width
    upper − lower, m*(α, K) for Szegedy's label, m* − width, and m* for SLS."""
    ranges = _checked_ranges(ranges)
    num_classes = checks.positive_int("num_classes", num_classes, minimum=2)
    if printed is None:
        printed = [(_shown(lo), _shown(hi)) for lo, hi in ranges.values()]
    printed = [list(p) for p in printed]
    if len(printed) != len(ranges) or any(len(p) != 2 for p in printed):
        raise ValueError(f"printed must hold one (lower, upper) pair per α ({len(ranges)}); "
                         f"got {printed!r}")
    rows = []
    for (a, (lower, upper)), ends in zip(ranges.items(), printed):
        width = upper - lower
        szegedy = losses.equilibrium_margin(a, num_classes)
        rows.append([f"{a:g}", *ends, _shown(width), _shown(szegedy),
                     _shown(szegedy - width),
                     _shown(losses.equilibrium_margin(a, num_classes, "sls"))])
    ours = ("$m^\\star$ Szegedy", "$m^\\star$ − width", "$m^\\star$ SLS")
    return present.Table(["α", "lower (paper)", "upper (paper)", "width (paper)", *ours], rows,
                         align={c: "right" for c in ours})


def range_claims(ranges) -> dict[str, C.Check]:
    """What the printed ranges show by themselves (no model of ours involved)."""
    ranges = _checked_ranges(ranges)
    widths = [hi - lo for lo, hi in ranges.values()]
    if len(widths) < 2:
        raise ValueError("ranges must hold at least two smoothing factors to say how widths move")
    return {
        "the widths shrink as α grows"
        + (", α = 0 included" if 0.0 in ranges else ""):
            C.strictly_decreasing(widths),
        "for every α > 0 the lower end is negative and the upper end positive, so each "
        "upper end is a little smaller than its width":
            C.every(C.below(ranges[a][0], 0) and C.exceeds(ranges[a][1], 0)
                    for a in _smoothed(ranges)),
    }


def margin_claims(ranges, num_classes: int = 10) -> dict[str, C.Check]:
    """Our closed-form m* (Szegedy's label and SLS) against the printed ranges, for every α > 0."""
    ranges = _checked_ranges(ranges)
    num_classes = checks.positive_int("num_classes", num_classes, minimum=2)
    smoothed = _smoothed(ranges)
    width = {a: ranges[a][1] - ranges[a][0] for a in smoothed}
    szegedy = {a: losses.equilibrium_margin(a, num_classes) for a in smoothed}
    sls = {a: losses.equilibrium_margin(a, num_classes, "sls") for a in smoothed}
    many = 10 * num_classes
    return {
        f"$m^\\star$(Szegedy, K = {num_classes}) is below the width of every range":
            C.every(C.below(szegedy[a], width[a]) for a in smoothed),
        f"$m^\\star$(Szegedy, K = {num_classes}) is at or above the upper end of every range":
            C.every(C.at_least(szegedy[a], ranges[a][1]) for a in smoothed),
        "SLS's $m^\\star$ is further from the width than Szegedy's at every α":
            C.every(C.exceeds(abs(sls[a] - width[a]), abs(szegedy[a] - width[a]))
                    for a in smoothed),
        f"$m^\\star$(Szegedy, K = {many}) is above the width of every range":
            C.every(C.exceeds(losses.equilibrium_margin(a, many), width[a]) for a in smoothed),
    }


def range_numbers(ranges, num_classes: int = 10) -> SimpleNamespace:
    """The numbers the chapter's prose quotes, as :class:`lsnotes.present.Text` (2 decimals).

    ``szegedy_worst`` / ``sls_worst``: the largest width − m* (Szegedy) and |m* − width| (SLS)
    over α > 0; ``width_unsmoothed`` (NaN without an α = 0 row), ``width_first``,
    ``width_last``: the widths at α = 0, the smallest and the largest α > 0; ``lowest_lower`` and
    ``highest_lower``: the extreme lower ends over α > 0; ``szegedy_last``, ``sls_last``: m* at
    the largest α; ``first_alpha``, ``last_alpha``: those α.
    """
    ranges = _checked_ranges(ranges)
    num_classes = checks.positive_int("num_classes", num_classes, minimum=2)
    smoothed = _smoothed(ranges)
    width = {a: hi - lo for a, (lo, hi) in ranges.items()}
    szegedy = {a: losses.equilibrium_margin(a, num_classes) for a in smoothed}
    sls = {a: losses.equilibrium_margin(a, num_classes, "sls") for a in smoothed}
    first, last = smoothed[0], smoothed[-1]
    text = lambda v: present.Text(_shown(v))  # noqa: E731
    return SimpleNamespace(
        szegedy_worst=text(max(width[a] - szegedy[a] for a in smoothed)),
        sls_worst=text(max(abs(sls[a] - width[a]) for a in smoothed)),
        width_unsmoothed=present.fixed(width.get(0.0, math.nan), 2),
        width_first=text(width[first]), width_last=text(width[last]),
        lowest_lower=text(min(ranges[a][0] for a in smoothed)),
        highest_lower=text(max(ranges[a][0] for a in smoothed)),
        szegedy_last=text(szegedy[last]), sls_last=text(sls[last]),
        first_alpha=present.Text(f"{first:g}"), last_alpha=present.Text(f"{last:g}"))


def draw_margins_and_ranges(ranges, num_classes: int = 10) -> Figure:
    """m*(α, K) for Szegedy's label (solid) and SLS (dashed) over α, with the ranges (grey bars)
    and their widths (dots) for every α > 0 of ``ranges``."""
    ranges = _checked_ranges(ranges)
    num_classes = checks.positive_int("num_classes", num_classes, minimum=2)
    smoothed = _smoothed(ranges)
    fig, ax = plots.new_figure(width=6.8, height=4.2)
    alpha_grid = np.linspace(0.02, 0.98, 200)
    for convention, style, name in (("szegedy", "-", "Szegedy LS"), ("sls", "--", "SLS")):
        margins = [losses.equilibrium_margin(a, num_classes, convention) for a in alpha_grid]
        ax.plot(alpha_grid, margins, color=plots.METHOD_COLORS[convention], ls=style,
                label=f"$m^\\star$, {name} (ours)")
    ax.vlines(smoothed, [ranges[a][0] for a in smoothed], [ranges[a][1] for a in smoothed],
              color="0.6", lw=3, label="range, Fu et al.'s Table 2 (paper)")
    ax.plot(smoothed, [ranges[a][1] - ranges[a][0] for a in smoothed], "o", color="black",
            label="width of the range (paper)")
    ax.set_ylim(-1.0, 6.5)
    plots.label_axes(ax, "smoothing strength α", "logit units")
    ax.legend()
    return fig


def draw_loss_curves(ax, alpha_values: Sequence[float], classes: int,
                     show_m_star: bool = True) -> None:
    """Szegedy-smoothed loss against the margin for each α (dot: m*), and plain CE dotted;
    ``show_m_star``: write m*'s value in each curve's legend label."""
    ax.plot(MARGIN_GRID, loss_versus_margin(MARGIN_GRID, 0.0, classes),
            color=plots.METHOD_COLORS["ce"], lw=1, ls=":", label="CE (α = 0)")
    for a, colour in zip(alpha_values, _CURVE_COLOURS):
        best = losses.equilibrium_margin(a, classes)
        label = f"α = {a:g}" + (f", m* = {best:.2f}" if show_m_star else "")
        ax.plot(MARGIN_GRID, loss_versus_margin(MARGIN_GRID, a, classes), color=colour,
                label=label)
        ax.plot([best], loss_versus_margin([best], a, classes), "o", color=colour)
    ax.set_ylim(0, math.log(classes) + 1.5)
    plots.label_axes(ax, "margin m (logit units)", "smoothed loss (nats)")


def loss_curve_explorer(num_classes: int = 10):
    """Sliders for α and K over :func:`draw_loss_curves`; the static figure (the built book's)
    has one panel per K in :data:`STATIC_CLASSES`, each with every α in :data:`STATIC_ALPHAS`."""
    from lsnotes import widgets

    num_classes = checks.positive_int("num_classes", num_classes, minimum=2)
    class_grid = sorted({2, 3, 5, 10, 20, 100, 1000, num_classes})

    def draw(fig, alpha, classes):
        ax = fig.subplots()
        draw_loss_curves(ax, [alpha], int(classes))
        ax.set_title(f"K = {int(classes)}")
        ax.legend(loc="upper right")

    # Three panels across the page's width: one legend for all, below them, so that the
    # panels keep their room and the text stays at the book's size.
    static = plots.small_multiples(
        STATIC_CLASSES, lambda ax, k: draw_loss_curves(ax, STATIC_ALPHAS, k, False),
        ncols=3, width=2.9, height=2.9, sharey=False, title_fmt="K = {}")
    handles, labels = static.axes[0].get_legend_handles_labels()
    static.legend(handles, labels, loc="outside lower center", ncols=3)
    return widgets.interactive_figure(
        draw,
        {"alpha": widgets.float_slider("α", 0.01, 0.99, 0.01, 0.1),
         "classes": widgets.snapping_slider("K", class_grid, value=num_classes,
                                            readout_format=".0f")},
        static, caption="Smoothed loss versus logit margin; the dot marks m*.")
