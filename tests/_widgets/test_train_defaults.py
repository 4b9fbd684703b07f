"""The Fine-tune dock's defaults in a real viewer, as a new user meets them: the low/high-SNR pair
chosen by provenance and SNR (the sample's 20-photon scan as low SNR, never a layer with its own
preprocessed copy), the shipped model as the base (not the last fine-tune saved), and a time
estimate measured on a few steps before the run."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_deeper import provenance
from napari_deeper._sample_data import denoise_pair
from napari_deeper._widgets.train import TrainWidget
from napari_deeper.models import registry
from napari_deeper.simulate import simulate_cell

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_torch_thread")]

TINY = {"width": 4, "levels": 2, "max_width": 8}


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A user model folder holding a saved fine-tune (listed before the shipped models)."""
    import torch

    torch.manual_seed(0)
    folder = tmp_path / "models"
    monkeypatch.setenv("NAPARI_DEEPER_MODELS", str(folder))
    model = registry.build("resunet", TINY)
    registry.save_model(model, "resunet-finetuned-thp1", "resunet", TINY, {"task": "denoise"})
    return folder


def add_made(viewer, data, name, source, operation, wavenumbers):
    """A layer the plugin made from ``source`` (its provenance names the source)."""
    record = provenance.record(operation, source, {"method": operation})
    return viewer.add_image(data, name=name, metadata={"wavenumbers": wavenumbers, provenance.KEY: record})


def test_the_sample_pair_is_low_snr_first_and_never_a_layer_with_its_own_copy(make_napari_viewer, models_dir):
    viewer = make_napari_viewer()
    for data, kwargs, _kind in denoise_pair():  # the sample adds the 1000-photon scan first
        viewer.add_image(data, **kwargs)
    high, low = viewer.layers
    assert "1000 photons" in high.name and "20 photons" in low.name
    w = np.asarray(low.metadata["wavenumbers"])
    add_made(viewer, low.data[10:-10], f"{low.name} · preprocessed", low, "preprocess", w[10:-10])
    add_made(viewer, low.data * 1.0, f"{low.name} · savgol", low, "denoise", w)  # same shape, made from it
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)

    assert widget.noisy_layer.value is low
    assert widget.clean_layer.value is high
    assert "the lower SNR as low-SNR" in widget.hint.value


def test_one_real_scan_and_its_copies_make_no_pair(make_napari_viewer, models_dir):
    viewer = make_napari_viewer()
    cell = simulate_cell((12, 12), n_bands=48, photons=30, seed=2)
    raw = viewer.add_image(cell.noisy, name="thp1_witec_40x40x500", metadata={"wavenumbers": cell.wavenumbers})
    add_made(viewer, cell.noisy[4:-4], "thp1_witec_40x40x500 · preprocessed", raw, "preprocess", cell.wavenumbers[4:-4])
    denoised = add_made(viewer, cell.clean, "thp1_witec_40x40x500 · resunet", raw, "denoise", cell.wavenumbers)
    add_made(viewer, cell.clean, "thp1_witec_40x40x500 · resunet · savgol", denoised, "denoise", cell.wavenumbers)
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)

    assert widget.noisy_layer.value is None and widget.clean_layer.value is None
    assert "No two layers here make a pair" in widget.hint.value
    widget.runner.run_button.click()
    assert "choose a low-SNR layer" in str(widget.runner.last_error)

    # a second scan of the field, read from a file, makes the pair
    second = simulate_cell((12, 12), n_bands=48, photons=3000, seed=2)
    long = viewer.add_image(second.noisy, name="long exposure", metadata={"wavenumbers": cell.wavenumbers})
    assert (widget.noisy_layer.value, widget.clean_layer.value) == (raw, long)
    # the user's own choice is kept when layers come and go
    widget.noisy_layer.value = denoised
    viewer.add_image(second.noisy * 2, name="third", metadata={"wavenumbers": cell.wavenumbers})
    assert widget.noisy_layer.value is denoised


def test_the_shipped_model_is_the_default_base(make_napari_viewer, models_dir):
    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.show()
    names = list(widget.base_model.choices)
    assert names[0] == "resunet-finetuned-thp1"  # the registry lists the user's models first
    assert widget.base_model.value == "resunet"
    assert widget.model_name.value.startswith("resunet-finetuned")
    assert "-finetuned-thp1" not in widget.model_name.value  # no chained names
    widget.task.value = "superres"
    assert widget.base_model.value == "hyrisr"
    widget.task.value = "denoise"
    widget.base_model.value = "resunet-finetuned-thp1"  # the user's choice stays
    widget.refresh_models()
    assert widget.base_model.value == "resunet-finetuned-thp1"


def test_time_estimate_measured_before_the_run(qtbot, make_napari_viewer, models_dir):
    viewer = make_napari_viewer()
    low = simulate_cell((12, 12), n_bands=48, photons=20, seed=1)
    high = simulate_cell((12, 12), n_bands=48, photons=2000, seed=1)
    viewer.add_image(low.noisy, name="short scan", metadata={"wavenumbers": low.wavenumbers})
    viewer.add_image(high.noisy, name="long scan", metadata={"wavenumbers": high.wavenumbers})
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.base_model.value = "resunet-finetuned-thp1"  # tiny: quick on a CPU
    widget.device.value = "cpu"
    assert widget.estimated_seconds() is None and "Estimate time" in widget.estimate.value

    widget.estimate_button.clicked.emit()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60000)
    assert widget.runner.last_error is None, widget.runner.last_error
    per_step = widget.timing["seconds_per_step"]
    assert per_step > 0 and widget.timing["probe_steps"] >= 2
    assert f"for {widget.steps.value} steps" in widget.estimate.value
    assert not list(models_dir.glob("*-finetuned-short-scan*"))  # timing saves nothing

    widget.steps.value = 40
    estimate = widget.estimated_seconds()
    assert estimate == pytest.approx(widget.timing["setup_seconds"] + 40 * per_step)
    assert "for 40 steps" in widget.estimate.value
    start = time.perf_counter()
    widget.runner.run_button.click()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=120000)
    took = time.perf_counter() - start
    assert widget.runner.last_error is None, widget.runner.last_error
    assert estimate / 4 < took < 4 * estimate + 1.0  # the estimate is a measurement, not a guess
    assert "left" in widget.loss_label.text() or "step 40 of 40" in widget.loss_label.text()

    widget.base_model.value = "resunet"  # another job: the estimate no longer holds
    assert widget.estimated_seconds() is None
