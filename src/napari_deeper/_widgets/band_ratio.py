"""Band ratio tab of the Analyse dock: the map of one band over another (e.g. 1660/1450).

Each band is ``centre±half-window`` in the layer's units. The measure is the area or height
above the straight line between the window's edges, or the area or height of a peak fitted in
every pixel. Pixels where the denominator band is noise (below ``threshold`` standard
deviations of its noise), not positive, or where a fit failed are masked (NaN), and the tab
says how many. The map's recipe step (``band_ratio``, the measure as its method) remakes it.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, Label
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .. import provenance
from ..analysis import PEAK_SHAPES, band_ratio_steps
from ..analysis.methods import BAND_RATIO
from ._analysis import BAND_UNITS_TIP, compact, map_layer_kwargs, robust_limits, text_field, unit_of, wrapped
from ._layers import follow_layers, layer_choices, wavenumbers_of
from ._params import param_widget
from ._runner import Runner


class BandRatioWidget(QWidget):
    """Layer, numerator and denominator bands, measure, noise threshold; Make ratio map."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        schema = {p.name: p for p in BAND_RATIO.lookup("fitted-area").params}
        self.layer = ComboBox(label="Layer", choices=layer_choices(self.viewer))
        compact(self.layer)
        self.numerator = text_field("Numerator", "1660±25", f"centre±half-window. {BAND_UNITS_TIP}")
        self.denominator = text_field("Denominator", "1450±25", f"centre±half-window. {BAND_UNITS_TIP}")
        self.mode = ComboBox(label="Measure", choices=list(BAND_RATIO.methods), value=BAND_RATIO.default)
        self.mode.tooltip = ("area / height: above the straight line between the window's edges; "
                             "fitted-: of a peak fitted in every pixel")
        self.threshold = param_widget(schema["threshold"])
        self.threshold.label = "Mask below (noise SD)"
        self.shape = ComboBox(label="Peak shape", choices=list(PEAK_SHAPES), value="lorentzian")
        self.summary = Label(value="")
        self.summary.native.setWordWrap(True)
        self.controls = Container(widgets=[self.layer, self.numerator, self.denominator, self.mode,
                                           self.threshold, self.shape])
        self.runner = Runner("Make ratio map")
        self.last_result: dict | None = None

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.runner)
        layout.addWidget(self.summary.native)
        layout.addStretch(1)

        self.mode.changed.connect(self._update_enabled)
        self.runner.run_button.clicked.connect(self.run)
        follow_layers(self.viewer, self.layer)
        self._update_enabled()

    def _update_enabled(self, *args) -> None:
        self.shape.enabled = str(self.mode.value).startswith("fitted")

    def parameters(self) -> tuple[str, dict]:
        """The measure and its checked parameters, or a ``ValueError`` saying what is wrong."""
        given = {"numerator": self.numerator.value, "denominator": self.denominator.value,
                 "threshold": self.threshold.value}
        if self.shape.enabled:
            given["shape"] = self.shape.value
        method, checked = BAND_RATIO.check(self.mode.value, given)
        return method.name, checked

    def run(self) -> None:
        layer = self.layer.value
        try:
            if layer is None:
                raise ValueError("open or choose a spectral layer first")
            mode, params = self.parameters()
        except ValueError as error:
            self.runner.refuse(error)
            return
        self.summary.value = ""
        self.runner.start(
            band_ratio_steps, lambda result: self._add_map(layer, mode, params, result),
            np.asarray(layer.data), wavenumbers_of(layer), params["numerator"], params["denominator"], mode,
            params["threshold"], params.get("shape", "lorentzian"), viewer=self.viewer, inputs=[layer],
        )

    def _add_map(self, layer, mode: str, params: dict, result: dict) -> None:
        self.last_result = result
        (num, _), (den, _) = params["numerator"], params["denominator"]
        record = provenance.record("band_ratio", layer, {"method": mode, **params}, masked=int(result["mask"].sum()))
        name = f"{layer.name} · {num:g}/{den:g} {unit_of(layer)} {mode} ratio"
        ratio = result["ratio"]
        self.viewer.add_image(ratio, contrast_limits=robust_limits(ratio),
                              **map_layer_kwargs(layer, name, record, "viridis"))
        self.summary.value = wrapped(result["message"])
        show_info(f"napari-deeper: {result['message']}")
