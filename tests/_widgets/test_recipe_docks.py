"""Layers made through the docks of a real viewer, replayed bit-identically from their saved
recipes; layers that cannot be replayed say which step; the Save recipe... action of the layer
context menu."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper import provenance
from napari_deeper.recipe import Recipe


@pytest.fixture(scope="module")
def cell():
    return nd.simulate.simulate_cell((16, 16), n_bands=120, photons=200, seed=4)


@pytest.fixture(autouse=True)
def torch_loaded():
    """torch imported before the docks run, so that a dock's run holds torch at the threads it
    leaves to the window from its first step to its last (see ``_widgets._runner``)."""
    import torch

    return torch


def _replayed(layer, source_file, tmp_path, name):
    """The layer's recipe, saved, loaded back and replayed on the cube read from its file, with
    torch at the threads a dock's run uses (reductions over other thread counts round differently)."""
    import os

    import torch

    from napari_deeper._widgets._runner import WINDOW_CORES

    saved = Recipe.from_layer(layer).save(tmp_path / f"{name}.recipe.json")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - WINDOW_CORES)))
    try:
        return Recipe.load(saved).run(nd.load_cube(source_file))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def opened(make_napari_viewer, cell, tmp_path):
    """A viewer with a cube opened from a file by the plugin's reader; (viewer, layer, file)."""
    path = tmp_path / "cell.npz"
    nd.save_cube(cell.noisy, path, wavenumbers=cell.wavenumbers)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-deeper")
    assert layer.metadata[provenance.KEY]["recipe"] == []
    return viewer, layer, path


@pytest.mark.gui
def test_three_docks_then_a_peak_map_replay_bit_identically(opened, tmp_path, run_dock):
    from napari_deeper._widgets.denoise import DenoiseWidget
    from napari_deeper._widgets.peak_map import PeakMapWidget
    from napari_deeper._widgets.preprocess import PreprocessWidget
    from napari_deeper._widgets.superres import SuperResWidget

    viewer, layer, path = opened
    preprocess = PreprocessWidget(viewer)
    preprocess.layer.value = layer
    preprocess.crop_start.value, preprocess.crop_stop.value = 650.0, 1700.0
    preprocess.despike.value = True
    preprocess.baseline.value = True
    preprocess.normalisation.value = "max"
    run_dock(preprocess.runner)
    cleaned = viewer.layers["cell · preprocessed"]

    denoise = DenoiseWidget(viewer)
    denoise.input_layer.value = cleaned
    denoise.methods.value = ["hybrid", "savgol"]
    denoise.params["savgol"].controls["window"].value = 9
    run_dock(denoise.runner)
    smooth = viewer.layers["cell · preprocessed · savgol"]

    superres = SuperResWidget(viewer)
    superres.input_layer.value = smooth
    superres.scale.value = 2
    superres.methods.value = ["srresnet"]
    assert not superres.params["srresnet"].native.isHidden()  # the dock shows tile and overlap
    superres.params["srresnet"].controls["tile"].value = 8
    superres.params["srresnet"].controls["overlap"].value = 2
    # a few fine-tuning steps and no time limit: adaptation replays exactly when no budget cut it short
    superres.params["srresnet"].controls["adapt_steps"].value = 5
    superres.params["srresnet"].controls["adapt_seconds"].value = 600.0
    superres.device.value = "cpu"
    run_dock(superres.runner)
    upscaled = viewer.layers["cell · preprocessed · savgol · srresnet ×2"]

    peaks = PeakMapWidget(viewer)
    peaks.layers.value = [upscaled]
    peaks.center.value, peaks.width.value = 1004.0, 20.0
    peaks.mode.value = "height"
    run_dock(peaks.runner)
    heatmap = viewer.layers[-1]
    assert heatmap.data.shape == (32, 32)

    steps = Recipe.from_layer(heatmap).steps
    assert [(s["operation"], s["method"]) for s in steps] == [
        ("preprocess", "standard"), ("denoise", "savgol"), ("superres", "srresnet"), ("band_map", "height")]
    assert steps[2]["params"] == {"scale": 2, "tile": 8, "overlap": 2, "adapt": "auto", "adapt_steps": 5,
                                  "adapt_seconds": 600.0, "noise": "auto"}
    for index, made in enumerate([cleaned, viewer.layers["cell · preprocessed · hybrid"], smooth, upscaled, heatmap]):
        replayed = _replayed(made, path, tmp_path, f"layer{index}")
        assert np.array_equal(replayed.final, made.data), made.name
    np.testing.assert_array_equal(_replayed(upscaled, path, tmp_path, "axis").outputs[-1].wavenumbers,
                                  cleaned.metadata["wavenumbers"])


@pytest.mark.gui
def test_fast_scan_restore_and_unmixing_replay_bit_identically(opened, tmp_path, run_dock):
    from napari_deeper._widgets.superres import SuperResWidget
    from napari_deeper._widgets.unmix import COMPOSITE, PER_COMPONENT, STACKED, UnmixWidget, composite

    viewer, layer, path = opened
    superres = SuperResWidget(viewer)
    superres.input_layer.value = layer
    superres.device.value = "cpu"
    superres.params["hyrisr"].controls["adapt_steps"].value = 5  # no time limit: the replay is exact
    superres.params["hyrisr"].controls["adapt_seconds"].value = 600.0
    run_dock(superres.restore_runner)
    denoised, final = viewer.layers[-2], viewer.layers[-1]
    assert [s["operation"] for s in Recipe.from_layer(final).steps] == ["denoise", "superres"]
    for made in (denoised, final):
        assert np.array_equal(_replayed(made, path, tmp_path, "restore").final, made.data), made.name

    unmix = UnmixWidget(viewer)
    unmix.source.value = denoised
    unmix.targets.value = [denoised]
    unmix.n_endmembers.value = 3
    unmix.sum_to_one.value = True
    unmix.output.value = PER_COMPONENT
    run_dock(unmix.runner)
    made = unmix.made[denoised.name]
    unmix.output.value = STACKED
    run_dock(unmix.runner)
    stacked = unmix.made[denoised.name]["abundance"][0]
    step = Recipe.from_layer(made["labels"]).steps[-1]
    assert step["operation"] == "unmix" and step["method"] == "fcls"
    np.testing.assert_array_equal(step["params"]["endmembers"], unmix.result.endmembers)  # inline
    for one in (*made["abundance"], made["labels"], made["residual"], stacked):
        assert np.array_equal(_replayed(one, path, tmp_path, "unmix").final, one.data), one.name
    # the default colour layer is a view of the maps: its recipe replays to the maps it mixes
    unmix.output.value = COMPOSITE
    run_dock(unmix.runner)
    (mixed,) = unmix.made[denoised.name]["abundance"]
    assert np.array_equal(composite(_replayed(mixed, path, tmp_path, "mixed").final), mixed.data)


@pytest.mark.gui
def test_layers_that_cannot_be_replayed_say_which_step(opened, run_dock):
    from napari_deeper._widgets.compare import CompareWidget
    from napari_deeper._widgets.cube_layout import CubeLayoutWidget
    from napari_deeper._widgets.denoise import DenoiseWidget

    viewer, layer, _ = opened
    denoise = DenoiseWidget(viewer)
    denoise.input_layer.value = layer
    denoise.methods.value = ["savgol"]
    run_dock(denoise.runner)
    compare = CompareWidget(viewer)
    compare.reference.value = layer
    compare.candidates.value = [viewer.layers["cell · savgol"]]
    compare.differences.value = "per band (candidate - reference)"
    run_dock(compare.runner)
    difference = viewer.layers["cell · savgol · difference to cell"]
    with pytest.raises(ValueError, match=r"step 2 \(difference\) cannot be replayed: a difference map is made from two"):
        Recipe.from_layer(difference).validate()

    layout = CubeLayoutWidget(viewer)
    layout.layer.value = layer
    layout.order.value = "bxy"
    layout.remove_original.value = False
    run_dock(layout.layout_runner)
    relaid = viewer.layers["cell · relayout"]
    with pytest.raises(ValueError, match=r"step 1 \(relayout\) cannot be replayed: the Cube layout dock's relayout"):
        Recipe.from_layer(relaid).run(nd.load_cube(opened[2]))


@pytest.mark.gui
def test_save_recipe_action_in_the_layers_menu(opened, tmp_path, monkeypatch, run_dock):
    from napari._app_model import get_app_model

    from napari_deeper._widgets import menus
    from napari_deeper._widgets.denoise import DenoiseWidget

    app = get_app_model()
    items = app.menus.get_menu("napari/layers/metadata")
    assert "napari-deeper.save_recipe" in {item.command.id for item in items if hasattr(item, "command")}

    viewer, layer, path = opened
    denoise = DenoiseWidget(viewer)
    denoise.input_layer.value = layer
    denoise.methods.value = ["wavelet"]
    run_dock(denoise.runner)
    made = viewer.layers["cell · wavelet"]
    errors, asked = [], []
    monkeypatch.setattr(menus, "show_error", errors.append)
    target = tmp_path / "chosen.json"
    monkeypatch.setattr(menus, "ask_recipe_path", lambda suggested: asked.append(suggested) or str(target))

    viewer.layers.selection.active = made
    # the menu's command, as napari runs it (the viewer injected)
    assert app.commands.execute_command("napari-deeper.save_recipe").result() == target
    assert asked == ["cell · wavelet.recipe.json"] and not errors
    assert np.array_equal(Recipe.load(target).run(nd.load_cube(path)).final, made.data)

    viewer.layers.selection.active = layer  # read from a file: nothing to replay yet
    assert menus.save_recipe(viewer) is None
    assert "no recipe for 'cell': the recipe has no steps" in errors[-1]
    plain = viewer.add_image(np.ones((3, 4, 4), np.float32), name="plain")
    viewer.layers.selection.active = plain
    assert menus.save_recipe(viewer) is None and "not made by the plugin" in errors[-1]
    monkeypatch.setattr(menus, "ask_recipe_path", lambda suggested: "")  # the dialog was cancelled
    viewer.layers.selection.active = made
    assert menus.save_recipe(viewer) is None
    assert len(asked) == 1
