"""Cube layout dock: correct how a file was read (axis order, image shape) and drop NaN / Inf.

Readers guess when a file does not say: which axis holds the bands, how N spectra fold into an
image. This widget shows the layer's shape and the reader's guesses, and makes a corrected copy
"<name> · relayout" (or "<name> · finite" after replacing NaN / Inf with 0). Like every
operation of the plugin it makes a new layer with provenance; "Remove the original" (on by
default) then removes the wrongly shaped one so that it is not used by mistake. Replacing NaN /
Inf is a recipe step (preprocessing with ``fill=0``); a relayout is not: it corrects how a file
was read, so a recipe through it refuses to replay and says so.
"""

from __future__ import annotations

from functools import partial

from magicgui.widgets import CheckBox, ComboBox, Container, SpinBox
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from .. import provenance
from ..io import relayout_steps, replace_nonfinite_steps
from ._layers import cube_layer_kwargs, follow_layers, layer_choices, result_name
from ._runner import Runner

#: (label, axes the layer has now); the result is always (bands, y, x).
AXIS_ORDERS = [
    ("(bands, y, x): as read", "byx"),
    ("(bands, x, y): swap rows and columns", "bxy"),
    ("(y, x, bands): bands are last", "yxb"),
    ("(x, y, bands): bands last, rows and columns swapped", "xyb"),
    ("(y, bands, x): bands in the middle", "ybx"),
    ("(x, bands, y): bands in the middle, swapped", "xby"),
]
PIXEL_ORDERS = [("row by row (NumPy)", "C"), ("column by column (MATLAB)", "F")]
NOT_REPLAYABLE = (
    "the Cube layout dock's relayout corrects how a file was read, it is not a processing step; "
    "relayout the cube first (napari_deeper.io.relayout, with this step's parameters), then replay the steps after it"
)


class CubeLayoutWidget(QWidget):
    """Layer, its axis order, the image shape to fold its pixels into, and NaN / Inf repair."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.layer = ComboBox(label="Layer", choices=layer_choices(self.viewer))
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.order = ComboBox(label="Layer axes are", choices=AXIS_ORDERS, value="byx")
        self.order.tooltip = "Which axis of the layer holds the bands; the result is (bands, y, x)."
        self.height = SpinBox(label="Image rows (Y)", value=1, min=1, max=10**8)
        self.width = SpinBox(label="Image columns (X)", value=1, min=1, max=10**8)
        self.height.tooltip = self.width.tooltip = (
            "Fold the pixels into a Y x X image (Y * X must equal the number of pixels), "
            "e.g. a 1 x N strip of spectra into the map they came from."
        )
        self.pixel_order = ComboBox(label="Pixels were listed", choices=PIXEL_ORDERS, value="C")
        self.pixel_order.tooltip = (
            "How the file listed its spectra: row by row (NumPy, C order) or column by column "
            "(MATLAB, WITec exports)."
        )
        self.remove_original = CheckBox(text="Remove the original", value=True)
        self.controls = Container(
            widgets=[self.layer, self.order, self.height, self.width, self.pixel_order, self.remove_original]
        )
        self.layout_runner = Runner("Apply layout")
        self.nonfinite_runner = Runner("Replace NaN/Inf with 0")

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.info)
        layout.addWidget(self.layout_runner)
        layout.addWidget(self.nonfinite_runner)
        layout.addStretch(1)

        self.layer.changed.connect(self._on_layer)
        self.order.changed.connect(self._show_target_shape)
        self.layout_runner.run_button.clicked.connect(self.apply_layout)
        self.nonfinite_runner.run_button.clicked.connect(self.replace_nonfinite)
        follow_layers(self.viewer, self.layer)
        self._on_layer()

    # --- choices -------------------------------------------------------------------------

    def _on_layer(self, event=None) -> None:
        layer = self.layer.value
        if layer is None:
            self.info.setText("Open or choose a 3-D image layer.")
            return
        record = provenance.of(layer)
        self.order.value = "byx"
        self.pixel_order.value = record.get("pixel_order") or "C"
        lines = [f"Shape {tuple(layer.data.shape)} (bands, y, x), {layer.data.dtype}"]
        if record.get("format"):
            lines.append(f"Read as: {record['format']}")
        if record.get("choices"):
            lines.append(f"Reader's guesses: {record['choices']}")
        counts = record.get("nonfinite") or {}
        if counts.get("nan") or counts.get("inf"):
            lines.append(f"Contains {counts['nan']} NaN and {counts['inf']} Inf values.")
        self.info.setText("\n".join(lines))
        self._show_target_shape()

    def _show_target_shape(self, event=None) -> None:
        """Put the image shape that the chosen axis order gives into the Y / X boxes."""
        layer = self.layer.value
        if layer is None:
            return
        axes = self.order.value
        shape = dict(zip(axes, layer.data.shape))
        self.height.value, self.width.value = shape["y"], shape["x"]

    # --- actions -------------------------------------------------------------------------

    def apply_layout(self) -> None:
        layer = self.layer.value
        if layer is None:
            self.layout_runner.refuse("Choose a 3-D image layer first.")
            return
        axes = self.order.value
        current = dict(zip(axes, layer.data.shape))
        target = (int(self.height.value), int(self.width.value))
        shape = None if target == (current["y"], current["x"]) else target
        params = {"order": axes, "shape": shape, "pixel_order": self.pixel_order.value}
        if axes == "byx" and shape is None:
            self.layout_runner.refuse("Nothing to change: pick another axis order or image shape.")
            return
        n_pixels = current["y"] * current["x"]
        if shape is not None and shape[0] * shape[1] != n_pixels:
            message = (
                f"Y * X must equal the layer's {n_pixels} pixels; "
                f"{shape[0]} x {shape[1]} = {shape[0] * shape[1]}"
            )
            self.layout_runner.refuse(message)
            return
        self.layout_runner.start(
            relayout_steps, partial(self._add_relayout, layer, params), layer.data, **params
        )

    def replace_nonfinite(self) -> None:
        layer = self.layer.value
        if layer is None:
            self.nonfinite_runner.refuse("Choose a 3-D image layer first.")
            return
        self.nonfinite_runner.start(replace_nonfinite_steps, partial(self._add_finite, layer), layer.data)

    def _add_relayout(self, source, params: dict, data) -> None:
        params = {**params, "shape": params["shape"] and list(params["shape"])}
        replay = provenance.not_replayable("relayout", params, NOT_REPLAYABLE)
        record = provenance.record("relayout", source, params, replay=replay)
        self._add_result(source, data, result_name(source.name, "relayout"), record)

    def _add_finite(self, source, result) -> None:
        data, n_nan, n_inf = result
        if not (n_nan or n_inf):
            show_info(f"{source.name} has no NaN or Inf values: nothing to replace.")
            return
        replay = provenance.step("preprocess", {"method": "standard", "fill": 0.0})
        record = provenance.record("replace_nonfinite", source, {"value": 0.0}, replay=replay,
                                   replaced={"nan": n_nan, "inf": n_inf})
        self._add_result(source, data, result_name(source.name, "finite"), record)

    def _add_result(self, source, data, name: str, record: dict) -> None:
        kwargs = cube_layer_kwargs(source, name, record)
        wavenumbers = kwargs["metadata"].get("wavenumbers")
        if wavenumbers is not None and len(wavenumbers) != data.shape[0]:
            del kwargs["metadata"]["wavenumbers"]
        label, unit = provenance.axis_names(source)
        kwargs["axis_labels"] = (label, "y", "x")
        kwargs["units"] = (unit, "pixel", "pixel")
        kwargs["scale"] = kwargs["scale"] if data.shape[1:] == source.data.shape[1:] else (1, 1, 1)
        kwargs["translate"] = kwargs["translate"] if data.shape[1:] == source.data.shape[1:] else (0, 0, 0)
        layer = self.viewer.add_image(data, **kwargs)
        if self.remove_original.value and source in self.viewer.layers:
            self.viewer.layers.remove(source)
        self.layer.value = layer
