"""Super-resolve dock widget: upscale a spectral layer 2-4x with one or more methods.

Pick the input layer, the scale and the methods to run (interpolation baselines, the shipped
networks and any fine-tuned model; each shows its parameters, such as the networks' tile and
overlap, built from the method schema in :data:`napari_deeper.superres.FAMILY`), and a device.
*Run* computes every ticked method in a worker (:func:`napari_deeper.superres.upscale_steps`,
under one progress bar); each result becomes a layer
``"<input> · <method> ×f"`` with pixels ``f`` times smaller and the matching translate, so it
overlays the input in world coordinates (output pixel ``f*i + f//2`` on input pixel ``i``), and
with its provenance in ``metadata["napari_deeper"]``. *Side by side* shows the input and the
results in napari's grid. Removing the input layer during a run does not stop it: the results
are added and a warning says the input is gone. A lazy input (a zarr store, a large file opened
lazily) is upscaled block by block into zarr stores, by every method and by *Fast scan restore*
(:mod:`napari_deeper.stream`).

*Fast scan restore* is the DeepeR pipeline for a fast, noisy, coarse scan: denoise (default
method) then super-resolve (default method, with the parameters its panel shows, adaptation
included). Both the denoised and the final layer are kept so
each step can be compared, and the equivalent imaging-time saving is shown: ``f²`` fewer points
times the exposure ratio (how many times shorter each point's dwell was than the reference).
"""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, Select
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .. import provenance
from ..compute import devices
from ..stream import restore_steps, upscale_many_steps
from ..superres import DEFAULT, FAMILY, SCALES
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

DEFAULT_SELECTION = ("bicubic", DEFAULT)




def result_layer_name(source_name: str, method: str, scale: int) -> str:
    return result_name(source_name, f"{method} ×{scale}")


class SuperResWidget(QWidget):
    """Input layer, scale, methods, device, Run/Cancel; and the fast-scan-restore pipeline."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.last_results: list = []

        self.input_layer = ComboBox(label="Input", choices=layer_choices(self.viewer))
        self.scale = ComboBox(label="Scale", choices=list(SCALES), value=2)
        self.methods = Select(label="Methods", choices=[])
        self.device = ComboBox(label="Device", choices=devices(), value="auto")
        self.side_by_side = CheckBox(text="Side by side (input and results in a grid)")
        self.controls = Container(
            widgets=[self.input_layer, self.scale, self.methods, self.device, self.side_by_side]
        )
        self.param_panel = Container(labels=False)
        self.panels = MethodPanels(FAMILY, self.methods, self.param_panel, DEFAULT_SELECTION)
        self.params = self.panels.panels  # method name -> its parameter controls
        self.runner = Runner("Run")

        self.exposure_ratio = FloatSpinBox(
            label="Exposure ratio", value=1.0, min=1.0, max=10000.0, step=1.0,
            tooltip="reference dwell time / this scan's dwell time (1 if the same)",
        )
        self.restore_info = Label(value="")
        self.restore_controls = Container(widgets=[self.exposure_ratio, self.restore_info])
        self.restore_runner = Runner("Fast scan restore")
        self.restore_runner.run_button.setToolTip(
            "denoise (default method), then super-resolve (default method); keeps both layers"
        )

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.param_panel.native)
        layout.addWidget(self.runner)
        layout.addWidget(Label(value="<b>Fast scan restore</b> (noisy, coarse scan)").native)
        layout.addWidget(self.restore_controls.native)
        layout.addWidget(self.restore_runner)
        layout.addStretch(1)

        self.runner.run_button.clicked.connect(self.run)
        self.restore_runner.run_button.clicked.connect(self.fast_scan_restore)
        self.side_by_side.changed.connect(self._toggle_side_by_side)
        self.scale.changed.connect(self._update_saving)
        self.exposure_ratio.changed.connect(self._update_saving)
        follow_layers(self.viewer, self.input_layer)
        self.refresh_methods()
        self._update_saving()

    # ------------------------------------------------------------------------------ choices
    def refresh_methods(self) -> None:
        """Re-read the methods (a newly fine-tuned model shows up here), keeping the selection."""
        self.panels.refresh()

    def _update_saving(self, value=None) -> None:
        f = int(self.scale.value)
        ratio = float(self.exposure_ratio.value)
        self.restore_info.value = (
            f"Imaging-time saving: {f * f * ratio:g}x ({f}x{f} fewer points"
            + (f" x {ratio:g} shorter exposure)" if ratio != 1 else ")")
        )

    # ---------------------------------------------------------------------------- super-resolve
    def run(self) -> None:
        """Upscale the input with every ticked method, in a worker."""
        try:
            source = required_layer(self.input_layer)
            scale = int(self.scale.value)
            jobs = {name: {"scale": scale, **params} for name, params in self.panels.jobs().items()}
            if not jobs:
                raise ValueError("tick at least one method")
        except ValueError as error:
            self.runner.refuse(error)
            return
        device = self.device.value
        self.runner.start(
            upscale_many_steps,  # in memory, or streamed to zarr stores for a lazy input
            lambda results: self._add_results(source, scale, device, jobs, results),
            source.data, jobs, wavenumbers_of(source), device,
            viewer=self.viewer, inputs=[source],
        )

    def _record(self, source, operation: str, params: dict, method: str, replay=None) -> dict:
        chosen = FAMILY.lookup(method)
        extra = model_record(chosen.model) if chosen.kind == "network" else {}
        return provenance.record(operation, source, params, replay=replay, **extra)

    def _add_results(self, source, scale: int, device, jobs: dict, results: dict) -> None:
        layers = []
        for method, cube in results.items():
            record = self._record(source, "superres", {"method": method, **jobs[method], "device": device}, method)
            kwargs = cube_layer_kwargs(source, result_layer_name(source.name, method, scale),
                                       record, scale_factor=scale)
            layers.append(self.viewer.add_image(cube, **kwargs))
        self.last_results = [source, *layers]
        if self.side_by_side.value:
            show_side_by_side(self.viewer, self.last_results)

    def _toggle_side_by_side(self, on: bool) -> None:
        toggle_side_by_side(self.viewer, on, self.last_results)

    # ---------------------------------------------------------------------- fast scan restore
    def fast_scan_restore(self) -> None:
        """Denoise, then super-resolve the input; keep both layers; show the time saving."""
        try:
            source = required_layer(self.input_layer)
        except ValueError as error:
            self.restore_runner.refuse(error)
            return
        scale = int(self.scale.value)
        ratio = float(self.exposure_ratio.value)
        device = self.device.value
        # the upscaler's own panel (adapt, tile...); its noise setting is for raw scans: restore
        # runs it with noise "denoised"
        upscale_params = {k: v for k, v in self.panels.panels[DEFAULT].params.items() if k != "noise"}
        self.restore_runner.start(
            restore_steps,  # in memory, or streamed to zarr stores for a lazy input
            lambda result: self._add_restored(source, device, result),
            source.data, scale, None, None, wavenumbers_of(source), device, ratio, upscale_params,
            viewer=self.viewer, inputs=[source],
        )

    def _add_restored(self, source, device, result) -> None:
        upscale_params = result.upscale_params
        params = {"scale": result.scale, "denoise_method": result.denoise_method,
                  "upscale_method": result.upscale_method, "upscale_params": upscale_params,
                  "exposure_ratio": result.exposure_ratio, "device": device}
        denoised_name = result_name(source.name, result.denoise_method)
        denoise_step = provenance.step("denoise", {"method": result.denoise_method})
        denoised_record = provenance.record("denoise", source, {"method": result.denoise_method, "device": device},
                                            replay=denoise_step, pipeline="fast_scan_restore")
        denoised = self.viewer.add_image(
            result.denoised, **cube_layer_kwargs(source, denoised_name, denoised_record)
        )
        # replayed as the two steps it ran: the denoiser with its defaults, then the upscaler
        upscale_step = provenance.step("superres", {"method": result.upscale_method, "scale": result.scale,
                                                    **upscale_params})
        final_record = self._record(source, "fast_scan_restore", params, result.upscale_method,
                                    replay=[denoise_step, upscale_step])
        final_record["time_saving"] = result.time_saving
        if result.note:
            final_record["note"] = result.note
        final_record["intermediate"] = denoised.name
        final = self.viewer.add_image(
            result.upscaled,
            **cube_layer_kwargs(
                source, result_layer_name(denoised.name, result.upscale_method, result.scale),
                final_record, scale_factor=result.scale,
            ),
        )
        self.last_results = [source, denoised, final]
        self.restore_info.value = (
            f"Imaging-time saving: {result.time_saving:g}x "
            f"({result.scale}x{result.scale} fewer points x {result.exposure_ratio:g} shorter exposure)"
            + (f"<br>{result.note}" if result.note else "")
        )
        if self.side_by_side.value:
            show_side_by_side(self.viewer, self.last_results)
