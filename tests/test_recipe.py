"""Recipes: save/load round trip, validation errors that name the step and parameter, replay in
Python, and layers made through the docks of a real viewer replayed bit-identically from their
saved recipes; the Save recipe... action of the layer context menu."""

from __future__ import annotations

import json

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper import provenance
from napari_deeper.recipe import FORMAT, VERSION, Recipe

CHAIN = [
    {"operation": "preprocess", "method": "standard", "params": {"crop": [650.0, 1700.0], "baseline": 2}},
    {"operation": "denoise", "method": "savgol", "params": {"window": 11, "order": 2}},
    {"operation": "superres", "method": "bicubic", "params": {"scale": 2}},
    {"operation": "band_map", "method": "height", "params": {"center": 1004.0, "width": 20.0, "baseline": True}},
]


@pytest.fixture(scope="module")
def cell():
    return nd.simulate.simulate_cell((16, 16), n_bands=120, photons=200, seed=4)


@pytest.fixture
def cube(cell):
    return nd.Cube(cell.noisy, cell.wavenumbers, {})


def test_save_load_round_trip(tmp_path):
    recipe = nd.Recipe([dict(entry) for entry in CHAIN])
    path = recipe.save(tmp_path / "cell.recipe.json")
    document = json.loads(path.read_text())
    assert document["format"] == FORMAT and document["version"] == VERSION
    assert document["steps"] == CHAIN
    assert Recipe.load(path).to_dict() == recipe.to_dict()


def test_replay_runs_the_same_core_functions(cube):
    from napari_deeper.spectral import band_map, preprocess_steps

    result = nd.Recipe(CHAIN).run(cube)
    pre = nd.compute.run(preprocess_steps(cube.data, cube.wavenumbers, crop=(650.0, 1700.0), baseline=2))
    smooth = nd.denoise(pre.data, "savgol", pre.wavenumbers, window=11, order=2)
    upscaled = nd.upscale(smooth, 2, "bicubic")
    expected = band_map(upscaled, pre.wavenumbers, 1004.0, 20.0, "height", baseline=True)
    assert np.array_equal(result.final, expected)
    assert [getattr(out, "data", out).shape for out in result.outputs] == [
        pre.data.shape, pre.data.shape, upscaled.shape, expected.shape]
    np.testing.assert_array_equal(result.outputs[2].wavenumbers, pre.wavenumbers)  # the axis travels


def test_a_step_may_take_an_earlier_result(cube):
    recipe = nd.Recipe([
        {"operation": "denoise", "method": "savgol", "params": {}},
        {"operation": "band_map", "method": "area", "params": {"center": 1004.0, "width": 20.0}},
        {"operation": "band_map", "method": "area", "params": {"center": 1004.0, "width": 20.0}, "input": "source"},
    ])
    outputs = recipe.run(cube).outputs
    raw, smooth = outputs[2], outputs[1]
    assert np.array_equal(raw, nd.band_map(cube.data, cube.wavenumbers, 1004.0, 20.0))
    assert not np.array_equal(raw, smooth)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"operation": "blur"}], r"step 1 \(blur\): unknown operation 'blur'; known: denoise"),
        ([CHAIN[0], {"operation": "denoise", "method": "median"}],
         r"step 2 \(denoise\): unknown denoising method 'median'; choose one of: hybrid, savgol"),
        ([CHAIN[0], {"operation": "denoise", "method": "savgol", "params": {"size": 3}}],
         r"step 2 \(denoise\): denoising method 'savgol' has no parameter 'size'; it accepts: window, order"),
        ([{"operation": "denoise", "method": "savgol", "params": {"window": 1}}],
         r"step 1 \(denoise\): parameter 'window' must be between 3 and 1001, got 1"),
        ([{"operation": "superres", "params": {"scale": 5}}], r"step 1 \(superres\): scale must be 2, 3 or 4"),
        ([CHAIN[0], {"operation": "denoise", "input": 2}],
         r"step 2 \(denoise\): 'input' must be 'source' or the number of an earlier step \(1 to 1\), got 2"),
        ([{"operation": "denoise", "input": 0}], r"step 1 \(denoise\): 'input' must be 'source' \(it is the first"),
        ([CHAIN[3], {"operation": "denoise"}], r"step 2 \(denoise\): its input, step 1, makes a map, not a cube"),
        ([{"operation": "denoise", "params": [1]}], r"step 1 \(denoise\): 'params' must be an object"),
        ([{"operation": "denoise", "when": "now"}], r"step 1 has unknown keys \['when'\]"),
        (["denoise"], r"step 1 must be an object with an 'operation'"),
        ([], "the recipe has no steps"),
    ],
)
def test_validation_names_the_step_and_what_is_wrong(steps, message):
    with pytest.raises(ValueError, match=message):
        nd.Recipe(steps).validate()


def test_loading_checks_the_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"format": FORMAT, "version": 2, "steps": CHAIN}))
    with pytest.raises(ValueError, match=r"r.json: recipe version 2 is not supported; this napari-deeper reads version 1"):
        Recipe.load(path)
    path.write_text(json.dumps({"format": "something else", "steps": CHAIN}))
    with pytest.raises(ValueError, match="not a napari-deeper recipe"):
        Recipe.load(path)
    path.write_text("{steps: ")
    with pytest.raises(ValueError, match="r.json is not valid JSON"):
        Recipe.load(path)
    with pytest.raises(ValueError, match="cannot read recipe"):
        Recipe.load(tmp_path / "missing.json")
    broken = [CHAIN[0], {"operation": "denoise", "method": "savgol", "params": {"order": "two"}}]
    path.write_text(json.dumps({"format": FORMAT, "version": VERSION, "steps": broken}))
    with pytest.raises(ValueError, match=r"step 2 \(denoise\): parameter 'order' must be int, got 'two'"):
        Recipe.load(path)


def test_records_carry_the_whole_chain():
    loaded = {provenance.KEY: provenance.record("load", "/data/cell.mat", replay=False)}
    assert loaded[provenance.KEY]["recipe"] == [] and loaded[provenance.KEY]["source"] == "/data/cell.mat"
    denoised = {provenance.KEY: provenance.record("denoise", loaded, {"method": "savgol", "window": 9,
                                                                      "device": "cpu"})}
    assert denoised[provenance.KEY]["params"]["device"] == "cpu"  # what ran, as before
    mapped = provenance.record("band_map", denoised, {"center": 1.0},
                               replay=provenance.step("band_map", {"method": "area", "center": 1.0}))
    assert mapped["recipe"] == [
        {"operation": "denoise", "method": "savgol", "params": {"window": 9}},  # no run options
        {"operation": "band_map", "method": "area", "params": {"center": 1.0}},
    ]
    assert len(Recipe.from_layer({provenance.KEY: mapped}).steps) == 2
    with pytest.raises(ValueError, match="has no napari-deeper recipe"):
        Recipe.from_layer({"wavenumbers": [1, 2]})
    not_replayed = provenance.record("difference", denoised, {}, replay=provenance.not_replayable(
        "difference", {"reference": "r"}, "it needs two layers"))
    recipe = Recipe.from_layer({provenance.KEY: not_replayed})  # can be looked at, not replayed
    with pytest.raises(ValueError, match=r"step 2 \(difference\) cannot be replayed: it needs two layers"):
        recipe.run(np.ones((4, 4, 4), np.float32))


# -- the docks, in a real viewer ------------------------------------------------------------------

TIMEOUT = 60_000


def _run(qtbot, runner, button=None) -> None:
    (button or runner.run_button).click()
    qtbot.waitUntil(lambda: not runner.busy, timeout=TIMEOUT)
    assert runner.last_error is None, runner.last_error


def _replayed(layer, source_file, tmp_path, name):
    """The layer's recipe, saved, loaded back and replayed on the cube read from its file."""
    saved = Recipe.from_layer(layer).save(tmp_path / f"{name}.recipe.json")
    return Recipe.load(saved).run(nd.load_cube(source_file))


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
def test_three_docks_then_a_peak_map_replay_bit_identically(qtbot, opened, tmp_path):
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
    _run(qtbot, preprocess.runner)
    cleaned = viewer.layers["cell · preprocessed"]

    denoise = DenoiseWidget(viewer)
    denoise.input_layer.value = cleaned
    denoise.methods.value = ["hybrid", "savgol"]
    denoise.params["savgol"].controls["window"].value = 9
    _run(qtbot, denoise.runner)
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
    _run(qtbot, superres.runner)
    upscaled = viewer.layers["cell · preprocessed · savgol · srresnet ×2"]

    peaks = PeakMapWidget(viewer)
    peaks.layers.value = [upscaled]
    peaks.center.value, peaks.width.value = 1004.0, 20.0
    peaks.mode.value = "height"
    _run(qtbot, peaks.runner)
    heatmap = viewer.layers[-1]
    assert heatmap.data.shape == (32, 32)

    steps = Recipe.from_layer(heatmap).steps
    assert [(s["operation"], s["method"]) for s in steps] == [
        ("preprocess", "standard"), ("denoise", "savgol"), ("superres", "srresnet"), ("band_map", "height")]
    assert steps[2]["params"] == {"scale": 2, "tile": 8, "overlap": 2, "adapt": "auto", "adapt_steps": 5,
                                  "adapt_seconds": 600.0}
    for index, made in enumerate([cleaned, viewer.layers["cell · preprocessed · hybrid"], smooth, upscaled, heatmap]):
        replayed = _replayed(made, path, tmp_path, f"layer{index}")
        assert np.array_equal(replayed.final, made.data), made.name
    np.testing.assert_array_equal(_replayed(upscaled, path, tmp_path, "axis").outputs[-1].wavenumbers,
                                  cleaned.metadata["wavenumbers"])


@pytest.mark.gui
def test_fast_scan_restore_and_unmixing_replay_bit_identically(qtbot, opened, tmp_path):
    from napari_deeper._widgets.superres import SuperResWidget
    from napari_deeper._widgets.unmix import STACKED, UnmixWidget

    viewer, layer, path = opened
    superres = SuperResWidget(viewer)
    superres.input_layer.value = layer
    superres.device.value = "cpu"
    superres.params["hyrisr"].controls["adapt_steps"].value = 5  # no time limit: the replay is exact
    superres.params["hyrisr"].controls["adapt_seconds"].value = 600.0
    _run(qtbot, superres.restore_runner, superres.restore_runner.run_button)
    denoised, final = viewer.layers[-2], viewer.layers[-1]
    assert [s["operation"] for s in Recipe.from_layer(final).steps] == ["denoise", "superres"]
    for made in (denoised, final):
        assert np.array_equal(_replayed(made, path, tmp_path, "restore").final, made.data), made.name

    unmix = UnmixWidget(viewer)
    unmix.source.value = denoised
    unmix.targets.value = [denoised]
    unmix.n_endmembers.value = 3
    unmix.sum_to_one.value = True
    _run(qtbot, unmix.runner)
    made = unmix.made[denoised.name]
    unmix.output.value = STACKED
    _run(qtbot, unmix.runner)
    stacked = unmix.made[denoised.name]["abundance"][0]
    step = Recipe.from_layer(made["labels"]).steps[-1]
    assert step["operation"] == "unmix" and step["method"] == "fcls"
    np.testing.assert_array_equal(step["params"]["endmembers"], unmix.result.endmembers)  # inline
    for one in (*made["abundance"], made["labels"], made["residual"], stacked):
        assert np.array_equal(_replayed(one, path, tmp_path, "unmix").final, one.data), one.name


@pytest.mark.gui
def test_layers_that_cannot_be_replayed_say_which_step(qtbot, opened):
    from napari_deeper._widgets.compare import CompareWidget
    from napari_deeper._widgets.cube_layout import CubeLayoutWidget
    from napari_deeper._widgets.denoise import DenoiseWidget

    viewer, layer, _ = opened
    denoise = DenoiseWidget(viewer)
    denoise.input_layer.value = layer
    denoise.methods.value = ["savgol"]
    _run(qtbot, denoise.runner)
    compare = CompareWidget(viewer)
    compare.reference.value = layer
    compare.candidates.value = [viewer.layers["cell · savgol"]]
    compare.differences.value = "per band (candidate - reference)"
    _run(qtbot, compare.runner)
    difference = viewer.layers["cell · savgol · difference to cell"]
    with pytest.raises(ValueError, match=r"step 2 \(difference\) cannot be replayed: a difference map is made from two"):
        Recipe.from_layer(difference).validate()

    layout = CubeLayoutWidget(viewer)
    layout.layer.value = layer
    layout.order.value = "bxy"
    layout.remove_original.value = False
    _run(qtbot, layout.layout_runner)
    relaid = viewer.layers["cell · relayout"]
    with pytest.raises(ValueError, match=r"step 1 \(relayout\) cannot be replayed: the Cube layout dock's relayout"):
        Recipe.from_layer(relaid).run(nd.load_cube(opened[2]))


@pytest.mark.gui
def test_save_recipe_action_in_the_layers_menu(qtbot, opened, tmp_path, monkeypatch):
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
    _run(qtbot, denoise.runner)
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
