"""The Unmix dock in a real viewer: layers made, renaming, accuracy, CSV, export, bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile

import napari_deeper as nd
from napari_deeper._widgets.unmix import PER_COMPONENT, STACKED, UnmixWidget, component_color
from napari_deeper.io.endmembers import save_endmembers_csv
from napari_deeper.unmix import classify


@pytest.fixture(scope="module")
def cell():
    return nd.simulate.simulate_cell((32, 32), n_bands=150, photons=300, seed=2)


def add_cube(viewer, data, name, wavenumbers, **kwargs):
    return viewer.add_image(
        data,
        name=name,
        metadata={"wavenumbers": wavenumbers},
        axis_labels=("wavenumber", "y", "x"),
        units=("1/cm", "pixel", "pixel"),
        **kwargs,
    )


def test_unmix_makes_maps_labels_residuals_and_exports(make_napari_viewer, tmp_path, cell, run_dock):
    viewer = make_napari_viewer()
    clean = add_cube(viewer, cell.clean, "clean", cell.wavenumbers)
    noisy = add_cube(viewer, cell.noisy, "noisy", cell.wavenumbers, scale=(1, 2, 2), translate=(0, 1, 1))
    widget = UnmixWidget(viewer)
    widget.source.value = clean
    widget.targets.value = [clean, noisy]
    widget.n_endmembers.value = 5
    widget.output.value = STACKED
    run_dock(widget)
    assert widget.runner.last_error is None

    made = {layer.name for layer in viewer.layers} - {"clean", "noisy"}
    assert made == {f"{t} · {kind}" for t in ("clean", "noisy") for kind in ("abundance", "labels", "residual")}
    endmembers = widget.result.endmembers
    assert endmembers.shape == (5, 150)
    abundance = viewer.layers["clean · abundance"]
    expected = nd.nnls(cell.clean, endmembers, device="cpu")
    assert abundance.data.shape == (5, 32, 32)
    assert np.allclose(abundance.data, expected, rtol=1e-5, atol=1e-6)
    labels = viewer.layers["clean · labels"]
    assert np.array_equal(labels.data, classify(abundance.data))
    assert np.allclose(labels.colormap.map(np.array([1, 3]))[:, :3], [component_color(0)[:3], component_color(2)[:3]])
    assert labels.metadata["napari_deeper"]["source"] == "clean"
    residual = viewer.layers["noisy · residual"]
    assert residual.data.shape == (32, 32) and residual.data.min() >= 0
    assert residual.data.mean() > viewer.layers["clean · residual"].data.mean()  # noise is left over
    # maps of the noisy layer sit on its own (coarser) grid
    assert np.allclose(viewer.layers["noisy · labels"].scale, [2, 2])
    assert np.allclose(viewer.layers["noisy · abundance"].translate, [0, 1, 1])

    # the plot shows the endmembers against the wavenumber axis
    lines = widget.axes.get_lines()
    assert len(lines) == 5 and np.allclose(lines[0].get_xdata(), cell.wavenumbers)
    # in the viewer's theme (no white panel in the dark one), and it follows a change of theme
    from matplotlib.colors import to_rgba
    from napari.utils.theme import get_theme

    for theme in ("dark", "light"):
        viewer.theme = theme
        colours = get_theme(theme)
        assert widget.plot.figure.get_facecolor() == to_rgba(colours.background.as_hex())
        assert widget.axes.get_legend().get_texts()[0].get_color() == colours.text.as_hex()

    # the source's labels become the reference: accuracy 100 % for itself, less for noisy data
    assert widget.reference.value is labels
    assert widget.accuracy["clean"] == 1.0
    assert 0.5 < widget.accuracy["noisy"] < 1.0
    assert widget.accuracy_table.item(0, 1).text() == "100.0%"

    # renaming a component carries to the plot, the layers' records and the export
    widget.names_table.item(0, 0).setText("lipids")
    assert widget.names[0] == "lipids"
    assert abundance.metadata["napari_deeper"]["components"][0] == "lipids"
    assert widget.axes.get_legend().get_texts()[0].get_text() == "lipids"

    folder = widget.export(tmp_path)
    assert folder.name == "unmixing-001"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{t}_{kind}.tif" for t in ("clean", "noisy") for kind in ("abundance", "labels", "residual")]
        + ["endmembers.csv", "unmixing.json"]
    )
    with tifffile.TiffFile(folder / "clean_abundance.tif") as handle:
        assert np.array_equal(handle.asarray(), abundance.data)
        assert handle.shaped_metadata[0]["components"][0] == "lipids"
    assert np.array_equal(tifffile.imread(folder / "noisy_labels.tif"), viewer.layers["noisy · labels"].data)
    with open(folder / "endmembers.csv", newline="") as handle:
        assert next(csv.reader(handle))[:2] == ["wavenumber", "lipids"]
    record = json.loads((folder / "unmixing.json").read_text())
    assert record["parameters"]["n_endmembers"] == 5 and record["endmember_source"] == "clean"
    assert record["accuracy"]["clean"] == 1.0 and record["reference_labels"] == "clean · labels"
    assert len(record["endmember_pixels"]) == 5
    assert widget.export(tmp_path).name == "unmixing-002"  # never into an existing folder

    # File > Save Selected Layers goes through the plugin's npe2 writers
    from napari.plugins.io import save_layers

    assert save_layers(str(tmp_path / "labels.tif"), [labels], plugin="napari-deeper")
    assert np.array_equal(tifffile.imread(tmp_path / "labels.tif"), labels.data)
    assert save_layers(str(tmp_path / "spectra.csv"), [abundance], plugin="napari-deeper")
    assert (tmp_path / "spectra.csv").read_text().startswith("wavenumber,lipids,")


def test_one_layer_per_component_and_csv_endmembers(make_napari_viewer, tmp_path, cell, run_dock):
    viewer = make_napari_viewer()
    noisy = add_cube(viewer, cell.noisy, "noisy", cell.wavenumbers)
    path = save_endmembers_csv(tmp_path / "truth.csv", cell.endmembers, cell.wavenumbers, cell.names)
    widget = UnmixWidget(viewer)
    widget.load_endmembers(path)
    assert widget.use_loaded.value and widget.n_endmembers.value == len(cell.names)
    widget.targets.value = [noisy]
    widget.output.value = PER_COMPONENT
    widget.sum_to_one.value = True
    run_dock(widget)
    assert widget.runner.last_error is None
    assert widget.result.pixel_indices is None  # VCA was skipped
    maps = [viewer.layers[f"noisy · {name}"] for name in cell.names]
    stack = np.stack([layer.data for layer in maps])
    assert np.allclose(stack.sum(axis=0), 1, atol=1e-5)
    expected = nd.nnls(cell.noisy, cell.endmembers, sum_to_one=True, device="cpu")
    assert np.allclose(stack, expected, atol=1e-6)
    assert maps[1].blending == "additive"
    assert np.allclose(maps[1].colormap.colors[-1], component_color(1))
    widget.rename_component(1, "cytoplasm")
    assert "noisy · cytoplasm" in viewer.layers and f"noisy · {cell.names[1]}" not in viewer.layers
    saved = widget.save_endmembers(tmp_path / "saved.csv")
    assert "cytoplasm" in saved.read_text().splitlines()[0]


def test_bad_input_makes_no_layers_and_says_why(make_napari_viewer, cell, run_dock):
    viewer = make_napari_viewer()
    tiny = add_cube(viewer, cell.noisy[:4], "four bands", cell.wavenumbers[:4])
    widget = UnmixWidget(viewer)
    widget.source.value = tiny
    widget.targets.value = [tiny]
    widget.n_endmembers.value = 5
    run_dock(widget, fails=True)
    assert isinstance(widget.runner.last_error, ValueError)
    assert "must not exceed the number of bands" in widget.runner.status.text()
    assert [layer.name for layer in viewer.layers] == ["four bands"]
    assert widget.result is None
    with pytest.raises(ValueError, match="nothing to export"):
        widget.export(".")

    other = add_cube(viewer, cell.noisy, "other axis", cell.wavenumbers + 5)
    widget.source.value = other
    widget.targets.value = [other, tiny]
    run_dock(widget, fails=True)
    assert not widget.runner.busy and "another spectral axis" in widget.runner.status.text()


def test_suggested_number_of_endmembers_is_shown(make_napari_viewer, cell, run_dock):
    viewer = make_napari_viewer()
    clean = add_cube(viewer, cell.clean, "clean", cell.wavenumbers)
    widget = UnmixWidget(viewer)
    widget.source.value = clean
    run_dock(widget, button=widget.suggest_button)  # the estimate runs in the dock's Runner: progress and Cancel
    assert widget.runner.last_error is None
    assert widget.suggested == nd.unmix.estimate_n_endmembers(cell.clean)
    assert f"suggest {widget.suggested} " in widget.hint.value
    assert widget.n_endmembers.value == 5  # a hint: the choice stays the user's
    viewer.layers.remove(clean)
    run_dock(widget, button=widget.suggest_button, fails=True)  # nothing to estimate from: refused like a run
    assert not widget.runner.busy and "Choose the layer" in str(widget.runner.last_error)


def test_removing_a_target_during_a_run_still_makes_its_maps_and_says_so(make_napari_viewer, cell, removal_during_run, run_dock):
    """The run finishes on the data it read at the start; a warning names the removed layer."""
    viewer = make_napari_viewer()
    clean = add_cube(viewer, cell.clean, "clean", cell.wavenumbers)
    noisy = add_cube(viewer, cell.noisy, "noisy", cell.wavenumbers)
    widget = UnmixWidget(viewer)
    widget.source.value = clean
    widget.targets.value = [clean, noisy]
    widget.n_endmembers.value = 5
    widget.output.value = STACKED
    removal_during_run.arm(viewer, widget.runner, noisy)
    run_dock(widget)
    assert removal_during_run.busy_when_removed is True
    assert widget.runner.last_error is None
    assert "noisy" not in viewer.layers
    made = {layer.name for layer in viewer.layers} - {"clean"}
    assert made == {f"{t} · {kind}" for t in ("clean", "noisy") for kind in ("abundance", "labels", "residual")}
    expected = nd.nnls(cell.noisy, widget.result.endmembers, device="cpu")
    np.testing.assert_allclose(viewer.layers["noisy · abundance"].data, expected, rtol=1e-5, atol=1e-6)
    [warning] = removal_during_run.warnings
    assert "input layer 'noisy' was removed during the run" in warning
    assert "removed during the run" in widget.runner.status.text()


def test_nan_errors_name_the_layer_that_holds_them(make_napari_viewer, cell, run_dock):
    viewer = make_napari_viewer()
    holes = cell.noisy.copy()
    holes[3, 4, 5] = np.nan
    clean = add_cube(viewer, cell.clean, "clean", cell.wavenumbers)
    add_cube(viewer, cell.noisy, "noisy", cell.wavenumbers)
    broken = add_cube(viewer, holes, "with holes", cell.wavenumbers)
    widget = UnmixWidget(viewer)
    widget.source.value = clean
    widget.targets.value = list(viewer.layers)
    widget.n_endmembers.value = 3
    run_dock(widget, fails=True)
    assert isinstance(widget.runner.last_error, ValueError)
    assert "target 'with holes': data contains 1 NaN" in widget.runner.status.text()
    assert [layer.name for layer in viewer.layers] == ["clean", "noisy", "with holes"]

    widget.source.value = broken
    run_dock(widget, fails=True)
    assert "source 'with holes': data contains 1 NaN" in widget.runner.status.text()
    assert [layer.name for layer in viewer.layers] == ["clean", "noisy", "with holes"]
