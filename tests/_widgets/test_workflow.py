"""The launch command's headless workflow: the real docks, driven end to end, write their results."""

import csv

import numpy as np

from napari_deeper._widgets import workflow
from napari_deeper.io import load_cube


def test_headless_workflow_writes_results_and_a_screenshot(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer(show=True)
    widgets = workflow.populate(viewer)
    out = workflow.run_workflow(viewer, widgets, tmp_path / "demo")

    rows = list(csv.DictReader((out / "metrics.csv").open()))
    by_name = {row["name"].split(" · ")[-1]: float(row["psnr"]) for row in rows}
    # every denoiser beats the raw low-SNR scan against the high-SNR reference
    raw = by_name.pop("cell low SNR (20 photons)")
    assert set(by_name) == {"hybrid", "savgol", "wavelet", "pca"}
    assert min(by_name.values()) > raw + 3
    assert (out / "screenshot.png").stat().st_size > 10_000
    (export,) = out.glob("unmixing-*")
    assert (export / "unmixing.json").exists()
    saved = load_cube(out / "cell_low_SNR__20_photons____hybrid.npz")
    np.testing.assert_array_equal(saved.data, viewer.layers["cell low SNR (20 photons) · hybrid"].data)
