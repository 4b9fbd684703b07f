"""A network run started from a dock leaves one CPU core to the window and hands the GIL over
sooner, and puts both back after."""

from __future__ import annotations

import os
import sys

import pytest

import napari_deeper as nd
from napari_deeper._widgets import _runner

pytestmark = pytest.mark.gui


def test_denoise_run_leaves_a_core_to_the_window(make_napari_viewer, run_dock):
    import torch

    viewer = make_napari_viewer()
    cell = nd.simulate.simulate_cell((12, 12), n_bands=200, photons=50, seed=4)
    viewer.add_image(cell.noisy, name="cell", metadata={"wavenumbers": cell.wavenumbers})
    _, widget = viewer.window.add_plugin_dock_widget("napari-deeper", "Denoise")
    widget.methods.value = ["resunet"]
    widget.panels.panels["resunet"].controls["batch_size"].value = 16  # several progress reports
    widget.panels.panels["resunet"].controls["steps"].value = 2
    before, interval = torch.get_num_threads(), sys.getswitchinterval()
    during, switching = [], []

    def seen(progress) -> None:
        during.append(torch.get_num_threads())
        switching.append(sys.getswitchinterval())

    run_dock(widget, on_start=lambda worker: worker.yielded.connect(seen))
    cores = os.cpu_count() or 1
    expected = max(1, min(before, cores - _runner.WINDOW_CORES)) if cores > _runner.WINDOW_CORES else before
    assert during and during[-1] == expected
    assert torch.get_num_threads() == before  # given back when the run ends
    assert switching and max(switching) == min(interval, _runner.RUN_SWITCH_INTERVAL) < 0.005
    assert sys.getswitchinterval() == interval
    assert "cell · resunet" in [layer.name for layer in viewer.layers]
