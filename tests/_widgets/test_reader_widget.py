"""The npe2 reader and the Cube layout widget in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio

from napari_deeper._reader import get_reader
from napari_deeper._widgets.cube_layout import CubeLayoutWidget

pytestmark = pytest.mark.gui

PLUGIN = "napari-deeper"


def cube_values(bands=8, ny=5, nx=6) -> np.ndarray:
    b, y, x = np.meshgrid(np.arange(bands), np.arange(ny), np.arange(nx), indexing="ij")
    return (100 * b + 10 * y + x).astype(np.float32)


def test_get_reader_accepts_only_cube_files(tmp_path):
    assert get_reader(str(tmp_path / "a.mat")) is not None
    assert get_reader([str(tmp_path / "a.npy"), str(tmp_path / "b.NPZ")]) is not None
    assert get_reader(str(tmp_path / "a.tif")) is None
    assert get_reader([str(tmp_path / "a.npy"), str(tmp_path / "b.png")]) is None


def test_open_real_witec_file(thp1_path, notifications, make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open(str(thp1_path), plugin=PLUGIN)
    assert len(layers) == 1
    layer = layers[0]
    assert layer.name == thp1_path.stem
    assert layer.data.shape == (500, 40, 40) and layer.data.dtype == np.float32
    wavenumbers = layer.metadata["wavenumbers"]
    assert wavenumbers[0] == pytest.approx(501.27, abs=0.01) and wavenumbers[-1] == pytest.approx(1802.47, abs=0.01)
    assert tuple(layer.axis_labels) == ("wavenumber", "y", "x")
    assert [str(u) for u in layer.units] == ["1 / centimeter", "micrometer", "micrometer"]
    assert tuple(layer.scale) == (1.0, 0.625, 0.625)  # the file's imageaxisscale step
    record = layer.metadata["napari_deeper"]
    assert record["operation"] == "load" and record["format"] == "witec-struct"
    assert record["source"] == str(thp1_path) and record["choices"] == ""
    assert notifications["info"] == [] and notifications["error"] == []  # no questions asked


def test_open_npy_is_lazy_and_notes_guesses(make_napari_viewer, tmp_path, notifications):
    cube = cube_values()
    np.save(tmp_path / "cube.npy", cube.transpose(1, 2, 0))
    np.save(tmp_path / "memmapped.npy", cube)
    np.save(tmp_path / "memmapped_wavelengths.npy", np.linspace(800, 870, 8))
    viewer = make_napari_viewer()
    [guessed] = viewer.open(str(tmp_path / "cube.npy"), plugin=PLUGIN)
    np.testing.assert_array_equal(guessed.data, cube)
    assert "bands = axis 2" in notifications["info"][0]
    [lazy] = viewer.open(str(tmp_path / "memmapped.npy"), plugin=PLUGIN)
    assert isinstance(lazy.data, np.memmap)
    assert tuple(lazy.axis_labels) == ("wavelength", "y", "x")
    assert str(lazy.units[0]) == "nanometer"
    np.testing.assert_allclose(lazy.metadata["wavenumbers"], np.linspace(800, 870, 8))


def test_companions_become_layers(make_napari_viewer, tmp_path, notifications):
    inputs, outputs = cube_values(ny=4, nx=4), cube_values(ny=4, nx=4) + 1
    pixels = lambda c: c.transpose(2, 1, 0).reshape(-1, c.shape[0])  # noqa: E731 - MATLAB order
    sio.savemat(tmp_path / "pair.mat", {"Inputs": pixels(inputs), "Outputs": pixels(outputs)})
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "pair.mat"), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["pair", "pair Outputs"]
    np.testing.assert_array_equal(layers[0].data, inputs)
    np.testing.assert_array_equal(layers[1].data, outputs)
    assert layers[1].metadata["napari_deeper"]["companion"] == "Outputs"


def test_bad_file_shows_an_error_and_opens_nothing(make_napari_viewer, tmp_path, notifications):
    (tmp_path / "broken.mat").write_bytes(b"not a mat file" * 20)
    viewer = make_napari_viewer()
    assert viewer.open(str(tmp_path / "broken.mat"), plugin=PLUGIN) == []
    assert len(viewer.layers) == 0
    assert len(notifications["error"]) == 1 and "broken.mat" in notifications["error"][0]


def test_nan_values_are_kept_with_a_warning_and_replaced_by_the_widget(make_napari_viewer, tmp_path, notifications, run_dock):
    cube = cube_values()
    cube[0, 0, 0] = np.nan
    cube[1, 1, 1] = np.inf
    np.save(tmp_path / "holes.npy", cube.transpose(1, 2, 0))  # not memory-mapped: counted
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "holes.npy"), plugin=PLUGIN)
    assert "1 NaN and 1 Inf" in notifications["warning"][0]
    widget = CubeLayoutWidget(viewer)
    assert widget.layer.value is layer
    assert "1 NaN and 1 Inf" in widget.info.text()
    run_dock(widget.nonfinite_runner)
    assert widget.nonfinite_runner.last_error is None
    [fixed] = list(viewer.layers)  # the original was removed
    assert fixed.name == "holes · finite"
    assert np.isfinite(fixed.data).all() and fixed.data[0, 0, 0] == 0
    assert fixed.data[2, 3, 4] == cube[2, 3, 4]
    assert fixed.metadata["napari_deeper"]["replaced"] == {"nan": 1, "inf": 1}


def test_layout_widget_folds_a_strip_into_an_image(make_napari_viewer, tmp_path, notifications, run_dock):
    cube = cube_values(ny=5, nx=6)
    np.save(tmp_path / "strip.npy", cube.reshape(8, -1).T)  # 30 spectra, row by row
    np.save(tmp_path / "strip_wavenumbers.npy", np.arange(8.0))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "strip.npy"), plugin=PLUGIN)
    assert layer.data.shape == (8, 1, 30)
    widget = CubeLayoutWidget(viewer)
    assert "strip" in widget.info.text()
    assert (widget.height.value, widget.width.value) == (1, 30)
    widget.height.value, widget.width.value = 5, 6
    run_dock(widget.layout_runner)
    assert widget.layout_runner.last_error is None
    [image] = list(viewer.layers)
    assert image.name == "strip · relayout"
    np.testing.assert_array_equal(image.data, cube)
    np.testing.assert_array_equal(image.metadata["wavenumbers"], np.arange(8.0))
    record = image.metadata["napari_deeper"]
    assert record["operation"] == "relayout" and record["params"]["shape"] == [5, 6]
    assert record["source"] == "strip"


def test_layout_widget_reorders_axes_and_can_keep_the_original(make_napari_viewer, run_dock):
    cube = cube_values()
    viewer = make_napari_viewer()
    source = viewer.add_image(cube.transpose(1, 2, 0).copy(), name="bands last")
    widget = CubeLayoutWidget(viewer)
    widget.remove_original.value = False
    widget.order.value = "yxb"
    assert (widget.height.value, widget.width.value) == (5, 6)
    run_dock(widget.layout_runner)
    assert widget.layout_runner.last_error is None
    assert [layer.name for layer in viewer.layers] == ["bands last", "bands last · relayout"]
    np.testing.assert_array_equal(viewer.layers["bands last · relayout"].data, cube)
    assert source.data.shape == (5, 6, 8)  # input untouched


def test_layout_widget_reports_a_wrong_shape(make_napari_viewer, run_dock):
    viewer = make_napari_viewer()
    viewer.add_image(cube_values(ny=1, nx=30), name="strip")
    widget = CubeLayoutWidget(viewer)
    widget.height.value, widget.width.value = 4, 4
    run_dock(widget.layout_runner, fails=True)
    assert not widget.layout_runner.busy
    assert "must equal the layer's 30 pixels" in widget.layout_runner.status.text()
    assert [layer.name for layer in viewer.layers] == ["strip"]
