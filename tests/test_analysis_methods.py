"""The analysis families in the method schema: each runs the same core function as the API,
its parameters parse from a dock's text and a recipe's JSON, and recipes replay them (an axis
calibration changes the axis the next step fits on)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper import analysis
from napari_deeper.analysis.methods import band_list, band_pair, fwhm_range, peak_map, reference_lines
from napari_deeper.compute import run
from napari_deeper.methods import family

S = nd.simulate


@pytest.fixture(scope="module")
def cell():
    sim = S.simulate_cell((12, 14), n_bands=300, photons=300, seed=2)
    return nd.Cube(sim.noisy, sim.wavenumbers, {})


def test_baseline_family_has_every_method_with_its_defaults():
    chosen = family("baseline")
    assert set(chosen.methods) == set(analysis.BASELINE_METHODS)
    for name, method in chosen.methods.items():
        defaults = {p.name: p.default for p in method.params}
        assert defaults == dict(analysis.BASELINE_METHODS[name].defaults), name
        assert chosen.check(name, {})[1] == defaults


@pytest.mark.parametrize("method", ["arpls", "modpoly", "snip", "rubberband"])
def test_baseline_family_runs_the_api_function(method, cell):
    made = run(family("baseline").steps(cell.data, method, cell.wavenumbers))
    assert np.array_equal(made, nd.remove_baseline(cell.data, cell.wavenumbers, method))


def test_baseline_parameters_are_checked_by_the_schema():
    with pytest.raises(ValueError, match=r"parameter 'lam' must be between 0.01 and 10000000000000.0, got -1"):
        family("baseline").check("asls", {"lam": -1})
    with pytest.raises(ValueError, match="baseline method 'snip' has no parameter 'lam'; it accepts"):
        family("baseline").check("snip", {"lam": 10})


def test_peak_fit_steps_return_the_map_asked_for(cell):
    w = cell.wavenumbers
    bands = [(1004.0, 15.0), (1450.0, 25.0)]
    fit = analysis.fit_peaks(cell.data, w, bands)
    chosen = family("peak_fit")
    for key in ("center", "fwhm", "height", "area", "r2", "reason"):
        stacked = run(chosen.steps(cell.data, "lorentzian", w, bands=bands, map=key))
        assert np.array_equal(stacked, fit[key], equal_nan=True), key
    second = run(chosen.steps(cell.data, "lorentzian", w, bands="1004±15, 1450±25", map="area", band=1))
    assert np.array_equal(second, fit["area"][1], equal_nan=True)
    with pytest.raises(ValueError, match=r"band 2 asked for, but 2 band\(s\) were fitted"):
        run(chosen.steps(cell.data, "lorentzian", w, bands=bands, band=2))
    with pytest.raises(ValueError, match="must be one of center, fwhm, height, area, r2, reason"):
        chosen.check("gaussian", {"map": "gaussian_fraction"})
    assert chosen.check("pseudo-voigt", {"map": "gaussian_fraction"})[1]["map"] == "gaussian_fraction"
    with pytest.raises(ValueError, match="makes no 'gaussian_fraction' map"):
        peak_map(fit, "gaussian_fraction")


def test_band_ratio_and_cluster_families_run_the_api(cell):
    w = cell.wavenumbers
    ratio = run(family("band_ratio").steps(cell.data, "height", w, numerator="1660±25", denominator=(1450, 25)))
    expected = nd.band_ratio(cell.data, w, (1660, 25), (1450, 25), "height")["ratio"]
    assert np.array_equal(ratio, expected, equal_nan=True)
    with pytest.raises(ValueError, match="band ratio method 'area' has no parameter 'shape'"):
        family("band_ratio").check("area", {"shape": "gaussian"})
    labels = run(family("cluster").steps(cell.data, "ward", w, n_clusters=3, pca=5))
    assert np.array_equal(labels, nd.cluster(cell.data, 3, "ward", pca=5))
    assert family("cluster").output == "labels"


def test_text_and_json_forms_of_bands_parse_the_same():
    assert band_list("1004±15, 1450 ± 20") == ((1004.0, 15.0), (1450.0, 20.0))
    assert band_list("1004:15; 1450 +/- 20") == band_list([[1004, 15], [1450, 20]])
    assert band_list((1004, 15)) == ((1004.0, 15.0),)
    assert band_pair("2850±15") == (2850.0, 15.0)
    assert fwhm_range("2, 40") == fwhm_range([2, 40]) == (2.0, 40.0)
    assert reference_lines("Silicon") == "silicon" and reference_lines("1001.4, 1602.3") == (1001.4, 1602.3)
    for bad, words in [("1004", "centre±half-window"), ("1004±-3", "half window positive"), ("", "bands")]:
        with pytest.raises(ValueError, match=words):
            band_list(bad)
    with pytest.raises(ValueError, match="give one band"):
        band_pair("1004±15, 1450±20")
    with pytest.raises(ValueError, match="0 < low < high"):
        fwhm_range("40, 2")
    with pytest.raises(ValueError, match="silicon, polystyrene or line positions"):
        reference_lines("quartz")


def test_linear_calibration_moves_the_axis_and_keeps_the_data(cell):
    made = run(family("calibrate").steps(cell.data, "linear", cell.wavenumbers, slope=1.001, offset=-2.5))
    np.testing.assert_array_equal(made.data, cell.data)
    np.testing.assert_allclose(made.wavenumbers, 1.001 * cell.wavenumbers - 2.5)
    with pytest.raises(ValueError, match="needs the cube's spectral axis"):
        run(family("calibrate").steps(cell.data, "linear", None))


def test_a_recipe_fits_peaks_on_the_calibrated_axis(cell, tmp_path):
    """calibrate -> baseline -> peak fit: the fit sees the corrected axis the first step made."""
    steps = [
        {"operation": "calibrate", "method": "linear", "params": {"slope": 1.0, "offset": -3.0}},
        {"operation": "baseline", "method": "arpls", "params": {"lam": 1e5}},
        {"operation": "peak_fit", "method": "lorentzian", "params": {"bands": [[1001.0, 15.0]], "map": "center"}},
    ]
    path = nd.Recipe(steps).save(tmp_path / "fit.recipe.json")
    assert json.loads(path.read_text())["steps"][2]["params"]["bands"] == [[1001.0, 15.0]]
    result = nd.Recipe.load(path).run(cell)
    moved = cell.wavenumbers - 3.0
    np.testing.assert_allclose(result.outputs[1].wavenumbers, moved)
    expected = analysis.fit_peaks(nd.remove_baseline(cell.data, moved), moved, [(1001.0, 15.0)])["center"]
    assert np.array_equal(result.final, expected, equal_nan=True)
    with pytest.raises(ValueError, match=r"step 2 \(baseline\): its input, step 1, makes a map"):
        nd.Recipe([steps[2], steps[1]]).validate()


def test_reference_calibration_finds_the_line_in_the_cube():
    true_axis = np.linspace(300.0, 1000.0, 600)
    clean = S.pseudo_voigt(true_axis, np.array([520.7]), 4.0, np.ones(1), rho=0.0) + 0.1
    spectrum = S.add_noise(clean, 2000, np.random.default_rng(0), band_axis=-1)
    cube = np.broadcast_to(spectrum[:, None, None], (600, 2, 2)).astype(np.float32)
    made = run(family("calibrate").steps(cube, "reference", true_axis + 3.2, reference="silicon"))
    np.testing.assert_allclose(made.wavenumbers, true_axis, atol=0.05)
    flat = np.ones((600, 2, 2), np.float32) + np.random.default_rng(1).normal(0, 0.01, (600, 2, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="no silicon line found"):
        run(family("calibrate").steps(flat, "reference", true_axis))


def test_find_calibration_steps_report_progress(thp1_path):
    cube = nd.load_cube(thp1_path)
    steps = analysis.find_calibration_steps(cube.wavenumbers, cube.data, [1004.0])
    seen = []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration as stop:
            calibration = stop.value
            break
    assert len(seen) >= 3 and seen[-1].fraction == 1.0
    assert calibration.measured == analysis.find_calibration(cube.wavenumbers, cube.data, [1004.0]).measured
    assert 1006.0 < calibration.measured[0] < 1010.0  # the file's phenylalanine band sits at ~1008
