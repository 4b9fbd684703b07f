"""Denoise dock widget: run one or more denoising methods on a spectral layer, side by side.

Pick the input layer, select one or more methods (each shows its parameters, built from the method's
schema in :data:`napari_deeper.denoise.METHODS`; fine-tuned models appear too) and a device.
*Run* computes every ticked method in a worker; each result becomes a layer
``"<input> · <method>"`` with its provenance (method, parameters, device, model name and version)
in ``metadata["napari_deeper"]``. *Side by side* shows the input and the results in napari's grid
with the same contrast limits. A cancelled or failed run makes no layers; removing the input layer
during a run does not stop it: the results are added and a warning says the input is gone.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, LineEdit, Select, SpinBox
from qtpy.QtWidgets import QScrollArea, QVBoxLayout, QWidget

from .. import compute
from ..denoise import DEFAULT, available_methods, denoise_steps
from ._layers import (
    cube_layer_kwargs,
    device_choices,
    follow_layers,
    layer_choices,
    model_record,
    provenance,
    required_layer,
    result_name,
    show_side_by_side,
    toggle_side_by_side,
    wavenumbers_of,
)
from ._runner import Runner

AUTO = "auto"


def denoise_many_steps(data: np.ndarray, jobs: dict[str, dict], wavenumbers, device):
    """Run every ``{method: params}`` job in turn; return ``{method: cube}`` (all or nothing)."""
    results = {}
    n = len(jobs)
    for index, (method, params) in enumerate(jobs.items()):
        inner = denoise_steps(data, method, wavenumbers, device, **params)
        while True:
            try:
                progress = next(inner)
            except StopIteration as stop:
                results[method] = stop.value
                break
            done = int(round(1000 * (index + progress.fraction)))
            yield compute.Progress(done, 1000 * n, f"{method} ({index + 1}/{n}): {progress.message}")
    return results


class OptionalInt(Container):
    """An integer that may be left to the method: an "auto" tick box beside a spin box."""

    def __init__(self, param):
        low, high = param.range if param.range is not None else (0, 10**9)
        self.auto = CheckBox(text=AUTO, value=param.default is None, tooltip=param.help)
        self.number = SpinBox(min=int(low), max=int(high), tooltip=param.help,
                              value=int(low) if param.default is None else int(param.default))
        super().__init__(widgets=[self.auto, self.number], layout="horizontal", labels=False,
                         label=param.name, tooltip=param.help)
        self.margins = (0, 0, 0, 0)
        self.number.enabled = not self.auto.value
        self.auto.changed.connect(self._on_auto)

    def _on_auto(self, on: bool) -> None:
        self.number.enabled = not on

    @property
    def value(self) -> int | None:
        return None if self.auto.value else int(self.number.value)

    @value.setter
    def value(self, value) -> None:
        self.auto.value = value is None
        if value is not None:
            self.number.value = int(value)


def param_widget(param):
    """A magicgui control for one :class:`~napari_deeper.denoise.schema.Param`."""
    tooltip = param.help
    if param.choices is not None:
        return ComboBox(label=param.name, choices=list(param.choices), value=param.default, tooltip=tooltip)
    if param.type is str:
        return LineEdit(label=param.name, value=str(param.default), tooltip=tooltip)
    if param.type is bool:
        return CheckBox(label=param.name, value=bool(param.default), tooltip=tooltip)
    if param.type is int and param.optional:
        return OptionalInt(param)
    low, high = param.range if param.range is not None else (-1e9, 1e9)
    if param.type is int:
        return SpinBox(label=param.name, min=int(low), max=int(high), value=int(param.default), tooltip=tooltip)
    return FloatSpinBox(label=param.name, min=float(low), max=float(high), step=0.1,
                        value=float(param.default), tooltip=tooltip)


class MethodParams(Container):
    """The parameter controls of one method, shown while that method is selected."""

    def __init__(self, method):
        self.method = method
        self.controls = {p.name: param_widget(p) for p in method.params}
        header = Label(value=f"<b>{method.name}</b>: {method.description}")
        header.native.setWordWrap(True)
        super().__init__(widgets=[header, Container(widgets=list(self.controls.values()))], labels=False)
        self.margins = (0, 4, 0, 4)
        self.visible = False

    @property
    def params(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}




class DenoiseWidget(QWidget):
    """Input layer, methods with their parameters, device, Run/Cancel and a side-by-side view."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.last_results: list = []
        self.params: dict[str, MethodParams] = {}

        self.input_layer = ComboBox(label="Input", choices=layer_choices(self.viewer))
        self.methods = Select(label="Methods", choices=[], tooltip="select one or more (Ctrl/Cmd-click)")
        self.device = ComboBox(label="Device", choices=device_choices(), value=AUTO)
        self.side_by_side = CheckBox(text="Side by side (input and results in a grid)")
        self.controls = Container(widgets=[self.input_layer, self.methods, self.device, self.side_by_side])
        self.param_panel = Container(labels=False)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.param_panel.native)
        self.runner = Runner("Run")

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.runner)

        self.runner.run_button.clicked.connect(self.run)
        self.methods.changed.connect(self._show_params)
        self.side_by_side.changed.connect(self._toggle_side_by_side)
        follow_layers(self.viewer, self.input_layer)
        self.refresh_methods()

    # ------------------------------------------------------------------------------ choices
    def refresh_methods(self) -> None:
        """Re-read the methods (a newly fine-tuned model shows up here), keeping the selection."""
        selected = list(self.methods.value) if self.params else [DEFAULT]
        available = available_methods()
        kept = {name: panel for name, panel in self.params.items() if name in available}
        for name, panel in list(self.params.items()):
            if name not in kept:
                self.param_panel.remove(panel)
        for name, method in available.items():
            if name not in kept:
                kept[name] = MethodParams(method)
                self.param_panel.append(kept[name])
        self.params = kept
        self.methods.choices = list(available)
        self.methods.value = [name for name in selected if name in available]
        self._show_params()

    def _show_params(self, value=None) -> None:
        chosen = set(self.methods.value)
        for name, panel in self.params.items():
            panel.visible = name in chosen and bool(panel.controls)

    # ---------------------------------------------------------------------------------- run
    def run(self) -> None:
        """Denoise the input with every ticked method, in a worker."""
        try:
            source = required_layer(self.input_layer)
            jobs = {name: self.params[name].params for name in self.methods.value}
            if not jobs:
                raise ValueError("tick at least one method")
        except ValueError as error:
            self.runner.refuse(error)
            return
        device = self.device.value
        self.runner.start(
            denoise_many_steps,
            lambda results: self._add_results(source, device, jobs, results),
            np.asarray(source.data), jobs, wavenumbers_of(source), device,
            viewer=self.viewer, inputs=[source],
        )

    def _record(self, source, method_name: str, params: dict, device) -> dict:
        method = self.params[method_name].method if method_name in self.params else None
        extra = model_record(method.model) if method is not None and method.kind == "network" else {}
        return provenance("denoise", source, {"method": method_name, **params, "device": device}, **extra)

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
