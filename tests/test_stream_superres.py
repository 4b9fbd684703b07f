"""The super-resolution networks on lazy cubes (zarr stores): basis and component images from
passes over pixel blocks, the result written block by block of whole network tiles, equal to the
same cube's result in memory."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper import compute
from napari_deeper.io import load_cube, save_zarr
from napari_deeper.io._lazy import from_array, is_lazy
from napari_deeper.superres import adapt, deep

pytest.importorskip("zarr", reason="zarr is a dependency of napari-deeper; install it")


@pytest.fixture(scope="module")
def scan():
    """A noisy simulated cell, 40 x 70 pixels of 40 bands."""
    sim = nd.simulate.simulate_cell((40, 70), n_bands=40, photons=40, seed=4)
    return np.asarray(sim.noisy, dtype=np.float32)


@pytest.fixture
def lazy(scan, tmp_path):
    """``scan`` as a lazy cube over a zarr store of 16 x 16 pixel chunks."""
    return load_cube(save_zarr(scan, tmp_path / "scan.zarr", chunks=(scan.shape[0], 16, 16))).data


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    folder = tmp_path / "scratch"
    monkeypatch.setenv(nd.stream.SCRATCH_ENV, str(folder))
    return folder


@pytest.fixture
def blocks(monkeypatch):
    """Streamed blocks of at most 20 LR pixels a side at 2x (40 bands), so the cube is cut both
    ways, each put together one band at a time; returns the ``(rows, cols)`` of every block whose
    correction the network computed."""
    monkeypatch.setattr(deep, "STREAM_BLOCK_BYTES", 4 * 40 * 40 * 40)
    monkeypatch.setattr(deep, "STREAM_BANDS_BYTES", 1)
    seen = []
    plain = deep.correction_steps

    def spy(*args, rows=None, cols=None, **kwargs):
        seen.append((rows, cols))
        return plain(*args, rows=rows, cols=cols, **kwargs)

    monkeypatch.setattr(deep, "correction_steps", spy)
    return seen


def assert_close(streamed, plain):
    assert is_lazy(streamed) and streamed.shape == plain.shape
    np.testing.assert_allclose(np.asarray(streamed), plain, rtol=0, atol=1e-6 * np.abs(plain).max())


@pytest.mark.parametrize("method, scale, params", [
    ("hyrisr", 2, {"adapt": "off", "tile": 16}),
    ("hyrisr", 2, {"adapt": "auto", "adapt_steps": 5, "tile": 9}),  # fine-tuned, self-checked
    ("srresnet", 3, {"adapt": "off", "tile": 8}),
    ("srresnet", 4, {"adapt": "off", "tile": 8, "overlap": 3}),
])
def test_streamed_network_equals_in_memory(scan, lazy, scratch, blocks, method, scale, params):
    plain = nd.upscale(scan, scale, method, **params)
    blocks.clear()
    streamed = nd.stream.upscale(lazy, scale, method, **params)
    assert_close(streamed, plain)
    if params["adapt"] == "off" or scale == 2:
        assert len(blocks) > 4 and all(rows is not None for rows, _ in blocks)
    assert [path.name.split("-")[:3] for path in scratch.iterdir()] == [["upscale", method, f"x{scale}"]]


def test_correction_of_a_region_is_that_part_of_the_whole():
    from napari_deeper.models.registry import cached_model

    model, _ = cached_model("hyrisr")
    scores = np.random.default_rng(0).normal(size=(model.n_components, 30, 41)).astype(np.float32)
    cpu = compute.select_device("cpu")
    whole = compute.run(deep.correction_steps(model, scores, 2, cpu, tile=8, overlap=3))
    # the last cell of each axis (6 and 1 pixels) is run as a whole tile flush with the image's end
    part = compute.run(deep.correction_steps(model, scores, 2, cpu, tile=8, overlap=3, rows=slice(16, 30),
                                             cols=slice(32, 41)))
    np.testing.assert_allclose(part, whole[:, 32:, 64:], rtol=0, atol=1e-5 * np.abs(whole).max())
    with pytest.raises(ValueError, match="not whole tiles of 8 pixels"):
        compute.run(deep.correction_steps(model, scores, 2, cpu, tile=8, overlap=3, rows=slice(4, 12)))


def test_denoised_network_streams_the_denoiser_into_a_scratch_store(scan, lazy, scratch, blocks, monkeypatch):
    """When the self-check picks the network on the denoised cube, a lazy cube goes through the
    streamed default denoiser (a store removed afterwards); the measured pixels keep their values."""
    chose = adapt.Check("denoised network", 0.5, {}, bicubic=0.0)

    def check(*args, **kwargs):
        yield compute.Progress(1, 1, "self-check")
        return chose

    monkeypatch.setattr(adapt, "self_check_steps", check)
    plain = nd.upscale(scan, 2, "hyrisr", adapt="auto", adapt_steps=2, tile=16)
    streamed = nd.stream.upscale(lazy, 2, "hyrisr", adapt="auto", adapt_steps=2, tile=16)
    assert_close(streamed, plain)
    np.testing.assert_array_equal(np.asarray(streamed)[:, 1::2, 1::2], scan)
    assert [path.name.split("-")[0] for path in scratch.iterdir()] == ["upscale"]  # the denoised store is gone


@pytest.mark.parametrize("stop_at", ["hybrid (streamed)", "hyrisr x2 (streamed)"])  # denoising, writing
def test_cancel_leaves_no_store(lazy, scratch, blocks, monkeypatch, tmp_path, stop_at):
    def check(*args, **kwargs):
        yield compute.Progress(1, 1, "self-check")
        return adapt.Check("denoised network", 1.0, {})

    monkeypatch.setattr(adapt, "self_check_steps", check)
    out = tmp_path / "result.zarr"
    steps = nd.stream.upscale_steps(lazy, 2, "hyrisr", out=out, adapt="auto", adapt_steps=2, tile=16)
    for progress in steps:
        if stop_at in progress.message and progress.done > 0:
            break
    else:
        pytest.fail(f"no progress said {stop_at!r}")
    if stop_at.startswith("hybrid"):
        assert [path.name.split("-")[0] for path in scratch.iterdir()] == [".denoised"]
    else:
        assert list(tmp_path.glob(".result.zarr.partial-*"))
    steps.close()  # what the dock's Cancel does
    assert not out.exists() and not list(tmp_path.glob(".result.zarr*")) and not list(scratch.iterdir())


def test_bad_lazy_input_is_refused_before_anything_is_written(scan, tmp_path, scratch):
    spoilt = scan.copy()
    spoilt[3, 30, 60] = np.nan
    lazy = load_cube(save_zarr(spoilt, tmp_path / "spoilt.zarr", chunks=(40, 16, 16))).data
    with pytest.raises(ValueError, match="1 NaN"):
        nd.stream.upscale(lazy, 2, "hyrisr", adapt="off")
    with pytest.raises(ValueError, match="needs at least 3 x 3"):
        nd.stream.upscale(lazy[:, :2, :5], 3, "hyrisr", stream=True)
    assert not scratch.exists() or not list(scratch.iterdir())


def test_self_check_of_a_lazy_cube_reads_its_centre_as_in_memory():
    data = np.arange(2 * 300 * 20, dtype=np.float32).reshape(2, 300, 20)
    crop = adapt.check_region(from_array(data))
    assert isinstance(crop, np.ndarray)
    np.testing.assert_array_equal(crop, data[:, 22:278])
    np.testing.assert_array_equal(adapt.check_region(data), crop)
    small = data[:, :100]
    np.testing.assert_array_equal(adapt.check_region(small), small)
