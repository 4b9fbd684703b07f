"""Denoise dock widget: run one or more denoising methods on a spectral layer, side by side.

Pick the input layer, select one or more methods (each shows its parameters, built from the method's
schema in :data:`napari_deeper.denoise.METHODS`; fine-tuned models appear too) and a device.
*Run* computes every ticked method in a worker; each result becomes a layer
``"<input> · <method>"`` with its provenance (method, parameters, device, model name and version)
in ``metadata["napari_deeper"]``. *Side by side* shows the input and the results in napari's grid
with the same contrast limits. A cancelled or failed run makes no layers; removing the input layer
during a run does not stop it: the results are added and a warning says the input is gone.
A lazy input (a zarr store, a large file opened lazily) is denoised block by block into zarr
stores (:mod:`napari_deeper.stream`), and the new layers read from them.
"""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container, Select
from qtpy.QtWidgets import QScrollArea, QVBoxLayout, QWidget

from .. import provenance
from ..compute import devices
from ..denoise import FAMILY
from ..stream import denoise_many_steps
from ._layers import (
    cube_layer_kwargs,
    follow_layers,
    layer_choices,
    model_record,
    required_layer,
    result_name,
    show_side_by_side,
    toggle_side_by_side,
    wavenumbers_of,
)
from ._params import MethodPanels
from ._runner import Runner

AUTO = "auto"


class DenoiseWidget(QWidget):
    """Input layer, methods with their parameters, device, Run/Cancel and a side-by-side view."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.last_results: list = []

        self.input_layer = ComboBox(label="Input", choices=layer_choices(self.viewer))
        self.methods = Select(label="Methods", choices=[], tooltip="select one or more (Ctrl/Cmd-click)")
        self.device = ComboBox(label="Device", choices=devices(), value=AUTO)
        self.side_by_side = CheckBox(text="Side by side (input and results in a grid)")
        self.controls = Container(widgets=[self.input_layer, self.methods, self.device, self.side_by_side])
        self.param_panel = Container(labels=False)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.param_panel.native)
        self.panels = MethodPanels(FAMILY, self.methods, self.param_panel)
        self.params = self.panels.panels  # method name -> its parameter controls
        self.runner = Runner("Run")

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.runner)

        self.runner.run_button.clicked.connect(self.run)
        self.side_by_side.changed.connect(self._toggle_side_by_side)
        follow_layers(self.viewer, self.input_layer)
        active = self.viewer.layers.selection.active  # (napari hands docks proxies: compare with ==)
        selected = [choice for choice in self.input_layer.choices if active is not None and choice == active]
        if selected:
            self.input_layer.value = selected[0]  # the layer the user has selected, not the first one
        self.refresh_methods()

    # ------------------------------------------------------------------------------ choices
    def refresh_methods(self) -> None:
        """Re-read the methods (a newly fine-tuned model shows up here), keeping the selection."""
        self.panels.refresh()

    # ---------------------------------------------------------------------------------- run
    def run(self) -> None:
        """Denoise the input with every ticked method, in a worker."""
        try:
            source = required_layer(self.input_layer)
            jobs = self.panels.jobs()
            if not jobs:
                raise ValueError("tick at least one method")
        except ValueError as error:
            self.runner.refuse(error)
            return
        device = self.device.value
        self.runner.start(
            denoise_many_steps,  # in memory, or streamed to zarr stores for a lazy input
            lambda results: self._add_results(source, device, jobs, results),
            source.data, jobs, wavenumbers_of(source), device,
            viewer=self.viewer, inputs=[source],
        )

    def _record(self, source, method_name: str, params: dict, device) -> dict:
        method = self.params[method_name].method if method_name in self.params else None
        extra = model_record(method.model) if method is not None and method.kind == "network" else {}
        return provenance.record("denoise", source, {"method": method_name, **params, "device": device}, **extra)

    def _add_results(self, source, device, jobs: dict, results: dict) -> None:
        records = {m: self._record(source, m, jobs[m], device) for m in results}
        layers = []
        for method, cube in results.items():
            kwargs = cube_layer_kwargs(source, result_name(source.name, method), records[method])
            layers.append(self.viewer.add_image(cube, **kwargs))
        self.last_results = [source, *layers]
        if self.side_by_side.value:
            show_side_by_side(self.viewer, self.last_results)

    def _toggle_side_by_side(self, on: bool) -> None:
        toggle_side_by_side(self.viewer, on, self.last_results)
