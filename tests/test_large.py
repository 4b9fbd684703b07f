"""Cubes larger than memory: lazy opening, zarr stores, streamed operations (docs/formats.md)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper.io import load_cube, save_cube, save_zarr
from napari_deeper.io._lazy import is_lazy
from napari_deeper.io.layer_writers import write_zarr

zarr = pytest.importorskip("zarr", reason="zarr is a dependency of napari-deeper; install it")


@pytest.fixture(scope="module")
def cell():
    """A small simulated cell cube (float32 (B, Y, X)) and its wavenumbers."""
    sim = nd.simulate.simulate_cell(shape=(40, 40), n_bands=120, seed=3)
    return np.asarray(sim.noisy, dtype=np.float32), np.asarray(sim.wavenumbers, dtype=np.float64)


def test_zarr_round_trip_keeps_axis_and_metadata(tmp_path, cell):
    data, wn = cell
    path = tmp_path / "cell.zarr"
    cube = nd.Cube(data, wn, {"spectral_unit": "1/cm", "title": "THP-1 like", "pixel_size": [0.5, 0.5],
                              "origin": [1.0, 2.0], "space_units": ["µm", "µm"], "space_axes": ["y", "x"]})
    assert save_cube(cube, path) == [str(path)]
    back = load_cube(path)
    assert is_lazy(back.data) and back.metadata["lazy"] is True
    assert back.data.shape == data.shape and back.data.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(back.data), data)
    np.testing.assert_array_equal(back.wavenumbers, wn)
    assert back.metadata["title"] == "THP-1 like" and back.metadata["pixel_size"] == [0.5, 0.5]
    assert back.metadata["format"] == "napari-deeper:zarr" and back.metadata["spectral_unit"] == "1/cm"
    store = zarr.open_group(str(path), mode="r")["data"]
    assert store.shards[0] >= data.shape[0], "a shard holds every band of its pixels"
    assert not list(tmp_path.glob(".*partial*")), "no partial store is left behind"


def test_zarr_open_reads_only_the_chunks_asked_for(tmp_path, cell):
    """Opening a store reads metadata only: shards deleted after writing are not missed at open,
    and a spectrum is read from its own shard alone."""
    data, wn = cell
    path = save_zarr(np.tile(data, (1, 4, 4)), tmp_path / "big.zarr", wn, chunks=(data.shape[0], 32, 32))
    shards = sorted(p for p in (path / "data" / "c").rglob("*") if p.is_file())
    assert len(shards) == 25
    first = path / "data" / "c" / "0" / "0" / "0"
    for shard in shards:
        if shard != first:
            shard.unlink()
    cube = load_cube(path)  # would fail or read NaN everywhere if it scanned the values
    np.testing.assert_array_equal(np.asarray(cube.data[:, 3, 5]), data[:, 3, 5])
    assert np.all(np.isnan(np.asarray(cube.data[:, 100, 100]))), "a missing shard reads as the fill value"


def test_npy_and_hdf5_mat_open_lazily(tmp_path, cell):
    import h5py

    data, wn = cell
    np.save(tmp_path / "c.npy", data)
    np.save(tmp_path / "c_wavenumbers.npy", wn)
    mapped = load_cube(tmp_path / "c.npy", lazy=True)
    assert isinstance(mapped.data, np.memmap) and mapped.metadata["lazy"] is True
    yxb = np.ascontiguousarray(data.transpose(1, 2, 0)).astype(np.float64)
    np.save(tmp_path / "d.npy", yxb)
    lazy = load_cube(tmp_path / "d.npy", lazy=True)
    assert is_lazy(lazy.data) and lazy.data.dtype == np.float32
    np.testing.assert_allclose(np.asarray(lazy.data[7]), data[7], rtol=1e-6)
    with h5py.File(tmp_path / "e.mat", "w") as handle:  # MATLAB v7.3 stores (Y, X, B) as (B, X, Y)
        handle["cube"] = data.transpose(1, 2, 0).T
        handle["wavenumbers"] = wn[None, :].T
    from_mat = load_cube(tmp_path / "e.mat", lazy=True)
    assert is_lazy(from_mat.data) and from_mat.data.shape == data.shape
    np.testing.assert_array_equal(np.asarray(from_mat.data[:, 4, 9]), data[:, 4, 9])
    np.testing.assert_array_equal(from_mat.wavenumbers, wn)
    eager = load_cube(tmp_path / "e.mat")  # below the size threshold: read whole, as before
    assert isinstance(eager.data, np.ndarray) and not isinstance(eager.data, np.memmap)
    with pytest.raises(ValueError, match="lazy must be"):
        load_cube(tmp_path / "e.mat", lazy="yes")


def test_zarr_without_spectral_axis(tmp_path, cell):
    data, _ = cell
    flat = zarr.open_array(str(tmp_path / "map.zarr"), mode="w", shape=(40, 40), dtype="float32")
    flat[:] = data[0]
    with pytest.raises(ValueError, match="has no spectral axis.*2-D array is a map"):
        load_cube(tmp_path / "map.zarr")
    group = zarr.open_group(str(tmp_path / "bare.zarr"), mode="w")
    group.create_array("counts", data=data)
    bare = load_cube(tmp_path / "bare.zarr")
    assert bare.wavenumbers is None and "no spectral axis" in "; ".join(bare.metadata["notes"])
    np.testing.assert_array_equal(np.asarray(bare.data), data)
    with pytest.raises(ValueError, match="not a zarr store"):
        load_cube(tmp_path / "missing.zarr")
    with pytest.raises(ValueError, match="shape= folds"):
        load_cube(tmp_path / "bare.zarr", shape=(40, 40))


def test_layer_writer_writes_maps_and_cubes(tmp_path, cell):
    data, wn = cell
    attributes = {"name": "cell", "metadata": {"wavenumbers": wn, "napari_deeper": {"operation": "load"}},
                  "scale": (1.0, 0.25, 0.25), "translate": (0.0, 3.0, 4.0), "units": ("1/cm", "µm", "µm"),
                  "axis_labels": ("Raman shift", "y", "x")}
    [written] = write_zarr(str(tmp_path / "cube.zarr"), data, attributes)
    back = load_cube(written)
    np.testing.assert_array_equal(back.wavenumbers, wn)
    assert back.metadata["pixel_size"] == [0.25, 0.25] and back.metadata["origin"] == [3.0, 4.0]
    assert back.metadata["layer_record"] == {"operation": "load"}
    [written] = write_zarr(str(tmp_path / "map.zarr"), data[5], {"name": "map", "metadata": {}})
    np.testing.assert_array_equal(zarr.open_group(written, mode="r")["data"][:], data[5])
    from napari_deeper._reader import get_reader

    assert get_reader(str(tmp_path / "cube.zarr")) is not None
    assert get_reader(written) is None, "a map store is left to napari's own reader"


# --- streamed operations ---------------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """Streamed results without ``out=`` land in a folder of the test's own."""
    folder = tmp_path / "scratch"
    monkeypatch.setenv(nd.stream.SCRATCH_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def wide(cell):
    """A cube wider than one 64-pixel tile in both directions, so blocks and margins are crossed."""
    data, wn = cell
    return np.ascontiguousarray(np.tile(data, (1, 2, 4))[:, :75, :133]), wn


@pytest.mark.parametrize(("method", "params"), [("savgol", {"window": 11, "order": 3}), ("whittaker", {"lam": 50.0}),
                                               ("wavelet", {"wavelet": "db4"})])
def test_streamed_denoise_equals_in_memory(scratch, wide, method, params):
    data, wn = wide
    streamed = nd.stream.denoise(data, method, wn, stream=True, **params)
    assert is_lazy(streamed) and len(list(scratch.glob("*.zarr"))) == 1
    np.testing.assert_array_equal(np.asarray(streamed), nd.denoise(data, method, wn, **params))


@pytest.mark.parametrize(("method", "scale"), [("bicubic", 2), ("bicubic", 3), ("bilinear", 2), ("nearest", 2)])
def test_streamed_upscale_equals_in_memory(scratch, wide, method, scale, monkeypatch):
    """Tiles read with a margin: no seams (float32 rounding only); small tiles, so that the
    cube is cut along both axes."""
    monkeypatch.setattr(nd.stream, "UPSCALE_TILE", 32)
    data, _ = wide
    streamed = np.asarray(nd.stream.upscale(data, scale, method, stream=True))
    plain = nd.upscale(data, scale, method)
    assert streamed.shape == plain.shape
    np.testing.assert_allclose(streamed, plain, rtol=0, atol=2e-6 * np.abs(plain).max())


@pytest.mark.parametrize("sum_to_one", [False, True])
def test_streamed_unmixing_and_band_map_equal_in_memory(tmp_path, wide, sum_to_one):
    data, wn = wide
    endmembers, _ = nd.vca(data, 4, seed=0)
    streamed = nd.stream.nnls(data, endmembers, sum_to_one, out=tmp_path / "abundances.zarr", stream=True)
    np.testing.assert_array_equal(np.asarray(streamed), nd.nnls(data, endmembers, sum_to_one))
    assert zarr.open_group(str(tmp_path / "abundances.zarr"), mode="r").attrs["napari_deeper"]["operation"] == "nnls"
    band = nd.stream.band_map(data, wn, 1004.0, 30.0, out=tmp_path / "band.zarr", stream=True)
    np.testing.assert_array_equal(np.asarray(band), nd.band_map(data, wn, 1004.0, 30.0))


def test_lazy_input_streams_by_the_rule(tmp_path, scratch, cell):
    data, wn = cell
    cube = load_cube(save_zarr(data, tmp_path / "in.zarr", wn))
    assert nd.stream.should_stream(cube.data, cube.data.shape)
    assert not nd.stream.should_stream(data, data.shape)
    result = nd.stream.denoise(cube.data, "savgol", cube.wavenumbers, window=9)
    assert is_lazy(result)
    np.testing.assert_array_equal(np.asarray(result), nd.denoise(data, "savgol", wn, window=9))
    in_memory = nd.stream.denoise(data, "savgol", wn, window=9)
    assert isinstance(in_memory, np.ndarray) and len(list(scratch.glob("*.zarr"))) == 1  # the lazy run's store only
    with pytest.raises(ValueError, match="unknown super-resolution method 'lanczos'"):
        nd.stream.upscale(cube.data, 2, "lanczos")


def test_cancel_removes_the_partial_store(tmp_path, wide):
    data, wn = wide
    out = tmp_path / "cancelled.zarr"
    steps = nd.stream.denoise_steps(data, "savgol", wn, out=out, stream=True, window=7)
    seen = [next(steps) for _ in range(4)]
    assert seen[-1].done > 0 and list(tmp_path.glob(".cancelled.zarr.partial-*"))
    steps.close()  # what the dock's Cancel does: the worker stops at the next yield
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_full_disk_gives_a_clear_error_and_no_store(tmp_path, wide, monkeypatch):
    """ENOSPC from the store's writes, after the first block went through."""
    import errno

    data, wn = wide
    original = zarr.Array.__setitem__
    calls = []

    def filling_up(self, where, value):
        calls.append(where)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, where, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", filling_up)
    out = tmp_path / "full.zarr"
    with pytest.raises(ValueError, match="disk filled up while writing full.zarr.*partial store was removed"):
        nd.stream.denoise(data, "savgol", wn, out=out, stream=True)
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
    with pytest.raises(ValueError, match="disk filled up"):
        save_zarr(data, tmp_path / "export.zarr", wn, chunks=(data.shape[0], 16, 16))
    assert not list(tmp_path.iterdir())


def test_too_little_free_space_is_refused_before_the_start(tmp_path, wide, monkeypatch):
    import shutil
    from collections import namedtuple

    data, wn = wide
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 20, 9 << 20, 1 << 20))
    with pytest.raises(ValueError, match=r"not enough disk space for up\.zarr: it needs 0\.\d\d GiB .* 0\.00 GiB free"):
        nd.stream.upscale(data, 2, out=tmp_path / "up.zarr", stream=True)
    assert not list(tmp_path.iterdir())


def test_automatic_rule_opens_and_streams_above_a_quarter_of_the_ram(tmp_path, scratch, cell, monkeypatch):
    """``lazy=None`` and ``stream=None`` follow the size threshold (made small here)."""
    from napari_deeper.io import _lazy

    data, wn = cell
    np.save(tmp_path / "c.npy", np.ascontiguousarray(data.transpose(1, 2, 0)))
    np.save(tmp_path / "c_wavenumbers.npy", wn)
    assert _lazy.lazy_threshold() == _lazy.physical_memory() // 4
    assert isinstance(load_cube(tmp_path / "c.npy").data, np.ndarray)
    monkeypatch.setattr(_lazy, "lazy_threshold", lambda: data.nbytes - 1)
    monkeypatch.setattr(nd.stream, "lazy_threshold", lambda: data.nbytes - 1)
    assert is_lazy(load_cube(tmp_path / "c.npy").data)
    assert nd.stream.should_stream(data, data.shape) and not nd.stream.should_stream(data, data[:1].shape)
    assert is_lazy(nd.stream.denoise(data, "whittaker", wn))
    with pytest.raises(ValueError, match="stream must be"):
        nd.stream.should_stream(data, data.shape, stream="auto")


def test_band_maps_of_a_lazy_cube(tmp_path, cell):
    """The Peak heatmap dock's own path (``band_map`` on the layer's data) works on a lazy store
    as it is, reading the window's bands chunk by chunk: the same map as in memory."""
    data, wn = cell
    cube = load_cube(save_zarr(data, tmp_path / "cube.zarr", wn))
    for mode in ("area", "height"):
        np.testing.assert_array_equal(nd.band_map(cube.data, cube.wavenumbers, 1004.0, 20.0, mode=mode),
                                      nd.band_map(data, wn, 1004.0, 20.0, mode=mode))


# --- streamed preprocessing ------------------------------------------------------------------


@pytest.fixture(scope="module")
def spiky(wide):
    """75 x 129 pixels, cut by ``BLOCK_BYTES = 1`` into 2 x 3 blocks (rows 0-63 / 64-74, columns
    0-63 / 64-127 / 128, one column wide), with cosmic rays on the blocks' edges and corners, and a
    flat patch whose faint bump is a spike to its own block's noise floor, not to the whole cube's
    (a value 10 times the block's largest elsewhere)."""
    data, wn = wide
    data = data[:, :, :129].copy()
    height = np.float32(0.5 * np.abs(data).max())
    for band, y, x in [(30, 63, 63), (31, 63, 63), (60, 64, 64), (45, 63, 127), (80, 64, 128), (20, 0, 0),
                       (90, 74, 128), (100, 63, 20), (50, 64, 100), (70, 30, 64)]:
        data[band, y, x] += height
    data[:, 68:73, 10:20] = np.float32(np.median(data))
    block = np.abs(data[:, 63:, :65]).max()  # the haloed read of the block (rows 64-74, columns 0-63)
    data[60, 70, 15] += np.float32(24e-6 * block)  # 24 noise floors of the block, 2.4 of the cube
    data[5, 10, 100] = np.float32(10 * block)
    return data, wn


def test_streamed_preprocess_equals_in_memory(tmp_path, scratch, spiky, monkeypatch):
    """A zarr cube of 16 x 16 chunks in 6 blocks: bit for bit the in-memory result, the counts of
    replaced values summed over blocks; progress per block; the store records the operation."""
    from napari_deeper.compute import run
    from napari_deeper.spectral import find_spikes, preprocess_steps

    monkeypatch.setattr(nd.stream, "BLOCK_BYTES", 1)
    data, wn = spiky
    flat_patch = data[:, 63:, :65]
    assert find_spikes(flat_patch, 8.0)[0][60, 7, 15], "a spike to the block's own noise floor"
    assert not find_spikes(flat_patch, 8.0, peak=float(np.abs(data).max()))[0][60, 7, 15]
    cube = load_cube(save_zarr(data, tmp_path / "spiky.zarr", wn, chunks=(data.shape[0], 16, 16)))
    for params in [{"despike": 8.0, "baseline": 3}, {"crop": (600.0, 1700.0), "despike": 6.0, "normalise": "area"},
                   {"despike": 8.0, "normalise": "max"}, {"fill": 0.0, "normalise": "vector"},
                   {"normalise": "minmax"}]:
        plain = run(preprocess_steps(data, wn, **params))
        reports = []
        streamed = run(nd.stream.preprocess_steps(cube.data, cube.wavenumbers, **params), reports.append)
        assert is_lazy(streamed.data), params
        np.testing.assert_array_equal(np.asarray(streamed.data), plain.data, err_msg=str(params))
        assert streamed.steps == plain.steps, params
        np.testing.assert_array_equal(streamed.wavenumbers, plain.wavenumbers)
        done = [report.done for report in reports]
        assert done == sorted(done) and reports[-1].fraction == 1.0 and len(set(done)) > 6, params
    spikes = run(preprocess_steps(data, wn, despike=8.0)).steps[0]["replaced"]
    assert spikes >= 10, "every cosmic ray is found (and the wings of some)"
    stores = sorted(scratch.glob("preprocess-*.zarr"))
    assert len(stores) == 5
    record = zarr.open_group(str(stores[0]), mode="r").attrs["napari_deeper"]
    assert record["operation"] == "preprocess" and set(record["params"]) >= {"crop", "despike", "baseline"}


def test_streamed_preprocess_nonfinite_and_refusals(tmp_path, scratch, spiky, monkeypatch):
    """NaN / Inf: filled and counted as in memory, passed through by a crop alone, refused
    otherwise (with no store left); the per-cube normalisations do not stream."""
    from napari_deeper.compute import run
    from napari_deeper.spectral import preprocess_steps

    monkeypatch.setattr(nd.stream, "BLOCK_BYTES", 1)
    data, wn = spiky
    data = data.copy()
    data[7, 63, 64], data[:3, 74, 128], data[50, 0, 0] = np.nan, np.inf, -np.inf
    cube = load_cube(save_zarr(data, tmp_path / "holes.zarr", wn, chunks=(data.shape[0], 32, 32)))
    streamed = nd.stream.preprocess(cube.data, wn, fill=0.0, despike=8.0)
    expected = run(preprocess_steps(data, wn, fill=0.0, despike=8.0))
    np.testing.assert_array_equal(np.asarray(streamed.data), expected.data)
    assert streamed.steps == expected.steps and streamed.steps[0]["replaced"] == 5
    cropped = nd.stream.preprocess(cube.data, wn, crop=(500.0, 1500.0))
    np.testing.assert_array_equal(np.asarray(cropped.data), run(preprocess_steps(data, wn, crop=(500.0, 1500.0))).data)
    assert np.count_nonzero(~np.isfinite(np.asarray(cropped.data))) == 5
    for params in [{"despike": 8.0}, {"baseline": 3}, {}]:
        with pytest.raises(ValueError, match=r"data \(rows \d+-\d+, columns \d+-\d+\) contains \d NaN and \d Inf values"):
            nd.stream.preprocess(cube.data, wn, **params)
    with pytest.raises(ValueError, match="'cube-max'.*cannot stream.*max, minmax, vector, area"):
        nd.stream.preprocess(cube.data, wn, fill=0.0, normalise="cube-max")
    assert len(list(scratch.iterdir())) == 2, "the two complete runs' stores only"
    in_memory = nd.stream.preprocess(expected.data, wn, normalise="cube-minmax")
    assert isinstance(in_memory.data, np.ndarray), "a cube in memory is preprocessed in memory"


def test_cancelled_streamed_preprocess_removes_the_partial_store(tmp_path, spiky, monkeypatch):
    monkeypatch.setattr(nd.stream, "BLOCK_BYTES", 1)
    data, wn = spiky
    out = tmp_path / "cancelled.zarr"
    steps = nd.stream.preprocess_steps(data, wn, despike=8.0, baseline=3, out=out, stream=True)
    seen = [next(steps) for _ in range(20)]
    assert seen[-1].fraction > 0.1 and list(tmp_path.glob(".cancelled.zarr.partial-*"))
    steps.close()
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
