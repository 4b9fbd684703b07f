"""Spectral core: band maps, crop, normalisation, baseline and spike removal, ROI statistics."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper import spectral


def gaussian(x, center, sigma, height=1.0):
    return height * np.exp(-0.5 * ((x - center) / sigma) ** 2)


@pytest.fixture
def uneven_axis(rng):
    """A non-uniform wavenumber axis (spacing 1.5-4.5 cm-1), as real spectrometers have."""
    return 500.0 + np.cumsum(rng.uniform(1.5, 4.5, size=400))


def cube_of(spectrum, shape=(3, 4)):
    return np.broadcast_to(np.asarray(spectrum, np.float32)[:, None, None], (len(spectrum), *shape)).copy()


def test_band_map_area_matches_analytic_gaussian_area(uneven_axis):
    sigma, height = 8.0, 3.0
    center = float(uneven_axis[180])
    cube = cube_of(gaussian(uneven_axis, center, sigma, height))
    # +-4 sigma holds 99.994% of the area
    area = nd.band_map(cube, uneven_axis, center, 8 * sigma)
    analytic = height * sigma * np.sqrt(2 * np.pi)
    assert area.shape == (3, 4) and area.dtype == np.float32
    np.testing.assert_allclose(area, analytic, rtol=0.01)


def test_band_map_area_uses_exact_edges_on_a_flat_spectrum(uneven_axis):
    cube = np.full((uneven_axis.size, 2, 2), 2.0, np.float32)
    area = spectral.band_map(cube, uneven_axis, 1000.3, 37.7)
    np.testing.assert_allclose(area, 2.0 * 37.7, rtol=1e-6)


def test_band_map_baseline_removes_a_linear_slope_exactly(uneven_axis):
    center, sigma = float(uneven_axis[200]), 5.0
    peak = gaussian(uneven_axis, center, sigma, 2.0)
    slope = 0.01 * (uneven_axis - 400.0) + 3.0
    with_slope = cube_of(peak + slope)
    without = cube_of(peak)
    # the peak is negligible at +-8 sigma, so the edge-to-edge line is exactly the slope
    width = 16 * sigma
    got = spectral.band_map(with_slope, uneven_axis, center, width, baseline=True)
    want = spectral.band_map(without, uneven_axis, center, width)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # a pure slope integrates to zero once its own baseline is removed
    pure = spectral.band_map(cube_of(slope), uneven_axis, center, width, baseline=True)
    np.testing.assert_allclose(pure, 0.0, atol=1e-4)
    height = spectral.band_map(with_slope, uneven_axis, center, width, mode="height", baseline=True)
    np.testing.assert_allclose(height, 2.0, rtol=2e-3)


def test_band_map_height_takes_the_band_maximum():
    w = np.linspace(400, 1800, 701)
    rng = np.random.default_rng(1)
    cube = rng.uniform(0, 1, (701, 5, 6)).astype(np.float32)
    got = spectral.band_map(cube, w, 1000, 40, mode="height")
    inside = (w >= 980) & (w <= 1020)
    np.testing.assert_allclose(got, cube[inside].max(axis=0))


def test_band_map_descending_axis_and_band_indices():
    w = np.linspace(1800, 400, 351)
    spectrum = gaussian(w, 1000.0, 6.0)
    cube = cube_of(spectrum)
    area_down = spectral.band_map(cube, w, 1000, 60)
    area_up = spectral.band_map(cube[::-1], w[::-1], 1000, 60)
    np.testing.assert_allclose(area_down, area_up, rtol=1e-6)
    np.testing.assert_allclose(area_down, 6.0 * np.sqrt(2 * np.pi), rtol=0.01)
    # without wavenumbers the band is in band indices
    by_index = spectral.band_map(cube, None, 200, 2.0, mode="height")
    np.testing.assert_allclose(by_index, cube[199:202].max(axis=0))


def test_band_map_reads_a_memmap_without_loading_it(tmp_path):
    w = np.linspace(500, 1800, 200)
    cube = np.random.default_rng(2).normal(5, 1, (200, 8, 9)).astype(np.float64)
    np.save(tmp_path / "cube.npy", cube)
    mapped = np.load(tmp_path / "cube.npy", mmap_mode="r")
    got = spectral.band_map(mapped, w, 1200, 50)
    np.testing.assert_allclose(got, spectral.band_map(cube.astype(np.float32), w, 1200, 50), rtol=1e-5)
    assert isinstance(mapped, np.memmap)


def test_band_map_steps_report_progress():
    w = np.linspace(500, 1800, 50)
    cube = np.ones((50, 4, 4), np.float32)
    steps = spectral.band_maps_steps([(cube, w), (2 * cube, w)], 1000, 100, mode="height")
    fractions = []
    while True:
        try:
            fractions.append(next(steps).fraction)
        except StopIteration as stop:
            maps = stop.value
            break
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    np.testing.assert_allclose(maps[0], 1.0)
    np.testing.assert_allclose(maps[1], 2.0)


@pytest.mark.parametrize(
    ("center", "width", "mode", "message"),
    [
        (3000, 30, "area", "outside the spectral axis"),
        (1000.5, 0.2, "area", "covers no band"),
        (1000, -5, "area", "positive"),
        (1000, 30, "volume", "unknown method"),
    ],
)
def test_band_map_errors(center, width, mode, message):
    w = np.arange(500.0, 1800.0, 2.0)
    cube = np.ones((w.size, 2, 2), np.float32)
    with pytest.raises(ValueError, match=message):
        spectral.band_map(cube, w, center, width, mode=mode)


def test_band_map_rejects_bad_cubes():
    with pytest.raises(ValueError, match="3-D"):
        spectral.band_map(np.ones((5, 5)), None, 2, 2)
    with pytest.raises(ValueError, match="wavenumbers has 3 values"):
        spectral.band_map(np.ones((5, 2, 2)), [1, 2, 3], 2, 2)
    bad = np.ones((5, 2, 2), np.float32)
    bad[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        spectral.band_map(bad, None, 2, 2)


def test_band_window_clips_to_the_axis():
    axis = np.arange(100.0)
    low, high, inside = spectral.band_window(axis, 98, 10)
    assert (low, high) == (93, 99) and inside[0] == 93 and inside[-1] == 99


def test_crop_keeps_the_bands_in_range_and_copies():
    w = np.linspace(400, 1800, 141)  # step 10
    cube = np.random.default_rng(3).normal(size=(141, 3, 3)).astype(np.float32)
    cropped, w_cropped = spectral.crop(cube, w, 1000, 600)
    assert w_cropped[0] == 600 and w_cropped[-1] == 1000 and cropped.shape == (41, 3, 3)
    np.testing.assert_array_equal(cropped, cube[20:61])
    assert not np.shares_memory(cropped, cube)
    by_index, none = spectral.crop(cube, None, 10, 19)
    assert none is None and by_index.shape[0] == 10
    with pytest.raises(ValueError, match="keeps no band"):
        spectral.crop(cube, w, 2000, 2100)


def test_normalise_modes():
    w = np.linspace(0, 10, 11)
    rng = np.random.default_rng(4)
    cube = rng.uniform(1, 5, (11, 3, 4)).astype(np.float32)
    cube[:, 0, 0] = 0.0  # an all-zero spectrum must stay zero
    cube[:, 0, 1] = 2.5  # a flat spectrum has no min-max range
    spectra = cube.reshape(11, -1)

    def per_pixel(result):
        return result.reshape(11, -1)[:, 2:]

    live = spectra[:, 2:]
    np.testing.assert_allclose(per_pixel(spectral.normalise(cube, "max")).max(axis=0), 1.0, rtol=1e-6)
    mm = spectral.normalise(cube, "minmax")
    np.testing.assert_allclose(per_pixel(mm).min(axis=0), 0.0, atol=1e-7)
    np.testing.assert_allclose(per_pixel(mm).max(axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(per_pixel(spectral.normalise(cube, "vector")), axis=0), 1.0, rtol=1e-5)
    area = per_pixel(spectral.normalise(cube, "area", wavenumbers=w))
    np.testing.assert_allclose(np.trapezoid(area, w, axis=0), 1.0, rtol=1e-5)
    cube_max = spectral.normalise(cube, "cube-max")
    np.testing.assert_allclose(cube_max, cube / cube.max(), rtol=1e-6)
    cube_mm = spectral.normalise(cube, "cube-minmax")
    assert cube_mm.min() == 0.0 and np.isclose(cube_mm.max(), 1.0)
    for mode in spectral.NORMALISATIONS:
        out = spectral.normalise(cube, mode, wavenumbers=w)
        assert out.dtype == np.float32 and np.all(np.isfinite(out)), mode
    for mode in ("max", "minmax", "vector", "area"):
        out = spectral.normalise(cube, mode)
        np.testing.assert_array_equal(out[:, 0, 0], 0.0)
    np.testing.assert_array_equal(mm[:, 0, 1], 0.0)
    assert np.all(live == spectra[:, 2:])  # input untouched
    np.testing.assert_array_equal(spectral.normalise(np.zeros((4, 2, 2)), "cube-max"), 0.0)
    with pytest.raises(ValueError, match="unknown method"):
        spectral.normalise(cube, "l3")


def test_remove_baseline_recovers_peaks_on_a_polynomial_background():
    w = np.linspace(500, 1800, 400)
    peaks = gaussian(w, 1000, 8, 5.0) + gaussian(w, 1450, 12, 3.0)
    t = (w - 1150) / 650
    backgrounds = [20 + 10 * t + 6 * t**2, 5 - 4 * t + 3 * t**3]
    cube = np.stack([peaks + b for b in backgrounds], axis=1)[:, :, None].astype(np.float32)
    corrected = spectral.remove_baseline(cube, w, order=3)
    assert corrected.shape == cube.shape
    residual = corrected[:, :, 0] - peaks[:, None]
    # what is left of the background is small next to the 5-count peak
    assert np.max(np.abs(residual)) < 0.25
    assert corrected[np.argmin(np.abs(w - 1000)), 0, 0] == pytest.approx(5.0, abs=0.25)
    with pytest.raises(ValueError, match="order"):
        spectral.remove_baseline(cube, w, order=400)


def simulated_cube(rng, shape=(20, 20), n_bands=300):
    """Two-component cell on a background, Poisson noise: a small stand-in for real maps."""
    w = np.linspace(600, 1800, n_bands)
    lipid = gaussian(w, 1440, 10, 40) + gaussian(w, 1660, 12, 25)
    protein = gaussian(w, 1003, 4, 60) + gaussian(w, 1250, 15, 20)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cell = np.exp(-(((yy - 10) / 6.0) ** 2 + ((xx - 10) / 5.0) ** 2))
    clean = (
        30.0
        + lipid[:, None, None] * cell[None]
        + protein[:, None, None] * (1 - cell[None]) * 0.5
    ).astype(np.float32)
    return w, clean, rng.poisson(clean).astype(np.float32)


def test_remove_spikes_removes_cosmic_rays_and_keeps_peaks(rng):
    w, clean, noisy = simulated_cube(rng)
    spiked = noisy.copy()
    n_spikes = 25
    bands = rng.integers(5, w.size - 5, n_spikes)
    rows = rng.integers(0, 20, n_spikes)
    cols = rng.integers(0, 20, n_spikes)
    spiked[bands, rows, cols] += rng.uniform(150, 600, n_spikes).astype(np.float32)
    spiked[bands[:10] + 1, rows[:10], cols[:10]] += 80.0  # two-band spikes
    cleaned = spectral.remove_spikes(spiked, threshold=8)
    assert np.all(spiked[bands, rows, cols] > noisy[bands, rows, cols] + 100)  # input untouched
    # every spike is gone: what remains is within noise of the clean signal
    noise = np.sqrt(clean[bands, rows, cols])
    assert np.all(np.abs(cleaned[bands, rows, cols] - clean[bands, rows, cols]) < 5 * noise)
    assert np.all(np.abs(cleaned[bands[:10] + 1, rows[:10], cols[:10]] - clean[bands[:10] + 1, rows[:10], cols[:10]])
                  < 5 * np.sqrt(clean[bands[:10] + 1, rows[:10], cols[:10]]))
    # real peaks stay: almost nothing else changed, and the peak maps are the same
    changed = cleaned != spiked
    changed[bands, rows, cols] = False
    changed[bands[:10] + 1, rows[:10], cols[:10]] = False
    assert changed.mean() < 2e-4
    for center in (1003, 1440, 1660):
        before = spectral.band_map(noisy, w, center, 30, mode="height")
        after = spectral.band_map(cleaned, w, center, 30, mode="height")
        untouched = np.ones(before.shape, bool)
        untouched[rows, cols] = False
        np.testing.assert_array_equal(after[untouched], before[untouched])
    mask, _ = spectral.find_spikes(noisy, threshold=8)
    assert mask.mean() < 2e-4  # a cube without spikes keeps nearly every value


def test_remove_spikes_on_a_single_spectrum(rng):
    w, clean, noisy = simulated_cube(rng, shape=(1, 1))
    spiked = noisy.copy()
    spiked[150, 0, 0] += 500
    cleaned = spectral.remove_spikes(spiked)
    assert abs(cleaned[150, 0, 0] - clean[150, 0, 0]) < 5 * np.sqrt(clean[150, 0, 0])


def test_fill_nonfinite_counts_and_copies():
    cube = np.ones((3, 2, 2), np.float32)
    cube[0, 0, 0] = np.nan
    cube[1, 1, 1] = np.inf
    filled, count = spectral.fill_nonfinite(cube, value=-1.0)
    assert count == 2 and filled[0, 0, 0] == -1.0 and filled[1, 1, 1] == -1.0
    assert np.isnan(cube[0, 0, 0])


def test_pixel_spectra_and_roi_stats(rng):
    cube = rng.normal(size=(7, 5, 6)).astype(np.float32)
    spectra = spectral.pixel_spectra(cube, [0, 4], [1, 5])
    np.testing.assert_array_equal(spectra, np.stack([cube[:, 0, 1], cube[:, 4, 5]]))
    with pytest.raises(ValueError, match="outside"):
        spectral.pixel_spectra(cube, [5], [0])
    mask = np.zeros((5, 6), bool)
    mask[1:4, 2:5] = True
    mean, std, n = spectral.roi_stats(cube, mask)
    region = cube[:, 1:4, 2:5].reshape(7, -1)
    assert n == 9
    np.testing.assert_allclose(mean, region.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(std, region.std(axis=1), rtol=1e-5)
    with pytest.raises(ValueError, match="no pixel"):
        spectral.roi_stats(cube, np.zeros((5, 6), bool))
    with pytest.raises(ValueError, match="shape"):
        spectral.roi_stats(cube, np.ones((4, 6), bool))


def test_spectra_csv_shares_the_union_of_the_axes_and_reads_back_exactly(tmp_path, rng):
    full = np.array([500.0, 510.0, 520.0, 530.0])
    values = rng.normal(size=4).astype(np.float32)
    path = spectral.save_spectra_csv(tmp_path / "spectra.csv",
                                     [("full", full, values), ("cropped", full[1:3], values[1:3] * 2)], "1/cm")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "1/cm,full,cropped"
    assert len(lines) == 5 and lines[1].endswith(",") and lines[4].endswith(",")  # no value: an empty cell
    table = np.genfromtxt(path, delimiter=",", skip_header=1)
    np.testing.assert_array_equal(table[:, 0], full)
    np.testing.assert_array_equal(table[:, 1].astype(np.float32), values)  # float32 values come back exactly
    np.testing.assert_array_equal(table[1:3, 2].astype(np.float32), values[1:3] * 2)
    with pytest.raises(ValueError, match="nothing to export"):
        spectral.save_spectra_csv(tmp_path / "empty.csv", [])
    with pytest.raises(ValueError, match="3 values on an axis of 4"):
        spectral.save_spectra_csv(tmp_path / "bad.csv", [("bad", full, values[:3])])


def test_preprocess_steps_chain_and_record(rng):
    w, clean, noisy = simulated_cube(rng, shape=(6, 6), n_bands=200)
    noisy[0, 0, 0] = np.nan
    result = nd.compute.run(
        spectral.preprocess_steps(noisy, w, crop=(700, 1700), fill=0.0, despike=8.0, baseline=2,
                                  normalise="vector")
    )
    keep = (w >= 700) & (w <= 1700)
    assert result.data.shape == (int(keep.sum()), 6, 6)
    np.testing.assert_array_equal(result.wavenumbers, w[keep])
    np.testing.assert_allclose(np.linalg.norm(result.data, axis=0), 1.0, rtol=1e-4)
    assert [s["step"] for s in result.steps] == ["crop", "fill", "despike", "baseline", "normalise"]
    assert result.steps[1]["replaced"] == 0  # the NaN was outside the crop
    assert np.isnan(noisy[0, 0, 0])
    only_crop = nd.compute.run(spectral.preprocess_steps(clean, w, crop=(700, 1700)))
    np.testing.assert_array_equal(only_crop.data, clean[keep])
    with pytest.raises(ValueError, match="unknown method"):
        nd.compute.run(spectral.preprocess_steps(clean, w, normalise="l7"))


def test_remove_spikes_on_the_simulator():
    simulate = pytest.importorskip("napari_deeper.simulate")
    # same seed: identical clean cube and noise, the second one with cosmic rays in 5% of spectra
    kwargs = {"shape": (32, 32), "n_bands": 500, "photons": 200, "seed": 3}
    without = simulate.simulate_cell(spikes=0.0, **kwargs)
    spiked = simulate.simulate_cell(spikes=0.05, **kwargs)
    added = spiked.noisy - without.noisy
    spikes = np.abs(added) > 1e-6
    assert spikes.any(axis=0).sum() >= 40
    # noise level of each value, in the cube's units
    sigma = np.sqrt(np.maximum(without.clean, 1e-3) * spiked.clean.max() / 200)
    strong = spikes & (np.abs(added) > 12 * sigma)
    mask, _ = spectral.find_spikes(spiked.noisy, threshold=8)
    assert np.all(mask[strong])
    assert np.count_nonzero(mask & ~spikes) <= 10  # of 512 000 values
    cleaned = spectral.remove_spikes(spiked.noisy, threshold=8)
    assert np.all(np.abs(cleaned - without.noisy)[strong] < 5 * sigma[strong])
