"""The Spectra dock: live spectrum under the mouse, pinned spectra, ROI mean ± std, band picking.

Pixels are looked up through world coordinates, so a raw cube, its denoised copy and a
super-resolved version (other scale and translate) show the spectra of the same place in the
sample, overlaid. The plot is matplotlib in the napari theme's colours.

Fast enough to follow the mouse: the live lines and the marker of the displayed band are
matplotlib "animated" artists drawn over a saved background (blitting), so a mouse move costs a
spectrum read and a few line draws, not a full redraw of the figure (tens of milliseconds; its
layout is computed again only when the ticks, labels or size change). A full redraw happens only
when the picture changes otherwise:
the curves outgrow the axes (at most once a second while the mouse moves; the axes are fitted
again once it rests), a pin or ROI is added, the dock is resized. The legend is a list under
the plot, of fixed height (it scrolls, folds, and its ticks hide curves), so it never covers the
curves however many there are. Layers that were normalised (their recipe has a normalisation
step) are drawn against a second y axis on the right when raw layers are plotted too, instead
of lying flat at the bottom of the raw scale. The vertical marker follows the band slider; a
click on the plot moves the slider to the band clicked.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.widgets import SpanSelector
from napari.layers import Shapes
from napari.utils.notifications import show_error, show_info
from napari.utils.theme import get_theme
from qtpy.QtCore import QSize, Qt, QTimer, Signal
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .. import provenance
from ..io._lazy import is_lazy
from ..spectral import roi_stats, save_spectra_csv
from . import _display, _docks
from ._layers import spectral_axis, spectral_layers, wavenumbers_of

LIVE_REFRESH_MS = 33  # at most ~30 live updates a second while the mouse moves
LIVE_MAX_MS = 250  # ... and at least 4 a second however busy the window is
ROI_REFRESH_MS = 150  # shapes emit many events while being drawn; recompute once they settle
RESCALE_MS = 1000  # while the mouse moves, the axes grow (a full redraw) at most this often
REFIT_MS = 400  # once the mouse rests this long, the axes are fitted to the curves again
HEADROOM = 0.25  # a y axis that must grow takes this much more room, so it does not grow at every move
PRESET_GRID = 8  # before any curve, the axes fit this many x this many spectra of the first layer
PRESET_GRID_LAZY = 3  # ... of a lazy layer (each read may fetch a chunk of every band)
LEGEND_ROWS = 4  # the legend list shows this many rows, then scrolls
CLICK_PIXELS = 4  # a press and release closer than this on the plot is a click, not a drag
LAYER_COLOURS = colormaps["tab10"].colors
PIN_COLOURS = colormaps["tab10"].colors[2:]  # the first two are the usual live-layer colours
ROI_COLOURS = colormaps["Set2"].colors
BAND_INDEX = ("Band index", "band")


class CachedConstrainedLayout(ConstrainedLayoutEngine):
    """Constrained layout, laid out again only when what it depends on has changed.

    Matplotlib's constrained layout measures every text of the figure at every draw: two thirds
    of a full redraw of the Spectra plot (about 40 of 70 ms). Its result depends on the figure's
    size and the texts around the axes, so the positions of the last layout are kept while the
    figure's size, the visible axes, their labels and the tick labels their locators and
    formatters give now (found without laying text out) stay the same. :meth:`invalidate`
    forces the next draw to lay out again (after a change of fonts, say).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._laid_out = None

    def invalidate(self) -> None:
        self._laid_out = None

    def execute(self, fig):
        key = layout_key(fig)
        if key == self._laid_out:
            return None
        self._laid_out = key
        return super().execute(fig)


def layout_key(fig) -> tuple:
    """What the layout of ``fig`` depends on: its size, and each visible axes' labels, ticks, title
    and the texts placed around it."""
    key: list = [tuple(fig.bbox.size)]
    for axes in fig.axes:
        if not axes.get_visible():
            key.append(None)
            continue
        for axis in (axes.xaxis, axes.yaxis):
            formatter = axis.get_major_formatter()
            ticks = tuple(formatter.format_ticks(axis.get_major_locator()()))
            key.append((axis.label.get_text(), axis.get_label_position(), axis.get_ticks_position(),
                        ticks, formatter.get_offset()))
        texts = tuple((t.get_text(), t.get_position()) for t in axes.texts if t.get_visible() and t.get_in_layout())
        key.append((axes.get_title(), texts))
    return tuple(key)


@dataclass
class _Series:
    """One plotted spectrum: its label, axis, values, how it is drawn, and its artists."""

    label: str
    x: np.ndarray
    y: np.ndarray
    colour: tuple
    unit: tuple[str, str]  # (axis label, CSV column name) of x
    normalised: bool = False
    kind: str = "live"  # "live", "pin" or "roi"
    std: np.ndarray | None = None  # ROI spread, drawn as a band around the mean
    artists: list = field(default_factory=list)


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
        return BAND_INDEX
    if provenance.is_wavelength(layer):
        return "Wavelength (nm)", "wavelength (nm)"
    return "Raman shift (cm⁻¹)", "raman shift (1/cm)"


def is_normalised(layer) -> bool:
    """Whether the layer's recipe normalised its spectra (so its scale is not the raw one)."""
    record = provenance.of(layer)
    for step in record.get("recipe", []):
        if step.get("operation") == "normalise" or (step.get("params") or {}).get("normalise"):
            return True
    return any(step.get("step") == "normalise" for step in record.get("steps", []) if isinstance(step, dict))


def _pin_on_click(widget: SpectraWidget) -> Callable:
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


class _Legend(QWidget):
    """The plot's legend as a list under it: a header that folds it, one tickable row per curve.

    The list keeps one height (:data:`LEGEND_ROWS` rows, then it scrolls), so curves coming and
    going as the mouse moves on and off an image never resize the plot (a resize redraws it all),
    and its rows are updated in place rather than made anew.
    """

    toggled = Signal(str, bool)  # (series label, shown)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.header = QToolButton()
        self.header.setCheckable(True)
        self.header.setChecked(True)
        self.header.setArrowType(Qt.ArrowType.DownArrow)
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setAutoRaise(True)
        self.header.setToolTip("Show or fold the legend; untick a row to hide its curve")
        self.list = QListWidget()
        self.list.setIconSize(QSize(18, 4))
        self.list.setUniformItemSizes(True)
        self._icons: dict[tuple, QIcon] = {}
        sample = QListWidgetItem("row")  # a row as the legend's rows are: tick box and swatch
        sample.setFlags(sample.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        sample.setCheckState(Qt.CheckState.Checked)
        sample.setIcon(self._icon((0.0, 0.0, 0.0)))
        self.list.addItem(sample)
        row = self.list.sizeHintForRow(0)
        self.list.clear()
        self.list.setFixedHeight(row * LEGEND_ROWS + 2 * self.list.frameWidth() + 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.header)
        layout.addWidget(self.list)
        self.header.toggled.connect(self._fold)
        self.list.itemChanged.connect(self._on_item)
        self.set_entries([])

    def _fold(self, shown: bool) -> None:
        self.list.setVisible(shown)
        self.header.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    @property
    def folded(self) -> bool:
        return not self.header.isChecked()

    def _icon(self, colour) -> QIcon:
        key = tuple(float(c) for c in colour[:3])
        if key not in self._icons:
            swatch = QPixmap(18, 4)
            swatch.fill(QColor.fromRgbF(*key))
            self._icons[key] = QIcon(swatch)
        return self._icons[key]

    def set_entries(self, entries: list[tuple[str, str, tuple, bool]]) -> None:
        """``(label, text shown, colour, shown)`` per curve, in plot order."""
        self.list.blockSignals(True)
        while self.list.count() > len(entries):
            self.list.takeItem(self.list.count() - 1)
        for index, (label, text, colour, shown) in enumerate(entries):
            item = self.list.item(index)
            if item is None:
                item = QListWidgetItem()
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                self.list.addItem(item)
            if item.data(Qt.ItemDataRole.UserRole) != label or item.text() != text:
                item.setText(text)
                item.setToolTip(text)
                item.setData(Qt.ItemDataRole.UserRole, label)
            item.setIcon(self._icon(colour))
            state = Qt.CheckState.Checked if shown else Qt.CheckState.Unchecked
            if item.checkState() != state:
                item.setCheckState(state)
        self.list.blockSignals(False)
        self.header.setText(f"Legend ({len(entries)})")

    def entries(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _on_item(self, item) -> None:
        self.toggled.emit(item.data(Qt.ItemDataRole.UserRole), item.checkState() == Qt.CheckState.Checked)


class _BandSelector(SpanSelector):
    """The plot's band picker: a SpanSelector that takes the plot's saved background.

    After every full redraw matplotlib's selector draws the figure a second time, without the
    animated artists, to save its own background; the plot saves that background already (its
    draw handler runs first), so the selector takes it instead of doubling the cost of a redraw.
    """

    def __init__(self, plot: SpectraWidget, *args, **kwargs):
        self._plot = weakref.ref(plot)
        super().__init__(*args, **kwargs)

    def update_background(self, event):
        plot = self._plot()
        background = getattr(plot, "_background", None)
        if not self.useblit or background is None or self.canvas.is_saving():
            return super().update_background(event)
        if hasattr(self, "_save_blit_background"):  # matplotlib >= 3.10
            self._save_blit_background(background)
        else:
            self.background = background
        return None


class SpectraWidget(QWidget):
    """Spectra of every spectral layer under the mouse, pinned by a click, and per ROI shape.

    Public API used by other widgets and tests: :meth:`spectra_at`, :meth:`pin`,
    :meth:`clear_pins`, :meth:`refresh_rois`, :meth:`export_csv`, :meth:`export_figure`,
    :meth:`select_band`, :meth:`go_to_band`, the ``span_selected(center, width)`` signal, and
    the per-viewer registry :meth:`for_viewer` / :meth:`add_span_listener`.
    """

    span_selected = Signal(float, float)

    _instances: weakref.WeakSet[SpectraWidget] = weakref.WeakSet()
    _span_listeners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.display = _display.install(napari_viewer)
        self.figure = Figure(figsize=(5, 3.2), layout=CachedConstrainedLayout())
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(160)
        self.axes = self.figure.add_subplot()
        self.axes.set_ylabel("Intensity")
        self.axes_norm = self.axes.twinx()
        self.axes_norm.set_ylabel("Normalised intensity")
        self.axes_norm.set_visible(False)
        self.legend = _Legend()

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
        layout.addWidget(self.legend)
        layout.addLayout(controls)
        layout.addLayout(exports)

        self._live: dict[str, _Series] = {}
        self._pins: list[_Series] = []
        self._rois: list[_Series] = []
        self._hidden: set[str] = set()
        self._colours: dict[str, tuple] = {}
        self._pending_position: tuple | None = None  # the cursor, not yet plotted
        self._last_position: tuple | None = None  # where the live spectra shown were read
        self._connected_layers: list = []
        self._background = None  # the figure without its animated artists, saved after each full redraw
        self._marked = None  # the same with the band marker drawn on it
        self._last_full_draw = 0.0
        self._live_due = 0.0  # when the live timer should fire
        self._loop_lag_ms = 0.0  # how late it fired lately (a moving average)
        self._split = False  # normalised layers on the right axis
        self._press: tuple | None = None
        self.last_span: tuple[float, float] | None = None
        self.draw_times: list[float] = []  # seconds per live update (spectra read + blit), latest last

        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_REFRESH_MS)
        self._live_timer.timeout.connect(self._draw_pending)
        self._roi_timer = QTimer(self)
        self._roi_timer.setSingleShot(True)
        self._roi_timer.setInterval(ROI_REFRESH_MS)
        self._roi_timer.timeout.connect(self.refresh_rois)
        self._rescale_timer = QTimer(self)
        self._rescale_timer.setSingleShot(True)
        self._rescale_timer.timeout.connect(self._full_draw)
        self._refit_timer = QTimer(self)
        self._refit_timer.setSingleShot(True)
        self._refit_timer.setInterval(REFIT_MS)
        self._refit_timer.timeout.connect(self._refit)
        self._band_timer = QTimer(self)
        self._band_timer.setSingleShot(True)
        self._band_timer.setInterval(0)
        self._band_timer.timeout.connect(self._update_marker)

        # the background is saved before the span selector's own draw handler runs (order matters)
        self.canvas.mpl_connect("draw_event", self._on_draw)
        self.marker = self.axes.axvline(0, linewidth=1.0, linestyle=":", animated=True, visible=False)
        self.marker_text = self.axes.text(
            0, 1.0, "", transform=self.axes.get_xaxis_transform(), fontsize="x-small",
            ha="center", va="bottom", animated=True, visible=False, clip_on=False,
        )
        self.span = _BandSelector(
            self,
            self.axes,
            self._on_span,
            "horizontal",
            useblit=True,
            interactive=True,
            props={"alpha": 0.25},
        )
        self.canvas.mpl_connect("button_press_event", self._on_press)
        self.canvas.mpl_connect("button_release_event", self._on_release)

        self.visible_only.toggled.connect(self._on_visibility_rule)
        self.clear_pins_button.clicked.connect(self.clear_pins)
        self.save_csv_button.clicked.connect(self._ask_csv)
        self.save_figure_button.clicked.connect(self._ask_figure)
        self.legend.toggled.connect(self._on_legend_toggle)
        self.viewer.cursor.events.position.connect(self._on_cursor)
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self.viewer.layers.events.removed.connect(self._on_layers_changed)
        self.viewer.layers.selection.events.active.connect(self._schedule_marker)
        self.viewer.dims.events.current_step.connect(self._schedule_marker)
        self.viewer.events.theme.connect(self._apply_theme)
        self._click_callback = _pin_on_click(self)
        self.viewer.mouse_drag_callbacks.append(self._click_callback)

        self._connect_layer_events()
        self._apply_theme()
        self.refresh_rois()
        if not self._rois:
            self._preset_limits()
            self._rebuild()  # the empty plot, labelled
        SpectraWidget._instances.add(self)
        _docks.arrange_soon(self)

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

    # ----------------------------------------------------------------- the band slider
    def _band_layer(self):
        """The cube whose band the marker shows and a click sets: the viewer's readout layer."""
        layer = _display.readout_layer(self.viewer)
        return layer if layer is not None and layer in spectral_layers(self.viewer) else None

    def go_to_band(self, x: float) -> int | None:
        """Move the band slider to the band nearest ``x`` (in the plot's units); returns the band."""
        layer = self._band_layer()
        if layer is None:
            return None
        band = int(np.argmin(np.abs(spectral_axis(layer) - float(x))))
        world = layer.data_to_world((band, 0, 0))[0]
        self.viewer.dims.set_point(0, float(world))
        return band

    def _on_press(self, event) -> None:
        inside = event.inaxes in (self.axes, self.axes_norm) and event.button == 1
        self._press = (event.x, event.y) if inside else None

    def _on_release(self, event) -> None:
        press, self._press = self._press, None
        if press is None or event.xdata is None or event.button != 1:
            return
        if abs(event.x - press[0]) > CLICK_PIXELS or abs(event.y - press[1]) > CLICK_PIXELS:
            return
        self.go_to_band(event.xdata)  # the two y axes share x
        if self.last_span is not None:  # a click is not a new band pick: keep the picked one
            center, width = self.last_span
            self.span.extents = (center - width / 2, center + width / 2)
            self.span.set_visible(True)
            self.canvas.draw_idle()

    def _schedule_marker(self, event=None) -> None:
        if _alive(self) and not self._band_timer.isActive():
            self._band_timer.start()

    def _place_marker(self) -> bool:
        """Put the marker on the displayed band (when the plot's axis is that layer's axis);
        True when it is shown."""
        layer = self._band_layer()
        shown = (layer is not None and bool(self._all_series())
                 and self._series_units() == [_spectral_unit_label(layer)])
        if shown:
            band = _display.displayed_band(self.viewer, layer)
            x = float(spectral_axis(layer)[band])
            self.marker.set_xdata([x, x])
            self.marker_text.set_x(x)
            readout = _display.band_readout(self.viewer)
            self.marker_text.set_text(readout["short"] if readout is not None else f"band {band}")
        self.marker.set_visible(shown)
        self.marker_text.set_visible(shown)
        return shown

    def _update_marker(self) -> None:
        if _alive(self) and self._background is not None:
            self._place_marker()
            self._mark_background()
            self._blit()

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
            self._live_due = time.perf_counter() + self._live_timer.interval() / 1000
            self._live_timer.start()

    def _draw_pending(self) -> None:
        """The throttled live update; the next waits longer while the window's event loop lags.

        How late this timer fired is how long the loop was busy (drawing the window, other
        docks, a run's progress): while it lags, the plot asks for fewer repaints, down to
        1000 / :data:`LIVE_MAX_MS` a second, and it is back to ~30 a second once the loop is idle.
        """
        late_ms = max(0.0, (time.perf_counter() - self._live_due) * 1000)
        self._loop_lag_ms = 0.7 * self._loop_lag_ms + 0.3 * late_ms
        self._live_timer.setInterval(int(np.clip(2 * self._loop_lag_ms, LIVE_REFRESH_MS, LIVE_MAX_MS)))
        if self._pending_position is None or not self.isVisible():
            return
        self.update_live(self._pending_position)

    def update_live(self, world_position) -> None:
        """Show the live spectra at ``world_position`` (the same artists, redrawn over the background)."""
        start = time.perf_counter()
        self._last_position = tuple(world_position)
        found = self._lookup(world_position)
        names = {layer.name for layer, *_ in found}
        removed = [self._live.pop(name) for name in [name for name in self._live if name not in names]]
        structure_changed = bool(removed)
        for layer, _, _, x, y in found:
            series = self._live.get(layer.name)
            if series is None or series.unit != _spectral_unit_label(layer) or len(series.x) != len(x):
                if series is not None:
                    removed.append(series)
                self._live[layer.name] = _Series(layer.name, x, y, self._colour(layer.name),
                                                 _spectral_unit_label(layer), is_normalised(layer))
                structure_changed = True
            else:
                series.x, series.y = x, y
                series.artists[0].set_data(x, y)
        if structure_changed:
            self._update_live_artists(removed)
        elif self._limits_changed(grow_only=True):
            self._request_rescale()
        else:
            self._blit()
        self._refit_timer.start()
        self.draw_times.append(time.perf_counter() - start)
        del self.draw_times[:-200]

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
            self._pins.append(_Series(label, x, y, colour, _spectral_unit_label(layer), is_normalised(layer), "pin"))
            labels.append(label)
        if labels:
            self._rebuild()
        return labels

    def clear_pins(self) -> None:
        self._drop(self._pins)
        self._pins = []
        self._rebuild()

    @staticmethod
    def _drop(series_list: list[_Series]) -> None:
        """Take the artists of ``series_list`` off the plot."""
        for series in series_list:
            for artist in series.artists:
                artist.remove()
            series.artists = []

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
        return {label: (x, mean, std, n) for label, (x, mean, std, n, _) in self._roi_results().items()}

    def _roi_results(self) -> dict:
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
                    results[label] = (spectral_axis(layer), mean, std, n_pixels, layer)
        return results

    def refresh_rois(self) -> None:
        """Recompute and redraw the ROI mean ± std curves."""
        results = self._roi_results()
        if not results and not self._rois:
            return  # no ROI before or after (a layer was added): nothing to redraw
        self._drop(self._rois)
        self._rois = []
        for index, (label, (x, mean, std, _, layer)) in enumerate(results.items()):
            colour = ROI_COLOURS[index % len(ROI_COLOURS)]
            self._rois.append(_Series(label, x, mean, colour, _spectral_unit_label(layer), is_normalised(layer),
                                      "roi", std=std))
        self._rebuild()

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
        self._schedule_marker()

    def _on_layer_visibility(self, event=None) -> None:
        if self.visible_only.isChecked():
            self._on_visibility_rule()

    def _on_visibility_rule(self, *args) -> None:
        self._schedule_rois()
        self._refresh_live()

    def _refresh_live(self) -> None:
        """Redraw the live spectra at the last position shown (after layers came, went or hid)."""
        if self._last_position is not None and self.isVisible():
            self.update_live(self._last_position)

    # ---------------------------------------------------------------------------------- drawing
    def _colour(self, name: str):
        if name not in self._colours:
            self._colours[name] = LAYER_COLOURS[len(self._colours) % len(LAYER_COLOURS)]
        return self._colours[name]

    def _all_series(self) -> list[_Series]:
        return [*self._live.values(), *self._pins, *self._rois]

    def _series_units(self) -> list[tuple[str, str]]:
        """The x units of the plotted series, each once, in plot order."""
        units = []
        for series in self._all_series():
            if series.unit not in units:
                units.append(series.unit)
        return units

    def _axis_labels(self) -> tuple[str, str]:
        """(x label, CSV column name): the units of what is plotted, all of them when they differ."""
        units = self._series_units()
        if not units:
            layers = self._layers()
            units = [_spectral_unit_label(layers[0])] if layers else [BAND_INDEX]
        return " · ".join(u[0] for u in units), " / ".join(u[1] for u in units)

    def _axes_of(self, series: _Series):
        return self.axes_norm if self._split and series.normalised else self.axes

    def _make_artists(self, series_list: list[_Series]) -> None:
        """(Re)make the artists of ``series_list``: animated lines for live spectra, plain for the rest."""
        for series in series_list:
            for artist in series.artists:
                artist.remove()
            series.artists = []
            axes = self._axes_of(series)
            if series.kind == "live":
                (line,) = axes.plot(series.x, series.y, color=series.colour, linewidth=1.4, animated=True)
            elif series.kind == "pin":
                (line,) = axes.plot(series.x, series.y, color=series.colour, linewidth=1.0, linestyle="--")
            else:
                (line,) = axes.plot(series.x, series.y, color=series.colour, linewidth=1.6)
                band = axes.fill_between(series.x, series.y - series.std, series.y + series.std,
                                         color=series.colour, alpha=0.2, linewidth=0)
                series.artists.append(band)
            series.artists.insert(0, line)
            for artist in series.artists:
                artist.set_visible(series.label not in self._hidden)

    def _wants_split(self) -> bool:
        kinds = {s.normalised for s in self._all_series() if s.label not in self._hidden}
        return kinds == {True, False}

    def _update_live_artists(self, removed: list[_Series]) -> None:
        """After live layers came or went: redo the live lines only, unless the axes must change."""
        self._drop(removed)
        if self._wants_split() != self._split or self.axes.get_xlabel() != self._axis_labels()[0]:
            self._rebuild()
            return
        self._make_artists(list(self._live.values()))
        self._update_legend()
        x_changed = self._fit_x()
        if self._limits_changed(grow_only=True) or x_changed:
            self._place_marker()
            self._request_rescale()
        else:
            self._update_marker()

    def _rebuild(self) -> None:
        """Make every curve's artists anew (after a change of what is plotted) and redraw all."""
        self._split = self._wants_split()
        self._make_artists(self._all_series())
        self.axes_norm.set_visible(self._split)
        shown = {s.normalised for s in self._all_series() if s.label not in self._hidden}
        self.axes.set_ylabel("Normalised intensity" if shown == {True} else "Intensity")
        self.axes.set_xlabel(self._axis_labels()[0])
        self._update_legend()
        self._fit_x()
        self._limits_changed(force=True)
        self._place_marker()
        self._full_draw()

    def _update_legend(self) -> None:
        self.legend.set_entries([
            (s.label, s.label + (" (right axis)" if self._split and s.normalised else ""), s.colour,
             s.label not in self._hidden)
            for s in self._all_series()
        ])

    def _fit_x(self) -> bool:
        """Fit the x axis to the shown curves; True when it changed."""
        shown = [s for s in self._all_series() if s.label not in self._hidden and len(s.x)]
        return bool(shown) and self._set_x([s.x for s in shown])

    def _set_x(self, axes_values) -> bool:
        """The x axis over the spectral axes ``axes_values`` (1 % to spare); True when it changed."""
        low = min(float(np.min(x)) for x in axes_values)
        high = max(float(np.max(x)) for x in axes_values)
        if not high > low:
            return False
        pad = 0.01 * (high - low)
        limits = (low - pad, high + pad)
        if np.allclose(self.axes.get_xlim(), limits):
            return False
        self.axes.set_xlim(*limits)
        return True

    def _preset_limits(self) -> None:
        """Before any curve: the axes of the first plotted layer (its spectral axis, and the range
        of a few of its spectra on a grid, with the headroom a growing axis takes), so that the
        first spectra under the cursor, often shown while a run starts, are drawn over the saved
        background instead of asking for full redraws of the figure."""
        layers = self._layers()
        if self._all_series() or not layers:
            return
        layer = layers[0]
        _, n_rows, n_cols = layer.data.shape
        side = PRESET_GRID_LAZY if is_lazy(layer.data) else PRESET_GRID
        rows, cols = (np.unique(np.linspace(0, n - 1, min(n, side)).round().astype(int)) for n in (n_rows, n_cols))
        with np.errstate(invalid="ignore"):
            sample = np.stack([np.asarray(layer.data[:, row, cols], dtype=np.float32) for row in rows])
            low, high = float(np.nanmin(sample)), float(np.nanmax(sample))
        self._set_x([spectral_axis(layer)])
        if np.isfinite(low) and np.isfinite(high):
            pad = (0.05 + HEADROOM) * max(high - low, 1e-12)
            self.axes.set_ylim(low - pad, high + pad)

    def _limits_changed(self, force: bool = False, grow_only: bool = False) -> bool:
        """Fit each y axis to its curves; True if a limit changed.

        An axis is fitted when its curves leave it or fill less than half of it (or always, with
        ``force``). ``grow_only`` (while the mouse moves) only widens an axis the curves leave, with
        :data:`HEADROOM` to spare, so that moving between bright and dim pixels does not redraw the
        whole figure at every move.
        """
        changed = False
        for axes, normalised in ((self.axes, False), (self.axes_norm, True)):
            shown = [s for s in self._all_series() if s.label not in self._hidden
                     and (self._split and s.normalised) == normalised and len(s.y)]
            if not shown:
                continue
            with np.errstate(invalid="ignore"):
                low = min(float(np.nanmin(s.y - (s.std if s.std is not None else 0))) for s in shown)
                high = max(float(np.nanmax(s.y + (s.std if s.std is not None else 0))) for s in shown)
            if not (np.isfinite(low) and np.isfinite(high)):
                continue
            current = axes.get_ylim()
            span = max(high - low, 1e-12)
            outside = low < current[0] or high > current[1]
            loose = span < 0.5 * (current[1] - current[0])
            if grow_only:
                if outside:
                    pad = (0.05 + HEADROOM) * span
                    axes.set_ylim(min(current[0], low - pad), max(current[1], high + pad))
                    changed = True
            elif force or outside or loose:
                axes.set_ylim(low - 0.05 * span, high + 0.05 * span)
                changed = True
        return changed

    def _refit(self) -> None:
        """The mouse rests: fit the axes to the curves shown (narrower ones too)."""
        if _alive(self) and self._limits_changed():
            self._full_draw()

    def _request_rescale(self) -> None:
        """Redraw with the new limits now, or soon when the last full redraw was very recent."""
        waited_ms = (time.perf_counter() - self._last_full_draw) * 1000
        if waited_ms >= RESCALE_MS:
            self._full_draw()
        else:
            self._blit()
            if not self._rescale_timer.isActive():
                self._rescale_timer.start(int(RESCALE_MS - waited_ms))

    def _full_draw(self) -> None:
        self._last_full_draw = time.perf_counter()
        self.canvas.draw_idle()

    def _on_draw(self, event) -> None:
        """After every full redraw: keep the background, then draw the animated artists on it."""
        if self.canvas.is_saving():
            return
        self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        self._mark_background()
        self._draw_animated(marker=False)

    def _mark_background(self) -> None:
        """Keep a second background with the band marker on it (text is slow to draw: once per band)."""
        self.canvas.restore_region(self._background)
        for artist in (self.marker, self.marker_text):
            if artist.get_visible():
                self.figure.draw_artist(artist)
        self._marked = self.canvas.copy_from_bbox(self.figure.bbox)

    def _animated(self, marker: bool = True) -> list:
        skip = () if marker else (self.marker, self.marker_text)
        artists = [a for axes in (self.axes, self.axes_norm) if axes.get_visible()
                   for a in axes.get_children() if a.get_animated() and a.get_visible() and a not in skip]
        return sorted(artists, key=lambda a: a.get_zorder())

    def _draw_animated(self, marker: bool = True) -> None:
        for artist in self._animated(marker):
            self.figure.draw_artist(artist)

    def _blit(self) -> None:
        """Redraw the live lines over the saved background, marker included (a few ms)."""
        if self._background is None:
            self.canvas.draw_idle()
            return
        self.canvas.restore_region(self._marked)
        self._draw_animated(marker=False)
        self.canvas.update()  # painted with the window's next repaint, not at once

    def _on_legend_toggle(self, label: str, shown: bool) -> None:
        (self._hidden.discard if shown else self._hidden.add)(label)
        self._rebuild()

    def _apply_theme(self, event=None) -> None:
        theme = get_theme(self.viewer.theme)
        background = theme.background.as_hex()
        text = theme.text.as_hex()
        foreground = theme.foreground.as_hex()
        highlight = theme.highlight.as_hex()
        self.figure.set_facecolor(background)
        self.axes.set_facecolor(background)
        for axes in (self.axes, self.axes_norm):
            for spine in axes.spines.values():
                spine.set_color(foreground)
            axes.tick_params(colors=text, which="both")
            axes.xaxis.label.set_color(text)
            axes.yaxis.label.set_color(text)
        self.marker.set_color(text)
        self.marker_text.set_color(text)
        self._theme_colours = (background, foreground, text, highlight)
        self.span.set_props(facecolor=highlight, alpha=0.25)
        self.span.set_handle_props(color=highlight)
        self.figure.get_layout_engine().invalidate()
        self.canvas.draw_idle()

    # ----------------------------------------------------------------------------------- export
    def export_csv(self, path) -> None:
        """Write every plotted spectrum to CSV: one axis column, then one column per spectrum.

        ROIs have a mean and a std column. Spectra on different axes (a cropped layer beside a
        full one) share the union of the axis values; a cell is empty where a spectrum has no
        value (:func:`napari_deeper.spectral.save_spectra_csv`).
        """
        columns = []
        for s in self._all_series():
            columns.append((s.label, s.x, s.y))
            if s.std is not None:
                columns.append((f"{s.label} std", s.x, s.std))
        save_spectra_csv(path, columns, self._axis_labels()[1])

    def export_figure(self, path, dpi: int = 200) -> None:
        """Save the plot as an image (PNG, SVG, PDF: chosen by the file extension), with a legend.

        The live lines are drawn too (matplotlib leaves animated artists out of saved files), and
        the legend goes beside the axes.
        """
        animated = self._animated()
        for artist in animated:
            artist.set_animated(False)
        handles = [s.artists[0] for s in self._all_series() if s.label not in self._hidden and s.artists]
        labels = [s.label for s in self._all_series() if s.label not in self._hidden and s.artists]
        legend = None
        if handles:
            legend = self.figure.legend(handles, labels, loc="outside right upper", fontsize="x-small")
            background, foreground, text, _ = self._theme_colours
            legend.get_frame().set_facecolor(background)
            legend.get_frame().set_edgecolor(foreground)
            for label in legend.get_texts():
                label.set_color(text)
        try:
            self.figure.savefig(path, dpi=dpi, facecolor=self.figure.get_facecolor())
        finally:
            if legend is not None:
                legend.remove()
            for artist in animated:
                artist.set_animated(True)
            self.canvas.draw_idle()

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
