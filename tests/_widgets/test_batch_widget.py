"""The Batch dock in a real viewer: a recipe from a layer the docks made, a folder run in the
background, results opened as layers with the same numbers as the docks, and a cancel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

import napari_deeper as nd
from napari_deeper.batch import read_summary, store
from napari_deeper.recipe import Recipe

PLUGIN = "napari-deeper"


def write_cells(folder, n, shape=(24, 24)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sim = nd.simulate.simulate_cell(shape, n_bands=120, seed=i)
        nd.save_cube(nd.Cube(sim.noisy.astype(np.float32), sim.wavenumbers, {}), folder / f"cell{i:02d}.npz")


def test_batch_dock_replays_a_layers_recipe_on_a_folder(make_napari_viewer, tmp_path, run_dock):
    folder = tmp_path / "cells"
    write_cells(folder, 2)
    (folder / "broken.npz").write_bytes(b"not a zip")
    viewer = make_napari_viewer()

    # what a user does by hand on the first cube: open it, denoise (default), a band map
    viewer.open(str(folder / "cell00.npz"), plugin=PLUGIN)
    source = viewer.layers["cell00"]
    _, denoise = viewer.window.add_plugin_dock_widget(PLUGIN, "Denoise")
    denoise.input_layer.value = source
    denoise.methods.value = ["hybrid"]
    run_dock(denoise)
    denoised = viewer.layers["cell00 · hybrid"]
    _, peaks = viewer.window.add_plugin_dock_widget(PLUGIN, "Peak heatmap")
    peaks.layers.value = [denoised]
    peaks.center.value, peaks.width.value = 1450.0, 30.0
    run_dock(peaks)
    band = viewer.layers[-1]
    assert band.data.ndim == 2

    # the same, on the whole folder, from the band map's recipe
    _, batch = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch")
    viewer.layers.selection.active = band
    batch.from_layer.clicked()
    assert batch.recipe_text.value.endswith("denoise hybrid → band_map area")
    batch.inputs.value = folder
    batch.out.value = tmp_path / "out"
    run_dock(batch)
    statuses = [batch.table.item(row, 1).text() for row in range(batch.table.rowCount())]
    assert statuses == ["failed", "ok", "ok"]
    assert "not a readable .npz archive" in batch.table.item(0, 3).text()
    assert "2 ok · 1 failed" in batch.counts.value
    written = tifffile.imread(tmp_path / "out" / "cell00" / "02-band_map-area.tif")
    assert np.array_equal(written, band.data)  # the batch gives the dock's numbers, bit for bit

    # open a finished result as layers: cube with its axis, map with its recipe
    assert not batch.open_button.enabled
    batch.table.selectRow(1)
    assert batch.open_button.enabled
    before = len(viewer.layers)
    batch.open_button.clicked()
    opened = list(viewer.layers)[before:]
    assert [layer.name for layer in opened] == ["cell00 · 01-denoise-hybrid", "cell00 · band_map area"]
    assert np.array_equal(opened[0].data, denoised.data)
    np.testing.assert_array_equal(opened[0].metadata["wavenumbers"], denoised.metadata["wavenumbers"])
    assert np.array_equal(opened[1].data, band.data)
    assert Recipe.from_layer(opened[1]).steps == Recipe.from_layer(band).steps
    rows = read_summary(tmp_path / "out" / "summary.csv")
    assert [row["status"] for row in rows] == statuses


def test_batch_dock_refuses_bad_choices_and_cancels_cleanly(make_napari_viewer, tmp_path, run_dock):
    folder = tmp_path / "cells"
    write_cells(folder, 4, shape=(48, 48))
    viewer = make_napari_viewer()
    _, batch = viewer.window.add_plugin_dock_widget(PLUGIN, "Batch")
    run_dock(batch, fails=True)
    assert "Choose a recipe" in str(batch.runner.last_error)

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "steps": [{"operation": "denoise", "method": "median"}]}))
    batch.recipe_file.value = bad
    assert "step 1 (denoise): unknown denoising method 'median'" in str(batch.runner.last_error)
    assert batch.recipe is None

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"version": 1, "steps": [{"operation": "denoise", "method": "hybrid"}]}))
    batch.recipe_file.value = good
    assert batch.recipe_text.value == "good.json: denoise hybrid"
    batch.inputs.value = folder
    batch.out.value = tmp_path / "out"

    def cancel_in_the_second_input(progress) -> None:
        if getattr(progress, "done", 0) == 1 and getattr(progress, "within", 0) > 0.2:
            batch.runner.cancel_button.click()

    run_dock(batch, on_start=lambda worker: worker.yielded.connect(cancel_in_the_second_input))
    assert batch.runner.last_error is None
    assert batch.counts.value.startswith("Cancelled: 3 inputs not done")
    assert [batch.table.item(row, 1).text() for row in range(4)] == ["ok", "cancelled", "cancelled", "cancelled"]
    out = tmp_path / "out"
    assert store.leftovers(out) == []
    statuses = [row["status"] for row in read_summary(out / "summary.csv")]
    assert statuses[0] == "ok" and statuses[1:] == ["cancelled"] * 3
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["cell00"]


@pytest.fixture(autouse=True)
def _no_popups(monkeypatch):
    """Refusals show an error notification; keep them out of the test's way."""
    from napari_deeper._widgets import _runner

    monkeypatch.setattr(_runner, "show_error", lambda message: None)
