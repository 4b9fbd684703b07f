"""Regenerate the screenshots in docs/images/ from a real napari viewer.

Every dock is opened the way a user opens it (the plugin's menu entry, i.e.
``viewer.window.add_plugin_dock_widget``), on the plugin's sample data, set up and run as a user
would (press Run, wait for the background worker), and the whole window is saved with its docks.
Needs a display; on a server run it under a virtual one:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py

``--only compare overview`` redoes some pages; widgets whose module is missing are skipped with a
message. Images wider than ``--width`` pixels are scaled down and every PNG is kept under
``--max-kb`` kilobytes.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from napari_deeper._widgets.workflow import PLUGIN, dock, run_and_wait, settle, show_band

IMAGES = Path(__file__).resolve().parent / "images"
WINDOW = (1500, 940)


# ------------------------------------------------------------------------------------ helpers
def open_samples(viewer, key: str) -> list:
    """The plugin's sample (File > Open Sample > napari-deeper > ...): the layers it added."""
    before = set(layer.name for layer in viewer.layers)
    viewer.open_sample(PLUGIN, key)
    return [layer for layer in viewer.layers if layer.name not in before]




def close_notifications(viewer) -> None:
    """Close the notification pop-ups (an earlier page's messages must not show in the next)."""
    from qtpy.QtWidgets import QApplication

    for popup in QApplication.instance().allWidgets():
        if type(popup).__name__ == "NapariQtNotification" and popup.isVisible():
            popup.close()


def dock_bottom(viewer, display_name: str):
    """Open a dock and put it under the canvas (wide plots read better there)."""
    from qtpy.QtCore import Qt

    dock_widget, widget = viewer.window.add_plugin_dock_widget(PLUGIN, display_name)
    dock_widget.parent().addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock_widget)
    settle(0.3)
    return widget


def reset(viewer) -> None:
    """An empty viewer with no plugin docks, out of grid mode, 2-D, no pop-ups."""
    close_notifications(viewer)
    for name in list(viewer.window.dock_widgets):
        viewer.window.remove_dock_widget(viewer.window.dock_widgets[name])
    viewer.canvas.grid.enabled = False
    viewer.layers.clear()
    viewer.dims.ndisplay = 2
    viewer.window.resize(*WINDOW)
    settle(0.2)




def find(viewer, *words: str):
    """The first layer whose name contains every word (case-insensitive)."""
    for layer in viewer.layers:
        if all(word.lower() in layer.name.lower() for word in words):
            return layer
    raise LookupError(f"no layer named like {' '.join(words)!r} among {[layer.name for layer in viewer.layers]}")


def pin_centre(viewer, widget) -> None:
    """Pin the spectra at the middle of the first layer."""
    layer = viewer.layers[0]
    _, ny, nx = layer.data.shape
    widget.pin(tuple(layer.data_to_world((0, ny / 2, nx / 2)))[1:])
    settle(0.3)


def save(viewer, path: Path, width: int, max_kb: int) -> Path:
    """The whole window, docks included, as a PNG no wider than ``width`` and under ``max_kb``."""
    from qtpy.QtCore import Qt
    from qtpy.QtGui import QImage

    close_notifications(viewer)
    viewer.reset_view()
    settle(1.5)
    pixels = np.ascontiguousarray(viewer.window.screenshot(flash=False, canvas_only=False))
    height, width_now = pixels.shape[:2]
    image = QImage(pixels.data, width_now, height, 4 * width_now, QImage.Format.Format_RGBA8888).copy()
    if image.width() > width:
        image = image.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        image.save(str(path), "PNG", 9)
        if path.stat().st_size <= max_kb * 1024 or image.width() < 640:
            break
        image = image.scaledToWidth(int(image.width() * 0.85), Qt.TransformationMode.SmoothTransformation)
    print(f"wrote {path} ({image.width()}x{image.height()}, {path.stat().st_size // 1024} KB)")
    return path


# ------------------------------------------------------------------------------- the pages
def spectra_page(viewer):
    open_samples(viewer, "superres_pair")
    widget = dock_bottom(viewer, "Spectra")
    hr = find(viewer, "HR")
    band = int(np.argmin(np.abs(hr.metadata["wavenumbers"] - 1450)))
    bright = np.unravel_index(np.argmax(hr.data[band]), hr.data.shape[1:])
    _, ny, nx = hr.data.shape
    widget.pin(tuple(hr.data_to_world((band, *bright)))[1:])
    point_cursor_at(viewer, hr, band, (ny // 2, nx // 2))
    rectangle = np.array([[ny * 0.55, nx * 0.35], [ny * 0.7, nx * 0.55]])
    viewer.add_shapes([rectangle], shape_type="rectangle", name="ROI", edge_color="cyan",
                      face_color="transparent", edge_width=0.5)
    widget.refresh_rois()
    widget.select_band(1400, 1500)
    viewer.layers.selection.active = hr
    show_band(viewer, hr, 1450)
    settle(0.5)


def peak_map_page(viewer):
    layers = open_samples(viewer, "denoise_pair")
    widget = dock(viewer, "Peak heatmap")
    widget.layers.value = layers
    widget.center.value = 1450.0
    widget.width.value = 30.0
    run_and_wait(widget.runner)
    for layer in layers:
        layer.visible = False
    viewer.canvas.grid.enabled = True


def preprocess_page(viewer):
    layers = open_samples(viewer, "denoise_pair")
    spectra = dock_bottom(viewer, "Spectra")
    widget = dock(viewer, "Preprocess spectra")
    widget.layer.value = layers[0]
    widget.crop_start.value = 600.0
    widget.crop_stop.value = 1750.0
    widget.baseline.value = True
    run_and_wait(widget.runner)
    layers[1].visible = False
    pin_centre(viewer, spectra)


def cube_layout_page(viewer):
    import tempfile

    from napari_deeper.simulate import simulate_cell

    # 30 spectra saved as a (pixels, bands) matrix without the image size: the reader cannot
    # know the 5 x 6 map they came from, reads a 1 x 30 strip and says so
    cell = simulate_cell((5, 6), n_bands=300, photons=300, seed=2)
    folder = Path(tempfile.mkdtemp())
    path = folder / "spectra_5x6.npy"
    np.save(path, cell.noisy.reshape(300, -1).T.copy())
    viewer.open(str(path), plugin=PLUGIN)
    widget = dock(viewer, "Cube layout")
    widget.height.value = 5
    widget.width.value = 6
    settle(0.5)


def denoise_page(viewer):
    open_samples(viewer, "denoise_pair")
    widget = dock(viewer, "Denoise")
    widget.input_layer.value = find(viewer, "low")
    wanted = ("hybrid", "resunet", "savgol", "pca")
    widget.methods.value = [name for name in wanted if name in widget.methods.choices]
    widget.side_by_side.value = True
    run_and_wait(widget.runner)
    show_band(viewer, find(viewer, "high"), 1450)


def superres_page(viewer):
    open_samples(viewer, "superres_pair")
    widget = dock(viewer, "Super-resolve")
    widget.input_layer.value = find(viewer, "LR")
    widget.methods.value = [name for name in ("hyrisr", "bicubic") if name in widget.methods.choices]
    widget.side_by_side.value = True
    run_and_wait(widget.runner)
    show_band(viewer, find(viewer, "HR"), 1450)


def train_page(viewer):
    import os
    import tempfile

    # the fine-tuned model goes to a throw-away folder, not the user's model folder
    os.environ["NAPARI_DEEPER_MODELS"] = tempfile.mkdtemp(prefix="my-models-")
    open_samples(viewer, "denoise_pair")
    widget = dock(viewer, "Fine-tune models")
    low = find(viewer, "low")
    widget.noisy_layer.value = low
    widget.clean_layer.value = find(viewer, "high")
    widget.steps.value = 60
    run_and_wait(widget.runner)
    show_band(viewer, low, 1450)


def unmix_page(viewer):
    open_samples(viewer, "denoise_pair")
    widget = dock(viewer, "Unmix (VCA + NNLS)")
    high = find(viewer, "high")
    widget.source.value = high
    widget.targets.value = list(widget.targets.choices)
    widget.n_endmembers.value = 5
    run_and_wait(widget.runner)


def _denoised_versions(viewer):
    """The low/high-SNR sample and the low-SNR layer denoised in the Denoise dock."""
    open_samples(viewer, "denoise_pair")
    low, high = find(viewer, "low"), find(viewer, "high")
    widget = dock(viewer, "Denoise")
    widget.input_layer.value = low
    wanted = ("hybrid", "savgol", "pca")
    widget.methods.value = [name for name in wanted if name in widget.methods.choices]
    run_and_wait(widget.runner)
    viewer.window.remove_dock_widget(viewer.window.dock_widgets["Denoise (napari-deeper)"])
    return low, high


def compare_page(viewer):
    low, high = _denoised_versions(viewer)
    widget = dock(viewer, "Compare")
    widget.reference.value = high
    run_and_wait(widget.runner)
    psnr = widget.column_titles().index("PSNR (dB)")
    from qtpy.QtCore import Qt

    widget.table.sortByColumn(psnr, Qt.SortOrder.DescendingOrder)
    show_band(viewer, high, 1450)
    # the grid: the reference, the raw scan and the two best versions
    widget.candidates.value = [low, find(viewer, "low", "hybrid"), find(viewer, "low", "pca")]
    widget.side_by_side_button.click()


def point_cursor_at(viewer, layer, band: int, pixel) -> None:
    """Put the mouse cursor on ``layer``'s pixel, as hovering there does (live spectra follow)."""
    viewer.cursor.position = tuple(layer.data_to_world((band, *pixel)))
    settle(0.4)


def overview_page(viewer):
    low, high = _denoised_versions(viewer)
    spectra = dock_bottom(viewer, "Spectra")
    compare = dock(viewer, "Compare")
    compare.reference.value = high
    versions = [low, find(viewer, "low", "hybrid"), find(viewer, "low", "pca")]
    compare.candidates.value = versions
    compare.side_by_side_button.click()
    viewer.window.remove_dock_widget(viewer.window.dock_widgets["Compare (napari-deeper)"])
    # live spectra of the visible layers on the brightest lipid droplet
    band = int(np.argmin(np.abs(high.metadata["wavenumbers"] - 1450)))
    bright = np.unravel_index(np.argmax(high.data[band]), high.data.shape[1:])
    viewer.layers.selection.active = high
    show_band(viewer, high, 1450)
    point_cursor_at(viewer, high, band, bright)
    spectra.select_band(1435, 1465)


def batch_page(viewer):
    """A folder run from the Batch dock: the recipe of a band map made in the docks, the table of
    inputs (one damaged file among them), and one input's results opened as layers."""
    import tempfile

    import napari_deeper as nd

    cells = Path(tempfile.mkdtemp(prefix="napari-deeper-")) / "week-12"
    cells.mkdir()
    for i, photons in enumerate((40, 60, 80, 120, 200, 300)):
        sim = nd.simulate.simulate_cell((64, 64), photons=photons, seed=i)
        nd.save_cube(nd.Cube(sim.noisy.astype(np.float32), sim.wavenumbers, {}), cells / f"cell-{i + 1:02d}.npz")
    (cells / "cell-07.npz").write_bytes(b"PK\x03\x04" + bytes(200))  # a transfer that broke off
    viewer.open(str(cells / "cell-01.npz"), plugin=PLUGIN)
    denoise = dock(viewer, "Denoise")
    denoise.input_layer.value = find(viewer, "cell-01")
    denoise.methods.value = ["hybrid"]
    run_and_wait(denoise.runner)
    peaks = dock(viewer, "Peak heatmap")
    peaks.layers.value = [find(viewer, "hybrid")]
    run_and_wait(peaks.runner)
    for name in ("Denoise (napari-deeper)", "Peak heatmap (napari-deeper)"):
        viewer.window.remove_dock_widget(viewer.window.dock_widgets[name])
    widget = dock(viewer, "Batch")
    viewer.layers.selection.active = viewer.layers[-1]
    widget.from_layer.clicked()
    widget.inputs.value = cells
    widget.out.value = cells.parent / "results"
    run_and_wait(widget.runner)
    viewer.layers.clear()
    widget.table.selectRow(3)
    widget.open_button.clicked()
    viewer.layers.selection.active = viewer.layers[0]
    show_band(viewer, viewer.layers[0], 1450)
    settle(0.5)


def wait_for(runner, timeout: float = 900.0) -> None:
    """Wait for a run started by a button other than the runner's own (e.g. Suggest)."""
    import time

    start = time.perf_counter()
    while runner.busy:
        settle(0.05)
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"the run did not finish within {timeout:.0f} s")
    if runner.last_error is not None:
        raise RuntimeError(f"the run failed: {runner.last_error}") from runner.last_error
    settle()


def _analyse(viewer, tab: str | None = None):
    """The THP-1 sample, the Analyse dock, and (but for the Baseline page) its arPLS-corrected
    copy made in the Baseline tab; returns (dock, raw layer, corrected layer or None)."""
    (raw,) = open_samples(viewer, "thp1_cell")
    widget = dock(viewer, "Analyse")
    clean = None
    if tab != "Baseline":
        run_and_wait(widget.baseline.runner)
        clean = viewer.layers[-1]
    if tab is not None:
        widget.show_tab(tab)
    return widget, raw, clean


def _only(viewer, *shown) -> None:
    for layer in viewer.layers:
        layer.visible = layer in shown
    viewer.layers.selection.active = shown[-1]


def baseline_page(viewer):
    widget, raw, _ = _analyse(viewer, "Baseline")
    show_band(viewer, raw, 1450)
    point_cursor_at(viewer, raw, 0, (22, 17))  # inside the cell: the preview follows the mouse
    settle(0.5)


def peak_fit_page(viewer):
    widget, raw, clean = _analyse(viewer, "Peak fit")
    widget.peak_fit.layer.value = clean
    widget.peak_fit.bands.value = "1004±15, 1450±25"
    run_and_wait(widget.peak_fit.runner)
    _only(viewer, find(viewer, "1004", "centre"))


def band_ratio_page(viewer):
    widget, raw, clean = _analyse(viewer, "Band ratio")
    widget.band_ratio.layer.value = clean
    run_and_wait(widget.band_ratio.runner)
    _only(viewer, find(viewer, "1660/1450"))


def clusters_page(viewer):
    widget, raw, clean = _analyse(viewer, "Clusters")
    tab = widget.clusters
    tab.layer.value = clean
    tab.suggest_button.clicked()
    wait_for(tab.runner)
    tab.n_clusters.value = 3
    tab.normalise.value = "vector"
    run_and_wait(tab.runner)
    show_band(viewer, clean, 1450)
    _only(viewer, clean, tab.labels_layer)


def calibration_page(viewer):
    widget, raw, clean = _analyse(viewer, "Calibration")
    tab = widget.calibration
    tab.reference_layer.value = raw
    tab.reference.value = "lines given below"
    tab.lines.value = "1003.5"  # phenylalanine: the cube as its own reference
    run_and_wait(tab.find_runner)
    tab.name.value = "THP-1 phenylalanine"
    tab.targets.value = [raw, clean]
    tab.apply_button.clicked()
    show_band(viewer, raw, 1450)
    _only(viewer, tab.made[0])


def cell_table_page(viewer):
    widget, raw, clean = _analyse(viewer, "Clusters")
    widget.clusters.layer.value = clean
    widget.clusters.n_clusters.value = 3
    widget.clusters.normalise.value = "vector"
    run_and_wait(widget.clusters.runner)
    tab = widget.show_tab("Cell table")
    tab.layer.value = clean
    tab.regions.value = widget.clusters.labels_layer
    run_and_wait(tab.runner)
    show_band(viewer, clean, 1450)
    _only(viewer, clean, widget.clusters.labels_layer)


# (page / image name, module that must exist, function)
PAGES = (
    ("spectra", "spectra", spectra_page),
    ("peak-map", "peak_map", peak_map_page),
    ("preprocess", "preprocess", preprocess_page),
    ("cube_layout", "cube_layout", cube_layout_page),
    ("denoise", "denoise", denoise_page),
    ("superres", "superres", superres_page),
    ("train", "train", train_page),
    ("unmix", "unmix", unmix_page),
    ("compare", "compare", compare_page),
    ("overview", "compare", overview_page),
    ("batch", "batch", batch_page),
    ("baseline", "analyse", baseline_page),
    ("peak-fit", "analyse", peak_fit_page),
    ("band-ratio", "analyse", band_ratio_page),
    ("clusters", "analyse", clusters_page),
    ("calibration", "analyse", calibration_page),
    ("cell-table", "analyse", cell_table_page),
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=None, help="page names to redo (all)")
    parser.add_argument("--out", type=Path, default=IMAGES, help="output folder (docs/images)")
    parser.add_argument("--width", type=int, default=1500, help="largest image width in pixels")
    parser.add_argument("--max-kb", type=int, default=300, help="largest PNG size in kilobytes")
    args = parser.parse_args(argv)

    import napari
    import torch

    torch.set_num_threads(1)
    viewer = napari.Viewer(show=True, title="napari-deeper")
    viewer.window.resize(*WINDOW)
    settle(1.0)
    failures = []
    for name, module, make in PAGES:
        if args.only and name not in args.only:
            continue
        if importlib.util.find_spec(f"napari_deeper._widgets.{module}") is None:
            print(f"skipped {name}: napari_deeper._widgets.{module} does not exist yet")
            continue
        reset(viewer)
        try:
            make(viewer)
        except Exception as error:  # noqa: BLE001 - report every page, then fail at the end
            print(f"FAILED {name}: {error!r}", file=sys.stderr)
            failures.append(name)
            continue
        save(viewer, args.out / f"{name}.png", args.width, args.max_kb)
    viewer.close()
    if failures:
        print(f"pages that failed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
