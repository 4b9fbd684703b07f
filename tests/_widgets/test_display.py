"""How the viewer shows spectral layers (``_widgets/_display.py``), in a real viewer: the displayed
band named in cm⁻¹ (slider, canvas, status bar), percentile contrast per band, µm pixel size,
colour bars on maps, and units that stay consistent when ROIs are drawn."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deeper._widgets import _display
from napari_deeper._widgets.peak_map import PeakMapWidget

pytestmark = pytest.mark.gui
UNITS_WARNING = "Inconsistent units across layers"


@pytest.fixture
def thp1(make_napari_viewer, thp1_path):
    """The real WITec THP-1 map, opened as File > Open does (napari-deeper's reader)."""
    viewer = make_napari_viewer(show=True)
    (layer,) = viewer.open(str(thp1_path), plugin="napari-deeper")
    return viewer, layer


def canvas_draw(qtbot, viewer) -> None:
    """Let the canvas draw (napari checks the layers' units when it draws)."""
    viewer.window._qt_viewer.canvas._scene_canvas.native.update()
    qtbot.wait(100)


def units_warnings() -> int:
    from napari.utils.notifications import notification_manager

    return sum(UNITS_WARNING in str(record.message) for record in notification_manager.records)


def test_the_displayed_band_is_named_in_raman_shift(qtbot, thp1):
    viewer, layer = thp1
    w = layer.metadata["wavenumbers"]
    band = viewer.dims.current_step[0]
    overlay = viewer.canvas.overlays.text
    assert overlay.visible
    assert overlay.text == f"{w[band]:.1f} cm⁻¹ · band {band} of 500"
    assert viewer.dims.axis_labels[0] == f"{w[band]:.1f} cm⁻¹"  # what the slider reads
    # moving the slider (as dragging it does) renames the band everywhere
    viewer.dims.set_current_step(0, 249)
    assert overlay.text == f"{w[249]:.1f} cm⁻¹ · band 249 of 500"
    assert viewer.dims.axis_labels[0] == f"{w[249]:.1f} cm⁻¹"
    assert round(w[249]) == 1176  # the example: band 249 is 1176 cm⁻¹
    # the slider widget shows it beside the band number
    slider = viewer.window._qt_viewer.dims.slider_widgets[0]
    assert slider.axis_label.text() == f"{w[249]:.1f} cm⁻¹" and slider.curslice_label.text() == "249"
    # the status bar: the cursor's coordinates, then the Raman shift (as napari's status thread
    # computes and hands it to the window)
    viewer.mouse_over_canvas = True
    viewer.cursor.position = (249, 10.0, 12.0)
    viewer.window._qt_window.set_status_and_tooltip(viewer._calc_status_from_cursor())
    shown = viewer.window._status_bar._coordinates.text()
    assert shown.startswith("[249") and shown.endswith(f"({w[249]:.1f} cm⁻¹)")
    # in 3-D the spectral axis is not sliced: nothing is named
    viewer.dims.ndisplay = 3
    assert not overlay.visible
    viewer.dims.ndisplay = 2
    assert overlay.visible
    # the cube hidden (maps alone on screen): no band on the canvas, the slider still named
    layer.visible = False
    assert not overlay.visible and viewer.dims.axis_labels[0] == f"{w[249]:.1f} cm⁻¹"
    layer.visible = True
    assert overlay.visible
    # a text the user put on the canvas is left alone
    overlay.text = "sample 3, day 2"
    viewer.dims.set_current_step(0, 100)
    assert overlay.text == "sample 3, day 2"
    assert viewer.dims.axis_labels[0] == f"{w[100]:.1f} cm⁻¹"


def test_cubes_open_in_magma_with_percentile_contrast_per_band(qtbot, thp1):
    viewer, layer = thp1
    assert layer.colormap.name == _display.COLORMAP
    band = viewer.dims.current_step[0]
    expected = np.percentile(layer.data[band], _display.PERCENTILES)
    np.testing.assert_allclose(layer.contrast_limits, expected, rtol=1e-5)
    full = (float(layer.data.min()), float(layer.data.max()))
    assert full[0] < -20 and full[1] > 1500  # what full-range contrast showed: a near-black map
    assert layer.contrast_limits[1] < 0.5 * full[1]
    viewer.dims.set_current_step(0, 120)
    np.testing.assert_allclose(layer.contrast_limits, np.percentile(layer.data[120], _display.PERCENTILES),
                               rtol=1e-5)
    # hidden, it is skipped as the band moves; shown again, it has the band's contrast
    layer.visible = False
    viewer.dims.set_current_step(0, 400)
    layer.visible = True
    np.testing.assert_allclose(layer.contrast_limits, np.percentile(layer.data[400], _display.PERCENTILES),
                               rtol=1e-5)
    # the user sets a contrast: it is kept from then on
    layer.contrast_limits = (0.0, 300.0)
    viewer.dims.set_current_step(0, 300)
    assert tuple(layer.contrast_limits) == (0.0, 300.0)
    assert not _display.install(viewer).follows_band(layer)


def test_robust_limits_subsample_and_odd_bands():
    rng = np.random.default_rng(0)
    band = rng.normal(size=(2000, 1500)).astype(np.float32)
    low, high = _display.robust_limits(band)
    exact = np.percentile(band, _display.PERCENTILES)
    assert abs(low - exact[0]) < 0.05 and abs(high - exact[1]) < 0.05  # a 1 in 9 subsample
    assert _display.robust_limits(np.full((4, 4), 7.0)) == (6.5, 7.5)
    nan_band = np.full((5, 5), np.nan)
    nan_band[0, :3] = (1.0, 2.0, 3.0)
    low, high = _display.robust_limits(nan_band)
    assert 1.0 <= low < high <= 3.0
    assert _display.robust_limits(np.full((3, 3), np.nan)) == (0.0, 1.0)


def test_witec_pixel_size_in_micrometres(qtbot, thp1):
    viewer, layer = thp1
    np.testing.assert_allclose(layer.scale, (1.0, 0.625, 0.625))
    assert [str(u) for u in layer.units[1:]] == ["micrometer", "micrometer"]
    viewer.canvas.overlays.scale_bar.visible = True
    assert str(viewer.layers.extent.units[-1]) == "micrometer"  # the scale bar reads µm, not pixels
    assert viewer.layers.extent.world[1][-1] == pytest.approx(39 * 0.625)  # the last pixel centre, in µm


def run_peak_map(qtbot, run_dock, viewer, layer, center=1004.0):
    peaks = PeakMapWidget(viewer)
    qtbot.addWidget(peaks)
    peaks.layers.value = [layer]
    peaks.center.value = center
    peaks.width.value = 20.0
    run_dock(peaks)
    return viewer.layers[-1]


def test_drawing_rois_keeps_the_units_consistent(qtbot, thp1, run_dock):
    """ROIs drawn over the µm cube, then maps: napari never finds the units inconsistent."""
    viewer, layer = thp1
    canvas_draw(qtbot, viewer)
    before = units_warnings()
    # as the docs tell users: the cube selected, the layer list's "new shapes" button, a rectangle
    viewer.layers.selection.active = layer
    viewer.window._qt_viewer.layerButtons.newShapesButton.click()
    shapes = viewer.layers[-1]
    shapes.add_rectangles(np.array([[120, 5, 5], [120, 5, 15], [120, 15, 15], [120, 15, 5]], float))
    canvas_draw(qtbot, viewer)
    peak_map = run_peak_map(qtbot, run_dock, viewer, layer)
    canvas_draw(qtbot, viewer)
    viewer.layers.selection.active = peak_map
    viewer.window._qt_viewer.layerButtons.newPointsButton.click()
    canvas_draw(qtbot, viewer)
    run_peak_map(qtbot, run_dock, viewer, layer, center=1450.0)
    canvas_draw(qtbot, viewer)
    assert viewer.layers.extent.units is not None
    assert units_warnings() == before


def test_a_layer_added_without_units_takes_the_others(qtbot, thp1, run_dock):
    """A script's Shapes layer in napari's default pixels gets the cube's units; later adds are quiet.

    napari draws a new layer before a plugin hears of it, so that one add may still warn once.
    """
    viewer, layer = thp1
    shapes = viewer.add_shapes(ndim=3, name="ROIs")
    assert [str(u) for u in shapes.units] == ["1 / centimeter", "micrometer", "micrometer"]
    points = viewer.add_points(np.array([[3.0, 4.0]]), name="marks")
    assert [str(u) for u in points.units] == ["micrometer", "micrometer"]
    canvas_draw(qtbot, viewer)
    after_adds = units_warnings()
    run_peak_map(qtbot, run_dock, viewer, layer)
    viewer.add_shapes(np.array([[2.0, 2.0], [2.0, 8.0], [8.0, 8.0], [8.0, 2.0]]), units=("µm", "µm"))
    canvas_draw(qtbot, viewer)
    assert viewer.layers.extent.units is not None
    assert units_warnings() == after_adds
    # a layer that states other units keeps them (and napari may then rightly warn)
    seconds = viewer.add_image(np.zeros((4, 4)), units=("s", "s"), name="time series")
    assert [str(u) for u in seconds.units] == ["second", "second"]


def test_without_the_fix_napari_finds_the_units_inconsistent(make_napari_viewer):
    """The checks above can fail: in a viewer without napari-deeper's rules the same layers have
    no consistent units, and every later add warns again."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((5, 4, 4)), units=("1/cm", "µm", "µm"))
    viewer.add_shapes(ndim=3)
    viewer.add_image(np.zeros((4, 4)), units=("µm", "µm"))
    assert viewer.layers.extent.units is None


def test_maps_get_a_colour_bar(qtbot, make_napari_viewer, run_dock):
    import napari_deeper as nd

    viewer = make_napari_viewer()
    viewer.open_sample("napari-deeper", "denoise_pair")
    peaks = PeakMapWidget(viewer)
    qtbot.addWidget(peaks)
    peaks.layers.value = [viewer.layers[0]]
    peaks.center.value = 1450.0
    run_dock(peaks)
    peak_map = viewer.layers[-1]
    assert peak_map.ndim == 2 and peak_map.colorbar.visible  # the new map is the selected layer
    assert not viewer.layers[0].colorbar.visible  # cubes: the band changes, no fixed bar
    # two maps overlaid: only the selected one has a colour bar; in grid mode each has its own
    peaks.layers.value = [viewer.layers[1]]
    run_dock(peaks)
    second = viewer.layers[-1]
    assert second.colorbar.visible and not peak_map.colorbar.visible
    viewer.layers.selection.active = peak_map
    assert peak_map.colorbar.visible and not second.colorbar.visible
    viewer.canvas.grid.enabled = True
    assert peak_map.colorbar.visible and second.colorbar.visible
    second.visible = False
    assert not second.colorbar.visible
    plain = viewer.add_image(nd.simulate.simulate_cell((8, 8), n_bands=40, seed=1).noisy[0], name="user's own")
    assert not plain.colorbar.visible  # not the plugin's: left as napari shows it
