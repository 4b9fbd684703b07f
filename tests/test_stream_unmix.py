"""VCA and the unmixing pipeline on lazy cubes (zarr stores): read block by block, never whole,
with the results of the same cubes in memory."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper import compute
from napari_deeper.io import _lazy as lazy_io
from napari_deeper.io import load_cube, save_zarr
from napari_deeper.io._lazy import is_lazy
from napari_deeper.unmix import endmembers as vca_module
from napari_deeper.unmix import estimate_n_endmembers, unmix, unmix_steps
from napari_deeper.unmix.spikes import spike_like_endmembers

pytest.importorskip("zarr", reason="zarr is a dependency of napari-deeper; install it")


@pytest.fixture(scope="module")
def cell():
    """A simulated cell, 45 x 50 pixels of 100 bands, with a cosmic ray in pixel (5, 7)."""
    sim = nd.simulate.simulate_cell((45, 50), n_bands=100, photons=200, seed=1)
    data = np.asarray(sim.noisy, dtype=np.float32)
    data[60:62, 5, 7] += 50 * data.max()
    return data, sim.wavenumbers


def stored(data, folder, name="cube"):
    """``data`` as a lazy cube over a zarr store of 16 x 16 pixel chunks (several blocks each way)."""
    store = save_zarr(data, folder / f"{name}.zarr", chunks=(data.shape[0], 16, 16))
    lazy = load_cube(store).data
    assert is_lazy(lazy) and len(lazy.chunks[1]) > 1 and len(lazy.chunks[2]) > 1
    return lazy


@pytest.fixture
def lazy(cell, tmp_path):
    return stored(cell[0], tmp_path)


@pytest.fixture
def no_whole_reads(monkeypatch):
    """Fail the test if any dask array of ``shape`` or more is computed or turned into NumPy whole."""
    import dask.array as da

    watched = {}
    compute_, array_ = da.Array.compute, da.Array.__array__

    def check(array):
        if "shape" in watched and array.ndim == 3 and array.size >= np.prod(watched["shape"]):
            raise AssertionError(f"the whole lazy cube {array.shape} was read at once")

    def guarded_compute(self, *args, **kwargs):
        check(self)
        return compute_(self, *args, **kwargs)

    def guarded_array(self, *args, **kwargs):
        check(self)
        return array_(self, *args, **kwargs)

    monkeypatch.setattr(da.Array, "compute", guarded_compute)
    monkeypatch.setattr(da.Array, "__array__", guarded_array)
    return lambda shape: watched.update(shape=tuple(shape))


@pytest.fixture
def small_passes(monkeypatch):
    """Passes of 300 pixels and a sample of 512, so that the 2250-pixel cube takes several of each."""
    monkeypatch.setattr(vca_module, "PASS_CHUNK", 300)
    monkeypatch.setattr(vca_module, "SKETCH_PIXELS", 512)


@pytest.mark.parametrize("subspace", ["full matrix", "randomized"])
@pytest.mark.parametrize("masked", [False, True])
def test_vca_of_a_lazy_cube_equals_the_cube_in_memory(cell, lazy, subspace, masked, monkeypatch, small_passes,
                                                      no_whole_reads):
    data, _ = cell
    if subspace == "randomized":
        monkeypatch.setattr(vca_module, "FULL_MATRIX_WORK", 0)
    paths = []
    for name in ("_full_subspace", "_sample_blocks"):
        original = getattr(vca_module, name)
        monkeypatch.setattr(vca_module, name, lambda *a, _f=original, _n=name: paths.append(_n) or _f(*a))
    mask = None
    if masked:  # a scattered mask: its pieces of 300 pixels span several rows of chunks
        mask = np.random.default_rng(4).random(data.shape[1:]) < 0.6
        mask[5, 7] = False  # leaves out the cosmic ray
    expected = nd.vca(data, 5, seed=3, mask=mask)
    no_whole_reads(data.shape)
    reports = []
    found = compute.run(vca_module.vca_steps(lazy, 5, seed=3, mask=mask), reports.append)
    assert paths == (["_full_subspace"] * 2 if subspace == "full matrix" else ["_sample_blocks"] * 2)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])
    assert found[0].dtype == np.float32 and np.abs(found[0]).max() > 0
    if masked:
        assert mask.ravel()[found[1]].all()
    else:
        assert np.ravel_multi_index((5, 7), data.shape[1:]) in found[1], "the cosmic ray is the most extreme pixel"
    fractions = [report.fraction for report in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(reports) >= 5


def test_vca_of_a_large_lazy_cube_takes_the_randomized_path(tmp_path, no_whole_reads):
    """Without any setting changed: 192 x 256 pixels of 300 bands are past FULL_MATRIX_WORK."""
    sim = nd.simulate.simulate_cell((64, 64), n_bands=300, photons=100, seed=2)
    data = np.tile(np.asarray(sim.noisy, dtype=np.float32), (1, 3, 4))
    assert 300.0**2 * data[0].size > vca_module.FULL_MATRIX_WORK
    lazy = load_cube(save_zarr(data, tmp_path / "big.zarr")).data
    expected = nd.vca(data, 6, seed=0)
    no_whole_reads(data.shape)
    found = nd.vca(lazy, 6, seed=0)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])


@pytest.mark.parametrize("subspace", ["full matrix", "randomized"])
def test_nan_in_a_lazy_cube_is_refused_as_in_memory(cell, tmp_path, subspace, monkeypatch, small_passes):
    if subspace == "randomized":
        monkeypatch.setattr(vca_module, "FULL_MATRIX_WORK", 0)
    holes = cell[0].copy()
    holes[3, 30, 40] = np.nan
    lazy = stored(holes, tmp_path, "holes")
    with pytest.raises(ValueError, match="data contains 1 NaN and 0 Inf values") as in_memory:
        nd.vca(holes, 4)
    with pytest.raises(ValueError, match="data contains 1 NaN and 0 Inf values") as read_lazily:
        nd.vca(lazy, 4)
    assert "replace them first" in str(in_memory.value) and "replace them first" in str(read_lazily.value)
    with pytest.raises(ValueError, match="must be a 3-D"):
        nd.vca(lazy[0], 3)
    with pytest.raises(ValueError, match="must not exceed the number of bands"):
        nd.vca(lazy[:4], 5)


@pytest.mark.parametrize("sum_to_one", [False, True])
def test_abundances_of_a_lazy_cube_are_solved_block_by_block(cell, lazy, sum_to_one, monkeypatch, no_whole_reads):
    data, _ = cell
    monkeypatch.setattr(lazy_io, "LAZY_BLOCK_BYTES", 4 * data.shape[0] * 256)  # 256-pixel blocks: 9 of them
    endmembers, _ = nd.vca(data, 4, seed=0)
    expected = nd.nnls(data, endmembers, sum_to_one, device="cpu", return_residual=True)
    no_whole_reads(data.shape)
    reports = []
    found = compute.run(nd.unmix.nnls_steps(lazy, endmembers, sum_to_one, "cpu", return_residual=True),
                        reports.append)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])
    assert found[0].shape == (4, 45, 50) and found[1].shape == (45, 50) and found[1].max() > 0
    done = [report.done for report in reports]
    assert done == sorted(done) and done[-1] == 45 * 50 and len(reports) >= 9


def test_unmix_pipeline_on_lazy_source_and_targets_equals_in_memory(cell, lazy, tmp_path, no_whole_reads):
    data, _ = cell
    binned = np.ascontiguousarray(data[:, :44:2, ::2] + data[:, 1::2, 1::2])  # another target, another size
    mask = np.ones(data.shape[1:], bool)
    mask[:, :3] = False
    options = {"n_endmembers": 5, "seed": 1, "mask": mask, "sum_to_one": True, "device": "cpu"}
    expected = unmix(data, {"raw": data, "binned": binned}, **options)
    lazy_binned = stored(binned, tmp_path, "binned")
    no_whole_reads(binned.shape)  # (the smaller cube: neither is read whole)
    found = unmix(lazy, {"raw": lazy, "binned": lazy_binned}, **options)
    np.testing.assert_array_equal(found.endmembers, expected.endmembers)
    np.testing.assert_array_equal(found.pixel_indices, expected.pixel_indices)
    assert found.spike_like == expected.spike_like and [s["band"] for s in found.spike_like] in ([60], [61])
    for name in ("raw", "binned"):
        for kind in ("abundances", "residual", "labels"):
            np.testing.assert_array_equal(getattr(found.targets[name], kind), getattr(expected.targets[name], kind))
    assert found.targets["binned"].abundances.shape == (5, 22, 25)
    assert found.params == expected.params


def test_unmix_pipeline_refuses_before_any_work(cell, lazy):
    data, _ = cell

    def first_step(*args, **kwargs):
        return next(unmix_steps(*args, **kwargs))

    with pytest.raises(ValueError, match="source 'scan' is a lazy cube .* use napari_deeper.stream.unmix_steps"):
        first_step(lazy, {"raw": lazy}, n_endmembers=3, source_name="scan", despike=8.0)
    with pytest.raises(ValueError, match="target 'short' has 99 bands"):  # (the streamed spike removal's checks)
        first_step_streamed = nd.stream.unmix_steps(lazy, {"raw": data, "short": lazy[:-1]}, 3, despike=8.0)
        next(first_step_streamed)
    with pytest.raises(ValueError, match="target 'short' has 99 bands but the source has 100"):
        first_step(data, {"raw": data, "short": lazy[:-1]}, n_endmembers=3)
    with pytest.raises(ValueError, match="target 'flat' must be a 3-D"):
        first_step(lazy, {"flat": lazy[0]}, n_endmembers=3)
    despiked = unmix(data, {"raw": lazy}, n_endmembers=5, despike=8.0, device="cpu")  # a source in memory
    assert despiked.spikes_removed >= 2 and despiked.spike_like == []


def test_spike_like_endmembers_read_only_the_chosen_pixels_neighbours(cell, lazy, no_whole_reads):
    data, _ = cell
    endmembers, pixels = nd.vca(data, 5, seed=0)
    expected = spike_like_endmembers(endmembers, data, pixels)
    assert [s["band"] for s in expected] in ([60], [61])
    no_whole_reads((data.shape[0], 3, 4))  # nothing larger than a 3 x 3 window
    assert spike_like_endmembers(endmembers, lazy, pixels) == expected


@pytest.mark.parametrize("method", ["variance", "hysime"])
def test_endmember_count_of_a_lazy_cube_reads_its_sample(cell, lazy, method, no_whole_reads):
    data, _ = cell
    expected = [estimate_n_endmembers(data, method, max_pixels=m, seed=2) for m in (500, 5000)]
    no_whole_reads(data.shape)
    assert [estimate_n_endmembers(lazy, method, max_pixels=m, seed=2) for m in (500, 5000)] == expected


def test_spike_removal_of_a_lazy_source_streams_into_a_scratch_store(cell, lazy, tmp_path, monkeypatch):
    """``stream.unmix_steps`` despikes the lazy source block by block into a scratch store, runs
    VCA on it and removes it: the result of the cube in memory, spike counts included."""
    data, _ = cell
    scratch = tmp_path / "scratch"
    monkeypatch.setenv(nd.stream.SCRATCH_ENV, str(scratch))
    monkeypatch.setattr(nd.stream, "BLOCK_BYTES", 1)  # blocks of one tile,
    monkeypatch.setattr(nd.stream, "TILE", 16)  # of 16 x 16 pixels: 3 x 4 blocks
    options = {"n_endmembers": 5, "despike": 8.0, "device": "cpu", "source_name": "scan"}
    expected = unmix(data, {"raw": data}, **options)
    assert expected.spikes_removed >= 2
    found = compute.run(nd.stream.unmix_steps(lazy, {"raw": lazy}, **options))
    np.testing.assert_array_equal(found.endmembers, expected.endmembers)
    np.testing.assert_array_equal(found.pixel_indices, expected.pixel_indices)
    np.testing.assert_array_equal(found.targets["raw"].abundances, expected.targets["raw"].abundances)
    assert found.spikes_removed == expected.spikes_removed and found.params == expected.params
    assert found.spike_like == expected.spike_like == []
    assert not list(scratch.iterdir()), "the despiked scratch store is removed"

    steps = nd.stream.unmix_steps(lazy, {"raw": lazy}, **options)
    while not list(scratch.iterdir()):  # (the first pass, for the largest value, writes nothing)
        next(steps)
    steps.close()  # a cancel while the spikes are being removed
    assert not list(scratch.iterdir())
