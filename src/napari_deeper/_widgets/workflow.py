"""Launch napari with napari-deeper's docks and a sample cell, or run that workflow headless.

``python -m napari_deeper._widgets.workflow`` opens the viewer for a person to click through.
``python -m napari_deeper._widgets.workflow --headless --out DIR`` (for machines without a
display; it still needs an X server, e.g. ``xvfb-run``) drives the same docks as a person would:
denoise the low-SNR cell with the default method and the classical baselines, map the 1450 cm⁻¹
band, unmix every version with endmembers from the high-SNR scan, compare everything against
it, then write the layers, the metrics table and a screenshot of the side-by-side view to ``DIR``.

The small helpers that drive docks (``dock``, ``run_and_wait``, ``settle``) are shared with
``docs/make_screenshots.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

PLUGIN = "napari-deeper"
SAMPLE = "denoise_pair"
DOCKS = ("Spectra", "Denoise", "Super-resolve", "Unmix (VCA + NNLS)", "Compare", "Peak heatmap")
WAIT_S = 900


def settle(seconds: float = 0.5) -> None:
    """Let Qt and the canvas process pending events and draw."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.02)


def run_and_wait(runner, timeout: float = WAIT_S) -> None:
    """Press a dock's Run button and wait for its worker; raise if the run failed."""
    from qtpy.QtWidgets import QApplication

    runner.run_button.click()
    app = QApplication.instance()
    start = time.perf_counter()
    while runner.busy:
        app.processEvents()
        time.sleep(0.02)
        if time.perf_counter() - start > timeout:
            runner.cancel()
            raise TimeoutError(f"the run did not finish within {timeout:.0f} s")
    if runner.last_error is not None:
        raise RuntimeError(f"the run failed: {runner.last_error}") from runner.last_error
    settle()


def dock(viewer, display_name: str, tabify: bool = False):
    """Open a dock the way the Plugins menu does; returns the widget."""
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, display_name, tabify=tabify)
    settle(0.2)
    return widget


def show_band(viewer, layer, wavenumber: float) -> None:
    """Move the band slider to the band of ``layer`` nearest ``wavenumber``."""
    import numpy as np

    axis = layer.metadata.get("wavenumbers")
    if axis is None:
        return
    band = int(np.argmin(np.abs(np.asarray(axis) - wavenumber)))
    viewer.dims.set_point(0, layer.data_to_world((band, 0, 0))[0])


def populate(viewer) -> dict:
    """Open the sample cell (low and high SNR) and every workflow dock; returns the docks."""
    viewer.open_sample(PLUGIN, SAMPLE)
    show_band(viewer, viewer.layers[0], 1450)
    return {name: dock(viewer, name, tabify=name not in ("Spectra", "Denoise")) for name in DOCKS}


def run_headless(out: Path) -> Path:
    """Run the workflow in a viewer of its own (needs an X server, real or virtual)."""
    import napari

    viewer = napari.Viewer(title="napari-deeper", show=True)
    viewer.window.resize(1500, 940)
    try:
        return run_workflow(viewer, populate(viewer), out)
    finally:
        viewer.close()


def run_workflow(viewer, widgets: dict, out: Path) -> Path:
    """Drive the docks through the whole workflow and write the results; returns the folder."""
    import numpy as np

    from napari_deeper.denoise import DEFAULT
    from napari_deeper.io import save_cube

    out.mkdir(parents=True, exist_ok=True)
    high, low = viewer.layers[0], viewer.layers[1]
    if "low" not in low.name:
        high, low = low, high

    denoise = widgets["Denoise"]
    denoise.input_layer.value = low
    denoise.methods.value = [DEFAULT, "savgol", "wavelet", "pca"]
    print(f"denoising {low.name!r} with {DEFAULT}, savgol, wavelet and pca ...")
    run_and_wait(denoise.runner)
    versions = [layer for layer in viewer.layers if layer.name.startswith(f"{low.name} · ")]

    peaks = widgets["Peak heatmap"]
    peaks.layers.value = [high, low, *versions]
    print("mapping the 1450 cm-1 band ...")
    run_and_wait(peaks.runner)

    unmix = widgets["Unmix (VCA + NNLS)"]
    unmix.source.value = high
    unmix.targets.value = [high, low, *versions]
    print("unmixing every version with VCA endmembers of the high-SNR scan ...")
    run_and_wait(unmix.runner)
    unmix.export(out)

    compare = widgets["Compare"]
    compare.reference.value = high
    compare.candidates.value = [low, *versions]
    print("comparing against the high-SNR scan ...")
    run_and_wait(compare.runner)
    table = compare.export_csv(out / "metrics.csv")

    for layer in [high, low, *versions]:
        save_cube(np.asarray(layer.data), out / f"{_file_name(layer.name)}.npz",
                  wavenumbers=layer.metadata.get("wavenumbers"))
    compare.side_by_side()
    show_band(viewer, high, 1450)
    widgets["Spectra"].pin(tuple(np.asarray(high.data.shape[1:]) / 2))
    viewer.reset_view()
    settle(1.0)
    viewer.screenshot(str(out / "screenshot.png"), canvas_only=False)
    print(Path(table).read_text())
    print(f"results, maps and screenshot written to {out}")
    return out


def _file_name(layer_name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in layer_name).strip("_")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m napari_deeper._widgets.workflow", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--headless", action="store_true", help="run the workflow and write results")
    parser.add_argument("--out", type=Path, default=Path("napari-deeper-demo"), help="output folder")
    args = parser.parse_args(argv)
    if args.headless:
        run_headless(args.out.resolve())
        return 0
    import napari

    populate(napari.Viewer(title="napari-deeper"))
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
