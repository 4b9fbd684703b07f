"""A small matplotlib plot for a dock, drawn in the colours of the viewer's theme (and redrawn when
the theme changes), so a plot never shows a white panel in the dark theme."""

from __future__ import annotations

from napari.utils.theme import get_theme
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .. import provenance
from .peak_map import _unit_of


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
        self.axes.set_xlabel(f"{provenance.axis_names(layer)[0].capitalize()} ({_unit_of(layer)})", fontsize="small")
        self.axes.set_ylabel(ylabel, fontsize="small")
        if self.axes.get_legend_handles_labels()[0]:
            self.axes.legend(fontsize="x-small", frameon=False, loc="best")
        self.apply_theme()
