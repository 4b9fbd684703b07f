"""A zarr cube opened lazily in a real viewer and denoised by the Denoise dock, streamed to a store."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper.io import save_zarr
from napari_deeper.io._lazy import is_lazy

pytestmark = pytest.mark.gui


def test_zarr_cube_opens_lazily_and_denoises_into_a_store(make_napari_viewer, run_dock, tmp_path, monkeypatch):
    from napari_deeper._widgets.denoise import DenoiseWidget

    scratch = tmp_path / "scratch"
    monkeypatch.setenv(nd.stream.SCRATCH_ENV, str(scratch))
    sim = nd.simulate.simulate_cell((70, 90), n_bands=80, photons=40, seed=2)
    data = np.asarray(sim.noisy, dtype=np.float32)
    store = save_zarr(data, tmp_path / "scan.zarr", sim.wavenumbers)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(store), plugin="napari-deeper")
    assert is_lazy(layer.data), "the store opens as a dask array, not read into memory"
    np.testing.assert_array_equal(layer.metadata["wavenumbers"], sim.wavenumbers)

    widget = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.input_layer.value = layer
    widget.methods.value = ["savgol"]
    widget.params["savgol"].controls["window"].value = 9
    run_dock(widget)
    result = viewer.layers["scan · savgol"]
    assert is_lazy(result.data), "the result layer reads from its zarr store"
    assert len(list(scratch.glob("denoise-savgol-*.zarr"))) == 1
    np.testing.assert_array_equal(np.asarray(result.data), nd.denoise(data, "savgol", sim.wavenumbers, window=9))
    assert result.metadata["napari_deeper"]["params"]["window"] == 9

    widget.methods.value = ["hybrid"]  # the default denoiser streams too, into a store of its own
    run_dock(widget)
    result = viewer.layers["scan · hybrid"]
    assert is_lazy(result.data) and len(list(scratch.glob("denoise-hybrid-*.zarr"))) == 1
    np.testing.assert_array_equal(np.asarray(result.data), nd.denoise(data, "hybrid", sim.wavenumbers))

    widget.methods.value = ["pca"]  # fitted on the whole cube, through passes over blocks
    run_dock(widget)
    result = viewer.layers["scan · pca"]
    assert is_lazy(result.data) and len(list(scratch.glob("denoise-pca-*.zarr"))) == 1
    np.testing.assert_array_equal(np.asarray(result.data), nd.denoise(data, "pca", sim.wavenumbers))


def test_lazy_layer_upscaled_by_tiles_in_the_super_resolve_dock(make_napari_viewer, run_dock, tmp_path, monkeypatch):
    from napari_deeper._widgets.superres import SuperResWidget

    scratch = tmp_path / "scratch"
    monkeypatch.setenv(nd.stream.SCRATCH_ENV, str(scratch))
    sim = nd.simulate.simulate_cell((40, 70), n_bands=40, photons=40, seed=4)
    data = np.asarray(sim.noisy, dtype=np.float32)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(save_zarr(data, tmp_path / "scan.zarr", sim.wavenumbers)), plugin="napari-deeper")
    widget = SuperResWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.input_layer.value = layer
    widget.scale.value = 2
    widget.methods.value = ["bicubic"]
    run_dock(widget)
    result = viewer.layers["scan · bicubic ×2"]
    assert is_lazy(result.data) and len(list(scratch.glob("superres-bicubic-*.zarr"))) == 1
    plain = nd.upscale(data, 2, "bicubic")
    np.testing.assert_allclose(np.asarray(result.data), plain, rtol=0, atol=2e-6 * np.abs(plain).max())
    np.testing.assert_allclose(result.scale[1:], layer.scale[1:] / 2)

    widget.methods.value = ["hyrisr"]  # the network streams too: its basis from passes over blocks
    widget.params["hyrisr"].controls["adapt_steps"].value = 3
    run_dock(widget)
    result = viewer.layers["scan · hyrisr ×2"]
    assert is_lazy(result.data) and len(list(scratch.glob("superres-hyrisr-*.zarr"))) == 1
    plain = nd.upscale(data, 2, "hyrisr", adapt_steps=3)
    np.testing.assert_allclose(np.asarray(result.data), plain, rtol=0, atol=1e-6 * np.abs(plain).max())

    before = set(scratch.iterdir())
    run_dock(widget.restore_runner)  # Fast scan restore: the denoised cube and the upscaled one, each a store
    assert widget.restore_runner.last_error is None, widget.restore_runner.last_error
    denoised, final = viewer.layers[-2:]
    assert is_lazy(denoised.data) and is_lazy(final.data) and final.data.shape == (40, 80, 140)
    assert len(set(scratch.iterdir()) - before) == 2
    restored = nd.superres.restore(data, 2, upscale_params={"adapt_steps": 3})
    np.testing.assert_allclose(np.asarray(final.data), restored.upscaled, rtol=0,
                               atol=1e-5 * np.abs(restored.upscaled).max())


def test_cancelled_streamed_run_leaves_no_layer_and_no_store(make_napari_viewer, run_dock, tmp_path, monkeypatch):
    from napari_deeper._widgets.denoise import DenoiseWidget

    scratch = tmp_path / "scratch"
    monkeypatch.setenv(nd.stream.SCRATCH_ENV, str(scratch))
    sim = nd.simulate.simulate_cell((320, 64), n_bands=60, photons=40, seed=6)  # 5 blocks of 64 rows
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(save_zarr(sim.noisy, tmp_path / "long.zarr", sim.wavenumbers)), plugin="napari-deeper")
    widget = DenoiseWidget(viewer)
    widget.input_layer.value = layer
    widget.methods.value = ["savgol", "whittaker"]

    def cancel_once_under_way(value: int) -> None:
        if value > 0:
            widget.runner.cancel_button.click()

    run_dock(widget, on_start=lambda worker: widget.runner.progress.valueChanged.connect(cancel_once_under_way))
    assert [lay.name for lay in viewer.layers] == ["long"]
    assert "Cancelled" in widget.runner.status.text()
    assert not scratch.exists() or not list(scratch.iterdir()), "the partial store is removed at once"


def test_disk_filling_up_shows_the_error_and_makes_no_layer(make_napari_viewer, run_dock, tmp_path, monkeypatch):
    import errno

    import zarr

    from napari_deeper._widgets.denoise import DenoiseWidget

    scratch = tmp_path / "scratch"
    monkeypatch.setenv(nd.stream.SCRATCH_ENV, str(scratch))
    sim = nd.simulate.simulate_cell((200, 64), n_bands=60, photons=40, seed=6)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(save_zarr(sim.noisy, tmp_path / "scan.zarr", sim.wavenumbers)), plugin="napari-deeper")
    original, writes = zarr.Array.__setitem__, []

    def filling_up(self, where, value):  # the second block's write finds the disk full
        writes.append(where)
        if len(writes) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, where, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", filling_up)
    widget = DenoiseWidget(viewer)
    widget.input_layer.value = layer
    widget.methods.value = ["savgol"]
    error = run_dock(widget, fails=True)
    assert "disk filled up" in str(error) and "partial store was removed" in str(error)
    assert [lay.name for lay in viewer.layers] == ["scan"]
    assert not list(scratch.iterdir())


def test_lazy_layer_preprocessed_into_a_store(make_napari_viewer, run_dock, tmp_path, monkeypatch):
    """Crop, spike and baseline removal of a zarr layer, block by block: the new layer reads from
    its store and equals the in-memory result; a cancelled run leaves no layer and no store."""
    from napari_deeper._widgets.preprocess import PreprocessWidget
    from napari_deeper.compute import run
    from napari_deeper.spectral import preprocess_steps

    scratch = tmp_path / "scratch"
    monkeypatch.setenv(nd.stream.SCRATCH_ENV, str(scratch))
    monkeypatch.setattr(nd.stream, "BLOCK_BYTES", 1)  # 2 x 2 blocks of at most 64 x 64 pixels
    sim = nd.simulate.simulate_cell((70, 90), n_bands=80, photons=40, seed=2)
    data = np.asarray(sim.noisy, dtype=np.float32)
    for band, y, x in [(30, 63, 40), (50, 64, 64), (20, 10, 63)]:  # cosmic rays on the blocks' edges
        data[band, y, x] += 0.5 * data.max()
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(save_zarr(data, tmp_path / "scan.zarr", sim.wavenumbers)), plugin="napari-deeper")
    widget = PreprocessWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.layer.value = layer
    widget.crop_start.value, widget.crop_stop.value = 700.0, 1700.0
    widget.despike.value = widget.baseline.value = True
    params = widget.parameters(layer)
    assert params["crop"] == (700.0, 1700.0) and params["despike"] == 8.0 and params["baseline"] == 3
    run_dock(widget)
    result = viewer.layers["scan · preprocessed"]
    assert is_lazy(result.data), "the result layer reads from its zarr store"
    stores = list(scratch.glob("preprocess-*.zarr"))
    assert len(stores) == 1
    expected = run(preprocess_steps(data, sim.wavenumbers, **params))
    np.testing.assert_array_equal(np.asarray(result.data), expected.data)
    np.testing.assert_array_equal(result.metadata["wavenumbers"], expected.wavenumbers)
    assert result.metadata["napari_deeper"]["steps"] == expected.steps
    assert expected.steps[1]["replaced"] >= 3

    viewer.layers.remove(result)
    widget.layer.value = layer

    partial = []

    def cancel_once_writing(value: int) -> None:  # (after the first pass, once the store is being filled)
        partial.extend(scratch.glob(".preprocess-*.partial-*"))
        if partial:
            widget.runner.cancel_button.click()

    run_dock(widget, on_start=lambda worker: widget.runner.progress.valueChanged.connect(cancel_once_writing))
    assert [lay.name for lay in viewer.layers] == ["scan"]
    assert "Cancelled" in widget.runner.status.text() and partial
    assert [path.name for path in scratch.iterdir()] == [stores[0].name], "the partial store is removed"
