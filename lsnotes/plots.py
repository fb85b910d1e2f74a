"""The book's figure style and small plotting helpers shared by the chapters.

Figures are made as :class:`matplotlib.figure.Figure` objects (not through pyplot's global
state) so that widgets can redraw them without a second copy appearing under the cell.
"""

from __future__ import annotations

import io
from typing import Sequence

import matplotlib
from matplotlib.figure import Figure

BOOK_STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.constrained_layout.use": True,
}

#: One colour per training method, used consistently across chapters.
METHOD_COLORS = {
    "ce": "#4d4d4d",
    "szegedy": "#8c564b",
    "sls": "#1f77b4",
    "als": "#d62728",
    "bls": "#2ca02c",
    "sbls": "#9467bd",
    "bayes": "#000000",
}


def use_book_style() -> None:
    """Apply the book's matplotlib style, and show bare ``Figure`` objects as PNG in notebooks."""
    matplotlib.rcParams.update(BOOK_STYLE)
    _register_png_display()


def _register_png_display() -> None:
    # Figures made outside pyplot have no PNG display of their own unless the inline backend
    # was switched on; register one so `fig` as a cell's last line always shows the picture.
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.4, height: float = 4.0,
               **subplot_kw) -> tuple[Figure, object]:
    """A fresh figure with the book's style and its axes, outside pyplot's global state."""
    use_book_style()
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=True, **subplot_kw)
    return fig, axes


def figure_png(fig: Figure, dpi: int | None = None) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def label_axes(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def small_multiples(values: Sequence, draw, *, ncols: int = 3, width: float = 3.4,
                    height: float = 2.6, sharey: bool = True, title_fmt: str = "{}") -> Figure:
    """One panel per value, drawn by ``draw(ax, value)``: the static stand-in for a slider."""
    values = list(values)
    nrows = -(-len(values) // ncols)
    fig, axes = new_figure(nrows, ncols, width=width * ncols, height=height * nrows,
                           sharex=True, sharey=sharey)
    flat = axes.ravel() if hasattr(axes, "ravel") else [axes]
    for ax, value in zip(flat, values):
        draw(ax, value)
        ax.set_title(title_fmt.format(value))
    for ax in flat[len(values):]:
        ax.set_visible(False)
    return fig
