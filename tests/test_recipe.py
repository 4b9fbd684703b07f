"""Recipes: save/load round trip, validation errors that name the step and parameter, replay in
Python, and the chain that provenance records carry. The docks' layers replayed from their saved
recipes are tested in tests/_widgets/test_recipe_docks.py."""

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
