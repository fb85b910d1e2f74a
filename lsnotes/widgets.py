"""Sliders that redraw a figure in JupyterLab, with a static figure for the built book.

:func:`interactive_figure` returns an object whose display bundle holds *both* the live
widget and a static PNG. JupyterLab renders the widget; the built book is configured
(``nb_mime_priority_overrides`` in ``_config.yml``) to drop widget views, so it shows the PNG,
which should carry the same dependence on the slider values (small multiples or a heatmap).
"""

from __future__ import annotations

import base64
from typing import Callable, Mapping

from matplotlib.figure import Figure

from . import checks, plots


class InteractiveFigure:
    """Controls plus a figure that ``draw(fig, **values)`` redraws whenever a control moves.

    ``draw`` receives a cleared :class:`~matplotlib.figure.Figure` and the current control values.
    ``static`` is the figure the built book shows in place of the widget.
    """

    def __init__(self, draw: Callable[..., None], controls: Mapping[str, object],
                 static: Figure, *, width: float = 6.4, height: float = 4.0,
                 caption: str = ""):
        import ipywidgets as w

        if not callable(draw):
            raise ValueError(f"draw must be a function draw(fig, **values); got {draw!r}")
        if not isinstance(controls, Mapping) or not controls:
            raise ValueError("controls must map names to at least one slider")
        if not isinstance(static, Figure):
            raise ValueError(f"static must be a matplotlib Figure; got {type(static).__name__}")
        width = checks.number_in("width", width, 0, 100, low_open=True)
        height = checks.number_in("height", height, 0, 100, low_open=True)
        self.draw = draw
        self.controls = dict(controls)
        self.caption = caption
        self.static_png = plots.figure_png(static)
        plots.use_book_style()
        self.figure = Figure(figsize=(width, height))
        self.image = w.Image(format="png")
        self.renders = 0
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.widget = w.VBox([w.HBox(list(self.controls.values())), self.image])
        self.redraw()

    @property
    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def redraw(self) -> bytes:
        """Redraw for the current control values; returns the PNG shown."""
        self.figure.clear()
        self.draw(self.figure, **self.values)
        png = plots.figure_png(self.figure)
        self.image.value = png
        self.renders += 1
        return png

    def set(self, **values) -> bytes:
        """Move controls programmatically (as a reader would with the mouse) and redraw once."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}; "
                             f"allowed: {sorted(self.controls)}")
        for control in self.controls.values():
            control.unobserve(self._on_change, names="value")
        try:
            for name, value in values.items():
                self.controls[name].value = value
        finally:
            for control in self.controls.values():
                control.observe(self._on_change, names="value")
        return self.redraw()

    def _on_change(self, _change) -> None:
        self.redraw()

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude) or {}
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        bundle = dict(bundle)
        bundle["image/png"] = base64.b64encode(self.static_png).decode("ascii")
        bundle["text/plain"] = self.caption or "Interactive figure (open in JupyterLab for sliders)"
        return bundle


def interactive_figure(draw: Callable[..., None], controls: Mapping[str, object], static: Figure,
                       **kwargs) -> InteractiveFigure:
    """Build an :class:`InteractiveFigure`; display it as the last expression of a cell."""
    return InteractiveFigure(draw, controls, static, **kwargs)


def snapping_slider(description: str, grid, value=None, readout_format: str = ".2f"):
    """A slider that only takes values from ``grid`` (e.g. the α values models were trained at)."""
    import ipywidgets as w

    grid = [checks.number_in("grid entry", g) for g in grid]
    if not grid:
        raise ValueError("grid must hold at least one value")
    value = grid[0] if value is None else checks.number_in("value", value)
    if value not in grid:
        raise ValueError(f"value must be one of the grid values {grid}; got {value!r}")
    return w.SelectionSlider(options=[(format(g, readout_format), g) for g in grid], value=value,
                             description=description, continuous_update=False)


def float_slider(description: str, low: float, high: float, step: float, value: float):
    import ipywidgets as w

    low = checks.number_in("low", low)
    high = checks.number_in("high", high, low, low_open=True)
    step = checks.number_in("step", step, 0, low_open=True)
    value = checks.number_in("value", value, low, high)
    return w.FloatSlider(min=low, max=high, step=step, value=value, description=description,
                         continuous_update=False, readout_format=".3g")
