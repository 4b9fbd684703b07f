"""The Compare widget in a real viewer: known inputs, the table, sorting, CSV, grid, differences."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from qtpy.QtCore import Qt

import napari_deeper as nd
from napari_deeper._widgets._grid import panel_title
from napari_deeper._widgets.compare import CompareWidget

pytestmark = pytest.mark.gui

WAVENUMBERS = np.linspace(600, 1800, 12)


@pytest.fixture
def cubes():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:20, 0:24]
    spatial = np.exp(-((yy - 10) ** 2 + (xx - 12) ** 2) / 40.0)
    spectrum = 1 + np.sin(np.linspace(0, 3, WAVENUMBERS.size))
    reference = (spectrum[:, None, None] * spatial[None] + 0.1).astype(np.float32)
    noisy = (reference + rng.normal(0, 0.05, reference.shape)).astype(np.float32)
    return {"reference": reference, "noisy": noisy, "identical": reference.copy(), "lr": reference[:, ::2, ::2]}


@pytest.fixture
def widget(make_napari_viewer, cubes):
    viewer = make_napari_viewer()
    for name, data in cubes.items():
        viewer.add_image(data, name=name, metadata={"wavenumbers": WAVENUMBERS})
    return CompareWidget(viewer)


def names(layers):
    return [layer.name for layer in layers]


def pick(widget, *layer_names):
    """Choose the candidates called ``names``, as a click on each does."""
    widget.candidates.value = [widget.viewer.layers[name] for name in layer_names]


def column(widget, title):
    return widget.column_titles().index(title)


def cell_texts(widget, title):
    c = column(widget, title)
    return [widget.table.item(r, c).text() for r in range(widget.table.rowCount())]


def test_table_matches_the_metrics_module_and_sorts_and_exports(widget, cubes, tmp_path, run_dock):
    assert widget.reference.value is widget.viewer.layers["reference"]
    assert names(widget.candidates.choices) == ["noisy", "identical", "lr"]
    assert names(widget.candidates.value) == ["noisy", "identical", "lr"]
    run_dock(widget)

    rows = {row["name"]: row for row in widget.rows}
    expected = nd.metrics.all_metrics(cubes["noisy"], cubes["reference"])
    for key, value in expected.items():
        assert rows["noisy"][key] == pytest.approx(value, rel=1e-9)
    assert rows["identical"]["mse"] == 0 and rows["identical"]["psnr"] == math.inf
    assert rows["lr"]["note"].startswith("shape differs")
    assert math.isnan(rows["lr"]["psnr"])

    assert widget.column_titles() == [
        "Candidate", "MSE", "NMSE", "PSNR (dB)", "SSIM", "SAM (°)", "SNR (dB)", "Note"
    ]
    assert cell_texts(widget, "Candidate") == ["noisy", "identical", "lr"]
    assert cell_texts(widget, "PSNR (dB)") == [f"{expected['psnr']:.2f}", "∞", "—"]
    assert cell_texts(widget, "SSIM")[0] == f"{expected['ssim']:.4f}"

    # sorting by PSNR: numeric order, the incomparable LR scan last either way
    widget.table.sortByColumn(column(widget, "PSNR (dB)"), Qt.SortOrder.DescendingOrder)
    assert cell_texts(widget, "Candidate") == ["identical", "noisy", "lr"]
    widget.table.sortByColumn(column(widget, "PSNR (dB)"), Qt.SortOrder.AscendingOrder)
    assert cell_texts(widget, "Candidate") == ["noisy", "identical", "lr"]
    widget.table.sortByColumn(column(widget, "MSE"), Qt.SortOrder.AscendingOrder)
    assert cell_texts(widget, "Candidate") == ["identical", "noisy", "lr"]

    # CSV: the displayed order, full precision, blank for what could not be computed
    path = widget.export_csv(tmp_path / "metrics.csv")
    with path.open() as handle:
        table = list(csv.DictReader(handle))
    assert [row["name"] for row in table] == ["identical", "noisy", "lr"]
    assert {row["reference"] for row in table} == {"reference"}
    assert float(table[1]["psnr"]) == pytest.approx(expected["psnr"], rel=1e-12)
    assert float(table[1]["sam"]) == pytest.approx(expected["sam"], rel=1e-12)
    assert table[0]["psnr"] == "inf" and table[0]["mse"] == "0.0"
    assert table[2]["psnr"] == "" and table[2]["shape"] == "12x10x12"


def test_crop_to_overlap_scores_the_low_resolution_scan(widget, cubes, run_dock):
    pick(widget, "lr")
    widget.crop.value = True
    run_dock(widget)
    (row,) = widget.rows
    assert row["note"].startswith("cropped to overlap")
    assert row["mse"] == pytest.approx(nd.metrics.mse(cubes["lr"], cubes["reference"], crop="overlap"))


def test_side_by_side_toggles_the_grid_with_linked_contrast_and_titles(widget):
    viewer = widget.viewer
    pick(widget, "noisy", "identical")
    widget.side_by_side_button.click()
    shown = ["reference", "noisy", "identical"]
    assert viewer.canvas.grid.enabled
    assert [layer.name for layer in viewer.layers if layer.visible] == shown
    limits = {tuple(viewer.layers[name].contrast_limits) for name in shown}
    assert len(limits) == 1
    assert [panel_title(viewer.layers[name]) for name in shown] == shown
    viewer.layers["identical"].contrast_limits = (0.5, 2.0)  # linked while side by side
    assert tuple(viewer.layers["reference"].contrast_limits) == pytest.approx((0.5, 2.0))

    widget.normal_view_button.click()
    assert not viewer.canvas.grid.enabled
    assert all(layer.visible for layer in viewer.layers)
    assert all(panel_title(layer) is None for layer in viewer.layers)
    viewer.layers["identical"].contrast_limits = (0.0, 1.0)  # unlinked again
    assert tuple(viewer.layers["reference"].contrast_limits) == pytest.approx((0.5, 2.0))


def test_difference_maps_become_layers_with_provenance(widget, cubes, run_dock):
    viewer = widget.viewer
    pick(widget, "noisy", "lr")
    widget.differences.value = "per band (candidate - reference)"
    run_dock(widget)
    cube = viewer.layers["noisy · difference to reference"]
    np.testing.assert_allclose(cube.data, cubes["noisy"] - cubes["reference"], atol=1e-6)
    assert cube.metadata["napari_deeper"]["operation"] == "difference"
    assert cube.metadata["napari_deeper"]["params"]["reference"] == "reference"
    np.testing.assert_array_equal(cube.metadata["wavenumbers"], WAVENUMBERS)
    assert "lr · difference to reference" not in viewer.layers  # shapes differ: no map
    # the difference layers are not offered as candidates
    assert "noisy · difference to reference" not in names(widget.candidates.choices)

    widget.differences.value = "band-averaged |difference|"
    pick(widget, "noisy")
    run_dock(widget)
    integrated = viewer.layers["noisy · |difference| to reference"]
    assert integrated.ndim == 2
    np.testing.assert_allclose(
        integrated.data, np.abs(cubes["noisy"] - cubes["reference"]).mean(axis=0), atol=1e-6
    )


def test_accuracy_column_appears_when_unmix_labels_exist(widget, run_dock):
    viewer = widget.viewer
    reference_labels = np.ones((20, 24), dtype=np.int32)
    reference_labels[:, 12:] = 2
    noisy_labels = reference_labels.copy()
    noisy_labels[:5, :] = 3  # 120 of 480 pixels wrong
    for source, data in (("reference", reference_labels), ("noisy", noisy_labels)):
        record = {"operation": "unmix", "source": source}
        # what the Unmix dock makes: stacked abundances (3-D, not a cube to compare) and labels
        viewer.add_image(np.ones((3, 20, 24)), name=f"{source} · abundance", metadata={"napari_deeper": record})
        viewer.add_labels(data, name=f"{source} · labels", metadata={"napari_deeper": record})
    assert widget.labels_for("noisy").name == "noisy · labels"
    assert "noisy · abundance" not in names(widget.candidates.choices)
    pick(widget, "noisy", "identical")
    run_dock(widget)
    assert "Accuracy" in widget.column_titles()
    rows = {row["name"]: row for row in widget.rows}
    assert rows["noisy"]["accuracy"] == pytest.approx(1 - 120 / 480)
    assert math.isnan(rows["identical"]["accuracy"])  # no labels were made from it
    assert cell_texts(widget, "Accuracy") == ["75.0%", "—"]


def test_layer_lists_follow_the_viewer_and_empty_choices_do_not_run(widget, cubes, run_dock):
    viewer = widget.viewer
    viewer.add_image(cubes["noisy"] * 2, name="brighter")
    assert "brighter" in names(widget.candidates.choices)
    viewer.layers.remove("brighter")
    assert "brighter" not in names(widget.candidates.choices)
    widget.reference.value = viewer.layers["noisy"]
    assert "noisy" not in names(widget.candidates.choices) and "reference" in names(widget.candidates.choices)
    widget.candidates.value = []
    run_dock(widget, fails=True)
    assert not widget.runner.busy and widget.rows == []
    assert "at least one candidate" in widget.runner.status.text()
    with pytest.raises(ValueError, match="nothing to export"):
        widget.export_csv("unused.csv")


def test_accuracy_from_the_unmix_dock(widget, cubes, run_dock):
    """Endmembers from the reference, applied to it and to a copy: the copy keeps every class."""
    from napari_deeper._widgets.unmix import UnmixWidget

    viewer = widget.viewer
    unmix = UnmixWidget(viewer)
    unmix.source.value = viewer.layers["reference"]
    unmix.targets.value = [viewer.layers["reference"], viewer.layers["identical"], viewer.layers["noisy"]]
    unmix.n_endmembers.value = 2
    run_dock(unmix)
    assert "reference · abundance" not in names(widget.candidates.choices)
    pick(widget, "identical", "noisy", "lr")
    run_dock(widget)
    rows = {row["name"]: row for row in widget.rows}
    labels = {name: viewer.layers[f"{name} · labels"].data for name in ("reference", "noisy")}
    assert rows["identical"]["accuracy"] == 1.0
    assert rows["noisy"]["accuracy"] == pytest.approx(
        nd.metrics.classification_accuracy(labels["noisy"], labels["reference"])
    )
    assert math.isnan(rows["lr"]["accuracy"])
