"""Spectra plot, Peak heatmap and Preprocess widgets in a real viewer."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from vispy.app.canvas import MouseEvent

import napari_deeper as nd
from napari_deeper import spectral
from napari_deeper._widgets.peak_map import PeakMapWidget
from napari_deeper._widgets.preprocess import PreprocessWidget
from napari_deeper._widgets.spectra import SpectraWidget

pytestmark = pytest.mark.gui

N_BANDS = 80


@pytest.fixture(scope="module")
def cell():
    return nd.simulate.simulate_cell((16, 18), n_bands=N_BANDS, photons=300, seed=5)


@pytest.fixture
def viewer(make_napari_viewer, cell):
    """A high-resolution cube and its 2x skip-sampled low-resolution scan, overlaid."""
    viewer = make_napari_viewer()
    metadata = {"wavenumbers": cell.wavenumbers}
    kwargs = {"axis_labels": ("wavenumber", "y", "x"), "units": ("1/cm", "pixel", "pixel")}
    viewer.add_image(cell.noisy, name="hr", metadata=dict(metadata), **kwargs)
    viewer.add_image(nd.simulate.skip_sample(cell.noisy, 2), name="lr", scale=(1, 2, 2), translate=(0, 1, 1),
                     metadata=dict(metadata), **kwargs)
    return viewer


@pytest.fixture
def spectra(qtbot, viewer):
    widget = SpectraWidget(viewer)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_spectra_at_the_same_world_position_across_resolutions(spectra, cell):
    hr = cell.noisy
    for row, col in [(0, 0), (3, 5), (7, 8)]:
        world = (0.0, 2 * row + 1, 2 * col + 1)  # centre of LR pixel (row, col)
        found = spectra.spectra_at(world)
        assert set(found) == {"hr", "lr"}
        np.testing.assert_array_equal(found["lr"][1], found["hr"][1])
        np.testing.assert_array_equal(found["hr"][1], hr[:, 2 * row + 1, 2 * col + 1])
        np.testing.assert_array_equal(found["hr"][0], cell.wavenumbers)
    assert set(spectra.spectra_at((5.0, 7.0))) == {"hr", "lr"}  # (y, x) only is accepted too
    # LR pixel 0 covers world 0..2, HR pixel 0 covers -0.5..0.5: only HR has a pixel at -0.4
    assert set(spectra.spectra_at((0, -0.4, 3))) == {"hr"}
    assert spectra.spectra_at((0, 100, 100)) == {}
    spectra.viewer.layers["lr"].visible = False
    assert set(spectra.spectra_at((0, 3, 3))) == {"hr"}
    spectra.visible_only.setChecked(False)
    assert set(spectra.spectra_at((0, 3, 3))) == {"hr", "lr"}


def test_live_line_follows_the_cursor_and_is_throttled(qtbot, spectra, cell):
    draws = []
    original = spectra.update_live
    spectra.update_live = lambda position: (draws.append(position), original(position))
    for col in range(12):
        spectra.viewer.cursor.position = (0.0, 5.0, float(col))
    qtbot.waitUntil(lambda: len(draws) >= 1, timeout=3000)
    qtbot.wait(100)
    assert len(draws) == 1  # twelve moves inside one refresh interval: one redraw, the last one
    assert set(spectra._live) == {"hr", "lr"}
    line = spectra._live["hr"].artists[0]
    np.testing.assert_array_equal(line.get_ydata(), cell.noisy[:, 5, 11])
    spectra.viewer.cursor.position = (0.0, 5.0, 2.0)
    qtbot.waitUntil(lambda: len(draws) == 2, timeout=3000)
    assert spectra._live["hr"].artists[0] is line  # the artist is reused, not redrawn from scratch
    np.testing.assert_array_equal(line.get_ydata(), cell.noisy[:, 5, 2])
    assert spectra.axes.get_xlabel() == "Raman shift (cm⁻¹)"
    spectra.hide()
    spectra.viewer.cursor.position = (0.0, 6.0, 6.0)
    qtbot.wait(100)
    assert len(draws) == 2  # hidden: no redraw


def test_pins_by_method_and_by_click(qtbot, spectra, cell):
    labels = spectra.pin((0, 3, 5))
    assert labels == ["hr @ (3, 5)", "lr @ (1, 2)"]
    np.testing.assert_array_equal(spectra.pinned["lr @ (1, 2)"][1], cell.noisy[:, 3, 5])
    spectra.clear_pins()
    assert spectra.pinned == {}

    viewer = spectra.viewer
    viewer.reset_view()
    scene = viewer.window._qt_viewer.canvas._scene_canvas
    centre = (scene.size[0] // 2, scene.size[1] // 2)
    scene.events.mouse_press(pos=centre, modifiers=(), button=1)
    scene.events.mouse_release(pos=centre, modifiers=(), button=1)
    qtbot.wait(10)
    expected = spectra.spectra_at(viewer.cursor.position)
    assert expected, "the click should land on the image"
    assert len(spectra.pinned) == len(expected)
    for label, (_x, y) in spectra.pinned.items():
        name = label.split(" @ ")[0]
        np.testing.assert_array_equal(y, expected[name][1])
    # a drag is not a click: no new pin (it starts on other pixels, which a click would pin)
    start, end = (centre[0] + 40, centre[1] + 40), (centre[0] + 60, centre[1] + 40)
    scene.events.mouse_press(pos=start, modifiers=(), button=1)
    scene.events.mouse_move(pos=end, modifiers=(), button=1, press_event=MouseEvent(pos=start, type="mouse_press"))
    scene.events.mouse_release(pos=end, modifiers=(), button=1)
    assert len(spectra._pins) == len(expected)
    # the same click once more: those pixels are pinned already
    scene.events.mouse_press(pos=centre, modifiers=(), button=1)
    scene.events.mouse_release(pos=centre, modifiers=(), button=1)
    assert len(spectra._pins) == len(expected)


def test_roi_mean_and_std_follow_the_shapes(qtbot, spectra, cell):
    viewer = spectra.viewer
    shapes = viewer.add_shapes(
        [np.array([[2, 3], [2, 8], [6, 8], [6, 3]], float)], shape_type="rectangle", name="rois"
    )
    # the plot updates by itself once the shapes settle: one mean ± std curve per layer
    qtbot.waitUntil(lambda: len(spectra._rois) == 2, timeout=3000)
    rois = spectra.roi_spectra()
    (hr_label,) = [label for label in rois if label.startswith("hr ·")]
    assert hr_label == "hr · rois #1 (n=30)"
    x, mean, std, n = rois[hr_label]
    region = cell.noisy[:, 2:7, 3:9].reshape(N_BANDS, -1)
    np.testing.assert_allclose(mean, region.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(std, region.std(axis=1), rtol=1e-4)
    np.testing.assert_array_equal(x, cell.wavenumbers)
    shapes.add_rectangles(np.array([[10, 10], [14, 14]], float))
    qtbot.waitUntil(lambda: sum("#2" in s.label for s in spectra._rois) == 2, timeout=3000)
    assert "hr · rois #2 (n=25)" in spectra.legend.entries()


def test_csv_and_figure_export(qtbot, spectra, cell, tmp_path):
    with pytest.raises(ValueError, match="nothing to export"):
        spectra.export_csv(tmp_path / "empty.csv")
    spectra.pin((0, 3, 5))
    spectra.update_live((0, 9, 9))
    path = tmp_path / "spectra.csv"
    spectra.export_csv(path)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["raman shift (1/cm)", "hr", "lr", "hr @ (3, 5)", "lr @ (1, 2)"]
    table = np.array(rows[1:], dtype=float)
    np.testing.assert_allclose(table[:, 0], cell.wavenumbers)
    np.testing.assert_allclose(table[:, 1], cell.noisy[:, 9, 9], rtol=1e-6)
    np.testing.assert_allclose(table[:, 3], cell.noisy[:, 3, 5], rtol=1e-6)
    for suffix in ("png", "svg"):
        spectra.export_figure(tmp_path / f"spectra.{suffix}")
        assert (tmp_path / f"spectra.{suffix}").stat().st_size > 1000


def test_peak_maps_of_two_layers(qtbot, viewer, cell, run_dock):
    widget = PeakMapWidget(viewer)
    qtbot.addWidget(widget)
    hr, lr = viewer.layers["hr"], viewer.layers["lr"]
    widget.layers.value = [hr, lr]
    widget.center.value = 1004
    widget.width.value = 40
    widget.mode.value = "height"
    widget.baseline.value = True
    run_dock(widget)
    for source in (hr, lr):
        layer = viewer.layers[f"{source.name} · 1004±20 cm⁻¹ height, baseline"]
        expected = spectral.band_map(source.data, cell.wavenumbers, 1004, 40, mode="height", baseline=True)
        np.testing.assert_allclose(layer.data, expected)
        np.testing.assert_array_equal(layer.scale, source.scale[1:])
        np.testing.assert_array_equal(layer.translate, source.translate[1:])
        assert layer.colormap.name == "magma"
        record = layer.metadata["napari_deeper"]
        assert record["source"] == source.name and record["params"]["center"] == 1004
    widget.center.value = 5000  # outside the axis: a clear error, no layer
    n_layers = len(viewer.layers)
    # the worker also re-raises the error into the Qt event loop (napari's default for workers)
    with qtbot.capture_exceptions():
        run_dock(widget, fails=True)
    assert "outside the spectral axis" in str(widget.runner.last_error)
    assert len(viewer.layers) == n_layers


def test_span_selection_sets_the_peak_widget(qtbot, viewer):
    from matplotlib.testing.widgets import click_and_drag

    peak = PeakMapWidget(viewer)  # docked before the plot: still connected
    qtbot.addWidget(peak)
    spectra = SpectraWidget(viewer)
    qtbot.addWidget(spectra)
    spectra.show()
    assert SpectraWidget.for_viewer(viewer) is spectra
    spectra.update_live((0, 4, 4))
    spectra.canvas.draw()
    middle = float(np.mean(spectra.axes.get_ylim()))
    click_and_drag(spectra.span, start=(1200, middle), end=(1300, middle))
    assert peak.center.value == pytest.approx(1250, abs=0.01)
    assert peak.width.value == pytest.approx(100, abs=0.01)
    late = PeakMapWidget(viewer)  # and docked after it
    qtbot.addWidget(late)
    spectra.select_band(1400, 1420)
    assert (late.center.value, late.width.value) == (1410, 20)
    assert (peak.center.value, peak.width.value) == (1410, 20)


def test_preprocess_crop_and_normalise(qtbot, viewer, cell, run_dock):
    widget = PreprocessWidget(viewer)
    qtbot.addWidget(widget)
    source = viewer.layers["hr"]
    before = source.data.copy()
    assert widget.layer.value is source
    assert widget.crop_start.value <= cell.wavenumbers.min()
    assert widget.crop_stop.value >= cell.wavenumbers.max()
    widget.crop_start.value = 800
    widget.crop_stop.value = 1500
    widget.normalisation.value = "vector"
    run_dock(widget)
    result = viewer.layers["hr · preprocessed"]
    keep = (cell.wavenumbers >= 800) & (cell.wavenumbers <= 1500)
    assert result.data.shape == (int(keep.sum()), 16, 18)
    np.testing.assert_array_equal(result.metadata["wavenumbers"], cell.wavenumbers[keep])
    np.testing.assert_allclose(np.linalg.norm(result.data, axis=0), 1.0, rtol=1e-4)
    steps = result.metadata["napari_deeper"]["steps"]
    assert [step["step"] for step in steps] == ["crop", "normalise"]
    np.testing.assert_array_equal(source.data, before)
    np.testing.assert_array_equal(source.metadata["wavenumbers"], cell.wavenumbers)
    # choosing another layer resets the range to that layer's full axis
    widget.layer.value = result
    assert widget.crop_start.value <= cell.wavenumbers[keep].min()
    assert widget.crop_stop.value == pytest.approx(np.ceil(cell.wavenumbers[keep].max() * 100) / 100)
