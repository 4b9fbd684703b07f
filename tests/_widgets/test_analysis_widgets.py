"""The Analyse dock in a real viewer, driven as a user would: every tab on simulated cubes whose
truth is known and on the real THP-1 file; each layer it makes replayed bit-identically from its
saved recipe; bad input gives a clear message and no layer."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper import analysis, provenance
from napari_deeper.recipe import Recipe

pytestmark = pytest.mark.gui
S = nd.simulate
PLUGIN = "napari-deeper"


# -------------------------------------------------------------------------------- helpers
def opened(viewer, tmp_path, data, wavenumbers, name="cell"):
    """Save a cube and open it through the plugin's reader, as a user drags a file in."""
    path = tmp_path / f"{name}.npz"
    nd.save_cube(np.asarray(data, np.float32), path, wavenumbers=wavenumbers)
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    return layer, path


def replayed(layer, source_file, tmp_path):
    """The layer's recipe saved, loaded back and replayed on the cube read from its file."""
    saved = Recipe.from_layer(layer).save(tmp_path / "layer.recipe.json")
    return Recipe.load(saved).run(nd.load_cube(source_file))


def shown(label) -> str:
    """A message label's text as one line (the docks wrap long messages)."""
    return " ".join(label.value.split())


def new_layers(viewer, before) -> list:
    return [layer for layer in viewer.layers if layer.name not in before]


@pytest.fixture
def dock(make_napari_viewer):
    """The Analyse dock opened from the Plugins menu of a fresh viewer: (viewer, dock)."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Analyse")
    return viewer, widget


@pytest.fixture(scope="module")
def cell():
    return S.simulate_cell((16, 18), n_bands=300, photons=300, seed=3)


@pytest.fixture(scope="module")
def shifted():
    """24 x 24 pixels of a pseudo-Voigt band at 1004 cm-1 whose centre moves by up to 3 cm-1, at
    100 photons; the last four columns have no band at all."""
    w = S.wavenumber_axis(500)
    yy, xx = np.mgrid[:24, :24]
    centre = 1004.0 + 3.0 * np.sin(yy / 5.0) * np.cos(xx / 6.0)
    height = np.ones_like(centre)
    height[:, 20:] = 0.0
    profile = S.pseudo_voigt(w, centre[..., None], 12.0, height[..., None])
    clean = np.moveaxis(profile + 0.05, -1, 0)
    return w, centre, S.add_noise(clean, 100, np.random.default_rng(1)).astype(np.float32)


# ---------------------------------------------------------------------------------- dock
def test_analyse_dock_has_its_tabs(dock):
    from napari_deeper._widgets.analyse import TABS

    viewer, widget = dock
    assert [widget.tabs.tabText(i) for i in range(widget.tabs.count())] == list(TABS)
    assert widget.show_tab("Clusters") is widget.clusters and widget.tabs.currentWidget() is widget.clusters
    with pytest.raises(ValueError, match="no tab 'Fit'; the tabs are Baseline, Peak fit"):
        widget.show_tab("Fit")


# ------------------------------------------------------------------------------ baseline
def test_baseline_preview_follows_the_mouse_and_the_parameters(dock, qtbot, tmp_path, cell, run_dock):
    viewer, widget = dock
    layer, path = opened(viewer, tmp_path, cell.noisy, cell.wavenumbers)
    tab = widget.baseline
    assert tab.layer.value is layer and tab.method.value == "arpls"
    assert tab.pixel == (8, 9)  # the middle pixel until the mouse comes
    qtbot.waitUntil(lambda: "baseline" in tab.preview_curves, timeout=5000)

    viewer.cursor.position = tuple(layer.data_to_world((0, 3, 11)))  # the mouse over pixel (3, 11)
    qtbot.waitUntil(lambda: tab.pixel == (3, 11) and tab.pixel_label.value.startswith("Preview: pixel (3, 11)"),
                    timeout=5000)
    spectrum = cell.noisy[:, 3, 11].astype(np.float32)
    np.testing.assert_array_equal(tab.preview_curves["spectrum"], spectrum)
    np.testing.assert_array_equal(tab.preview_curves["baseline"],
                                  analysis.estimate_baseline(spectrum, cell.wavenumbers, "arpls"))
    stiff = tab.preview_curves["baseline"]
    tab.panels["arpls"].controls["lam"].value = 1e3  # a softer baseline, redrawn at once
    qtbot.waitUntil(lambda: not np.array_equal(tab.preview_curves["baseline"], stiff), timeout=5000)
    np.testing.assert_array_equal(tab.preview_curves["baseline"],
                                  analysis.estimate_baseline(spectrum, cell.wavenumbers, "arpls", lam=1e3))
    np.testing.assert_allclose(tab.preview_curves["corrected"], spectrum - tab.preview_curves["baseline"])
    assert len(tab.plot.axes.lines) == 4  # spectrum, baseline, corrected and the zero line

    tab.method.value = "modpoly"  # the hand-written ModPoly, its own parameters shown
    assert not tab.panels["modpoly"].native.isHidden() and tab.panels["arpls"].native.isHidden()

    before = {layer.name for layer in viewer.layers}
    tab.method.value = "snip"
    tab.panels["snip"].controls["max_half_window"].value = 25
    run_dock(tab.runner)
    (made,) = new_layers(viewer, before)
    assert made.name == "cell · snip baseline removed"
    assert np.array_equal(made.data, nd.remove_baseline(cell.noisy, cell.wavenumbers, "snip", max_half_window=25))
    np.testing.assert_array_equal(made.metadata["wavenumbers"], cell.wavenumbers)
    step = Recipe.from_layer(made).steps[-1]
    assert step == {"operation": "baseline", "method": "snip", "params": {"max_half_window": 25, "decreasing": False}}
    assert np.array_equal(replayed(made, path, tmp_path).final, made.data)


def test_baseline_tab_refuses_what_the_method_does_not_accept(dock, tmp_path, run_dock):
    viewer, widget = dock
    w = np.linspace(500.0, 1800.0, 6)
    opened(viewer, tmp_path, np.ones((6, 4, 4), np.float32), w, "short")
    tab = widget.baseline
    tab.method.value = "modpoly"
    tab.panels["modpoly"].controls["poly_order"].value = 5  # six bands take at most order 4
    tab.preview_at(1, 1)
    assert "poly_order must be between 0 and 4, got 5" in tab.preview_error
    before = len(viewer.layers)
    run_dock(tab.runner, fails=True)
    assert "poly_order must be between 0 and 4" in str(tab.runner.last_error)
    assert len(viewer.layers) == before


# ------------------------------------------------------------------------------ peak fit
def test_peak_fit_maps_recover_known_centres_and_mask_failures(dock, tmp_path, shifted, run_dock):
    viewer, widget = dock
    w, centre, noisy = shifted
    layer, path = opened(viewer, tmp_path, noisy, w, "shifted")
    tab = widget.show_tab("Peak fit")
    tab.shape.value = "pseudo-voigt"
    assert "gaussian_fraction" in tab.maps.choices
    tab.maps.value = ["center", "fwhm", "height", "area", "r2"]
    tab.bands.value = "1004±15"
    before = {layer.name for layer in viewer.layers}
    run_dock(tab.runner)
    made = {layer.name.split("· ")[-1]: layer for layer in new_layers(viewer, before)}
    assert set(made) == {f"1004 cm⁻¹ {kind}" for kind in ("centre", "FWHM", "height", "area", "R²", "fit failed")}
    found = made["1004 cm⁻¹ centre"].data
    assert found.shape == (24, 24)
    error = found[:, :20] - centre[:, :20]
    assert np.sqrt(np.nanmean(error**2)) < 0.5  # the target at 100 photons
    # no band: masked, not silently wrong (at 3 noise SDs a rare noise bump still passes for a peak)
    assert np.isnan(found[:, 20:]).mean() > 0.95
    failed = made["1004 cm⁻¹ fit failed"]
    assert np.array_equal(failed.data > 0, np.isnan(found)) and (failed.data[:, :20] > 0).mean() < 0.02
    n_failed = int((failed.data > 0).sum())
    assert f"band 1004: {576 - n_failed} of 576 pixels fitted; {n_failed} failed" in shown(tab.summary)
    fit = analysis.fit_peaks(noisy, w, [(1004.0, 15.0)], shape="pseudo-voigt")
    assert np.array_equal(found, fit["center"][0], equal_nan=True)
    assert made["1004 cm⁻¹ centre"].scale.tolist() == list(layer.scale[1:])
    for one in made.values():
        step = Recipe.from_layer(one).steps[-1]
        assert step["operation"] == "peak_fit" and step["method"] == "pseudo-voigt" and step["params"]["band"] == 0
        assert np.array_equal(replayed(one, path, tmp_path).final, one.data, equal_nan=True), one.name


def test_peak_fit_of_two_bands_and_a_band_picked_on_the_spectra_plot(dock, tmp_path, cell, run_dock):
    from napari_deeper._widgets.spectra import SpectraWidget

    viewer, widget = dock
    layer, path = opened(viewer, tmp_path, cell.noisy, cell.wavenumbers)
    tab = widget.peak_fit
    tab.bands.value = "1004±15"
    spectra = SpectraWidget(viewer)
    spectra.select_band(1430.0, 1470.0)  # dragged across the Spectra plot
    assert tab.bands.value == "1004±15, 1450±20"
    tab.maps.value = ["center", "area"]
    before = {layer.name for layer in viewer.layers}
    run_dock(tab.runner)
    names = [layer.name for layer in new_layers(viewer, before) if "fit failed" not in layer.name]
    assert names == [f"cell · {c} cm⁻¹ {kind}" for c in (1004, 1450) for kind in ("centre", "area")]
    second = viewer.layers["cell · 1450 cm⁻¹ area"]
    fit = analysis.fit_peaks(cell.noisy, cell.wavenumbers, [(1004.0, 15.0), (1450.0, 20.0)])
    assert np.array_equal(second.data, fit["area"][1], equal_nan=True)
    assert np.array_equal(replayed(second, path, tmp_path).final, second.data, equal_nan=True)


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ("3000±10", "band 2990-3010 lies outside the spectral axis, which runs from 500 to 1800"),
        ("1004±2", r"covers 1 band of the axis; a lorentzian fit of 1 peak\(s\) .* needs at least 6 bands: widen"),
        ("1004 plus 15", "bands must be written as centre±half-window"),
        ("", "bands is empty"),
    ],
)
def test_peak_fit_bad_bands_say_why_and_make_no_layer(dock, tmp_path, cell, bands, message, run_dock):
    import re

    viewer, widget = dock
    opened(viewer, tmp_path, cell.noisy, cell.wavenumbers)
    tab = widget.peak_fit
    tab.bands.value = bands
    before = len(viewer.layers)
    run_dock(tab.runner, fails=True)
    assert re.search(message, str(tab.runner.last_error)), tab.runner.last_error
    assert tab.runner.status.text().startswith("Failed:")
    assert len(viewer.layers) == before


# ---------------------------------------------------------------------------- band ratio
def test_band_ratio_map_recovers_a_known_ratio_and_masks_noise(dock, tmp_path, run_dock):
    viewer, widget = dock
    w = S.wavenumber_axis(400)
    yy, xx = np.mgrid[:12, :16]
    truth = 0.5 + xx / 16.0
    den = np.where(xx < 3, 0.0, 1.0)  # no denominator band in three columns
    profile_num = S.pseudo_voigt(w, 1660.0, 20.0, 1.0, rho=0.0)
    profile_den = S.pseudo_voigt(w, 1450.0, 20.0, 1.0, rho=0.0)
    clean = truth[..., None] * profile_num + den[..., None] * profile_den + 0.05
    cube = np.moveaxis(S.add_noise(clean, 2000, np.random.default_rng(4), band_axis=-1), -1, 0)
    layer, path = opened(viewer, tmp_path, cube, w, "ratio")
    tab = widget.band_ratio
    tab.numerator.value, tab.denominator.value = "1660±40", "1450±40"
    assert not tab.shape.enabled
    tab.mode.value = "fitted-height"
    assert tab.shape.enabled
    run_dock(tab.runner)
    made = viewer.layers[-1]
    assert made.name == "ratio · 1660/1450 cm⁻¹ fitted-height ratio"
    assert np.isnan(made.data[:, :3]).all() and not np.isnan(made.data[:, 3:]).any()
    np.testing.assert_allclose(np.median(made.data[:, 3:], axis=0), truth[0, 3:], rtol=0.03)
    assert "36 masked where the 1450 band is below 3 noise standard deviations" in shown(tab.summary)
    assert Recipe.from_layer(made).steps[-1]["params"] == {
        "numerator": [1660.0, 40.0], "denominator": [1450.0, 40.0], "threshold": 3.0, "shape": "lorentzian"}
    assert np.array_equal(replayed(made, path, tmp_path).final, made.data, equal_nan=True)

    tab.denominator.value = "2900±20"  # off the axis
    before = len(viewer.layers)
    run_dock(tab.runner, fails=True)
    assert "lies outside the spectral axis" in str(tab.runner.last_error) and len(viewer.layers) == before
    tab.denominator.value = "1450±20, 1300±20"
    run_dock(tab.runner, fails=True)
    assert "give one band (centre±half-window), got 2" in str(tab.runner.last_error)


# ------------------------------------------------------------------------------ clusters
@pytest.fixture(scope="module")
def three_regions():
    """A 20 x 24 cube of three different spectra in three regions, at 200 photons."""
    w = S.wavenumber_axis(300)
    em, _ = S.component_spectra(w, ["proteins", "lipids", "carotenoids"])
    truth = np.zeros((20, 24), int)
    truth[:, 10:] = 1
    truth[12:, 16:] = 2
    clean = np.moveaxis(em[truth], -1, 0) + 0.05
    return w, truth, S.add_noise(clean, 200, np.random.default_rng(5)).astype(np.float32)


def test_clusters_labels_spectra_in_their_colours_and_the_hint(dock, tmp_path, three_regions, run_dock):
    from napari_deeper._widgets._analysis import PALETTE, component_color

    viewer, widget = dock
    w, truth, cube = three_regions
    layer, path = opened(viewer, tmp_path, cube, w, "regions")
    tab = widget.clusters
    run_dock(tab, button=tab.suggest_button)
    assert tab.suggestion["best"] == 3 and shown(tab.hint).startswith("Hint: 3 clusters has the highest silhouette")
    assert tab.n_clusters.value == 4  # a hint: the count is the user's choice

    tab.n_clusters.value = 3
    tab.method.value = "ward"
    tab.pca.value = 5
    run_dock(tab.runner)
    labels = tab.labels_layer
    assert labels.name == "regions · ward 3 clusters" and labels.data.shape == (20, 24)
    # the clusters are the regions (labels are ordered by size: 1 the largest)
    pairs = {(int(t), int(c)) for t, c in zip(truth.ravel(), labels.data.ravel())}
    assert len(pairs) == 3 and {c for _, c in pairs} == {1, 2, 3}
    assert np.array_equal(labels.data, nd.cluster(cube, 3, "ward", pca=5))
    # each cluster's mean ± std, drawn in its labels colour
    lines = tab.plot.axes.get_lines()
    assert len(lines) == 3 and len(tab.plot.axes.collections) == 3
    for k, line in enumerate(lines, start=1):
        assert line.get_color() == PALETTE[k - 1]
        np.testing.assert_allclose(labels.colormap.map(k), component_color(k - 1))
        np.testing.assert_allclose(line.get_ydata(), cube[:, labels.data == k].mean(axis=1), rtol=1e-5)
        assert line.get_label() == f"cluster {k} (n={int((labels.data == k).sum())})"
    step = Recipe.from_layer(labels).steps[-1]
    assert step == {"operation": "cluster", "method": "ward",
                    "params": {"n_clusters": 3, "pca": 5, "normalise": None, "seed": 0, "sample": 5000}}
    assert np.array_equal(replayed(labels, path, tmp_path).final, labels.data)

    before = len(viewer.layers)
    tab.n_clusters.value = 2
    tab.pca.value = 400  # more components than the 300 bands
    run_dock(tab.runner, fails=True)
    assert "pca must be between 1 and 300 components" in str(tab.runner.last_error)
    assert len(viewer.layers) == before


# --------------------------------------------------------------------------- calibration
def silicon_scan(axis_true, offset, shape=(4, 5), seed=0):
    """A scan of silicon (520.7 cm-1) recorded on an axis ``offset`` cm-1 off."""
    clean = S.pseudo_voigt(axis_true, np.array([520.7]), 4.0, np.ones(1), rho=0.0) + 0.1
    spectrum = S.add_noise(clean, 2000, np.random.default_rng(seed), band_axis=-1)
    return np.broadcast_to(spectrum[:, None, None], (axis_true.size, *shape)).astype(np.float32), axis_true + offset


def test_calibration_from_a_reference_scan_saved_and_applied(dock, tmp_path, monkeypatch, cell, run_dock):
    monkeypatch.setenv("NAPARI_DEEPER_CALIBRATIONS", str(tmp_path / "calibrations"))
    viewer, widget = dock
    scan, recorded = silicon_scan(np.linspace(300.0, 1000.0, 600), 3.2)
    reference, _ = opened(viewer, tmp_path, scan, recorded, "silicon")
    sample_axis = cell.wavenumbers + 3.2  # the cell was recorded on the same instrument
    sample, path = opened(viewer, tmp_path, cell.noisy, sample_axis, "cell")
    tab = widget.show_tab("Calibration")
    tab.reference_layer.value = reference
    tab.reference.value = "silicon"
    assert not tab.lines.enabled
    run_dock(tab.find_runner)
    found = tab.found
    assert found.kind == "shift" and found.offset == pytest.approx(-3.2, abs=0.05)
    assert shown(tab.result).startswith("Found in silicon: silicon: 520.7 at 523.")
    assert shown(tab.result).endswith(f"shift {found.offset:+.2f} cm⁻¹")
    tab.name.value = "microscope A"
    tab.save_button.clicked()
    assert analysis.list_calibrations() == ["microscope A"] and tab.chosen.value == "microscope A"

    tab.targets.value = [sample]
    tab.apply_button.clicked()
    (made,) = tab.made
    assert made.name == "cell · calibrated"
    np.testing.assert_allclose(made.metadata["wavenumbers"], cell.wavenumbers, atol=0.05)
    np.testing.assert_array_equal(made.data, sample.data)
    np.testing.assert_array_equal(sample.metadata["wavenumbers"], sample_axis)  # the input is untouched
    record = provenance.of(made)
    assert record["calibration"]["name"] == "microscope A" and record["calibration"]["lines"] == (520.7,)
    step = Recipe.from_layer(made).steps[-1]
    assert step == {"operation": "calibrate", "method": "linear",
                    "params": {"slope": 1.0, "offset": found.offset}}
    again = replayed(made, path, tmp_path)
    assert np.array_equal(again.final, made.data)
    np.testing.assert_array_equal(again.outputs[-1].wavenumbers, made.metadata["wavenumbers"])

    # a fit on the calibrated layer replays through the calibration step
    fit_tab = widget.peak_fit
    fit_tab.layer.value = made
    fit_tab.maps.value = ["center"]
    run_dock(fit_tab.runner)
    centre = viewer.layers["cell · calibrated · 1004 cm⁻¹ centre"]
    assert [s["operation"] for s in Recipe.from_layer(centre).steps] == ["calibrate", "peak_fit"]
    assert np.array_equal(replayed(centre, path, tmp_path).final, centre.data, equal_nan=True)


def test_calibration_peak_not_found_says_where_it_looked(dock, tmp_path, monkeypatch, run_dock):
    monkeypatch.setenv("NAPARI_DEEPER_CALIBRATIONS", str(tmp_path / "calibrations"))
    viewer, widget = dock
    axis = np.linspace(300.0, 1000.0, 600)
    flat = S.add_noise(np.ones((600, 3, 3)), 1000, np.random.default_rng(0)).astype(np.float32)
    layer, _ = opened(viewer, tmp_path, flat, axis, "flat")
    tab = widget.calibration
    tab.reference_layer.value = layer
    tab.targets.value = [layer]
    run_dock(tab.find_runner, button=tab.apply_button, fails=True)  # nothing found or saved yet
    assert "find a calibration or save one first" in str(tab.find_runner.last_error)
    run_dock(tab.find_runner, fails=True)
    assert "no silicon line found within ±10 cm-1" in str(tab.find_runner.last_error)
    assert tab.found is None and not tab.save_button.enabled and len(viewer.layers) == 1
    tab.reference.value = "lines given below"
    tab.lines.value = "1004, quartz"
    run_dock(tab.find_runner, fails=True)
    assert "reference must be one of silicon, polystyrene or line positions" in str(tab.find_runner.last_error)


# ---------------------------------------------------------------------------- cell table
def test_cell_table_per_roi_per_label_and_per_cluster(dock, tmp_path, three_regions, run_dock):
    viewer, widget = dock
    w, truth, cube = three_regions
    layer = viewer.add_image(cube, name="regions", metadata={"wavenumbers": w}, scale=(1.0, 0.5, 0.5),
                             axis_labels=("wavenumber", "y", "x"), units=("1/cm", "µm", "µm"))
    tab = widget.show_tab("Cell table")
    tab.layer.value = layer
    assert tab.pixel_size.value == 0.5  # from the layer's scale, in µm

    # ROIs drawn in world coordinates (µm), two overlapping rectangles
    shapes = viewer.add_shapes([np.array([[0, 0], [4.0, 4.0]]), np.array([[2.0, 2.0], [6.0, 6.0]])],
                               shape_type="rectangle", name="ROIs")
    tab.regions.value = shapes
    run_dock(tab.runner)
    rows = tab.table.rows()
    assert [row["name"] for row in rows] == ["ROI 1", "ROI 2"]
    assert tab.table_view.rowCount() == 2 and tab.table_view.item(1, 1).text() == "ROI 2"
    masks = np.zeros((2, 20, 24), bool)
    masks[0, :9, :9] = True  # 0-4 µm at 0.5 µm per pixel: pixel centres 0..8
    masks[1, 4:13, 4:13] = True
    assert [row["pixels"] for row in rows] == [int(m.sum()) for m in masks]
    assert rows[0]["area_um2"] == pytest.approx(0.25 * masks[0].sum())
    np.testing.assert_allclose(tab.table.mean[1], cube[:, masks[1]].mean(axis=1), rtol=1e-5)

    # per label (a segmentation of the same grid), then exported
    labels = viewer.add_labels(truth + 1, name="segmentation", scale=(0.5, 0.5))
    tab.regions.value = labels
    tab.bands.value = "1004±12"
    tab.ratios.value = "1660±25/1450±25"
    run_dock(tab.runner)
    rows = tab.table.rows()
    assert [row["name"] for row in rows] == ["label 1", "label 2", "label 3"]
    assert [row["pixels"] for row in rows] == [int((truth == k).sum()) for k in range(3)]
    assert {"band_1004_area_mean", "band_1004_area_std", "ratio_1660_1450"} <= set(rows[0])
    written = tab.export_csv(tmp_path / "cells.csv")
    with written.open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["name"] for r in table] == ["label 1", "label 2", "label 3"]
    assert float(table[2]["pixels"]) == rows[2]["pixels"] and f"mean_{w[0]:.6g}" in table[0]

    # per cluster: the Clusters tab's labels layer, named as clusters
    widget.clusters.n_clusters.value = 3
    run_dock(widget.clusters.runner)
    tab.regions.value = widget.clusters.labels_layer
    run_dock(tab.runner)
    assert [row["name"] for row in tab.table.rows()] == ["cluster 1", "cluster 2", "cluster 3"]


def test_cell_table_refuses_labels_of_another_size(dock, tmp_path, three_regions, run_dock):
    viewer, widget = dock
    w, truth, cube = three_regions
    opened(viewer, tmp_path, cube, w, "regions")
    tab = widget.cell_table
    tab.regions.value = viewer.add_labels(np.ones((10, 10), np.int32), name="other image")
    run_dock(tab.runner, fails=True)
    assert ("the labels layer 'other image' is 10 x 10 but the cube's image is 20 x 24 pixels"
            in str(tab.runner.last_error))
    assert tab.table is None and not tab.csv_button.enabled
    tab.regions.value = viewer.add_shapes(name="empty ROIs")
    run_dock(tab.runner, fails=True)
    assert "has no shape; draw the regions first" in str(tab.runner.last_error)


def test_cell_table_h5ad_export(dock, tmp_path, three_regions, run_dock):
    viewer, widget = dock
    w, truth, cube = three_regions
    opened(viewer, tmp_path, cube, w, "regions")
    tab = widget.cell_table
    tab.regions.value = viewer.add_labels(truth + 1, name="segmentation")
    run_dock(tab.runner)
    try:
        import anndata
    except ImportError:
        with pytest.raises(ImportError, match="writing .h5ad needs the anndata package: pip install anndata"):
            tab.export_h5ad(tmp_path / "cells.h5ad")
        return
    back = anndata.read_h5ad(tab.export_h5ad(tmp_path / "cells.h5ad"))
    assert back.shape == (3, w.size) and list(back.obs["name"]) == ["label 1", "label 2", "label 3"]
    np.testing.assert_allclose(back.X, tab.table.mean, rtol=1e-6)


# ------------------------------------------------------------------------------- THP-1
def test_the_real_thp1_cell_through_every_tab(dock, tmp_path, thp1_path, monkeypatch, run_dock):
    """Baseline, phenylalanine fit, clusters, a calibration onto 1004 cm-1 and the cell table."""
    monkeypatch.setenv("NAPARI_DEEPER_CALIBRATIONS", str(tmp_path / "calibrations"))
    viewer, widget = dock
    (layer,) = viewer.open(str(thp1_path), plugin=PLUGIN)
    run_dock(widget.baseline.runner)
    clean = viewer.layers[-1]
    assert clean.name.endswith("arpls baseline removed")

    fit = widget.peak_fit
    fit.layer.value = clean
    fit.maps.value = ["center"]
    run_dock(fit.runner)
    centre = viewer.layers[f"{clean.name} · 1004 cm⁻¹ centre"]
    # the file's phenylalanine band sits at ~1008 cm-1 (docs/analysis.md): its axis wants a calibration
    assert 1006.5 < np.nanmedian(centre.data) < 1009.5
    assert "pixels fitted" in shown(fit.summary)

    clusters = widget.clusters
    clusters.layer.value = clean
    clusters.n_clusters.value = 2
    run_dock(clusters.runner)
    labels = clusters.labels_layer.data
    table = clusters.table
    # the cell (the smaller cluster) is brighter in the 1004 band than the background
    band = np.abs(clean.metadata["wavenumbers"] - 1008).argmin()
    assert table.pixels[0] > table.pixels[1] and table.mean[1][band] > table.mean[0][band]
    assert set(np.unique(labels)) == {1, 2}

    cal = widget.calibration
    cal.reference_layer.value = layer
    cal.reference.value = "lines given below"
    cal.lines.value = "1004"
    run_dock(cal.find_runner)
    assert cal.found.offset == pytest.approx(-4.5, abs=0.5)
    cal.targets.value = [layer]
    cal.apply_button.clicked()
    corrected = cal.made[0].metadata["wavenumbers"]
    np.testing.assert_allclose(corrected, layer.metadata["wavenumbers"] + cal.found.offset)

    cells = widget.cell_table
    cells.layer.value = clean
    cells.regions.value = clusters.labels_layer
    assert cells.pixel_size.value == 0.625  # the WITec map's µm per pixel
    run_dock(cells.runner)
    rows = cells.table.rows()
    assert sum(row["pixels"] for row in rows) == 1600
    assert sum(row["area_um2"] for row in rows) == pytest.approx(1600 * 0.625**2)
