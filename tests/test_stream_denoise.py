"""Denoisers fitted on the whole cube, streamed: the default (hybrid), PCA, n2s, ``auto``
parameters, ``stabilise`` and the per-spectrum networks read a lazy cube block by block and write
their result into a zarr store."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper.compute import run
from napari_deeper.denoise import classical
from napari_deeper.io import load_cube, save_zarr
from napari_deeper.io._lazy import is_lazy

zarr = pytest.importorskip("zarr", reason="zarr is a dependency of napari-deeper; install it")

#: Pixels per block in these tests: 70 x 90 pixels make 9 blocks, each 7.8 rows long, so blocks
#: straddle the 64-row tiles the store is written by and the rows the lazy reader reads.
BLOCK = 700


@pytest.fixture(scope="module")
def cell():
    sim = nd.simulate.simulate_cell((70, 90), n_bands=80, photons=40, seed=2)
    return np.asarray(sim.noisy, dtype=np.float32), np.asarray(sim.wavenumbers)


@pytest.fixture
def small_blocks(monkeypatch):
    """Both runs split the pixels into blocks of :data:`BLOCK` (the in-memory one too, so the
    sums over blocks are taken in the same order)."""
    monkeypatch.setattr(classical, "chunk_size", lambda *args, **kwargs: BLOCK)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    folder = tmp_path / "scratch"
    monkeypatch.setenv(nd.stream.SCRATCH_ENV, str(folder))
    return folder


@pytest.mark.parametrize("params", [{}, {"rank_rule": "bcv"}, {"whiten": "vst"}, {"auto": False}],
                         ids=["default", "bcv", "vst", "fixed"])
def test_streamed_hybrid_equals_the_in_memory_run_exactly(tmp_path, cell, small_blocks, params):
    data, wn = cell
    cube = load_cube(save_zarr(data, tmp_path / "in.zarr", wn))
    out = tmp_path / "clean.zarr"
    streamed = nd.stream.denoise(cube.data, "hybrid", cube.wavenumbers, out=out, **params)
    assert is_lazy(streamed) and streamed.shape == data.shape
    # The same blocks, the same arithmetic: equal to the bit, not only to float32 rounding.
    np.testing.assert_array_equal(np.asarray(streamed), nd.denoise(data, "hybrid", wn, **params))
    record = zarr.open_group(str(out), mode="r").attrs["napari_deeper"]
    assert record["operation"] == "denoise" and record["method"] == "hybrid"
    assert record["params"]["auto"] is params.get("auto", True)


def test_lazy_blocks_smaller_than_in_memory_ones_agree_to_float32_rounding(tmp_path):
    """500 bands of 136 x 128 pixels: one block in memory, two lazy blocks (at most
    LAZY_BLOCK_BYTES of input each), so the sums are taken in another order."""
    sim = nd.simulate.simulate_cell((136, 128), n_bands=500, photons=60, seed=4)
    data = np.asarray(sim.noisy, dtype=np.float32)
    cube = load_cube(save_zarr(data, tmp_path / "in.zarr", sim.wavenumbers))
    assert len(classical.pixel_blocks(cube.data, 48.0)[1]) == 2 and len(classical.pixel_blocks(data, 48.0)[1]) == 1
    streamed = np.asarray(nd.stream.denoise(cube.data, wavenumbers=sim.wavenumbers, out=tmp_path / "clean.zarr"))
    plain = nd.denoise(data, wavenumbers=sim.wavenumbers)
    np.testing.assert_allclose(streamed, plain, rtol=0, atol=1e-5 * np.abs(plain).max())


def test_default_method_streams_for_a_lazy_input_by_the_rule(tmp_path, cell, scratch):
    """``stream.denoise(cube)`` runs the default denoiser, as ``nd.denoise(cube)`` does; a lazy
    input streams into the scratch folder, a cube in memory stays in memory."""
    data, wn = cell
    cube = load_cube(save_zarr(data, tmp_path / "in.zarr", wn))
    plain = nd.denoise(data, wavenumbers=wn)
    streamed = nd.stream.denoise(cube.data, wavenumbers=cube.wavenumbers)
    assert is_lazy(streamed) and [p.name[:15] for p in scratch.glob("*.zarr")] == ["denoise-hybrid-"]
    np.testing.assert_array_equal(np.asarray(streamed), plain)
    in_memory = nd.stream.denoise(data, wavenumbers=wn)
    assert isinstance(in_memory, np.ndarray) and len(list(scratch.glob("*.zarr"))) == 1
    np.testing.assert_array_equal(in_memory, plain)


def test_memory_mapped_input_streams_when_forced(tmp_path, cell, small_blocks):
    """A memory map (not lazy, so streamed only when asked or when the result is large) is read
    through its pages block by block and gives the same result."""
    data, wn = cell
    np.save(tmp_path / "cube.npy", data)
    mapped = np.load(tmp_path / "cube.npy", mmap_mode="r")
    streamed = nd.stream.denoise(mapped, wavenumbers=wn, out=tmp_path / "clean.zarr", stream=True)
    assert is_lazy(streamed)
    np.testing.assert_array_equal(np.asarray(streamed), nd.denoise(data, wavenumbers=wn))


def test_progress_is_reported_and_cancel_removes_the_partial_store(tmp_path, cell, small_blocks):
    data, wn = cell
    cube = load_cube(save_zarr(data, tmp_path / "in.zarr", wn))
    out = tmp_path / "cancelled.zarr"
    steps = nd.stream.denoise_steps(cube.data, wavenumbers=cube.wavenumbers, out=out)
    seen = [next(steps) for _ in range(12)]
    assert all(p.message.startswith("hybrid (streamed)") for p in seen)
    assert [p.done for p in seen] == sorted(p.done for p in seen) and 0 < seen[-1].done < seen[-1].total
    assert list(tmp_path.glob(".cancelled.zarr.partial-*")), "the store is being written in its hidden folder"
    steps.close()  # the dock's Cancel: the run stops at its next report
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))

    done = nd.stream.denoise_steps(cube.data, wavenumbers=cube.wavenumbers, out=out)
    reports = []
    try:
        while True:
            reports.append(next(done))
    except StopIteration as stop:
        result = stop.value
    assert reports[-1].done == reports[-1].total and "reconstructing" in reports[-2].message
    assert any("components" in p.message for p in reports) and is_lazy(result) and out.exists()


def test_score_variances_wait_on_disk_and_are_removed_after(tmp_path, cell, small_blocks):
    """The component images' noise variances go to a folder beside the partial store during the
    score pass (not memory), and nothing of it is left once the run is done."""
    data, wn = cell
    cube = load_cube(save_zarr(data, tmp_path / "in.zarr", wn))
    out = tmp_path / "clean.zarr"
    steps = nd.stream.denoise_steps(cube.data, wavenumbers=cube.wavenumbers, out=out)
    progress = next(steps)
    while "components" not in progress.message:
        progress = next(steps)
    (folder,) = tmp_path.glob(".clean.zarr.partial-*.spill")
    variances = zarr.open_group(str(folder), mode="r")["0"]
    assert variances.shape[1] == 70 * 90 and variances.chunks == (1, BLOCK) and variances.dtype == np.float32
    try:
        while True:
            next(steps)
    except StopIteration as stop:
        result = stop.value
    assert not list(tmp_path.glob(".*")), "neither the partial store nor the spilled variances are left"
    np.testing.assert_array_equal(np.asarray(result), nd.denoise(data, wavenumbers=wn))


def test_nonfinite_values_in_a_lazy_cube_are_refused_and_leave_no_store(tmp_path, cell, scratch):
    data, wn = cell
    holed = data.copy()
    holed[5, 35, 80] = np.nan  # between the noise estimate's two strips (rows 0-31, 38-69): found by the passes
    cube = load_cube(save_zarr(holed, tmp_path / "in.zarr", wn))
    with pytest.raises(ValueError, match="1 NaN"):
        nd.stream.denoise(cube.data, wavenumbers=cube.wavenumbers)
    assert not list(scratch.glob("*")), "no store, complete or partial, is left"


@pytest.mark.parametrize("shape", [(60, 40, 50), (60, 1, 300)], ids=["image", "line"])
def test_noise_model_taken_a_few_bands_at_a_time_is_the_same(monkeypatch, shape):
    """The residuals of a strip are taken a few bands at a time (memory), to the same model."""
    from napari_deeper.denoise import noise

    sim = nd.simulate.simulate_cell((max(4, shape[1]), shape[2]), n_bands=shape[0], photons=30, seed=5)
    data = np.asarray(sim.noisy, dtype=np.float32)[:, : shape[1]]
    whole = noise.estimate_noise(data, max_values=50_000)
    monkeypatch.setattr(noise, "PAIR_VALUES", 1)  # one band of output at a time
    assert noise.estimate_noise(data, max_values=50_000) == whole


# --- PCA, calibrated and stabilised methods, networks ----------------------------------------


@pytest.fixture
def lazy(tmp_path, cell):
    data, wn = cell
    return load_cube(save_zarr(data, tmp_path / "in.zarr", wn))


@pytest.mark.parametrize("params", [{"n_components": 6}, {}, {"rank_rule": "bcv"}, {"stabilise": "on"}],
                         ids=["fixed", "gavish-donoho", "bcv", "stabilised"])
def test_streamed_pca_equals_the_in_memory_run_exactly(tmp_path, cell, lazy, small_blocks, params):
    data, wn = cell
    out = tmp_path / "pca.zarr"
    streamed = nd.stream.denoise(lazy.data, "pca", lazy.wavenumbers, out=out, **params)
    assert is_lazy(streamed) and streamed.shape == data.shape
    plain = nd.denoise(data, "pca", wn, **params)
    np.testing.assert_array_equal(np.asarray(streamed), plain)
    assert np.abs(plain - data).mean() > 0.05 * np.abs(data).mean(), "PCA changed the cube"
    record = zarr.open_group(str(out), mode="r").attrs["napari_deeper"]
    assert record["method"] == "pca" and record["params"]["stabilise"] == params.get("stabilise", "off")


@pytest.mark.parametrize(("method", "params"), [
    ("savgol", {"auto": True}),
    ("whittaker", {"auto": True, "stabilise": "on"}),
    ("wavelet", {"auto": True, "stabilise": "auto"}),
    ("savgol", {"window": 9, "stabilise": "on"}),
])
def test_streamed_calibration_and_stabilisation_equal_the_in_memory_run(scratch, cell, lazy, method, params):
    """The noise model and the calibrated parameters come from the lazy cube (its strips and
    sampled spectra), then every block is denoised with them: the in-memory result exactly."""
    data, wn = cell
    steps = nd.stream.denoise_steps(lazy.data, method, lazy.wavenumbers, **params)
    messages = []
    try:
        while True:
            messages.append(next(steps).message)
    except StopIteration as stop:
        streamed = stop.value
    assert is_lazy(streamed) and len(list(scratch.glob(f"denoise-{method}-*.zarr"))) == 1
    np.testing.assert_array_equal(np.asarray(streamed), nd.denoise(data, method, wn, **params))
    if params.get("auto"):
        assert any(m.startswith(f"{method}: ") and "calibrating" not in m for m in messages), messages


def test_stabilised_pca_of_a_cube_in_memory_streams_without_transforming_it_whole(tmp_path, cell, small_blocks):
    """``stream=True`` on a NumPy cube: the transform is applied to the blocks as they are read."""
    data, wn = cell
    streamed = nd.stream.denoise(data, "pca", wn, out=tmp_path / "pca.zarr", stream=True, stabilise="on",
                                 n_components=5)
    np.testing.assert_array_equal(np.asarray(streamed), nd.denoise(data, "pca", wn, stabilise="on", n_components=5))


def test_a_per_spectrum_network_streams(scratch, cell, lazy):
    pytest.importorskip("torch", reason="the networks need torch (a dependency of napari-deeper)")
    data, wn = cell
    streamed = nd.stream.denoise(lazy.data, "resunet", lazy.wavenumbers, adapt="off")
    plain = nd.denoise(data, "resunet", wn, adapt="off")
    assert is_lazy(streamed)
    np.testing.assert_allclose(np.asarray(streamed), plain, rtol=0, atol=1e-6 * np.abs(plain).max())


def test_an_adapting_network_streams_and_equals_the_in_memory_run(tmp_path, cell, lazy, small_blocks):
    """Adapted once to the whole lazy cube (a fixed number of steps: the time budget otherwise
    decides how many), then written block by block: the in-memory result, to float32 rounding."""
    pytest.importorskip("torch", reason="the networks need torch (a dependency of napari-deeper)")
    data, wn = cell
    params = {"steps": 3, "device": "cpu"}
    reports = []
    streamed = run(nd.stream.denoise_steps(lazy.data, "aunet", lazy.wavenumbers, out=tmp_path / "aunet.zarr",
                                           **params), reports.append)
    plain = nd.denoise(data, "aunet", wn, **params)
    assert is_lazy(streamed) and any("adapting on" in p.message for p in reports)
    np.testing.assert_allclose(np.asarray(streamed), plain, rtol=0, atol=1e-4 * np.abs(plain).max())


def test_streamed_n2s_equals_the_in_memory_run_exactly(tmp_path, cell, lazy, small_blocks):
    """The self-supervised denoiser on a lazy cube: the same blocks, a fixed number of training
    steps (the time budget otherwise decides how many), the same result to the bit."""
    pytest.importorskip("torch", reason="n2s trains a network with torch (a dependency of napari-deeper)")
    data, wn = cell
    params = {"steps": 3, "device": "cpu"}
    streamed = nd.stream.denoise(lazy.data, "n2s", lazy.wavenumbers, out=tmp_path / "n2s.zarr", **params)
    plain = nd.denoise(data, "n2s", wn, **params)
    assert is_lazy(streamed)
    np.testing.assert_array_equal(np.asarray(streamed), plain)
    assert np.abs(plain - data).mean() > 0.05 * np.abs(data).mean(), "n2s changed the cube"
    bad = np.array(data)
    bad[3, 10, 10] = np.nan
    nan_cube = load_cube(save_zarr(bad, tmp_path / "nan.zarr", wn))
    with pytest.raises(ValueError, match="NaN or Inf"):
        nd.stream.denoise(nan_cube.data, "n2s", wn, out=tmp_path / "none.zarr", **params)
    assert not (tmp_path / "none.zarr").exists()


def test_cancelled_pca_removes_its_partial_store(tmp_path, lazy, small_blocks):
    out = tmp_path / "pca.zarr"
    steps = nd.stream.denoise_steps(lazy.data, "pca", lazy.wavenumbers, out=out, n_components=4)
    for _ in range(12):
        next(steps)
    assert list(tmp_path.glob(".pca.zarr.partial-*"))
    steps.close()
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
