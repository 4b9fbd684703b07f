"""Baseline tab of the Analyse dock: remove the fluorescence background of a cube, previewed live.

Choose a layer and a method of the ``baseline`` family (arPLS by default; every pybaselines
method the core runs, and the hand-written ModPoly); its parameters are built from the method's
schema. While the mouse moves over the image, the tab's plot shows that pixel's spectrum, the
baseline the method finds under it and the corrected spectrum, redrawn as the parameters change,
so the settings can be judged on a few pixels before the whole cube runs. *Remove baseline* runs
the whole cube in a worker; the result is a new layer ``"<name> · <method> baseline removed"``
whose recipe step (``baseline``, the method and its parameters) remakes it.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .. import provenance
from ..analysis import estimate_baseline
from ..analysis.methods import BASELINE
from ._analysis import SmallPlot, compact
from ._layers import cube_layer_kwargs, follow_layers, layer_choices, result_name, spectral_axis, wavenumbers_of
from ._params import MethodParams
from ._runner import Runner

PREVIEW_MS = 40  # the preview follows the mouse at most this often


class BaselineWidget(QWidget):
    """Layer, method and its parameters, a live preview under the mouse, Remove baseline."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.layer = ComboBox(label="Layer", choices=layer_choices(self.viewer))
        self.method = ComboBox(label="Method", choices=list(BASELINE.methods), value=BASELINE.default)
        self.method.tooltip = "arpls suits most Raman spectra; snip and the polynomials are the fastest"
        self.panels = {name: MethodParams(method) for name, method in BASELINE.methods.items()}
        compact(self.layer)
        self.live = CheckBox(text="Preview the pixel under the mouse", value=True)
        self.pixel_label = Label(value="")
        self.controls = Container(widgets=[self.layer, self.method, *self.panels.values(), self.live, self.pixel_label])
        self.plot = SmallPlot(self.viewer)
        self.runner = Runner("Remove baseline")
        self.pixel: tuple[int, int] | None = None  # (row, col) of the pixel previewed
        self.preview_error: str | None = None
        self.preview_curves: dict[str, np.ndarray] = {}  # spectrum, baseline, corrected

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.plot)
        layout.addWidget(self.runner)
        layout.addStretch(1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_MS)
        self._timer.timeout.connect(self.update_preview)
        self.method.changed.connect(self._show_panel)
        self.layer.changed.connect(self._on_layer)
        for panel in self.panels.values():
            for control in panel.controls.values():
                control.changed.connect(self._schedule)
        self.live.changed.connect(self._schedule)
        self.viewer.cursor.events.position.connect(self._on_cursor)
        self.runner.run_button.clicked.connect(self.run)
        follow_layers(self.viewer, self.layer)
        self._show_panel()
        self._on_layer()

    # ---------------------------------------------------------------------------- parameters
    @property
    def params(self) -> dict:
        """The chosen method's parameters as set in its panel (not checked yet)."""
        return self.panels[self.method.value].params

    def _checked(self) -> tuple[str, dict]:
        method, params = BASELINE.check(self.method.value, self.params)
        return method.name, params

    def _show_panel(self, *args) -> None:
        for name, panel in self.panels.items():
            panel.visible = name == self.method.value
        self._schedule()

    # ------------------------------------------------------------------------------- preview
    def _on_layer(self, *args) -> None:
        """A new layer: preview its middle pixel until the mouse goes over it."""
        layer = self.layer.value
        self.pixel = None if layer is None else (layer.data.shape[1] // 2, layer.data.shape[2] // 2)
        self._schedule()

    def _on_cursor(self, event=None) -> None:
        layer = self.layer.value
        if layer is None or not self.live.value:
            return
        position = np.asarray(layer.world_to_data(self.viewer.cursor.position), dtype=float)
        row, col = (int(v) for v in np.floor(position[-2:] + 0.5))
        if 0 <= row < layer.data.shape[1] and 0 <= col < layer.data.shape[2] and (row, col) != self.pixel:
            self.pixel = (row, col)
            self._schedule()

    def _schedule(self, *args) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def preview_at(self, row: int, col: int) -> None:
        """Preview pixel ``(row, col)`` of the chosen layer now (what hovering over it does)."""
        self.pixel = (int(row), int(col))
        self.update_preview()

    def update_preview(self) -> None:
        """Redraw the spectrum, baseline and corrected curve of the previewed pixel."""
        layer = self.layer.value
        if layer is None or self.pixel is None:
            self.plot.message("Open a spectral layer to preview its baseline")
            return
        if not self.live.value:
            self.plot.message("Preview is off")
            return
        row, col = self.pixel
        spectrum = np.asarray(layer.data[:, row, col], dtype=np.float32)
        x = spectral_axis(layer)
        try:
            name, params = self._checked()
            baseline = estimate_baseline(spectrum, wavenumbers_of(layer), name, **params)
        except ValueError as error:
            self.preview_error = str(error)
            self.plot.message(f"No preview: {error}")
            return
        self.preview_error = None
        self.preview_curves = {"spectrum": spectrum, "baseline": baseline, "corrected": spectrum - baseline}
        axes = self.plot.axes
        axes.clear()
        axes.plot(x, spectrum, lw=0.8, color="#9aa0a6", label="spectrum")
        axes.plot(x, baseline, lw=1.2, color="#ff7f0e", label=f"{name} baseline")
        axes.plot(x, spectrum - baseline, lw=0.8, color="#1f77b4", label="corrected")
        axes.axhline(0.0, lw=0.5, color=self.plot.text_colour, alpha=0.4)
        self.pixel_label.value = f"Preview: pixel ({row}, {col}) of {layer.name}"
        self.plot.finish(layer)

    # ----------------------------------------------------------------------------------- run
    def run(self) -> None:
        layer = self.layer.value
        if layer is None:
            self.runner.refuse("Open or choose a spectral layer first.")
            return
        try:
            name, params = self._checked()
        except ValueError as error:
            self.runner.refuse(error)
            return
        self.runner.start(
            BASELINE.steps, lambda cube: self._add_result(layer, name, params, cube),
            np.asarray(layer.data), name, wavenumbers_of(layer), None,
            viewer=self.viewer, inputs=[layer], **params,
        )

    def _add_result(self, layer, method: str, params: dict, cube) -> None:
        record = provenance.record("baseline", layer, {"method": method, **params})
        self.viewer.add_image(cube, **cube_layer_kwargs(layer, result_name(layer.name, f"{method} baseline removed"),
                                                        record))
