"""Side-by-side grids of the Denoise, Super-resolve and Compare docks, driven as a user does:
every panel titled with the part of its name that differs (and drawn on the canvas), the view
reset when the grid is made, and one contrast from percentiles that a hot pixel does not set."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper._widgets._grid import distinct_titles, panel_title

pytestmark = pytest.mark.gui

HOT = 1.0e5  # a cosmic ray / hot pixel, far above the cube's values


def drawn_titles(viewer, layers) -> list[str]:
    """The title texts napari's canvas draws on each layer's panel (what the user reads)."""
    canvas = viewer.window._qt_viewer.canvas
    texts = []
    for layer in layers:
        visuals = canvas._layer_overlay_to_visual.get(layer, {})
        texts += [visual.node.text for overlay, visual in visuals.items() if type(overlay).__name__ == "PanelTitleOverlay"]
    return texts


def assert_view_reset(viewer):
    """The camera is where napari's Home button puts it (whole images in every panel)."""
    zoom, center = viewer.scene.camera.zoom, tuple(viewer.scene.camera.center)
    viewer.reset_view()
    assert viewer.scene.camera.zoom == pytest.approx(zoom)
    assert tuple(viewer.scene.camera.center) == pytest.approx(center)


def with_hot_pixel(data: np.ndarray) -> np.ndarray:
    hot = data.copy()
    hot[:, 3, 4] = HOT
    return hot


def test_distinct_titles_keep_what_differs():
    assert distinct_titles(["thp1_witec_40x40x500 · resunet", "thp1_witec_40x40x500 · savgol"]) == [
        "resunet", "savgol"]
    # the input beside its results keeps its own name's last part
    assert distinct_titles(["cell", "cell · savgol", "cell · pca"]) == ["cell", "savgol", "pca"]
    assert distinct_titles(["a · x · out", "b · x · out"]) == ["a", "b"]
    assert distinct_titles(["short", "other"]) == ["short", "other"]
    # a reference beside a scan and its results: the names that start alike are trimmed together
    assert distinct_titles(["cell high SNR", "cell low SNR", "cell low SNR · hybrid", "cell low SNR · pca"]) == [
        "cell high SNR", "cell low SNR", "hybrid", "pca"]
    long = "p" * 50 + " · method"
    (title, _) = distinct_titles([long, "q · method"])
    assert title.startswith("…") and title.endswith("p") and len(title) <= 36


def test_denoise_grid_titles_reset_view_and_robust_contrast(qtbot, make_napari_viewer):
    from napari_deeper._widgets.denoise import DenoiseWidget

    cell = nd.simulate.simulate_cell((24, 24), n_bands=60, photons=40, seed=3)
    viewer = make_napari_viewer()
    layer = viewer.add_image(with_hot_pixel(cell.noisy), name="thp1_witec_40x40x500",
                             metadata={"wavenumbers": cell.wavenumbers})
    widget = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.methods.value = ["savgol", "pca"]
    widget.runner.run_button.click()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60000)
    assert widget.runner.last_error is None, widget.runner.last_error
    viewer.scene.camera.zoom *= 8  # the user zoomed into a corner before asking for the grid
    viewer.scene.camera.center = (0, 2, 2)

    widget.side_by_side.value = True
    shown = [lay for lay in viewer.layers if lay.visible]
    assert viewer.canvas.grid.enabled and len(shown) == 3
    assert [panel_title(lay) for lay in shown] == ["thp1_witec_40x40x500", "savgol", "pca"]
    assert sorted(drawn_titles(viewer, shown)) == sorted(["thp1_witec_40x40x500", "savgol", "pca"])
    assert_view_reset(viewer)
    limits = {tuple(lay.contrast_limits) for lay in shown}
    assert len(limits) == 1
    low, high = limits.pop()
    band = layer.data[int(viewer.dims.current_step[0])]
    assert high < 0.1 * HOT  # not set by the hot pixel
    assert high >= np.percentile(band, 99)  # the bright cell stays visible
    shown[1].contrast_limits = (low, high / 2)  # linked while the grid is shown
    assert tuple(shown[0].contrast_limits) == pytest.approx((low, high / 2))

    widget.side_by_side.value = False
    assert not viewer.canvas.grid.enabled
    assert all(panel_title(lay) is None for lay in viewer.layers)
    assert drawn_titles(viewer, viewer.layers) == []


def test_superres_grid_titles_and_contrast(qtbot, make_napari_viewer):
    from napari_deeper._widgets.superres import SuperResWidget

    rng = np.random.default_rng(0)
    cube = (1 + rng.random((12, 40, 40))).astype(np.float32)
    viewer = make_napari_viewer()
    viewer.add_image(with_hot_pixel(cube), name="scan", metadata={"wavenumbers": np.linspace(600, 1800, 12)})
    widget = SuperResWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.methods.value = ["nearest", "bicubic"]
    widget.side_by_side.value = True
    widget.runner.run_button.click()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60000)
    assert widget.runner.last_error is None, widget.runner.last_error

    shown = [lay for lay in viewer.layers if lay.visible]
    assert viewer.canvas.grid.enabled and len(shown) == 3
    assert [panel_title(lay) for lay in shown] == ["scan", "nearest ×2", "bicubic ×2"]
    assert len(drawn_titles(viewer, shown)) == 3
    assert_view_reset(viewer)
    (limits,) = {tuple(lay.contrast_limits) for lay in shown}
    # the values lie in [1, 2]; the hot pixel (1e5) and bicubic's ringing around it do not set it
    assert 1.9 < limits[1] < 0.01 * HOT


def test_compare_grid_titles_show_the_differing_part(qtbot, make_napari_viewer):
    from napari_deeper._widgets.compare import CompareWidget

    rng = np.random.default_rng(1)
    reference = (1 + rng.random((8, 16, 16))).astype(np.float32)
    viewer = make_napari_viewer()
    prefix = "thp1_witec_40x40x500 · preprocessed"
    names = [f"{prefix} · reference", f"{prefix} · resunet", f"{prefix} · savgol"]
    for index, name in enumerate(names):
        data = reference + 0.01 * index
        viewer.add_image(with_hot_pixel(data) if index == 1 else data, name=name,
                         metadata={"wavenumbers": np.linspace(600, 1800, 8)})
    widget = CompareWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reference.value = viewer.layers[names[0]]
    widget.candidates.value = [viewer.layers[n] for n in names[1:]]
    viewer.scene.camera.zoom *= 5

    widget.side_by_side_button.click()
    shown = [viewer.layers[n] for n in names]
    assert [panel_title(lay) for lay in shown] == ["reference", "resunet", "savgol"]
    assert sorted(drawn_titles(viewer, shown)) == ["reference", "resunet", "savgol"]
    assert_view_reset(viewer)
    (limits,) = {tuple(lay.contrast_limits) for lay in shown}
    assert limits[1] < 3.0

    shown[2].name = f"{prefix} · savgol window 21"  # renamed while shown: its title follows
    assert panel_title(shown[2]) == "savgol window 21"
    assert "savgol window 21" in drawn_titles(viewer, shown)

    widget.normal_view_button.click()
    assert all(panel_title(lay) is None for lay in viewer.layers)

    widget.side_by_side_button.click()
    viewer.canvas.grid.enabled = False  # napari's grid button
    assert all(panel_title(lay) is None for lay in viewer.layers)
    shown[0].contrast_limits = (1.0, 1.5)  # no longer linked
    assert tuple(shown[1].contrast_limits) != pytest.approx((1.0, 1.5))


def test_titles_fit_their_panels_and_follow_a_resize(qtbot, make_napari_viewer):
    """Four panels with long names in a narrow canvas: every title is cut to its panel's width
    (keeping its end), and widening the canvas gives the titles their whole text back."""
    from napari_deeper._widgets._grid import TITLE_CHAR_PIXELS, show_side_by_side

    viewer = make_napari_viewer()
    names = ["cell high SNR (1000 photons)", "cell low SNR (50 photons)",
             "cell low SNR (50 photons) · hybrid", "cell low SNR (50 photons) · resunet"]
    layers = [viewer.add_image(np.full((4, 6, 6), i, np.float32), name=name) for i, name in enumerate(names)]
    viewer.canvas.size = (400, 360)  # (height, width) as napari's canvas reports a resize: 180 px panels
    show_side_by_side(viewer, layers)
    width = viewer.canvas.viewbox_size(viewer.layers)[1]
    titles = [panel_title(layer) for layer in layers]
    assert all(len(title) * TITLE_CHAR_PIXELS <= width for title in titles), (titles, width)
    assert titles[0].startswith("…") and titles[0].endswith("(1000 photons)")
    assert sorted(drawn_titles(viewer, layers)) == sorted(titles)
    viewer.canvas.size = (800, 1600)
    assert [panel_title(layer) for layer in layers] == ["cell high SNR (1000 photons)", "cell low SNR (50 photons)",
                                                        "hybrid", "resunet"]


def test_thp1_grid_contrast_is_not_set_by_its_cosmic_rays(qtbot, make_napari_viewer, thp1_path):
    """The real WITec THP-1 map at a band with a cosmic ray: the panels are not black."""
    from napari_deeper._widgets.denoise import DenoiseWidget
    from napari_deeper._widgets.workflow import show_band

    viewer = make_napari_viewer()
    (raw,) = viewer.open(str(thp1_path), plugin="napari-deeper")
    widget = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.methods.value = ["savgol"]
    widget.side_by_side.value = True
    show_band(viewer, raw, 624.5)  # a cosmic ray sits at this band (see the Unmix docs)
    widget.runner.run_button.click()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60000)
    assert widget.runner.last_error is None, widget.runner.last_error

    shown = [lay for lay in viewer.layers if lay.visible]
    assert [panel_title(lay) for lay in shown] == ["thp1_witec_40x40x500", "savgol"]
    band = raw.data[int(viewer.dims.current_step[0])]
    (low, high), = {tuple(lay.contrast_limits) for lay in shown}
    assert high < 0.5 * band.max()  # the spike's value would leave the rest of the panel black
    assert np.mean(band > high) < 0.01  # at most the brightest 1 % saturate
