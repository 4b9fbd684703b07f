"""Peak heatmap dock: the area or height of one Raman band, for several cubes at once.

Each selected spectral layer gives a new 2-D image layer (colormap magma) that overlays its
source in world coordinates, with the recipe step that remakes it (``band_map``, the measure as
its method) in its provenance. Dragging across the Spectra plot sets the band here.
"""

from __future__ import annotations

from functools import partial

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Select
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .. import provenance
from ..spectral import BAND_MAP_MODES, band_maps_steps
from ._layers import follow_layers, layer_choices, wavenumbers_of
from ._runner import Runner
from .spectra import SpectraWidget

BAND_UNITS_TIP = (
    "In the layer's spectral units: cm⁻¹ for Raman shift, nm for wavelength, "
    "band index when the layer has no wavenumbers."
)


def _unit_of(layer) -> str:
    if wavenumbers_of(layer) is None:
        return "bands"
    return "nm" if provenance.is_wavelength(layer) else "cm⁻¹"


def peak_map_name(layer, center: float, width: float, mode: str, baseline: bool) -> str:
    """E.g. ``"cell · 1450±15 cm⁻¹ area"`` (``", baseline"`` appended when it was removed)."""
    name = f"{layer.name} · {center:g}±{width / 2:g} {_unit_of(layer)} {mode}"
    return f"{name}, baseline" if baseline else name


class PeakMapWidget(QWidget):
    """Band centre, width, area/height, optional linear baseline, and the layers to map."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.layers = Select(label="Layers", choices=layer_choices(self.viewer))
        self.layers.native.setMaximumHeight(110)
        self.layers.tooltip = "One map per selected layer (Ctrl/Shift-click to select several)"
        self.center = FloatSpinBox(label="Centre (cm⁻¹)", value=1450.0, min=-1e6, max=1e6, step=1.0)
        self.width = FloatSpinBox(label="Width (cm⁻¹)", value=30.0, min=0.01, max=1e6, step=1.0)
        self.center.tooltip = BAND_UNITS_TIP
        self.width.tooltip = f"Full width of the band, centre ± width/2. {BAND_UNITS_TIP}"
        self.mode = ComboBox(label="Measure", choices=list(BAND_MAP_MODES), value="area")
        self.mode.tooltip = "area: trapezoid integral over the band; height: the band's maximum"
        self.baseline = CheckBox(text="Subtract linear baseline between the band edges", value=False)
        self.controls = Container(
            widgets=[self.layers, self.center, self.width, self.mode, self.baseline]
        )
        self.runner = Runner("Make maps")

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.runner)
        layout.addStretch(1)

        self.runner.run_button.clicked.connect(self.run)
        SpectraWidget.add_span_listener(self.viewer, self.set_band)
        follow_layers(self.viewer, self.layers, then=self._choose_default)

    def _choose_default(self, event=None) -> None:
        """With nothing selected, select the active layer (or the first one offered)."""
        if self.layers.value:
            return
        active = self.viewer.layers.selection.active
        choices = list(self.layers.choices)
        default = active if active in choices else (choices[0] if choices else None)
        if default is not None:
            self.layers.value = [default]

    def set_band(self, center: float, width: float) -> None:
        """Set the band (called when a band is picked on the Spectra plot)."""
        self.center.value = float(center)
        self.width.value = max(float(width), self.width.min)

    def run(self) -> None:
        layers = list(self.layers.value)
        if not layers:
            self.runner.refuse("Choose at least one spectral layer.")
            return
        params = {
            "center": float(self.center.value),
            "width": float(self.width.value),
            "mode": str(self.mode.value),
            "baseline": bool(self.baseline.value),
        }
        cubes = [(layer.data, wavenumbers_of(layer)) for layer in layers]
        self.runner.start(band_maps_steps, partial(self._add_maps, layers, params), cubes, **params)

    def _add_maps(self, layers, params: dict, maps) -> None:
        replay = provenance.step("band_map", {"method": params["mode"], "center": params["center"],
                                              "width": params["width"], "baseline": params["baseline"]})
        for layer, band_map in zip(layers, maps):
            self.viewer.add_image(
                band_map,
                name=peak_map_name(layer, **params),
                scale=layer.scale[1:],
                translate=layer.translate[1:],
                axis_labels=layer.axis_labels[1:],
                units=layer.units[1:],
                colormap="magma",
                metadata={provenance.KEY: provenance.record("band_map", layer, params, replay=replay)},
            )
