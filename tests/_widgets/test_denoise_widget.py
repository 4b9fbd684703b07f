"""The Denoise dock in a real viewer: pick methods, run, layers with provenance, cancel, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deeper import simulate
from napari_deeper.denoise import DEFAULT, denoise

pytestmark = pytest.mark.gui


@pytest.fixture
def cell():
    return simulate.simulate_cell((16, 16), n_bands=120, photons=40, seed=5)


@pytest.fixture
def dock(make_napari_viewer, cell):
    from napari_deeper._widgets.denoise import DenoiseWidget

    viewer = make_napari_viewer()
    layer = viewer.add_image(cell.noisy.copy(), name="cell", metadata={"wavenumbers": cell.wavenumbers})
    widget = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget, layer


def test_controls_come_from_the_registry(dock):
    _, widget, _ = dock
    assert list(widget.methods.value) == [DEFAULT]
    assert {"savgol", "wavelet", "pca", "resunet", "aunet", "hybrid"} <= set(widget.methods.choices)
    savgol = widget.params["savgol"]
    assert set(savgol.controls) == {"window", "order", "auto", "stabilise"}
    assert savgol.controls["window"].value == 15
    assert widget.params["wavelet"].controls["threshold"].choices == ("bayesshrink", "visushrink")
    assert savgol.native.isHidden()  # only the selected methods' parameters are shown
    widget.methods.value = ["savgol", DEFAULT]
    assert not savgol.native.isHidden() and widget.params["pca"].native.isHidden()


def test_two_methods_make_named_layers_with_provenance(dock, cell, run_dock):
    viewer, widget, layer = dock
    widget.methods.value = ["savgol", "resunet"]
    widget.params["savgol"].controls["window"].value = 21
    widget.params["resunet"].controls["steps"].value = 3  # (its time budget would decide otherwise)
    widget.device.value = "cpu"
    run_dock(widget)
    assert widget.runner.last_error is None
    smooth = viewer.layers["cell · savgol"]
    net = viewer.layers["cell · resunet"]
    np.testing.assert_allclose(smooth.data, denoise(cell.noisy, "savgol", window=21), rtol=1e-6)
    # the worker thread's torch threads may sum in another order: equal to float32 rounding
    np.testing.assert_allclose(net.data, denoise(cell.noisy, "resunet", device="cpu", steps=3), rtol=1e-4,
                               atol=1e-4 * float(np.abs(net.data).max()))
    record = net.metadata["napari_deeper"]
    assert record["operation"] == "denoise" and record["source"] == "cell"
    assert record["params"]["method"] == "resunet" and record["params"]["device"] == "cpu"
    assert record["model"] == "resunet" and record["model_version"]
    assert smooth.metadata["napari_deeper"]["params"]["window"] == 21
    np.testing.assert_array_equal(smooth.metadata["wavenumbers"], cell.wavenumbers)
    np.testing.assert_array_equal(layer.data, cell.noisy)  # input untouched


def test_side_by_side_toggle(dock, run_dock):
    viewer, widget, layer = dock
    widget.methods.value = ["savgol", "pca"]
    run_dock(widget)
    widget.side_by_side.value = True
    assert viewer.canvas.grid.enabled
    shown = [lay for lay in viewer.layers if lay.visible]
    assert len(shown) == 3
    assert len({tuple(lay.contrast_limits) for lay in shown}) == 1
    widget.side_by_side.value = False
    assert not viewer.canvas.grid.enabled


def test_cancel_leaves_no_layers(make_napari_viewer, run_dock):
    from napari_deeper._widgets.denoise import DenoiseWidget

    viewer = make_napari_viewer()
    big = simulate.simulate_cell((96, 96), n_bands=300, photons=40, seed=2).noisy
    viewer.add_image(big, name="big")
    widget = DenoiseWidget(viewer)
    widget.methods.value = ["resunet", "aunet"]
    widget.params["resunet"].controls["batch_size"].value = 32

    def cancel_once_under_way(value: int) -> None:
        if value > 0:
            widget.runner.cancel_button.click()

    run_dock(widget, on_start=lambda worker: widget.runner.progress.valueChanged.connect(cancel_once_under_way))
    assert [lay.name for lay in viewer.layers] == ["big"]
    assert "Cancelled" in widget.runner.status.text()


def test_bad_input_shows_an_error_and_no_layers(dock, cell, run_dock):
    viewer, widget, layer = dock
    bad = cell.noisy.copy()
    bad[0, 0, 0] = np.nan
    viewer.add_image(bad, name="broken")
    widget.input_layer.value = viewer.layers["broken"]
    widget.methods.value = ["savgol"]
    run_dock(widget, fails=True)
    assert "NaN" in str(widget.runner.last_error)
    assert [lay.name for lay in viewer.layers] == ["cell", "broken"]
    widget.methods.value = []
    widget.input_layer.value = layer
    run_dock(widget, fails=True)
    assert "tick at least one method" in str(widget.runner.last_error)
    assert len(viewer.layers) == 2


def test_new_user_model_appears_after_refresh(dock, tmp_path, monkeypatch):
    from napari_deeper.models import registry

    monkeypatch.setenv("NAPARI_DEEPER_MODELS", str(tmp_path))
    _, widget, _ = dock
    model = registry.build("resunet", {"width": 4, "levels": 2, "n_convs": 1})
    registry.save_model(model, "lab-model", "resunet", {"width": 4, "levels": 2, "n_convs": 1},
                        {"task": "denoise", "version": "1"}, tmp_path)
    widget.refresh_methods()
    assert "lab-model" in widget.methods.choices and list(widget.methods.value) == [DEFAULT]
    assert widget.params["lab-model"].method.model == "lab-model"


def test_automatic_integers_have_an_auto_switch(dock):
    _, widget, _ = dock
    rank = widget.params["pca"].controls["n_components"]
    assert rank.value is None and rank.auto.value
    rank.value = 5
    assert not rank.auto.value and widget.params["pca"].params["n_components"] == 5
    rank.auto.value = True
    assert widget.params["pca"].params["n_components"] is None


def test_removing_the_input_during_a_run_adds_the_result_and_says_so(dock, cell, removal_during_run, run_dock):
    """The run finishes on the data it read at the start; a warning says the input is gone."""
    viewer, widget, layer = dock
    widget.methods.value = ["savgol"]
    removal_during_run.arm(viewer, widget.runner, layer)
    run_dock(widget)
    assert removal_during_run.busy_when_removed is True
    assert widget.runner.last_error is None
    [result] = viewer.layers
    assert result.name == "cell · savgol" and result.metadata["napari_deeper"]["source"] == "cell"
    np.testing.assert_allclose(result.data, denoise(cell.noisy, "savgol"), rtol=1e-6)
    [warning] = removal_during_run.warnings
    assert "input layer 'cell' was removed during the run" in warning
    assert "removed during the run" in widget.runner.status.text()
