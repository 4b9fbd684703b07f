"""Preprocess dock: crop the spectral range, fill NaN/Inf, remove spikes and baseline, normalise.

The result is a new layer ``"<name> · preprocessed"`` with the cropped wavenumbers in its
metadata and every step, with its parameters, in its provenance (one recipe step: the
``standard`` method of the preprocessing family). The input layer is untouched. A lazy layer
(a zarr store, a large file opened lazily) is preprocessed block by block into a zarr store
(:func:`napari_deeper.stream.preprocess_steps`), and the new layer reads from it.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .. import provenance
from ..spectral import NORMALISATIONS
from ..stream import preprocess_steps
from ._layers import (
    cube_layer_kwargs,
    follow_layers,
    layer_choices,
    result_name,
    spectral_axis,
    wavenumbers_of,
)
from ._runner import Runner

NO_NORMALISATION = "none"
CROP_DECIMALS = 2  # what the spin boxes show; the defaults are rounded outwards to keep every band


class PreprocessWidget(QWidget):
    """Layer, crop range, NaN filling, spike and baseline removal, normalisation; Run."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.layer = ComboBox(label="Layer", choices=layer_choices(self.viewer))
        self.crop_start = FloatSpinBox(label="Crop from", min=-1e7, max=1e7, step=1.0)
        self.crop_stop = FloatSpinBox(label="Crop to", min=-1e7, max=1e7, step=1.0)
        self.crop_start.tooltip = self.crop_stop.tooltip = (
            "Spectral range to keep, in the layer's units (band index when it has no wavenumbers); "
            "reset to the full range when the layer changes"
        )
        self.fill = CheckBox(text="Replace NaN/Inf with 0", value=False)
        self.despike = CheckBox(text="Remove cosmic-ray spikes", value=False)
        self.spike_threshold = FloatSpinBox(label="Spike threshold (noise levels)", value=8.0, min=2.0,
                                            max=100.0, step=0.5)
        self.spike_threshold.tooltip = "Lower removes more; higher touches only the strongest spikes"
        self.baseline = CheckBox(text="Remove baseline (iterative polynomial fit)", value=False)
        self.baseline_order = SpinBox(label="Baseline polynomial order", value=3, min=0, max=15)
        self.normalisation = ComboBox(
            label="Normalise", choices=[NO_NORMALISATION, *NORMALISATIONS], value=NO_NORMALISATION
        )
        self.normalisation.tooltip = (
            "Per spectrum: max, minmax, vector (L2), area; per cube: cube-max, cube-minmax (not for a lazy "
            "layer, which is preprocessed block by block)"
        )
        self.controls = Container(
            widgets=[
                self.layer,
                self.crop_start,
                self.crop_stop,
                self.fill,
                self.despike,
                self.spike_threshold,
                self.baseline,
                self.baseline_order,
                self.normalisation,
            ]
        )
        self.runner = Runner("Preprocess")

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.runner)
        layout.addStretch(1)

        self.layer.changed.connect(self._reset_crop_range)
        self.despike.changed.connect(self._update_enabled)
        self.baseline.changed.connect(self._update_enabled)
        self.runner.run_button.clicked.connect(self.run)
        follow_layers(self.viewer, self.layer)
        self._reset_crop_range()
        self._update_enabled()

    def _update_enabled(self, *args) -> None:
        self.spike_threshold.enabled = bool(self.despike.value)
        self.baseline_order.enabled = bool(self.baseline.value)

    def _reset_crop_range(self, *args) -> None:
        """Set the crop range to the whole axis of the chosen layer (rounded outwards)."""
        layer = self.layer.value
        if layer is None:
            return
        axis = spectral_axis(layer)
        factor = 10**CROP_DECIMALS
        self.crop_start.value = math.floor(float(axis.min()) * factor) / factor
        self.crop_stop.value = math.ceil(float(axis.max()) * factor) / factor

    def _crop_range(self, layer) -> tuple[float, float] | None:
        """The crop to apply, or None when the range keeps every band."""
        axis = spectral_axis(layer)
        low, high = sorted((float(self.crop_start.value), float(self.crop_stop.value)))
        if np.all((axis >= low) & (axis <= high)):
            return None
        return (low, high)

    def parameters(self, layer) -> dict:
        """The keyword arguments of :func:`napari_deeper.spectral.preprocess_steps` now set."""
        normalise = str(self.normalisation.value)
        return {
            "crop": self._crop_range(layer),
            "fill": 0.0 if self.fill.value else None,
            "despike": float(self.spike_threshold.value) if self.despike.value else None,
            "baseline": int(self.baseline_order.value) if self.baseline.value else None,
            "normalise": None if normalise == NO_NORMALISATION else normalise,
        }

    def run(self) -> None:
        layer = self.layer.value
        if layer is None:
            self.runner.refuse("Open or choose a spectral layer first.")
            return
        params = self.parameters(layer)
        if all(value is None for value in params.values()):
            self.runner.refuse("Nothing to do: choose a crop range or at least one step.")
            return
        self.runner.start(  # in memory, or streamed to a zarr store for a lazy layer
            preprocess_steps, partial(self._add_result, layer, params), layer.data,
            wavenumbers_of(layer), **params,
        )

    def _add_result(self, layer, params: dict, result) -> None:
        name = result_name(layer.name, "preprocessed")
        replay = provenance.step("preprocess", {"method": "standard", **params})
        record = provenance.record("preprocess", layer, params, replay=replay, steps=result.steps)
        kwargs = cube_layer_kwargs(layer, name, record)
        if result.wavenumbers is not None:
            kwargs["metadata"]["wavenumbers"] = result.wavenumbers
        self.viewer.add_image(result.data, **kwargs)
