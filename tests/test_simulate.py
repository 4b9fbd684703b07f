"""The physics-based simulator: shapes, physics, reproducibility and input checks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_deeper import simulate as sim
from napari_deeper.simulate import spectra

W = sim.wavenumber_axis(300)


def test_wavenumber_axis_uniform_and_jittered():
    w = sim.wavenumber_axis(500, 500.0, 1800.0)
    assert w.shape == (500,) and w.dtype == np.float64
    assert w[0] == 500.0 and w[-1] == 1800.0
    np.testing.assert_allclose(np.diff(w), 1300.0 / 499)
    j = sim.wavenumber_axis(500, 500.0, 1800.0, jitter=0.2, seed=1)
    assert j[0] == pytest.approx(500.0) and j[-1] == pytest.approx(1800.0)
    steps = np.diff(j)
    assert np.all(steps > 0) and steps.std() > 0.01 * steps.mean()
    np.testing.assert_array_equal(j, sim.wavenumber_axis(500, 500.0, 1800.0, jitter=0.2, seed=1))


def test_wavenumber_axis_uniform_in_wavelength():
    # a 532 nm grating spectrometer: the WITec THP-1 export steps from 2.82 to 2.41 cm-1
    w = sim.wavenumber_axis(500, 501.27, 1802.47, laser_nm=532.0)
    assert w[0] == 501.27 and w[-1] == 1802.47
    steps = np.diff(w)
    assert np.all(np.diff(steps) < 0)
    assert steps[0] == pytest.approx(2.82, abs=0.02) and steps[-1] == pytest.approx(2.41, abs=0.02)
    wavelength = 1e7 / (1e7 / 532.0 - w)
    np.testing.assert_allclose(np.diff(wavelength), np.diff(wavelength)[0], rtol=1e-9)


def test_pseudo_voigt_peak_height_position_and_fwhm():
    w = np.linspace(900.0, 1100.0, 20001)
    v = sim.pseudo_voigt(w, 1004.0, 8.0, 2.5)
    assert v.shape == w.shape
    assert w[np.argmax(v)] == pytest.approx(1004.0, abs=0.01)
    assert v.max() == pytest.approx(2.5, rel=1e-6)
    above = w[v >= v.max() / 2]
    assert above[-1] - above[0] == pytest.approx(8.0, abs=0.02)
    # the Gaussian fraction rho: rho=1 is a pure Gaussian (negligible tails), rho=0 Lorentzian
    far = 1004.0 + 40.0
    g = sim.pseudo_voigt(np.array([far]), 1004.0, 8.0, 1.0, rho=1.0)[0]
    lorentz = sim.pseudo_voigt(np.array([far]), 1004.0, 8.0, 1.0, rho=0.0)[0]
    assert g < 1e-20 and lorentz == pytest.approx(1.0 / (1.0 + 4.0 * 25.0))


def test_pseudo_voigt_is_vectorised_over_leading_axes():
    centers = np.array([[[800.0, 1200.0]], [[1000.0, 1500.0]]])  # (2, 1, 2)
    fwhms = np.full_like(centers, 20.0)
    heights = np.array([1.0, 0.5])
    out = sim.pseudo_voigt(W, centers, fwhms, heights)
    assert out.shape == (2, 1, W.size)
    one = sim.pseudo_voigt(W, [1000.0, 1500.0], [20.0, 20.0], [1.0, 0.5])
    np.testing.assert_allclose(out[1, 0], one)


def test_component_spectra_show_their_landmark_bands():
    w = sim.wavenumber_axis(1301, 500.0, 1800.0)  # 1 cm-1 steps
    spectra, names = sim.component_spectra(w)
    assert names == list(sim.COMPONENTS)
    assert spectra.shape == (len(names), w.size) and spectra.dtype == np.float32
    assert np.all(spectra >= 0)

    def strongest_near(name, center, half=4):
        s = spectra[names.index(name)]
        window = (w > center - half) & (w < center + half)
        return w[window][np.argmax(s[window])]

    def is_local_max(name, center):
        s = spectra[names.index(name)]
        i = int(np.argmin(abs(w - strongest_near(name, center))))
        return s[i] >= s[i - 1] and s[i] >= s[i + 1]

    for name, center in [
        ("proteins", 1004), ("proteins", 1450), ("nucleic acids", 785), ("nucleic acids", 1095),
        ("lipids", 1440), ("lipids", 1745), ("carotenoids", 1520), ("carotenoids", 1155),
    ]:
        assert is_local_max(name, center), (name, center)
    assert names[int(np.argmax(spectra[:, np.argmin(abs(w - 1520))]))] == "carotenoids"
    sub, sub_names = sim.component_spectra(w, ["lipids"])
    assert sub_names == ["lipids"]
    np.testing.assert_array_equal(sub[0], spectra[names.index("lipids")])


def test_bands_outside_the_axis_do_not_show():
    w = sim.wavenumber_axis(100, 2800.0, 3000.0)
    spectra, _ = sim.component_spectra(w, ["carotenoids"])
    assert spectra.max() < 0.01  # only far Lorentzian tails of the 1520 band


def test_random_spectra_and_backgrounds(rng):
    r = sim.random_spectra(200, W, rng, n_peaks=(1, 10))
    assert r.shape == (200, W.size) and r.dtype == np.float32
    assert np.all(r >= 0) and np.all(r.max(axis=1) > 0)
    none = sim.random_spectra(5, W, rng, n_peaks=0)
    assert not none.any()
    b = sim.fluorescence_background(50, W, rng, strength=0.4)
    assert b.shape == (50, W.size) and np.all(b > 0)
    assert np.all(b.max(axis=1) <= 0.4 + 1e-6)
    # smooth: second differences are tiny against the values
    assert np.abs(np.diff(b, 2, axis=1)).max() < 1e-3 * b.max()


def test_cell_abundances_structure(rng):
    a = sim.cell_abundances((64, 80), rng)
    assert a.shape == (5, 64, 80) and a.dtype == np.float32 and np.all(a >= 0)
    labels = np.argmax(a, axis=0)
    names = list(sim.COMPONENTS)
    # the corners are substrate, the centre region is cell; every component dominates somewhere
    assert labels[0, 0] == labels[-1, -1] == names.index("substrate")
    assert set(np.unique(labels)) == set(range(5))
    nucleus = labels == names.index("nucleic acids")
    cytoplasm = labels == names.index("proteins")
    assert nucleus.sum() > 30 and cytoplasm.sum() > nucleus.sum()
    three = sim.cell_abundances((32, 32), np.random.default_rng(0), n_components=3)
    assert three.shape == (3, 32, 32)


def _jumps(maps: np.ndarray) -> tuple[float, float]:
    """Median and 99.5th percentile of the steps between neighbouring pixels of the most varied
    map, as shares of its range: flat domains with sharp boundaries have a tiny median and a
    large top step; a smooth blend, neither."""
    image = maps[np.argmax(maps.reshape(len(maps), -1).std(axis=1))]
    steps = np.concatenate([np.abs(np.diff(image, axis=0)).ravel(), np.abs(np.diff(image, axis=1)).ravel()])
    steps /= np.ptp(image)
    return float(np.median(steps)), float(np.percentile(steps, 99.5))


def test_textures_have_the_structure_they_are_named_for():
    rng = np.random.default_rng(0)
    names = list(sim.COMPONENTS)
    maps = {t: sim.texture_abundances((96, 96), np.random.default_rng(1), t) for t in sim.TEXTURES}
    for texture, a in maps.items():
        assert a.shape == (5, 96, 96) and a.dtype == np.float32 and np.all(a >= 0), texture
        assert np.all(np.isfinite(a)) and a.sum(axis=0).min() > 0, texture
    np.testing.assert_array_equal(maps["cell"], sim.cell_abundances((96, 96), np.random.default_rng(1)))
    # fibres: thin protein lines, so most of the image is substrate and the lines are narrow
    protein = maps["fibres"][names.index("proteins")]
    covered = protein > 0.5 * protein.max()
    assert 0.01 < covered.mean() < 0.4
    # edges: piecewise-constant domains, so a few large jumps; tissue blends smoothly
    dominant = {t: np.argmax(maps[t], axis=0) for t in ("edges", "tissue")}
    assert len(np.unique(dominant["edges"])) >= 2 and len(np.unique(dominant["tissue"])) >= 3
    (flat, sharp), (_, smooth) = _jumps(maps["edges"]), _jumps(maps["tissue"])
    assert flat < 0.005 and sharp > 0.4 and smooth < 0.25, (flat, sharp, smooth)
    # particles: many small bright objects, each a few pixels at most
    lipid = maps["particles"][names.index("lipids")]
    from scipy import ndimage

    labels, count = ndimage.label(lipid > 0.3)
    sizes = np.bincount(labels.ravel())[1:]
    assert count >= 5 and np.median(sizes) <= 12
    for texture in sim.TEXTURES[1:]:  # seeded, and each a cube like a cell
        np.testing.assert_array_equal(maps[texture], sim.texture_abundances((96, 96), np.random.default_rng(1), texture))
        cube = sim.simulate_cell((32, 32), n_bands=60, seed=rng.integers(100), texture=texture)
        assert cube.clean.shape == (60, 32, 32) and np.all(cube.clean >= 0) and cube.metadata["texture"] == texture
    assert sim.texture_abundances((16, 16), 0, "edges", n_components=2).shape == (2, 16, 16)


def test_simulate_cell_shapes_dtypes_and_ground_truth():
    cube = sim.simulate_cell((24, 20), n_bands=120, photons=200.0, seed=3)
    assert cube.clean.shape == cube.noisy.shape == (120, 24, 20)
    assert cube.clean.dtype == cube.noisy.dtype == np.float32
    assert cube.wavenumbers.shape == (120,)
    assert cube.abundances.shape == (5, 24, 20)
    assert cube.endmembers.shape == (5, 120) and cube.endmembers.dtype == np.float32
    assert cube.names == list(sim.COMPONENTS)
    assert cube.labels.shape == (24, 20)
    np.testing.assert_array_equal(cube.labels, np.argmax(cube.abundances, axis=0))
    assert np.all(cube.clean >= 0)
    assert cube.photons == 200.0 and cube.metadata["seed"] == 3
    assert np.all(np.isfinite(cube.noisy))


def test_simulate_cell_is_a_mixture_with_variation():
    w = sim.wavenumber_axis(200)
    plain = sim.simulate_cell((32, 32), wavenumbers=w, background=False, variation=0.0, seed=1)
    a = plain.abundances.reshape(5, -1)
    mixed = (plain.endmembers.T @ a).reshape(plain.clean.shape)
    np.testing.assert_allclose(plain.clean, mixed, rtol=1e-4, atol=1e-5)
    varied = sim.simulate_cell((32, 32), wavenumbers=w, background=False, variation=1.0, seed=1)
    np.testing.assert_array_equal(varied.abundances, plain.abundances)
    residual = varied.clean - mixed
    assert np.abs(residual).max() > 0.01 * varied.clean.max()  # not exactly low-rank
    assert np.abs(residual).max() < 0.5 * varied.clean.max()  # but close to the mixture
    # singular values beyond the 5 components carry real energy only with variation
    def singular_values(cube):
        flat = cube.reshape(200, -1).astype(np.float64)
        return np.sqrt(np.clip(np.linalg.eigvalsh(flat @ flat.T)[::-1], 0, None))

    s_plain, s_varied = singular_values(plain.clean), singular_values(varied.clean)
    assert s_plain[5] < 1e-4 * s_plain[0] and s_varied[5] > 1e-3 * s_varied[0]


def test_background_adds_smooth_positive_signal():
    w = sim.wavenumber_axis(150)
    without = sim.simulate_cell((16, 16), wavenumbers=w, background=False, seed=2)
    with_bg = sim.simulate_cell((16, 16), wavenumbers=w, background=0.8, seed=2)
    extra = with_bg.clean - without.clean
    assert extra.min() > 0
    assert np.abs(np.diff(extra, 2, axis=0)).max() < 0.01 * extra.max()


def test_seeding_reproduces_and_photons_keep_the_clean_cube():
    a = sim.simulate_cell((16, 16), n_bands=80, seed=7)
    b = sim.simulate_cell((16, 16), n_bands=80, seed=7)
    np.testing.assert_array_equal(a.noisy, b.noisy)
    np.testing.assert_array_equal(a.clean, b.clean)
    c = sim.simulate_cell((16, 16), n_bands=80, seed=8)
    assert not np.array_equal(a.clean, c.clean)
    low = sim.simulate_cell((16, 16), n_bands=80, seed=7, photons=10.0)
    np.testing.assert_array_equal(low.clean, a.clean)
    assert not np.array_equal(low.noisy, a.noisy)


def test_noise_scales_as_one_over_sqrt_photons(rng):
    clean = np.full((100, 40, 40), 0.5, dtype=np.float32)
    clean[0, 0, 0] = 1.0  # the brightest value sets the photon scale
    stds = {}
    for photons in (10.0, 1000.0):
        noisy = sim.add_noise(clean, photons, rng, read_noise=0.0)
        assert noisy.dtype == np.float32 and noisy.shape == clean.shape
        stds[photons] = float((noisy - clean).std())
        # Poisson: variance of counts = mean counts, scaled back by photons
        assert stds[photons] == pytest.approx(np.sqrt(0.5 / photons), rel=0.05)
        assert float(noisy.mean()) == pytest.approx(0.5, rel=0.02)
    assert stds[10.0] / stds[1000.0] == pytest.approx(10.0, rel=0.07)
    # the normal approximation for bright pixels keeps the same statistics
    bright = sim.add_noise(clean, 1e5, rng, read_noise=0.0)
    assert float((bright - clean).std()) == pytest.approx(np.sqrt(0.5 / 1e5), rel=0.05)


def test_read_noise_and_spikes(rng):
    clean = np.full((50, 30, 30), 1.0, dtype=np.float32)
    noisy = sim.add_noise(clean, 1e6, rng, read_noise=100.0)
    # read noise of 100 counts against 1e6 counts: 1e-4 in clean units, plus shot noise 1e-3
    assert float((noisy - clean).std()) == pytest.approx(np.sqrt(1e-6 + 1e-8), rel=0.05)
    spiky = sim.add_noise(clean, 100.0, rng, read_noise=0.0, spikes=0.2)
    jumps = (spiky - clean).max(axis=0)
    hit = jumps > 1.5  # a spike is at least 2x the brightest value
    assert 0.12 < hit.mean() < 0.28
    spectra = sim.add_noise(np.ones((400, 60), np.float32), 100.0, rng, spikes=1.0, band_axis=-1)
    assert np.all(spectra.max(axis=1) > 1.5)


def test_skip_sample_geometry():
    hr = np.arange(3 * 8 * 10, dtype=np.float32).reshape(3, 8, 10)
    for factor in (1, 2, 3, 4):
        lr = sim.skip_sample(hr, factor)
        off = factor // 2
        assert lr.shape == (3, len(range(off, 8, factor)), len(range(off, 10, factor)))
        for i in range(lr.shape[1]):
            for j in range(lr.shape[2]):
                hr_pixel = hr[:, factor * i + off, factor * j + off]
                np.testing.assert_array_equal(lr[:, i, j], hr_pixel)
    lr = sim.skip_sample(hr, 2)
    lr[0, 0, 0] = -1  # a copy, not a view
    assert hr[0, 1, 1] != -1


def test_superres_pair():
    hr, lr_noisy, lr_clean = sim.simulate_superres_pair((20, 24), factor=2, n_bands=60, seed=4)
    assert hr.clean.shape == (60, 20, 24)
    assert lr_noisy.shape == lr_clean.shape == (60, 10, 12)
    np.testing.assert_array_equal(lr_clean, hr.clean[:, 1::2, 1::2])
    np.testing.assert_array_equal(lr_noisy, hr.noisy[:, 1::2, 1::2])
    assert hr.metadata["factor"] == 2
    _, lr4, _ = sim.simulate_superres_pair((20, 24), factor=4, n_bands=60, seed=4)
    assert lr4.shape == (60, 5, 6)


def test_spectra_batch(rng):
    w = sim.wavenumber_axis(500)
    noisy, clean = sim.spectra_batch(2000, w, rng, photons=(5.0, 1000.0))
    assert noisy.shape == clean.shape == (2000, 500)
    assert noisy.dtype == clean.dtype == np.float32
    assert np.all(clean >= 0)
    np.testing.assert_allclose(clean.max(axis=1), 1.0, rtol=1e-5)
    error = (noisy - clean).std(axis=1)
    # photon counts from 5 to 1000: the noise spans about sqrt(200) in level
    assert error.max() / error.min() > 5
    fixed_noisy, fixed_clean = sim.spectra_batch(300, w, np.random.default_rng(1), photons=100.0)
    expected = np.sqrt(fixed_clean / 100.0 + 1.0 / 100.0**2)
    ratio = (fixed_noisy - fixed_clean).std() / np.sqrt(np.mean(expected**2))
    assert ratio == pytest.approx(1.0, rel=0.05)
    again = sim.spectra_batch(300, w, np.random.default_rng(1), photons=100.0)
    np.testing.assert_array_equal(again[0], fixed_noisy)


def test_large_jobs_run_in_reasonable_time():
    """Speed sanity (reported, not asserted as a benchmark): big inputs complete at all."""
    w = sim.wavenumber_axis(500)
    start = time.perf_counter()
    noisy, _ = sim.spectra_batch(10_000, w, np.random.default_rng(0))
    batch_seconds = time.perf_counter() - start
    start = time.perf_counter()
    cube = sim.simulate_cell((128, 128), wavenumbers=w, seed=0)
    cube_seconds = time.perf_counter() - start
    assert noisy.shape == (10_000, 500) and cube.noisy.shape == (500, 128, 128)
    print(f"spectra_batch 1e4 x 500: {batch_seconds:.2f} s; "
          f"simulate_cell 128x128x500: {cube_seconds:.2f} s")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sim.wavenumber_axis(1), "n_bands"),
        (lambda: sim.wavenumber_axis(10, 1800.0, 500.0), "stop must be greater"),
        (lambda: sim.wavenumber_axis(10, jitter=1.5), "jitter"),
        (lambda: sim.wavenumber_axis(10, 500.0, 4000.0, laser_nm=3000.0), "beyond"),
        (lambda: sim.wavenumber_axis(10, laser_nm=-1.0), "laser_nm"),
        (lambda: sim.pseudo_voigt(W, 1000.0, 0.0, 1.0), "fwhms"),
        (lambda: sim.pseudo_voigt(W, 1000.0, 10.0, 1.0, rho=2.0), "rho"),
        (lambda: sim.pseudo_voigt(np.ones((2, 2)), 1000.0, 10.0, 1.0), "1-D"),
        (lambda: sim.component_spectra(W, ["dna"]), "unknown component"),
        (lambda: sim.random_spectra(3, W, 0, n_peaks=(5, 1)), "n_peaks"),
        (lambda: sim.cell_abundances((64,), 0), "shape"),
        (lambda: sim.cell_abundances((64, 64), 0, n_components=9), "n_components"),
        (lambda: sim.simulate_cell((16, 16), n_bands=50, photons=0.0), "photons"),
        (lambda: sim.simulate_cell((16, 16), n_bands=50, photons=-5.0), "photons"),
        (lambda: sim.simulate_cell((16, 16), n_bands=50, spikes=1.5), "spikes"),
        (lambda: sim.simulate_cell((16, 16), n_bands=50, variation=-1.0), "variation"),
        (lambda: sim.simulate_cell((2, 16), n_bands=50), "shape"),
        (lambda: sim.simulate_cell((16, 16), n_bands=50, texture="wood"), "texture must be one of cell, fibres"),
        (lambda: sim.texture_abundances((16, 16), 0, "edges", n_components=6), "n_components"),
        (lambda: sim.add_noise(-np.ones((3, 4, 4)), 10.0, 0), "non-negative"),
        (lambda: sim.add_noise(np.zeros((3, 4, 4)), 10.0, 0), "all zero"),
        (lambda: sim.add_noise(np.ones((3, 4, 4)), 10.0, 0, read_noise=-1.0), "read_noise"),
        (lambda: sim.add_noise(np.full((3, 4, 4), np.nan), 10.0, 0), "NaN"),
        (lambda: sim.skip_sample(np.ones((3, 8, 8)), 0), "factor"),
        (lambda: sim.skip_sample(np.ones((8, 8)), 2), "3-D"),
        (lambda: sim.skip_sample(np.ones((3, 2, 8)), 4), "too small"),
        (lambda: sim.simulate_superres_pair((16, 16), factor=0, n_bands=50), "factor"),
        (lambda: sim.spectra_batch(10, W, 0, photons=(0.0, 10.0)), "photons"),
        (lambda: sim.spectra_batch(0, W, 0), "n must be"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_band_variation_matches_exactly_shifted_and_broadened_bands():
    """The per-pixel interpolation on the shift/width grid stays close to exact evaluation."""
    w = sim.wavenumber_axis(1300)
    names, tables = spectra._band_table(None)
    k = len(names)
    basis = spectra._variation_basis(w, tables, 1.0, np.random.default_rng(0))
    shifts = np.linspace(-4.5, 4.5, 19)
    for width in (-0.15, 0.0, 0.08):
        n = shifts.size
        mixed = spectra._mix(
            basis,
            np.repeat(np.eye(k), n, axis=1),
            np.tile(shifts, (k, k)),
            np.full((k, k * n), width),
            np.zeros((k, basis.n_modes, k * n)),
        )
        for i, table in enumerate(tables):
            exact = sim.pseudo_voigt(
                w, table[:, 0] + shifts[:, None], table[:, 1] * (1 + width), table[:, 2]
            )
            got = mixed[:, i * n : (i + 1) * n].T
            assert np.abs(got - exact).max() < 0.03 * exact.max(), (names[i], width)
