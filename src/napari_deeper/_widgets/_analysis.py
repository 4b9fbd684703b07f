"""What the Analyse dock's tabs share: a small plot in the viewer's theme, 2-D result layers on
their source's grid, cluster colours, and the text fields for bands."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import LineEdit
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.theme import get_theme
from qtpy.QtWidgets import QComboBox, QSizePolicy, QVBoxLayout, QWidget

from .. import provenance
from .peak_map import BAND_UNITS_TIP, _unit_of
from .unmix import PALETTE, component_color

__all__ = [
    "BAND_UNITS_TIP", "PALETTE", "SmallPlot", "band_text", "compact", "component_color", "label_colormap",
    "map_layer_kwargs", "robust_limits", "text_field", "unit_of", "wrapped",
]

unit_of = _unit_of


class SmallPlot(QWidget):
    """A matplotlib plot for a dock, in the colours of the viewer's theme."""

    def __init__(self, viewer, height: int = 200):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__()
        self.viewer = viewer
        self.figure = Figure(figsize=(4, 2.4), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(height)
        self.axes = self.figure.add_subplot()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        viewer.events.theme.connect(self.apply_theme)
        self.apply_theme()

    @property
    def text_colour(self) -> str:
        return get_theme(self.viewer.theme).text.as_hex()

    def apply_theme(self, event=None) -> None:
        theme = get_theme(self.viewer.theme)
        background, text = theme.background.as_hex(), theme.text.as_hex()
        self.figure.set_facecolor(background)
        self.axes.set_facecolor(background)
        for spine in self.axes.spines.values():
            spine.set_color(theme.foreground.as_hex())
        self.axes.tick_params(colors=text, which="both", labelsize="x-small")
        self.axes.xaxis.label.set_color(text)
        self.axes.yaxis.label.set_color(text)
        self.axes.title.set_color(text)
        legend = self.axes.get_legend()
        if legend is not None:
            for entry in legend.get_texts():
                entry.set_color(text)
        self.canvas.draw_idle()

    def message(self, text: str) -> None:
        """An empty plot that says ``text`` (what to do to see something)."""
        self.axes.clear()
        self.axes.text(0.5, 0.5, text, ha="center", va="center", transform=self.axes.transAxes,
                       fontsize="small", wrap=True)
        self.axes.set_xticks([])
        self.axes.set_yticks([])
        self.apply_theme()

    def finish(self, layer, ylabel: str = "Intensity") -> None:
        """Axis labels for ``layer``'s spectral axis, a legend, the theme; then draw."""
        self.axes.set_xlabel(f"{provenance.axis_names(layer)[0].capitalize()} ({unit_of(layer)})", fontsize="small")
        self.axes.set_ylabel(ylabel, fontsize="small")
        if self.axes.get_legend_handles_labels()[0]:
            self.axes.legend(fontsize="x-small", frameon=False, loc="best")
        self.apply_theme()


def compact(*choosers) -> None:
    """Layer choosers that do not widen the dock to their longest layer name (names elide)."""
    for chooser in choosers:
        native = chooser.native
        if isinstance(native, QComboBox):
            native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            native.setMinimumContentsLength(12)
        else:
            native.setSizePolicy(QSizePolicy.Policy.Ignored, native.sizePolicy().verticalPolicy())


def wrapped(text: str, width: int = 56) -> str:
    """``text`` broken into lines of at most ``width`` characters, for a message under a dock's
    controls (a label as wide as its longest line would widen the whole dock)."""
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in str(text).splitlines())


def text_field(label: str, value: str, tooltip: str) -> LineEdit:
    field = LineEdit(label=label, value=value)
    field.tooltip = tooltip
    return field


def band_text(pairs) -> str:
    """``[(1004, 15), (1450, 20)]`` as ``"1004±15, 1450±20"``, the text the band fields take."""
    return ", ".join(f"{center:g}±{half:g}" for center, half in pairs)


def map_layer_kwargs(source, name: str, record: dict, colormap: str = "magma") -> dict:
    """Keyword arguments of a 2-D map layer that overlays ``source`` (a cube) in world coordinates."""
    return {
        "name": name,
        "scale": np.asarray(source.scale, dtype=float)[-2:],
        "translate": np.asarray(source.translate, dtype=float)[-2:],
        "axis_labels": tuple(source.axis_labels[-2:]),
        "units": tuple(source.units[-2:]),
        "colormap": colormap,
        "metadata": {provenance.KEY: record},
    }


def robust_limits(values: np.ndarray) -> tuple[float, float]:
    """Contrast limits from the 1st to the 99th percentile of the finite values (NaN is masked)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return (0.0, 1.0)
    low, high = (float(v) for v in np.percentile(finite, [1, 99]))
    return (low, high) if high > low else (low, low + 1.0)


def label_colormap(n_labels: int) -> DirectLabelColormap:
    """Label ``k`` (1..n) in the colour of curve ``k - 1`` of the docks' plots; 0 transparent."""
    colours = {None: np.zeros(4), 0: np.zeros(4)}
    colours.update({k: component_color(k - 1) for k in range(1, n_labels + 1)})
    return DirectLabelColormap(color_dict=colours)
