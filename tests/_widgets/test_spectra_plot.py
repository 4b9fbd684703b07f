"""The Spectra plot in a real viewer: blitted live lines, the band marker, a click sets the band,
the legend list, normalised layers on their own axis, an honest x label."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

import napari_deeper as nd
from napari_deeper import provenance
from napari_deeper._widgets import _display
from napari_deeper._widgets.spectra import LEGEND_ROWS, REFIT_MS, SpectraWidget

pytestmark = pytest.mark.gui

N_BANDS = 120


@pytest.fixture(scope="module")
def cell():
    return nd.simulate.simulate_cell((20, 24), n_bands=N_BANDS, photons=300, seed=7)


def made_layer(viewer, data, name, wavenumbers, **extra):
    """A cube as the plugin's reader or docks add it (with a provenance record)."""
    record = provenance.record("load", f"{name}.npy", replay=False, **extra)
    metadata = {provenance.KEY: record}
    if wavenumbers is not None:
        metadata["wavenumbers"] = wavenumbers
    return viewer.add_image(data, name=name, metadata=metadata,
                            axis_labels=("wavenumber", "y", "x"), units=("1/cm", "pixel", "pixel"))


@pytest.fixture
def viewer(make_napari_viewer, cell):
    viewer = make_napari_viewer()
    made_layer(viewer, cell.noisy, "cell", cell.wavenumbers)
    return viewer


@pytest.fixture
def spectra(qtbot, viewer):
    widget = SpectraWidget(viewer)
    qtbot.addWidget(widget)
    widget.resize(520, 420)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.waitUntil(lambda: widget._background is not None, timeout=3000)
    return widget


def settle(qtbot, widget) -> None:
    """Let a pending re-fit of the axes (a full redraw) happen, and the redraw asked for be done."""
    qtbot.waitUntil(lambda: not (widget._rescale_timer.isActive() or widget._refit_timer.isActive()), timeout=3000)
    qtbot.waitUntil(lambda: not widget.canvas._draw_pending, timeout=3000)  # matplotlib's draw_idle flag
    qtbot.wait(50)


def count_full_draws(widget) -> list:
    draws = []
    widget.canvas.mpl_connect("draw_event", lambda event: draws.append(event))
    return draws


def world(layer, row, col, band=0):
    return tuple(layer.data_to_world((band, row, col)))


def click_plot(qtbot, widget, x_data: float) -> None:
    """A left click on the plot at spectral position ``x_data`` (real Qt mouse events)."""
    y_data = float(np.mean(widget.axes.get_ylim()))
    x_px, y_px = widget.axes.transData.transform((x_data, y_data))
    ratio = widget.canvas.device_pixel_ratio
    point = QPoint(int(round(x_px / ratio)), int(round(widget.canvas.height() - y_px / ratio)))
    qtbot.mouseClick(widget.canvas, Qt.MouseButton.LeftButton, pos=point)


def test_live_lines_are_blitted_not_redrawn(qtbot, spectra, viewer, cell):
    """Moving over pixels of similar brightness redraws no figure: only the lines, over the background."""
    layer = viewer.layers["cell"]
    spectra.update_live(world(layer, 5, 5))
    settle(qtbot, spectra)
    draws = count_full_draws(spectra)
    line = spectra._live["cell"].artists[0]
    assert line.get_animated()
    low, high = spectra.axes.get_ylim()
    similar = [(r, c) for r in range(20) for c in range(24)
               if cell.noisy[:, r, c].min() >= low and cell.noisy[:, r, c].max() <= high
               and np.ptp(cell.noisy[:, r, c]) > 0.5 * (high - low)]
    assert len(similar) >= 5, "the simulated cell should have pixels that fit the first one's axes"
    for row, col in similar[:10]:
        spectra.update_live(world(layer, row, col))
        np.testing.assert_array_equal(line.get_ydata(), cell.noisy[:, row, col])
        assert spectra._live["cell"].artists[0] is line  # the same artist, new data
    settle(qtbot, spectra)
    assert draws == []  # no full redraw for any of the ten moves
    # a much brighter pixel does not fit: the axes are re-fitted (one full redraw)
    spectra.update_live(world(layer, 5, 5))
    bright = np.unravel_index(np.argmax(cell.noisy.max(axis=0)), (20, 24))
    spectra._last_full_draw = 0.0
    spectra.update_live(world(layer, *bright))
    qtbot.waitUntil(lambda: len(draws) >= 1, timeout=3000)
    assert spectra.axes.get_ylim()[1] >= cell.noisy[:, bright[0], bright[1]].max()
    # back on a dim pixel: the axis stays wide while the mouse moves, and fits once it rests
    dim = np.unravel_index(np.argmin(cell.noisy.max(axis=0)), (20, 24))
    spectra.update_live(world(layer, *dim))
    wide = spectra.axes.get_ylim()
    qtbot.waitUntil(lambda: spectra.axes.get_ylim()[1] < wide[1], timeout=3000)
    assert spectra.axes.get_ylim()[1] >= cell.noisy[:, dim[0], dim[1]].max()
    # a full redraw draws the figure once (the band selector reuses the plot's background)
    settle(qtbot, spectra)
    qtbot.wait(REFIT_MS + 100)
    count = len(draws)
    spectra.canvas.draw()
    assert len(draws) == count + 1


def test_layout_is_computed_again_only_when_ticks_or_size_change(qtbot, spectra, viewer, monkeypatch):
    """A full redraw keeps the last layout while ticks, labels and size stay; when they change it
    lays out again, to the positions matplotlib's own constrained layout gives."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    layer = viewer.layers["cell"]
    spectra.update_live(world(layer, 5, 5))
    settle(qtbot, spectra)
    laid_out = []
    original = ConstrainedLayoutEngine.execute
    monkeypatch.setattr(ConstrainedLayoutEngine, "execute", lambda engine, fig: laid_out.append(1) or original(engine, fig))

    def positions():
        return [axes.get_position().bounds for axes in spectra.figure.axes]

    spectra.canvas.draw()
    spectra.canvas.draw()
    assert laid_out == []  # nothing changed: the layout of the last draw stands
    low, high = spectra.axes.get_ylim()
    spectra.axes.set_ylim(low, 1e5 * max(high, 1.0))  # much longer tick labels
    spectra.canvas.draw()
    assert len(laid_out) == 1
    cached = positions()
    reference = ConstrainedLayoutEngine()
    reference.execute(spectra.figure)
    np.testing.assert_allclose(cached, positions(), atol=1e-4)  # its passes settle to within 0.05 px
    spectra.figure.set_size_inches(3.5, 2.5)
    spectra.canvas.draw()
    assert len(laid_out) == 3


def test_marker_follows_the_band_slider_and_a_click_sets_it(qtbot, spectra, viewer, cell):
    layer = viewer.layers["cell"]
    spectra.update_live(world(layer, 4, 4))
    spectra.select_band(1400, 1500)
    viewer.dims.set_current_step(0, 30)
    qtbot.waitUntil(lambda: spectra.marker.get_visible()
                    and spectra.marker.get_xdata()[0] == pytest.approx(cell.wavenumbers[30]), timeout=3000)
    assert spectra.marker_text.get_text() == f"{cell.wavenumbers[30]:.1f} cm⁻¹"
    viewer.dims.set_current_step(0, 90)
    qtbot.waitUntil(lambda: spectra.marker.get_xdata()[0] == pytest.approx(cell.wavenumbers[90]), timeout=3000)

    # a click on the plot moves the slider to the band nearest the click; the picked band stays
    target = 1004.0
    expected = int(np.argmin(np.abs(cell.wavenumbers - target)))
    spectra.canvas.draw()
    click_plot(qtbot, spectra, target)
    qtbot.waitUntil(lambda: viewer.dims.current_step[0] == expected, timeout=3000)
    assert spectra.last_span == (pytest.approx(1450), pytest.approx(100))
    assert spectra.span.extents == (pytest.approx(1400), pytest.approx(1500))
    qtbot.waitUntil(lambda: spectra.marker.get_xdata()[0] == pytest.approx(cell.wavenumbers[expected]),
                    timeout=3000)
    # a drag on the plot picks a band and leaves the slider where it was
    from matplotlib.testing.widgets import click_and_drag

    middle = float(np.mean(spectra.axes.get_ylim()))
    click_and_drag(spectra.span, start=(1200, middle), end=(1300, middle))
    assert spectra.last_span == (pytest.approx(1250, abs=0.01), pytest.approx(100, abs=0.01))
    assert viewer.dims.current_step[0] == expected


def test_legend_is_a_list_that_folds_and_hides_curves(qtbot, spectra, viewer):
    layer = viewer.layers["cell"]
    for row in range(0, 20, 2):
        for col in (3, 12):
            spectra.pin(world(layer, row, col))
    spectra.update_live(world(layer, 1, 1))
    assert spectra.axes.get_legend() is None and not spectra.figure.legends  # nothing covers the curves
    entries = spectra.legend.entries()
    assert len(entries) == 21 and entries[0] == "cell" and entries[1] == "cell @ (0, 3)"
    rows = spectra.legend.list.sizeHintForRow(0)
    assert spectra.legend.list.height() <= rows * LEGEND_ROWS + 10  # it scrolls beyond five rows
    spectra.legend.header.click()
    assert spectra.legend.folded and not spectra.legend.list.isVisible()
    spectra.legend.header.click()
    assert spectra.legend.list.isVisible()
    # unticking a row hides its curve
    item = spectra.legend.list.item(1)
    item.setCheckState(Qt.CheckState.Unchecked)
    pin = next(s for s in spectra._pins if s.label == "cell @ (0, 3)")
    assert not pin.artists[0].get_visible()
    assert "cell @ (0, 3)" in spectra._hidden
    spectra.legend.list.item(1).setCheckState(Qt.CheckState.Checked)
    pin = next(s for s in spectra._pins if s.label == "cell @ (0, 3)")
    assert pin.artists[0].get_visible()


def test_normalised_layer_gets_its_own_axis(qtbot, viewer, spectra, cell, run_dock):
    """A layer the Preprocess dock normalised is drawn against a right-hand axis next to raw ones."""
    from napari_deeper._widgets.preprocess import PreprocessWidget

    counts = made_layer(viewer, cell.noisy * 1000, "counts", cell.wavenumbers)  # raw data: counts
    viewer.layers["cell"].visible = False
    dock = PreprocessWidget(viewer)
    qtbot.addWidget(dock)
    dock.layer.value = counts
    dock.normalisation.value = "vector"
    run_dock(dock)
    normalised = viewer.layers["counts · preprocessed"]
    spectra.update_live(world(normalised, 6, 6))
    assert spectra.axes_norm.get_visible()
    raw_line, norm_line = spectra._live["counts"].artists[0], spectra._live["counts · preprocessed"].artists[0]
    assert raw_line.axes is spectra.axes and norm_line.axes is spectra.axes_norm
    assert spectra.axes.get_ylim()[1] > 100 and spectra.axes_norm.get_ylim()[1] < 1
    values = norm_line.get_ydata()
    assert np.ptp(values) > 0.5 * np.ptp(spectra.axes_norm.get_ylim())  # not squashed flat
    assert "counts · preprocessed (right axis)" in spectra.legend.entries()
    # the raw layer hidden: one kind of curve left, one axis, named for what it shows
    counts.visible = False
    qtbot.waitUntil(lambda: "counts" not in spectra._live, timeout=3000)
    assert not spectra.axes_norm.get_visible()
    assert spectra.axes.get_ylabel() == "Normalised intensity"
    assert spectra._live["counts · preprocessed"].artists[0].axes is spectra.axes


def test_x_label_says_what_is_plotted(qtbot, viewer, spectra, cell):
    layer = viewer.layers["cell"]
    spectra.pin(world(layer, 3, 3))
    spectra.update_live((0.0, 100.0, 100.0))  # off the image: only the pin is left
    assert spectra._live == {}
    assert spectra.axes.get_xlabel() == "Raman shift (cm⁻¹)"
    viewer.layers.remove(layer)  # pins stay, and so does their axis
    qtbot.wait(50)
    assert spectra.axes.get_xlabel() == "Raman shift (cm⁻¹)"
    bare = made_layer(viewer, cell.noisy, "no axis", None)
    spectra.update_live(world(bare, 2, 2))
    assert set(spectra.axes.get_xlabel().split(" · ")) == {"Raman shift (cm⁻¹)", "Band index"}
    spectra.clear_pins()
    assert spectra.axes.get_xlabel() == "Band index"


def test_figure_export_keeps_live_lines(qtbot, spectra, viewer, tmp_path):
    """Saved figures show the (animated) live lines and a legend beside the axes."""
    from matplotlib.image import imread

    layer = viewer.layers["cell"]
    spectra.update_live(world(layer, 8, 8))
    spectra.pin(world(layer, 2, 2))
    path = tmp_path / "plot.png"
    spectra.export_figure(path, dpi=80)
    image = imread(path)
    colour = np.asarray(spectra._live["cell"].colour)
    close = np.all(np.abs(image[..., :3] - colour) < 0.02, axis=-1)
    assert close.sum() > 50  # the live line's colour is in the picture
    assert spectra._live["cell"].artists[0].get_animated()  # blitting again afterwards
    assert not spectra.figure.legends


def test_update_is_cheap_on_a_large_cube(qtbot, make_napari_viewer):
    """One live update (spectrum read and blit) on a 500 x 500 x 300 cube stays far below a full redraw."""
    import time

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    data = rng.random((300, 500, 500), dtype=np.float32)
    made_layer(viewer, data, "big", np.linspace(400, 1800, 300))
    widget = SpectraWidget(viewer)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    widget.update_live((0, 250, 250))
    qtbot.waitUntil(lambda: widget._background is not None, timeout=3000)
    times = []
    for row, col in rng.integers(0, 500, (30, 2)):
        start = time.perf_counter()
        widget.update_live((0, float(row), float(col)))
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    widget.canvas.draw()
    full = time.perf_counter() - start
    assert np.median(times) < full / 3, (np.median(times), full)
    assert _display.is_cube(viewer.layers["big"])


def test_first_spectra_under_the_cursor_need_no_full_redraw(qtbot, spectra, viewer, cell):
    """The axes are set from the layer when the dock opens, so the first hover (often while a run
    starts) only draws the lines over the saved background."""
    layer = viewer.layers["cell"]
    settle(qtbot, spectra)
    np.testing.assert_allclose(spectra.axes.get_xlim(), (cell.wavenumbers.min() - 0.01 * np.ptp(cell.wavenumbers),
                                                         cell.wavenumbers.max() + 0.01 * np.ptp(cell.wavenumbers)))
    draws = count_full_draws(spectra)
    for row, col in [(10, 12), (3, 4), (15, 20)]:
        spectra.update_live(world(layer, row, col))
        assert not spectra._rescale_timer.isActive()
    qtbot.wait(100)
    assert draws == [], "no full redraw while the cursor moves"
    low, high = spectra.axes.get_ylim()
    assert low <= cell.noisy[:, 10, 12].min() and cell.noisy[:, 10, 12].max() <= high
