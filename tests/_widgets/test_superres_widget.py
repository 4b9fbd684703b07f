"""The Super-resolve widget in a real viewer: methods, alignment, provenance, pipeline, cancel."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deeper._widgets.superres import SuperResWidget

pytestmark = pytest.mark.gui

WAVENUMBERS = np.linspace(600, 1800, 16)
TINY = {"n_components": 4, "features": 8, "groups": 1, "blocks": 1, "reduction": 4}


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    """A small fine-tuned-style model in a throw-away user folder, named "tiny"."""
    import torch

    from napari_deeper.models import build, save_model

    monkeypatch.setenv("NAPARI_DEEPER_MODELS", str(tmp_path / "models"))
    torch.manual_seed(0)
    model = build("hyrisr", TINY)
    for head in model.heads.heads.values():
        torch.nn.init.normal_(head.tail.weight, std=0.05)
    save_model(model, "tiny", "hyrisr", TINY, {"task": "superres"}, tmp_path / "models")
    return "tiny"


@pytest.fixture
def viewer_and_widget(make_napari_viewer, tiny_model):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:12, 0:14]
    spot = np.exp(-((yy - 6) ** 2 + (xx - 7) ** 2) / 6.0)
    cube = (np.tensordot(1 + np.sin(np.linspace(0, 3, 16)), spot, 0)
            + 0.01 * rng.random((16, 12, 14))).astype(np.float32)
    viewer.add_image(cube, name="scan", scale=(1, 0.5, 0.5), translate=(0, 3.0, -2.0),
                     metadata={"wavenumbers": WAVENUMBERS})
    viewer.add_image(np.ones((5, 5), np.float32), name="flat 2-D")  # not spectral: not offered
    return viewer, SuperResWidget(viewer)


def test_two_methods_make_aligned_layers_with_provenance(viewer_and_widget, run_dock):
    viewer, widget = viewer_and_widget
    assert list(widget.input_layer.choices) == [viewer.layers["scan"]]
    assert "tiny" in widget.methods.choices and "bicubic" in widget.methods.choices
    widget.scale.value = 3
    widget.methods.value = ["nearest", "tiny"]
    run_dock(widget)
    assert widget.runner.last_error is None, widget.runner.last_error

    source = viewer.layers["scan"]
    for method in ("nearest", "tiny"):
        layer = viewer.layers[f"scan · {method} ×3"]
        assert layer.data.shape == (16, 36, 42)
        np.testing.assert_array_equal(layer.metadata["wavenumbers"], WAVENUMBERS)
        record = layer.metadata["napari_deeper"]
        assert record["operation"] == "superres" and record["source"] == "scan"
        assert record["params"]["method"] == method and record["params"]["scale"] == 3
        for i, j in [(0, 0), (5, 9), (11, 13)]:
            here = layer.data_to_world((4, 3 * i + 1, 3 * j + 1))
            there = source.data_to_world((4, i, j))
            np.testing.assert_allclose(here, there, atol=1e-9)
    assert viewer.layers["scan · tiny ×3"].metadata["napari_deeper"]["model"] == "tiny"
    nearest = viewer.layers["scan · nearest ×3"].data
    np.testing.assert_array_equal(nearest[:, 1::3, 1::3], source.data)

    widget.side_by_side.value = True
    assert viewer.canvas.grid.enabled
    assert [layer.name for layer in viewer.layers if layer.visible] == [
        "scan", "scan · nearest ×3", "scan · tiny ×3"]
    widget.side_by_side.value = False
    assert not viewer.canvas.grid.enabled


def test_fast_scan_restore_keeps_both_layers(viewer_and_widget, run_dock):
    viewer, widget = viewer_and_widget
    widget.exposure_ratio.value = 10
    widget.scale.value = 3
    assert "saving: 90x" in widget.restore_info.value
    widget.scale.value = 2
    assert "saving: 40x" in widget.restore_info.value
    before = len(viewer.layers)
    run_dock(widget.restore_runner)
    assert widget.restore_runner.last_error is None, widget.restore_runner.last_error
    assert len(viewer.layers) == before + 2
    denoised, final = viewer.layers[-2], viewer.layers[-1]
    assert denoised.data.shape == (16, 12, 14) and final.data.shape == (16, 24, 28)
    record = final.metadata["napari_deeper"]
    assert record["operation"] == "fast_scan_restore"
    assert record["time_saving"] == pytest.approx(40.0)
    assert record["intermediate"] == denoised.name
    # on this small random scan the self-check on the raw scan finds hyrisr no better than plain
    # bicubic: that is what runs, and the dock, the record and the recipe say so
    note = "bicubic chosen by the self-check on the raw scan: hyrisr was not significantly better on it"
    assert record["params"]["upscale_method"] == "bicubic" and record["note"] == note
    assert note in widget.restore_info.value and "40x" in widget.restore_info.value
    assert record["recipe"][-1]["operation"] == "superres" and record["recipe"][-1]["method"] == "bicubic"
    assert denoised.metadata["napari_deeper"]["pipeline"] == "fast_scan_restore"
    np.testing.assert_allclose(final.data_to_world((0, 5, 7)), denoised.data_to_world((0, 2, 3)))
    # at 3x the network runs (no check on the scan there)
    widget.scale.value = 3
    run_dock(widget.restore_runner)
    assert widget.restore_runner.last_error is None, widget.restore_runner.last_error
    record = viewer.layers[-1].metadata["napari_deeper"]
    assert record["params"]["upscale_method"] == "hyrisr" and record["model"] == "hyrisr" and "note" not in record
    assert record["params"]["upscale_params"]["adapt"] == "auto"  # the hyrisr panel's own values
    # the panel's noise setting is for raw scans: restore tells the upscaler its input is
    # denoised, and the replayed upscaling step says so
    assert widget.panels.panels["hyrisr"].params["noise"] == "auto"
    assert record["params"]["upscale_params"]["noise"] == "denoised"
    assert record["recipe"][-1]["operation"] == "superres" and record["recipe"][-1]["params"]["noise"] == "denoised"
    assert "90x" in widget.restore_info.value


def test_cancel_leaves_no_layers(viewer_and_widget, run_dock):
    viewer, widget = viewer_and_widget
    viewer.layers["scan"].data = np.random.default_rng(0).random((16, 60, 60)).astype(np.float32)
    widget.scale.value = 4
    widget.methods.value = ["bicubic", "tiny", "bilinear"]
    before = [layer.name for layer in viewer.layers]
    run_dock(widget, on_start=lambda worker: widget.runner.cancel_button.click())
    assert [layer.name for layer in viewer.layers] == before
    assert widget.runner.last_error is None


def test_adaptation_is_a_parameter_of_the_network_panels(viewer_and_widget, run_dock):
    viewer, widget = viewer_and_widget
    adapt = widget.params["tiny"].controls["adapt"]
    assert list(adapt.choices) == ["auto", "on", "off"] and adapt.value == "auto"
    assert "adapt" not in widget.params["bicubic"].controls
    widget.methods.value = ["tiny"]
    assert not widget.params["tiny"].native.isHidden()  # its panel shows while it is ticked
    adapt.value = "off"
    run_dock(widget)
    assert widget.runner.last_error is None, widget.runner.last_error
    record = viewer.layers["scan · tiny ×2"].metadata["napari_deeper"]
    assert record["params"]["adapt"] == "off" and record["params"]["adapt_steps"] == 60


def test_cancel_during_adaptation_leaves_no_layers(viewer_and_widget, run_dock):
    viewer, widget = viewer_and_widget
    viewer.layers["scan"].data = np.random.default_rng(1).random((16, 40, 40)).astype(np.float32)
    widget.methods.value = ["tiny"]
    controls = widget.params["tiny"].controls
    controls["adapt"].value, controls["adapt_steps"].value, controls["adapt_seconds"].value = "on", 100000, 600.0
    before = [layer.name for layer in viewer.layers]
    adapting = []

    def cancel_while_adapting(progress) -> None:
        status = widget.runner.status.text()  # the Runner has shown this progress already
        if "adapting: step" in status and not adapting:
            adapting.append(status)
            widget.runner.cancel_button.click()

    run_dock(widget, on_start=lambda worker: worker.yielded.connect(cancel_while_adapting))
    assert adapting and "loss" in adapting[0]  # the adaptation loss shows while it runs
    assert [layer.name for layer in viewer.layers] == before
    assert widget.runner.last_error is None
    assert "no layers were made" in widget.runner.status.text()


def test_bad_choice_is_reported_without_layers(viewer_and_widget, run_dock):
    viewer, widget = viewer_and_widget
    widget.methods.value = []
    before = len(viewer.layers)
    run_dock(widget, fails=True)
    assert "at least one method" in str(widget.runner.last_error)
    viewer.layers["scan"].data = np.ones((16, 1, 14), np.float32)
    widget.methods.value = ["bicubic"]
    run_dock(widget, fails=True)
    assert "at least 2 x 2" in str(widget.runner.last_error)
    assert len(viewer.layers) == before


def test_removing_the_input_during_a_run_adds_the_result_and_says_so(viewer_and_widget, removal_during_run, run_dock):
    """The run finishes on the data it read at the start; a warning says the input is gone."""
    from napari_deeper.superres import upscale

    viewer, widget = viewer_and_widget
    source = viewer.layers["scan"]
    data = np.array(source.data)
    widget.methods.value = ["bicubic"]
    removal_during_run.arm(viewer, widget.runner, source)
    run_dock(widget)
    assert removal_during_run.busy_when_removed is True
    assert widget.runner.last_error is None
    assert "scan" not in viewer.layers
    result = viewer.layers["scan · bicubic ×2"]
    np.testing.assert_allclose(result.data, upscale(data, 2, "bicubic"), rtol=1e-6)
    assert tuple(result.scale[1:]) == (0.25, 0.25)  # still overlays where the input was
    [warning] = removal_during_run.warnings
    assert "input layer 'scan' was removed during the run" in warning
