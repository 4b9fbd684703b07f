"""The Fine-tune models dock in a real viewer: train tiny models for a few steps, save, reload.

Every test points ``NAPARI_DEEPER_MODELS`` at a temporary folder, so nothing is written to the
user's real model folder, and starts from tiny base models saved there (a few thousand
parameters), so each run takes a second or two on a CPU.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from napari_deeper._widgets.train import TrainWidget
from napari_deeper.models import registry
from napari_deeper.simulate import simulate_cell
from napari_deeper.training.finetune import check_model_name, default_model_name

N_BANDS = 48
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_DENOISER = ("tiny-aunet", "aunet", {"width": 4, "levels": 2, "max_width": 8}, "denoise")
TINY_RESUNET = ("tiny-resunet", "resunet", {"width": 4, "levels": 2, "max_width": 8}, "denoise")
TINY_UPSCALER = (
    "tiny-hyrisr",
    "hyrisr",
    {"n_components": 4, "features": 8, "groups": 1, "blocks": 1, "reduction": 4, "scales": [2]},
    "superres",
)
BASE_MODELS = (TINY_DENOISER, TINY_RESUNET, TINY_UPSCALER)
BASE_NAMES = {name for name, *_rest in BASE_MODELS}


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A temporary user model folder holding tiny denoisers and a tiny upscaler."""
    import torch

    torch.manual_seed(0)
    folder = tmp_path / "models"
    monkeypatch.setenv("NAPARI_DEEPER_MODELS", str(folder))
    for name, arch, config, task in BASE_MODELS:
        model = registry.build(arch, config)
        registry.save_model(model, name, arch, config, {"task": task})
    return folder


def add_cube(viewer, data, name, wavenumbers=None):
    metadata = {} if wavenumbers is None else {"wavenumbers": wavenumbers}
    return viewer.add_image(np.asarray(data, dtype=np.float32), name=name, metadata=metadata)


@pytest.fixture
def pair(make_napari_viewer):
    """A viewer with a low-SNR and a high-SNR scan of one simulated field."""
    viewer = make_napari_viewer()
    low = simulate_cell((12, 12), n_bands=N_BANDS, photons=20, seed=1)
    high = simulate_cell((12, 12), n_bands=N_BANDS, photons=2000, seed=1)
    add_cube(viewer, low.noisy, "short scan", low.wavenumbers)
    add_cube(viewer, high.noisy, "long scan", high.wavenumbers)
    return viewer


def saved_names(folder) -> set[str]:
    return {path.stem for path in folder.glob("*.pt")}


def test_denoise_finetune_saves_a_model_that_loads_and_is_listed(pair, models_dir, run_dock):
    widget = TrainWidget(pair)
    widget.task.value = "denoise"
    widget.base_model.value = "tiny-resunet"
    widget.noisy_layer.value = pair.layers["short scan"]
    widget.clean_layer.value = pair.layers["long scan"]
    widget.device.value = "cpu"
    widget.steps.value = 3
    assert widget.model_name.value == "tiny-resunet-finetuned-short-scan"  # "<base>-finetuned-<layer>"

    run_dock(widget)

    assert widget.runner.last_error is None
    assert widget.saved_path == models_dir / "tiny-resunet-finetuned-short-scan.pt"
    for suffix in (".pt", ".json", ".md"):
        assert widget.saved_path.with_suffix(suffix).exists()
    listed = {info.name: info for info in registry.list_models("denoise")}
    assert "tiny-resunet-finetuned-short-scan" in listed
    assert not listed["tiny-resunet-finetuned-short-scan"].shipped
    model, card = registry.load_model("tiny-resunet-finetuned-short-scan")
    assert card["arch"] == "resunet" and card["task"] == "denoise"
    assert card["finetuning"]["layers"] == {"noisy": "short scan", "clean": "long scan"}
    assert card["finetuning"]["steps"] == 3
    # the weights changed: fine-tuning trained the base network
    base, _ = registry.load_model("tiny-resunet")
    changed = [
        not np.allclose(a.numpy(), b.numpy())
        for a, b in zip(model.state_dict().values(), base.state_dict().values())
    ]
    assert any(changed)
    # live loss read-out: one point per step, and the label shows the last
    assert widget.loss_plot.steps == [1, 2, 3]
    assert all(np.isfinite(widget.loss_plot.losses))
    assert "step 3 of 3" in widget.loss_label.text()
    # the new model can be the base of the next run
    assert "tiny-resunet-finetuned-short-scan" in widget.base_model.choices


def test_learn_instrument_noise_from_a_flat_scan(make_napari_viewer, models_dir, rng, run_dock):
    viewer = make_napari_viewer()
    background = np.linspace(50, 80, N_BANDS, dtype=np.float32)[:, None, None]
    blank = background + rng.normal(0, 3, (N_BANDS, 10, 10)).astype(np.float32)
    add_cube(viewer, blank, "gold film", np.linspace(400, 1800, N_BANDS))
    widget = TrainWidget(viewer)
    widget.task.value = "noise"
    # noise learning fine-tunes the DCT-domain network only
    assert "tiny-aunet" in widget.base_model.choices
    assert {registry.find_model(name).arch for name in widget.base_model.choices} == {"aunet"}
    widget.base_model.value = "tiny-aunet"
    widget.blank_layer.value = viewer.layers["gold film"]
    widget.device.value = "cpu"
    widget.steps.value = 2

    run_dock(widget)

    assert widget.runner.last_error is None
    assert widget.saved_path.stem == "tiny-aunet-noise-gold-film"
    _model, card = registry.load_model(widget.saved_path)
    assert card["task"] == "denoise" and card["training"]["kind"] == "noise-learning"
    assert card["finetuning"]["layers"] == {"blank": "gold film"}
    assert "tiny-aunet-noise-gold-film" in [info.name for info in registry.list_models("denoise")]


def test_superres_finetune_on_a_high_resolution_layer(make_napari_viewer, models_dir, run_dock):
    viewer = make_napari_viewer()
    cell = simulate_cell((16, 16), n_bands=N_BANDS, photons=2000, seed=2)
    add_cube(viewer, cell.noisy, "hr scan", cell.wavenumbers)
    _dock, superres_dock = viewer.window.add_plugin_dock_widget("napari-deeper", "Super-resolve")
    widget = TrainWidget(viewer)
    widget.task.value = "superres"
    assert "tiny-hyrisr" in widget.base_model.choices
    assert {registry.find_model(name).task for name in widget.base_model.choices} == {"superres"}
    widget.base_model.value = "tiny-hyrisr"
    widget.hr_layers.value = [viewer.layers["hr scan"]]
    widget.scale.value = 2
    widget.device.value = "cpu"
    widget.steps.value = 2
    widget.model_name.value = " My-Upscaler "  # saved lowercase, as every method name is

    run_dock(widget)

    assert widget.runner.last_error is None
    assert widget.saved_path == models_dir / "my-upscaler.pt"
    model, card = registry.load_model("my-upscaler")
    assert card["task"] == "superres" and card["arch"] == "hyrisr"
    assert model.n_components == 4 and model.scales == (2,)
    assert card["finetuning"]["scale"] == 2
    assert "my-upscaler" in [info.name for info in registry.list_models("superres")]
    assert "my-upscaler" in superres_dock.methods.choices  # the open Super-resolve dock lists it
    assert len(widget.loss_plot.losses) == 2


def test_mismatched_pair_is_refused_and_nothing_is_saved(pair, models_dir, run_dock):
    add_cube(pair, np.ones((N_BANDS, 10, 12)), "other field")
    widget = TrainWidget(pair)
    widget.base_model.value = "tiny-aunet"
    widget.noisy_layer.value = pair.layers["short scan"]
    widget.clean_layer.value = pair.layers["other field"]

    run_dock(widget, fails=True)

    message = str(widget.runner.last_error)
    assert "(48, 12, 12)" in message and "(48, 10, 12)" in message and "same field" in message
    assert saved_names(models_dir) == BASE_NAMES


def test_nonfinite_values_are_refused(pair, models_dir, run_dock):
    data = np.array(pair.layers["short scan"].data)
    data[0, 0, 0] = np.nan
    add_cube(pair, data, "broken scan")
    widget = TrainWidget(pair)
    widget.base_model.value = "tiny-aunet"
    widget.noisy_layer.value = pair.layers["broken scan"]
    widget.clean_layer.value = pair.layers["long scan"]

    message = str(run_dock(widget, fails=True))

    assert "1 NaN" in message and "broken scan" in message
    assert saved_names(models_dir) == BASE_NAMES


def test_superres_layer_too_small_for_the_scale(make_napari_viewer, models_dir, run_dock):
    viewer = make_napari_viewer()
    add_cube(viewer, np.random.default_rng(0).random((N_BANDS, 8, 8)), "tiny scan")
    widget = TrainWidget(viewer)
    widget.task.value = "superres"
    widget.hr_layers.value = [viewer.layers["tiny scan"]]

    message = str(run_dock(widget, fails=True))

    assert "too small" in message and "2x" in message
    assert saved_names(models_dir) == BASE_NAMES


def test_cancel_saves_nothing(pair, models_dir, run_dock):
    widget = TrainWidget(pair)
    widget.base_model.value = "tiny-aunet"
    widget.device.value = "cpu"
    widget.steps.value = 100_000

    def cancel_after_two_losses(progress) -> None:
        if len(widget.loss_plot.losses) >= 2:
            widget.runner.cancel_button.click()

    run_dock(widget, on_start=lambda worker: worker.yielded.connect(cancel_after_two_losses))

    assert widget.saved_path is None
    assert "Cancelled" in widget.runner.status.text()
    assert saved_names(models_dir) == BASE_NAMES


def test_existing_name_is_kept_unless_the_user_agrees(pair, models_dir, monkeypatch, run_dock):
    from qtpy.QtWidgets import QMessageBox

    widget = TrainWidget(pair)
    widget.base_model.value = "tiny-aunet"
    widget.model_name.value = "tiny-hyrisr"  # exists in the user folder
    before = (models_dir / "tiny-hyrisr.json").read_text()
    asked = []

    def decline(*args, **kwargs):
        asked.append(args)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", decline)
    run_dock(widget, fails=True)

    assert len(asked) == 1
    assert not widget.runner.busy
    assert "already exists" in str(widget.runner.last_error)
    assert (models_dir / "tiny-hyrisr.json").read_text() == before

    # ticking "Overwrite" replaces it without asking
    widget.overwrite.value = True
    widget.steps.value = 1
    widget.device.value = "cpu"
    run_dock(widget)
    assert len(asked) == 1
    assert widget.runner.last_error is None
    assert json.loads((models_dir / "tiny-hyrisr.json").read_text())["arch"] == "aunet"


def test_layer_choosers_follow_the_layer_list(make_napari_viewer, models_dir):
    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    assert widget.noisy_layer.choices == (None,)
    add_cube(viewer, simulate_cell((6, 6), n_bands=N_BANDS, photons=20, seed=1).noisy, "a")
    add_cube(viewer, simulate_cell((6, 6), n_bands=N_BANDS, photons=2000, seed=1).noisy, "b")
    viewer.add_image(np.zeros((6, 6), dtype=np.float32), name="flat image")  # not spectral
    a, b = viewer.layers["a"], viewer.layers["b"]
    assert widget.noisy_layer.choices == (None, a, b)
    assert (widget.noisy_layer.value, widget.clean_layer.value) == (a, b)  # low SNR first
    widget.base_model.value = "tiny-resunet"
    assert widget.model_name.value == "tiny-resunet-finetuned-a"
    a.name = "renamed"
    assert widget.noisy_layer.value is a and widget.noisy_layer.current_choice == "renamed"
    assert widget.model_name.value == "tiny-resunet-finetuned-renamed"
    viewer.layers.remove("b")
    assert widget.hr_layers.choices == (a,)
    assert widget.clean_layer.value is None  # one layer makes no pair
    # a typed name is kept when the choices change
    widget.model_name.value = "my-model"
    add_cube(viewer, np.zeros((N_BANDS, 6, 6)), "c")
    widget.noisy_layer.value = viewer.layers["c"]
    assert widget.model_name.value == "my-model"


def test_a_failure_inside_training_is_reported_and_saves_nothing(pair, models_dir, monkeypatch, run_dock):
    from napari_deeper.compute import Progress
    from napari_deeper.training import denoise

    def failing_steps(*args, **kwargs):
        yield Progress(1, 10, "training", loss=0.5)
        raise RuntimeError("device lost")

    widget = TrainWidget(pair)
    widget.base_model.value = "tiny-aunet"
    monkeypatch.setattr(denoise, "finetune_denoiser_steps", failing_steps)

    message = str(run_dock(widget, fails=True))

    assert "device lost" in message
    assert widget.runner.run_button.isEnabled()
    assert widget.saved_path is None
    assert saved_names(models_dir) == BASE_NAMES


def test_defaults_follow_the_task_until_the_user_sets_them(make_napari_viewer, models_dir):
    from napari_deeper.training import denoise, superres

    widget = TrainWidget(make_napari_viewer())
    assert widget.learning_rate.value == pytest.approx(
        inspect.signature(denoise.finetune_denoiser_steps).parameters["lr"].default
    )
    widget.task.value = "superres"
    assert widget.learning_rate.value == pytest.approx(
        inspect.signature(superres.finetune_upscaler_steps).parameters["lr"].default
    )
    widget.learning_rate.value = 0.002
    widget.task.value = "denoise"
    widget.task.value = "noise"
    assert widget.learning_rate.value == pytest.approx(0.002)


@pytest.mark.parametrize("typed", ["", "-lead", ".hidden", "a/b", "c:d", "spa ce", "dot·s"])
def test_invalid_model_names_are_refused(typed):
    with pytest.raises(ValueError, match="invalid model name"):
        check_model_name(typed)


def test_default_names_are_valid_method_names():
    assert default_model_name("aunet", "noise", "Gold film · 1s") == "aunet-noise-gold-film-1s"
    assert check_model_name(default_model_name("ResUNet", "denoise", "cell (low SNR)")) == (
        "resunet-finetuned-cell-low-snr"
    )
