"""The noise model per cube (Poisson-Gaussian fit, spikes) and the variance-stabilising transform."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper.denoise.noise import NoiseModel, estimate_noise
from napari_deeper.denoise.vst import Anscombe, closed_form_inverse, stabilised_steps, with_vst

THP1 = "/work/shared/data/thp1_witec_40x40x500.mat"


def _truth(cell, read_noise):
    """True gain (data units per photon) and read variance of a simulated cube."""
    gain = float(cell.clean.max()) / cell.photons
    return gain, (read_noise * gain) ** 2


@pytest.mark.parametrize("photons, read_noise", [(20, 1.0), (60, 1.0), (200, 1.0), (1000, 1.0), (60, 4.0)])
def test_gain_within_ten_percent_of_the_simulated_truth(photons, read_noise):
    cell = nd.simulate.simulate_cell((48, 48), n_bands=300, photons=photons, read_noise=read_noise, seed=21)
    gain, read_variance = _truth(cell, read_noise)
    model = estimate_noise(cell.noisy)
    assert model.gain == pytest.approx(gain, rel=0.10)
    if read_variance > 0.2 * gain * cell.clean.mean():  # read noise is a measurable part of the noise
        assert model.read_variance == pytest.approx(read_variance, rel=0.25)
    assert model.gain_error < 0.05 * model.gain
    level = float(np.quantile(cell.clean, 0.999))
    assert model.photons_at_max == pytest.approx(level / gain, rel=0.15)
    assert model.spikes == 0


def test_regime_and_sentence():
    shot = estimate_noise(nd.simulate.simulate_cell((40, 40), n_bands=200, photons=200, seed=2).noisy)
    assert shot.regime == "shot-noise limited" and shot.needs_stabilising
    text = shot.describe()
    assert text.startswith("Shot-noise limited, about ") and "photons at the brightest band" in text
    read = estimate_noise(nd.simulate.simulate_cell((40, 40), n_bands=200, photons=5, read_noise=20.0,
                                                    seed=2).noisy)
    assert read.regime == "read-noise limited" and not read.needs_stabilising
    assert set(shot.as_dict()) >= {"gain", "read_variance", "spikes", "photons_at_max", "regime"}


def test_counts_cosmic_ray_spikes():
    kwargs = dict(shape=(40, 40), n_bands=300, photons=100, seed=4)
    plain = nd.simulate.simulate_cell(**kwargs)
    spiked = nd.simulate.simulate_cell(**kwargs, spikes=0.03)
    hit = int(np.count_nonzero(np.any(spiked.noisy != plain.noisy, axis=0)))  # spectra given a spike
    assert hit > 20
    assert estimate_noise(spiked.noisy).spikes == pytest.approx(hit, abs=max(2, 0.1 * hit))
    assert estimate_noise(plain.noisy).spikes <= 1
    with_spikes = estimate_noise(spiked.noisy)
    assert with_spikes.gain == pytest.approx(estimate_noise(plain.noisy).gain, rel=0.03)


def test_background_subtracted_data_with_negative_values():
    cell = nd.simulate.simulate_cell((48, 48), n_bands=300, photons=60, seed=8)
    gain, read_variance = _truth(cell, 1.0)
    shift = float(np.quantile(cell.noisy, 0.2))
    subtracted = cell.noisy - shift  # a background taken away after detection
    assert 0.15 < np.mean(subtracted < 0) < 0.3
    model = estimate_noise(subtracted)
    assert model.gain == pytest.approx(gain, rel=0.10)
    # the subtracted background's shot noise stays: var = a * (y + shift) + b
    assert model.read_variance == pytest.approx(read_variance + gain * shift, rel=0.25)


def test_line_scans_and_bounded_work_on_large_cubes():
    cell = nd.simulate.simulate_cell((48, 48), n_bands=300, photons=60, seed=8)
    gain, _ = _truth(cell, 1.0)
    line = cell.noisy[:, :2, :]  # too narrow for spatial residuals: bands only
    assert estimate_noise(line).gain == pytest.approx(gain, rel=0.15)
    big = np.tile(cell.noisy, (1, 5, 5))  # 240 x 240 pixels: read in strips
    model = estimate_noise(big, max_values=1_000_000)
    assert model.spectra_examined * 300 <= 1_000_000  # at most max_values values, halo rows included
    assert model.gain == pytest.approx(gain, rel=0.10)


def test_bin_index_in_float32_equals_the_binary_search():
    from napari_deeper.denoise.noise import _bin_index

    rng = np.random.default_rng(3)
    values = (rng.standard_normal(200_000) * 50 + 7).astype(np.float32)
    edges = np.quantile(values, np.linspace(0, 1, 33))[1:-1]
    on = np.float32(edges[3])  # an edge equal to a value: that value goes above it
    below = np.float32(edges[4])  # an edge between two neighbouring float32 values
    above = np.nextafter(below, np.float32(np.inf))
    edges[3], edges[4] = float(on), (float(below) + float(above)) / 2
    values[:3] = on, below, above
    expected = np.searchsorted(edges, values.astype(np.float64), side="right")
    np.testing.assert_array_equal(_bin_index(values, edges), expected)


def test_bad_input():
    with pytest.raises(ValueError, match="constant"):
        estimate_noise(np.ones((50, 8, 8), np.float32))
    with pytest.raises(ValueError, match="at least 9 bands"):
        estimate_noise(np.random.default_rng(0).random((5, 8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        estimate_noise(np.full((50, 8, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="positions"):
        estimate_noise(np.random.default_rng(0).random((10, 2, 2)))
    cube = np.random.default_rng(0).random((50, 8, 8)).astype(np.float32)
    before = cube.copy()
    estimate_noise(cube)
    np.testing.assert_array_equal(cube, before)


@pytest.mark.skipif(not __import__("os").path.exists(THP1), reason="real THP-1 file not available in ../shared/data")
def test_real_thp1_cube():
    cube = nd.load_cube(THP1).data
    model = estimate_noise(cube)
    assert model.gain > 0 and model.gain_error < 0.1 * model.gain
    assert model.regime in ("mixed", "shot-noise limited")
    # background-subtracted: the photon zero is the data's zero and the subtracted background's
    # shot noise is the variance where the signal is zero (measured: noise s.d. about 5 there)
    assert model.zero == 0 and 9.0 < model.read_variance < 64.0
    assert 100 < model.photons_at_max < 5000
    assert model.spikes < 0.02 * model.spectra_examined


# --- variance stabilisation ---------------------------------------------------------------


@pytest.mark.parametrize("gain, read_variance", [(1.0, 0.0), (0.5, 0.25), (2.0, 100.0), (1.0, -20.0)])
def test_transform_round_trip(gain, read_variance):
    t = Anscombe(gain, read_variance)
    level = np.concatenate([np.linspace(0, 5, 26), np.geomspace(5, 5000, 40)]) * gain - t.offset * gain
    # the exact unbiased inverse undoes the expectation, across the join of table and closed form
    np.testing.assert_allclose(t.inverse(t.expected(level)), level, rtol=2e-3, atol=2e-3 * gain)
    # the algebraic inverse undoes the transform wherever the square root is defined
    y = np.linspace(0, 1000, 101) * gain - t.offset * gain
    np.testing.assert_allclose(t.inverse(t.forward(y), exact=False), y, rtol=1e-5, atol=1e-3 * gain)
    lam, expected = t._table
    assert closed_form_inverse(expected[-1], t.sigma2) == pytest.approx(lam[-1], abs=0.02)


@pytest.mark.parametrize("photons", [1.0, 3.0, 10.0])
def test_unbiased_inverse_where_the_algebraic_one_is_biased(photons):
    rng = np.random.default_rng(1)
    t = Anscombe(1.0, 0.25)
    y = rng.poisson(photons, 1_000_000) + rng.normal(0, 0.5, 1_000_000)
    mean_f = np.array([t.forward(y).astype(np.float64).mean()])
    assert t.inverse(mean_f)[0] == pytest.approx(photons, rel=0.01)
    # the algebraic inverse comes out about a quarter of a photon low at every level
    assert photons - t.inverse(mean_f, exact=False)[0] > 0.2


@pytest.mark.parametrize("photons", [20, 200])
def test_stabilised_variance_is_one_on_simulated_cubes(photons):
    cell = nd.simulate.simulate_cell((48, 48), n_bands=300, photons=photons, seed=3)
    t = Anscombe.from_noise(estimate_noise(cell.noisy))
    residual = t.forward(cell.noisy).astype(np.float64) - t.expected(cell.clean)
    assert np.var(residual) == pytest.approx(1.0, abs=0.1)
    bright = cell.clean > np.quantile(cell.clean, 0.9)
    dark = cell.clean < np.quantile(cell.clean, 0.1)
    assert np.var(residual[bright]) == pytest.approx(np.var(residual[dark]), rel=0.2)


def test_negative_values_and_no_shot_noise():
    t = Anscombe(1.0, 4.0)
    y = np.array([-100.0, -10.0, -2.0, 0.0, 5.0])
    f = t.forward(y)
    assert np.all(np.isfinite(f)) and f[0] == 0.0 and np.all(np.diff(f) >= 0)
    back = t.inverse(np.array([t.expected(0.0)[()] - 0.5, t.expected(0.0)[()]]))
    # below zero photons the inverse goes on as a straight line (slope about 1 / sqrt(b + 3/8))
    assert back[0] == pytest.approx(-0.5 * np.sqrt(4.375), rel=0.05) and back[1] == pytest.approx(0.0, abs=1e-6)
    flat = Anscombe(0.0, 4.0)
    np.testing.assert_allclose(flat.forward(y), y / 2.0)
    np.testing.assert_allclose(flat.inverse(flat.forward(y)), y, rtol=1e-6)
    with pytest.raises(ValueError, match="gain"):
        Anscombe(-1.0, 1.0)


def test_any_method_runs_stabilised():
    from napari_deeper.compute import run
    from napari_deeper.denoise import METHODS

    cell = nd.simulate.simulate_cell((32, 32), n_bands=200, photons=30, seed=6)
    plain = nd.denoise(cell.noisy, "savgol", window=15)
    stabilised = with_vst(METHODS["savgol"])
    assert stabilised.name == "savgol+vst"
    out = run(stabilised.steps(cell.noisy, window=15, order=2))
    assert out.shape == cell.noisy.shape and not np.allclose(out, plain)
    error = lambda a: float(np.mean((a - cell.clean) ** 2))  # noqa: E731
    assert error(out) < 0.5 * error(cell.noisy)
    np.testing.assert_allclose(nd.denoise(cell.noisy, "savgol", window=15, stabilise="on"), out, rtol=1e-5,
                               atol=1e-6)
    # "off" runs the method on the cube as it is; "auto" stabilises this shot-noise-limited cube
    seen = []

    def record(cube, noise):
        seen.append((cube, noise))
        yield from ()
        return cube

    back = run(stabilised_steps(record, cell.noisy, "auto"))
    assert seen[0][1] == NoiseModel.white(1.0) and not np.allclose(seen[0][0], cell.noisy)
    assert back.shape == cell.noisy.shape and np.all(np.isfinite(back))
    assert run(stabilised_steps(record, cell.noisy, "off")) is cell.noisy and seen[1][1] is None
