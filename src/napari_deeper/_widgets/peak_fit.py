"""Peak fit tab of the Analyse dock: fit one or several Raman bands in every pixel, as maps.

Bands are written ``centre±half-window`` (``1004±15, 1450±20``), in the layer's spectral units;
dragging across the Spectra plot adds the band picked. The fit (Lorentzian, Gaussian or
pseudo-Voigt on a straight-line background, Levenberg-Marquardt in all pixels at once) runs in a
worker; each band gives a 2-D layer per map asked for (centre, FWHM, height, area, R², and the
Gaussian fraction of a pseudo-Voigt), NaN where the fit failed, and, when some pixels failed, a
labels layer of why (did not converge, centre or width on a bound, no peak above the noise). The
dock says per band how many pixels were fitted. Each map's recipe step (``peak_fit``, the shape
as its method, ``map`` and ``band`` naming the layer) remakes it from the layer's source.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, Select
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .. import provenance
from ..analysis import FAILURE_REASONS, fit_peaks_steps
from ..analysis.methods import PEAK_FIT, peak_map
from ._analysis import BAND_UNITS_TIP, band_text, compact, map_layer_kwargs, robust_limits, text_field, unit_of, wrapped
from ._layers import follow_layers, layer_choices, wavenumbers_of
from ._params import param_widget
from ._runner import Runner
from .spectra import SpectraWidget

#: map key -> (name in layer names, colormap)
MAP_LOOK = {
    "center": ("centre", "viridis"),
    "fwhm": ("FWHM", "cividis"),
    "height": ("height", "magma"),
    "area": ("area", "inferno"),
    "r2": ("R²", "gray"),
    "gaussian_fraction": ("Gaussian fraction", "plasma"),
}
#: colours of the failure codes (1..5) in the "fit failed" labels layer
FAILURE_COLOURS = ("#d62728", "#ff7f0e", "#bcbd22", "#7f7f7f", "#9467bd")
_OPTIONS = ("min_snr", "max_iter", "tol")


class PeakFitWidget(QWidget):
    """Layer, bands, peak shape, fit options and the maps to make; Fit peaks."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.layer = ComboBox(label="Layer", choices=layer_choices(self.viewer))
        compact(self.layer)
        self.shape = ComboBox(label="Shape", choices=list(PEAK_FIT.methods), value=PEAK_FIT.default)
        self.bands = text_field("Bands", "1004±15", f"centre±half-window, several separated by commas. "
                                f"{BAND_UNITS_TIP} Dragging across the Spectra plot adds a band.")
        self.fwhm_bounds = text_field("FWHM bounds", "",
                                      "low, high (e.g. 2, 40); blank: from the band spacing to the window width")
        schema = {p.name: p for p in PEAK_FIT.lookup(None).params}
        self.options = {name: param_widget(schema[name]) for name in _OPTIONS}
        self.maps = Select(label="Maps", choices=[], tooltip="one layer per map and band")
        self.maps.native.setMaximumHeight(110)
        self.summary = Label(value="")
        self.summary.native.setWordWrap(True)
        self.controls = Container(widgets=[self.layer, self.bands, self.shape, self.fwhm_bounds,
                                           *self.options.values(), self.maps])
        self.runner = Runner("Fit peaks")
        self.made: list = []  # layers of the last fit
        self.last_fit: dict | None = None

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.runner)
        layout.addWidget(self.summary.native)
        layout.addStretch(1)

        self.shape.changed.connect(self._offer_maps)
        self.runner.run_button.clicked.connect(self.run)
        SpectraWidget.add_span_listener(self.viewer, self.add_band)
        follow_layers(self.viewer, self.layer)
        self._offer_maps()

    def _offer_maps(self, *args) -> None:
        """Every map the shape makes, all selected (the Gaussian fraction only for pseudo-Voigt)."""
        maps = next(p for p in PEAK_FIT.lookup(self.shape.value).params if p.name == "map").choices
        offered = [key for key in maps if key in MAP_LOOK]
        chosen = [key for key in self.maps.value if key in offered] if self.maps.choices else offered
        self.maps.choices = offered
        self.maps.value = chosen or offered

    def add_band(self, center: float, width: float) -> None:
        """Add the band picked on the Spectra plot (centre, full width) to the bands to fit."""
        text = self.bands.value.strip()
        picked = band_text([(round(center, 1), round(width / 2, 1))])
        self.bands.value = f"{text}, {picked}" if text else picked

    def parameters(self) -> tuple[str, dict]:
        """The shape and the checked fit parameters (``bands`` parsed), or a ``ValueError``."""
        given = {"bands": self.bands.value, "fwhm_bounds": self.fwhm_bounds.value.strip() or None,
                 **{name: control.value for name, control in self.options.items()}}
        method, checked = PEAK_FIT.check(self.shape.value, given)
        return method.name, {key: checked[key] for key in given}

    def run(self) -> None:
        layer = self.layer.value
        try:
            if layer is None:
                raise ValueError("open or choose a spectral layer first")
            shape, params = self.parameters()
            maps = list(self.maps.value)
            if not maps:
                raise ValueError("choose at least one map to make")
        except ValueError as error:
            self.runner.refuse(error)
            return
        self.summary.value = ""
        self.runner.start(
            fit_peaks_steps, lambda fit: self._add_maps(layer, shape, params, maps, fit),
            np.asarray(layer.data), wavenumbers_of(layer), params["bands"], shape, params["fwhm_bounds"],
            params["max_iter"], params["tol"], params["min_snr"], viewer=self.viewer, inputs=[layer],
        )

    def _add_maps(self, layer, shape: str, params: dict, maps: list[str], fit: dict) -> None:
        self.last_fit = fit
        self.made = []
        unit = unit_of(layer)
        for band, (center, _) in enumerate(params["bands"]):
            for key in maps:
                title, colormap = MAP_LOOK[key]
                values = peak_map(fit, key, band)
                record = provenance.record("peak_fit", layer, {"method": shape, **params, "map": key, "band": band})
                kwargs = map_layer_kwargs(layer, f"{layer.name} · {center:g} {unit} {title}", record, colormap)
                self.made.append(self.viewer.add_image(values, contrast_limits=robust_limits(values), **kwargs))
            if fit["failed"][band].any():
                step = {"method": shape, **params, "map": "reason", "band": band}
                record = provenance.record("peak_fit", layer, step, reasons=list(FAILURE_REASONS))
                kwargs = map_layer_kwargs(layer, f"{layer.name} · {center:g} {unit} fit failed", record)
                kwargs["colormap"] = DirectLabelColormap(color_dict={
                    None: np.zeros(4), 0: np.zeros(4),
                    **{code: FAILURE_COLOURS[code - 1] for code in range(1, len(FAILURE_REASONS))}})
                self.made.append(self.viewer.add_labels(peak_map(fit, "reason", band), opacity=0.6, **kwargs))
        self.summary.value = wrapped(fit["message"])
        (show_warning if fit["failed"].any() else show_info)(f"napari-deeper: {fit['message']}")

