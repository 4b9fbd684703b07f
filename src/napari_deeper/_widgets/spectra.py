"""The Spectra dock: live spectrum under the mouse, pinned spectra, ROI mean ± std, band picking.

Pixels are looked up through world coordinates, so a raw cube, its denoised copy and a
super-resolved version (other scale and translate) show the spectra of the same place in the
sample, overlaid. The plot is matplotlib in the napari theme's colours.
"""

from __future__ import annotations

import csv
import weakref
from dataclasses import dataclass
from typing import Callable

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.widgets import SpanSelector
from napari.layers import Shapes
from napari.utils.notifications import show_error, show_info
from napari.utils.theme import get_theme
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .. import provenance
from ..spectral import roi_stats
from ._layers import spectral_axis, spectral_layers, wavenumbers_of

LIVE_REFRESH_MS = 33  # at most ~30 redraws a second while the mouse moves
ROI_REFRESH_MS = 150  # shapes emit many events while being drawn; recompute once they settle
LAYER_COLOURS = colormaps["tab10"].colors
PIN_COLOURS = colormaps["tab10"].colors[2:]  # the first two are the usual live-layer colours
ROI_COLOURS = colormaps["Set2"].colors


@dataclass
class _Series:
    """One plotted spectrum kept for export: its label, axis, values and matplotlib artists."""

    label: str
    x: np.ndarray
    y: np.ndarray
    artists: list


def _alive(widget: QWidget) -> bool:
    """False once Qt has deleted the widget (its Python wrapper may outlive it)."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True


def _spectral_unit_label(layer) -> tuple[str, str]:
    """(axis label, CSV column name) for the layer's spectral axis."""
    if wavenumbers_of(layer) is None:
        return "Band index", "band"
    if provenance.is_wavelength(layer):
        return "Wavelength (nm)", "wavelength (nm)"
    return "Raman shift (cm⁻¹)", "raman shift (1/cm)"


def _pin_on_click(widget: "SpectraWidget") -> Callable:
    """A viewer drag callback that pins the spectra under a click (press and release, no drag)."""
    widget_ref = weakref.ref(widget)

    def pin_on_click(viewer, event):
        position = tuple(event.position)
        button = getattr(event, "button", 1)
        yield
        dragged = False
        while event.type == "mouse_move":
            dragged = True
            yield
        target = widget_ref()
        if target is None or not _alive(target):
            if pin_on_click in viewer.mouse_drag_callbacks:
                viewer.mouse_drag_callbacks.remove(pin_on_click)
            return
        if not dragged and button == 1 and target.isVisible():
            target.pin(position)

    return pin_on_click


class SpectraWidget(QWidget):
    """Spectra of every spectral layer under the mouse, pinned by a click, and per ROI shape.

    Public API used by other widgets and tests: :meth:`spectra_at`, :meth:`pin`,
    :meth:`clear_pins`, :meth:`refresh_rois`, :meth:`export_csv`, :meth:`export_figure`,
    :meth:`select_band`, the ``span_selected(center, width)`` signal, and the per-viewer
    registry :meth:`for_viewer` / :meth:`add_span_listener`.
    """

    span_selected = Signal(float, float)

    _instances: "weakref.WeakSet[SpectraWidget]" = weakref.WeakSet()
    _span_listeners: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.figure = Figure(figsize=(5, 3.2), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(220)
        self.axes = self.figure.add_subplot()
        self.axes.set_ylabel("Intensity")

        self.visible_only = QCheckBox("Visible layers only")
        self.visible_only.setChecked(True)
        self.visible_only.setToolTip("Plot only the spectral layers that are shown in the viewer")
        self.clear_pins_button = QPushButton("Clear pins")
        self.save_csv_button = QPushButton("Save CSV...")
        self.save_figure_button = QPushButton("Save figure...")

        controls = QHBoxLayout()
        controls.addWidget(self.visible_only)
        controls.addStretch(1)
        controls.addWidget(self.clear_pins_button)
        exports = QHBoxLayout()
        exports.addWidget(self.save_csv_button)
        exports.addWidget(self.save_figure_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.canvas, stretch=1)
        layout.addLayout(controls)
        layout.addLayout(exports)

        self._live: dict[str, _Series] = {}
        self._pins: list[_Series] = []
        self._rois: list[_Series] = []
        self._colours: dict[str, tuple] = {}
        self._pending_position: tuple | None = None
        self._connected_layers: list = []
        self.last_span: tuple[float, float] | None = None

        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_REFRESH_MS)
        self._live_timer.timeout.connect(self._draw_pending)
        self._roi_timer = QTimer(self)
        self._roi_timer.setSingleShot(True)
        self._roi_timer.setInterval(ROI_REFRESH_MS)
        self._roi_timer.timeout.connect(self.refresh_rois)

        self.span = SpanSelector(
            self.axes,
            self._on_span,
            "horizontal",
            useblit=True,
            interactive=True,
            props={"alpha": 0.25},
        )

        self.visible_only.toggled.connect(self._on_visibility_rule)
        self.clear_pins_button.clicked.connect(self.clear_pins)
        self.save_csv_button.clicked.connect(self._ask_csv)
        self.save_figure_button.clicked.connect(self._ask_figure)
        self.viewer.cursor.events.position.connect(self._on_cursor)
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self.viewer.layers.events.removed.connect(self._on_layers_changed)
        self.viewer.events.theme.connect(self._apply_theme)
        self._click_callback = _pin_on_click(self)
        self.viewer.mouse_drag_callbacks.append(self._click_callback)

        self._connect_layer_events()
        self._apply_theme()
        self.refresh_rois()
        SpectraWidget._instances.add(self)

    # ----------------------------------------------------------------- registry and band picking
    @classmethod
    def for_viewer(cls, viewer) -> SpectraWidget | None:
        """The live Spectra widget docked in ``viewer``, if there is one."""
        for widget in list(cls._instances):
            if widget.viewer is viewer and _alive(widget):
                return widget
        return None

    @classmethod
    def add_span_listener(cls, viewer, callback: Callable[[float, float], None]) -> None:
        """Call ``callback(center, width)`` whenever a band is picked on a Spectra plot of ``viewer``.

        Works whichever widget is docked first. Bound methods are held weakly, so a closed
        widget stops listening by itself.
        """
        reference = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else (lambda: callback)
        cls._span_listeners.setdefault(viewer, []).append(reference)

    def select_band(self, low: float, high: float) -> None:
        """Pick the band ``[low, high]`` (what dragging on the plot does) and show it."""
        self.span.extents = tuple(sorted((float(low), float(high))))
        self.span.set_visible(True)
        self._on_span(low, high)
        self.canvas.draw_idle()

    def _on_span(self, low: float, high: float) -> None:
        low, high = sorted((float(low), float(high)))
        if not high > low:
            return
        center, width = (low + high) / 2, high - low
        self.last_span = (center, width)
        self.span_selected.emit(center, width)
        listeners = SpectraWidget._span_listeners.get(self.viewer, [])
        alive = []
        for reference in listeners:
            callback = reference()
            if callback is None:
                continue
            try:
                callback(center, width)
            except RuntimeError as error:  # the listening widget was deleted by Qt
                if "deleted" not in str(error):
                    raise
                continue
            alive.append(reference)
        listeners[:] = alive

    # ----------------------------------------------------------------------------- lookups
    def _layers(self):
        layers = spectral_layers(self.viewer)
        if self.visible_only.isChecked():
            layers = [layer for layer in layers if layer.visible]
        return layers

    def _lookup(self, world_position) -> list[tuple]:
        """``(layer, row, col, x, spectrum)`` for every plotted layer that has a pixel there."""
        found = []
        position = np.asarray(world_position, dtype=float)
        for layer in self._layers():
            data_position = np.asarray(layer.world_to_data(position), dtype=float)
            row, col = np.floor(data_position[-2:] + 0.5).astype(int)
            _, n_rows, n_cols = layer.data.shape
            if not (0 <= row < n_rows and 0 <= col < n_cols):
                continue
            spectrum = np.asarray(layer.data[:, row, col], dtype=np.float32)
            found.append((layer, int(row), int(col), spectral_axis(layer), spectrum))
        return found

    def spectra_at(self, world_position) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{layer name: (x, spectrum)}`` of the pixel each spectral layer has at a world position.

        ``world_position`` is in the viewer's world coordinates, either the full point (bands,
        y, x) or just (y, x). Layers without a pixel there are left out; with "Visible layers
        only" checked, so are hidden layers.
        """
        return {layer.name: (x, y) for layer, _, _, x, y in self._lookup(world_position)}

    # ------------------------------------------------------------------------------ live line
    def _on_cursor(self, event=None) -> None:
        self._pending_position = tuple(self.viewer.cursor.position)
        if not self._live_timer.isActive():
            self._live_timer.start()

    def _draw_pending(self) -> None:
        if self._pending_position is None or not self.isVisible():
            return
        self.update_live(self._pending_position)

    def update_live(self, world_position) -> None:
        """Draw the live spectra at ``world_position`` (reusing the line artists)."""
        spectra = self.spectra_at(world_position)
        legend_changed = False
        for name in [name for name in self._live if name not in spectra]:
            for artist in self._live.pop(name).artists:
                artist.remove()
            legend_changed = True
        for name, (x, y) in spectra.items():
            series = self._live.get(name)
            if series is None:
                (line,) = self.axes.plot(x, y, color=self._colour(name), linewidth=1.4, label=name)
                self._live[name] = _Series(name, x, y, [line])
                legend_changed = True
            else:
                series.x, series.y = x, y
                series.artists[0].set_data(x, y)
        self._redraw(legend_changed)

    # ------------------------------------------------------------------------------------ pins
    def pin(self, world_position) -> list[str]:
        """Keep the spectra at ``world_position`` on the plot; returns the new legend labels.

        A pixel that is already pinned is not pinned twice.
        """
        labels = []
        pinned = {series.label for series in self._pins}
        for layer, row, col, x, y in self._lookup(world_position):
            label = f"{layer.name} @ ({row}, {col})"
            if label in pinned:
                continue
            colour = PIN_COLOURS[len(self._pins) % len(PIN_COLOURS)]
            (line,) = self.axes.plot(x, y, color=colour, linewidth=1.0, linestyle="--", label=label)
            self._pins.append(_Series(label, x, y, [line]))
            labels.append(label)
        if labels:
            self._redraw(legend_changed=True)
        return labels

    def clear_pins(self) -> None:
        for series in self._pins:
            for artist in series.artists:
                artist.remove()
        self._pins.clear()
        self._redraw(legend_changed=True)

    @property
    def pinned(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {series.label: (series.x, series.y) for series in self._pins}

    # ------------------------------------------------------------------------------------ ROIs
    def _shape_masks(self, shapes: Shapes, layer) -> np.ndarray:
        """One boolean mask per shape, on ``layer``'s pixel grid (shapes live in world space)."""
        n_rows, n_cols = layer.data.shape[1:]
        vertices = []
        for shape_vertices in shapes.data:
            world = [shapes.data_to_world(vertex) for vertex in shape_vertices]
            vertices.append(np.array([np.asarray(layer.world_to_data(p))[-2:] for p in world]))
        grid = Shapes(vertices, shape_type=shapes.shape_type)
        return np.asarray(grid.to_masks(mask_shape=(n_rows, n_cols)), dtype=bool)

    def roi_spectra(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
        """``{label: (x, mean, std, n_pixels)}`` for every shape of every Shapes layer."""
        results = {}
        shapes_layers = [layer for layer in self.viewer.layers if isinstance(layer, Shapes)]
        for shapes in shapes_layers:
            if len(shapes.data) == 0:
                continue
            for layer in self._layers():
                masks = self._shape_masks(shapes, layer)
                for index, mask in enumerate(masks):
                    if not mask.any():
                        continue
                    mean, std, n_pixels = roi_stats(layer.data, mask)
                    label = f"{layer.name} · {shapes.name} #{index + 1} (n={n_pixels})"
                    results[label] = (spectral_axis(layer), mean, std, n_pixels)
        return results

    def refresh_rois(self) -> None:
        """Recompute and redraw the ROI mean ± std curves."""
        for series in self._rois:
            for artist in series.artists:
                artist.remove()
        self._rois.clear()
        for index, (label, (x, mean, std, _)) in enumerate(self.roi_spectra().items()):
            colour = ROI_COLOURS[index % len(ROI_COLOURS)]
            (line,) = self.axes.plot(x, mean, color=colour, linewidth=1.6, label=label)
            band = self.axes.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
            self._rois.append(_Series(label, x, mean, [line, band]))
            self._rois.append(_Series(f"{label} std", x, std, []))
        self._redraw(legend_changed=True)

    def _schedule_rois(self, event=None) -> None:
        if _alive(self):
            self._roi_timer.start()

    # ---------------------------------------------------------------------------- layer events
    def _connect_layer_events(self) -> None:
        for layer in self.viewer.layers:
            if layer in self._connected_layers:
                continue
            if isinstance(layer, Shapes):
                layer.events.data.connect(self._schedule_rois)
            layer.events.visible.connect(self._on_layer_visibility)
            self._connected_layers.append(layer)
        self._connected_layers = [layer for layer in self._connected_layers if layer in self.viewer.layers]

    def _on_layers_changed(self, event=None) -> None:
        self._connect_layer_events()
        self._schedule_rois()
        self._refresh_live()

    def _on_layer_visibility(self, event=None) -> None:
        if self.visible_only.isChecked():
            self._on_visibility_rule()

    def _on_visibility_rule(self, *args) -> None:
        self._schedule_rois()
        self._refresh_live()

    def _refresh_live(self) -> None:
        if self._pending_position is not None and self.isVisible():
            self.update_live(self._pending_position)

    # ---------------------------------------------------------------------------------- drawing
    def _colour(self, name: str):
        if name not in self._colours:
            self._colours[name] = LAYER_COLOURS[len(self._colours) % len(LAYER_COLOURS)]
        return self._colours[name]

    def _all_series(self) -> list[_Series]:
        return [*self._live.values(), *self._pins, *self._rois]

    def _axis_labels(self) -> tuple[str, str]:
        for layer in self._layers():
            if wavenumbers_of(layer) is not None:
                return _spectral_unit_label(layer)
        layers = self._layers()
        return _spectral_unit_label(layers[0]) if layers else ("Band index", "band")

    def _redraw(self, legend_changed: bool = False) -> None:
        if legend_changed:
            self.axes.set_xlabel(self._axis_labels()[0])
            legend = self.axes.get_legend()
            if legend is not None:
                legend.remove()
            if any(line.get_label() and not line.get_label().startswith("_") for line in self.axes.get_lines()):
                self._style_legend(self.axes.legend(fontsize="x-small", loc="upper right"))
        self.axes.relim(visible_only=True)
        self.axes.autoscale_view()
        self.canvas.draw_idle()

    def _apply_theme(self, event=None) -> None:
        theme = get_theme(self.viewer.theme)
        background = theme.background.as_hex()
        text = theme.text.as_hex()
        foreground = theme.foreground.as_hex()
        self.figure.set_facecolor(background)
        self.axes.set_facecolor(background)
        for spine in self.axes.spines.values():
            spine.set_color(foreground)
        self.axes.tick_params(colors=text, which="both")
        self.axes.xaxis.label.set_color(text)
        self.axes.yaxis.label.set_color(text)
        self._theme_colours = (background, foreground, text, theme.highlight.as_hex())
        self.span.set_props(facecolor=theme.highlight.as_hex(), alpha=0.25)
        self.span.set_handle_props(color=theme.highlight.as_hex())
        self._style_legend(self.axes.get_legend())
        self.canvas.draw_idle()

    def _style_legend(self, legend) -> None:
        if legend is None:
            return
        background, foreground, text, _ = self._theme_colours
        legend.get_frame().set_facecolor(background)
        legend.get_frame().set_edgecolor(foreground)
        for label in legend.get_texts():
            label.set_color(text)

    # ----------------------------------------------------------------------------------- export
    def export_csv(self, path) -> None:
        """Write every plotted spectrum to CSV: one axis column, then one column per spectrum.

        Spectra on different axes (a cropped layer beside a full one) share the union of the
        axis values; a cell is empty where a spectrum has no value.
        """
        series = self._all_series()
        if not series:
            raise ValueError("nothing to export: no spectrum is plotted")
        x = np.unique(np.concatenate([s.x for s in series]))
        table = np.full((x.size, len(series)), np.nan)
        for column, s in enumerate(series):
            table[np.searchsorted(x, s.x), column] = s.y
        header = [self._axis_labels()[1], *(s.label for s in series)]
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for value, row in zip(x, table):
                writer.writerow([repr(float(value)), *("" if np.isnan(v) else repr(float(v)) for v in row)])

    def export_figure(self, path, dpi: int = 200) -> None:
        """Save the plot as an image (PNG, SVG, PDF: chosen by the file extension)."""
        self.figure.savefig(path, dpi=dpi, facecolor=self.figure.get_facecolor())

    def _ask_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save spectra as CSV", "spectra.csv", "CSV (*.csv)")
        if path:
            self._export(self.export_csv, path)

    def _ask_figure(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save figure", "spectra.png", "PNG (*.png);;SVG (*.svg);;PDF (*.pdf)"
        )
        if path:
            self._export(self.export_figure, path)

    def _export(self, export: Callable, path: str) -> None:
        try:
            export(path)
        except (OSError, ValueError) as error:
            show_error(f"napari-deeper: could not save {path}: {error}")
            return
        show_info(f"napari-deeper: saved {path}")
