"""Calibration tab of the Analyse dock: correct the wavenumber axis from reference lines.

*Find* averages the reference scan (the cube itself when it shows a reference band, or a
separate scan of silicon or polystyrene opened as its own layer) and fits each reference line
near its position, in the background: one line found gives a shift of the axis, several a
straight-line correction. The correction can be saved under a name (in the user data folder)
and applied later to any layer. *Apply* makes, per chosen layer, a copy ``"<name> ·
calibrated"`` with the corrected axis, whose provenance keeps the calibration (its reference,
lines and where they were found) and whose recipe step (``calibrate``, ``linear``, the slope
and offset inline) applies the same correction to the next file.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, LineEdit, PushButton, Select
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QVBoxLayout, QWidget

from .. import provenance
from ..analysis import REFERENCES, find_calibration_steps, list_calibrations, load_calibration
from ..analysis.methods import CALIBRATE, reference_lines
from ._analysis import compact, wrapped
from ._layers import cube_layer_kwargs, follow_layers, is_spectral, layer_choices, result_name, wavenumbers_of
from ._params import param_widget
from ._runner import Runner

CUSTOM = "lines given below"
FOUND = "the one just found (not saved)"


def _has_axis(layer) -> bool:
    return is_spectral(layer) and wavenumbers_of(layer) is not None


def describe(calibration) -> str:
    """One line: what was found where, and the correction."""
    pairs = ", ".join(f"{line:g} at {seen:.2f}" for line, seen in zip(calibration.lines, calibration.measured))
    if calibration.kind == "shift":
        fix = f"shift {calibration.offset:+.2f} cm⁻¹"
    else:
        fix = f"corrected = {calibration.slope:.6f} × axis {calibration.offset:+.3f}"
    missing = f"; not found: {', '.join(f'{v:g}' for v in calibration.missing)}" if calibration.missing else ""
    return f"{calibration.reference}: {pairs} → {fix}{missing}"


class CalibrationWidget(QWidget):
    """Reference scan and lines, Find; a name and Save; a calibration, the layers, Apply."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.found = None  # the Calibration just found
        self.found_on: str | None = None  # the layer it was found in
        schema = {p.name: p for p in CALIBRATE.lookup("reference").params}
        self.reference_layer = ComboBox(label="Reference scan", choices=layer_choices(self.viewer, _has_axis))
        self.reference_layer.tooltip = "the cube itself (a band it shows) or a separate silicon / polystyrene scan"
        self.reference = ComboBox(label="Reference", choices=[*REFERENCES, CUSTOM], value="silicon")
        self.reference.tooltip = "silicon: 520.7 cm⁻¹; polystyrene: the ASTM E1840 lines"
        self.lines = LineEdit(label="Lines (cm⁻¹)", value="1001.4")
        self.lines.tooltip = "the true positions of the lines, separated by commas"
        self.search = param_widget(schema["search"])
        self.min_snr = param_widget(schema["min_snr"])
        self.find_runner = Runner("Find")
        self.result = Label(value="")
        self.result.native.setWordWrap(True)
        self.name = LineEdit(label="Save as", value="")
        self.save_button = PushButton(text="Save calibration")
        self.save_button.enabled = False
        self.chosen = ComboBox(label="Calibration", choices=self._calibration_choices)
        self.targets = Select(label="Apply to", choices=layer_choices(self.viewer, _has_axis))
        self.targets.native.setMaximumHeight(110)
        compact(self.reference_layer, self.chosen, self.targets)
        self.apply_button = PushButton(text="Apply")
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        self.made: list = []

        find = Container(widgets=[self.reference_layer, self.reference, self.lines, self.search, self.min_snr])
        save = Container(widgets=[self.name, self.save_button])
        apply = Container(widgets=[self.chosen, self.targets, self.apply_button, self.status])
        layout = QVBoxLayout(self)
        layout.addWidget(find.native)
        layout.addWidget(self.find_runner)
        layout.addWidget(self.result.native)
        layout.addWidget(save.native)
        layout.addWidget(apply.native)
        layout.addStretch(1)

        self.reference.changed.connect(self._update_enabled)
        self.find_runner.run_button.clicked.connect(self.find)
        self.save_button.changed.connect(self.save)
        self.apply_button.changed.connect(self.apply)
        follow_layers(self.viewer, self.reference_layer, self.targets)
        self._update_enabled()

    def _update_enabled(self, *args) -> None:
        self.lines.enabled = self.reference.value == CUSTOM

    def _calibration_choices(self, widget=None) -> list[str]:
        return ([FOUND] if self.found is not None else []) + list_calibrations()

    # ---------------------------------------------------------------------------------- find
    def find(self) -> None:
        layer = self.reference_layer.value
        try:
            if layer is None:
                raise ValueError("choose a reference scan: a layer with a spectral axis (wavenumbers)")
            reference = reference_lines(self.lines.value if self.reference.value == CUSTOM else self.reference.value)
            _, params = CALIBRATE.check("reference", {"reference": reference, "search": self.search.value,
                                                      "min_snr": self.min_snr.value})
        except ValueError as error:
            self.find_runner.refuse(error)
            return
        self.result.value = ""
        self.find_runner.start(
            find_calibration_steps, lambda found: self._on_found(layer, found), wavenumbers_of(layer),
            np.asarray(layer.data), params["reference"], params["search"], params["half_window"], params["min_snr"],
            viewer=self.viewer, inputs=[layer],
        )

    def _on_found(self, layer, calibration) -> None:
        self.found = calibration
        self.found_on = layer.name
        self.result.value = wrapped(f"Found in {layer.name}: {describe(calibration)}")
        self.save_button.enabled = True
        if not self.name.value:
            self.name.value = f"{calibration.reference} {calibration.created[:10]}"
        self.chosen.reset_choices()
        self.chosen.value = FOUND

    # ---------------------------------------------------------------------------------- save
    def save(self, value=None) -> None:
        """Save the calibration just found under the name given (the user data folder)."""
        if self.found is None:
            self.find_runner.refuse("find a calibration first")
            return
        try:
            path = self.found.save(self.name.value.strip())
        except ValueError as error:
            self.find_runner.refuse(error)
            return
        self.chosen.reset_choices()
        self.chosen.value = path.stem
        self.status.value = wrapped(f"Saved as {path.stem!r} ({path})")
        show_info(f"napari-deeper: calibration saved as {path.stem!r}")

    # --------------------------------------------------------------------------------- apply
    def calibration(self):
        """The calibration chosen: the one just found, or a saved one."""
        choice = self.chosen.value
        if choice is None:
            raise ValueError("find a calibration or save one first; none is chosen")
        return self.found if choice == FOUND else load_calibration(choice)

    def apply(self, value=None) -> None:
        """A calibrated copy of every chosen layer (the axis corrected, the data as it was)."""
        try:
            calibration = self.calibration()
            targets = list(self.targets.value)
            if not targets:
                raise ValueError("choose the layers to calibrate")
        except ValueError as error:
            self.find_runner.refuse(error)
            return
        step = {"method": "linear", "slope": calibration.slope, "offset": calibration.offset}
        self.made = []
        for layer in targets:
            record = provenance.record("calibrate", layer, step, calibration=calibration.record())
            kwargs = cube_layer_kwargs(layer, result_name(layer.name, "calibrated"), record)
            kwargs["metadata"]["wavenumbers"] = calibration.apply(wavenumbers_of(layer))
            self.made.append(self.viewer.add_image(layer.data, **kwargs))
        self.status.value = wrapped(f"Calibrated {', '.join(layer.name for layer in targets)} with "
                                    f"{calibration.name or 'the calibration just found'}: {describe(calibration)}")
