"""The Unmix dock on a zarr store opened lazily in a real viewer: the cube is read block by block
and the layers made equal those of the same cube in memory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

import napari_deeper as nd
from napari_deeper._widgets.unmix import STACKED, UnmixWidget
from napari_deeper.io import save_zarr
from napari_deeper.io._lazy import is_lazy

pytestmark = pytest.mark.gui

MAPS = ("abundance", "labels", "residual")


def unmix_in_dock(widget, run_dock, layer, mask=None):
    """One run with ``layer`` as source and only target, stacked abundances, no spike removal."""
    widget.source.value = layer
    widget.targets.value = [layer]
    widget.mask.value = mask
    widget.n_endmembers.value = 4
    widget.output.value = STACKED
    widget.despike.value = False
    run_dock(widget)
    return widget.result


def test_unmix_dock_on_a_lazy_layer_makes_the_layers_of_the_cube_in_memory(make_napari_viewer, run_dock, tmp_path,
                                                                           monkeypatch):
    import dask.array as da

    sim = nd.simulate.simulate_cell((48, 40), n_bands=120, photons=200, seed=5)
    data = np.asarray(sim.noisy, dtype=np.float32)
    store = save_zarr(data, tmp_path / "scan.zarr", sim.wavenumbers, chunks=(120, 16, 16))
    viewer = make_napari_viewer()
    [lazy] = viewer.open(str(store), plugin="napari-deeper")
    assert is_lazy(lazy.data)
    memory = viewer.add_image(data, name="memory", metadata={"wavenumbers": sim.wavenumbers})
    cell_mask = np.zeros(data.shape[1:], np.int32)
    cell_mask[4:44, 3:37] = 1
    mask = viewer.add_labels(cell_mask, name="cell")
    whole = []  # the shapes of any compute of the whole cube at once (napari reads single bands)
    compute = da.Array.compute

    def watched(self, *args, **kwargs):
        if self.ndim == 3 and self.size >= data.size:
            whole.append(self.shape)
        return compute(self, *args, **kwargs)

    monkeypatch.setattr(da.Array, "compute", watched)
    widget = UnmixWidget(viewer)
    viewer.window.add_dock_widget(widget)

    from_store = unmix_in_dock(widget, run_dock, lazy, mask)
    exported = widget.export(tmp_path)
    in_memory = unmix_in_dock(widget, run_dock, memory, mask)
    assert whole == [], "the lazy layer was read block by block"
    np.testing.assert_array_equal(from_store.endmembers, in_memory.endmembers)
    np.testing.assert_array_equal(from_store.pixel_indices, in_memory.pixel_indices)
    assert cell_mask.ravel()[from_store.pixel_indices].all()
    for kind in MAPS:
        made, expected = viewer.layers[f"scan · {kind}"], viewer.layers[f"memory · {kind}"]
        assert isinstance(made.data, np.ndarray), "the maps are in memory"
        np.testing.assert_array_equal(made.data, expected.data)
    assert viewer.layers["scan · abundance"].data.shape == (4, 48, 40)
    assert viewer.layers["scan · labels"].metadata["napari_deeper"]["source"] == "scan"

    # the export of the lazy layer's run: its maps and the endmember pixels on the source layer
    with tifffile.TiffFile(exported / "scan_abundance.tif") as handle:
        np.testing.assert_array_equal(handle.asarray(), viewer.layers["scan · abundance"].data)
    record = json.loads((exported / "unmixing.json").read_text())
    positions = [list(map(int, np.unravel_index(i, (48, 40)))) for i in from_store.pixel_indices]
    assert record["endmember_pixels"] == positions and record["vca_mask"] == "cell"

    # the suggested count reads only its sample of pixels, and is the in-memory one
    widget.source.value = lazy
    run_dock(widget, button=widget.suggest_button)
    assert widget.suggested == nd.unmix.estimate_n_endmembers(data) and whole == []

    # spike removal before VCA streams into a scratch store, removed afterwards: the in-memory run's maps
    scratch = tmp_path / "scratch"
    monkeypatch.setenv(nd.stream.SCRATCH_ENV, str(scratch))
    for layer in (lazy, memory):
        widget.source.value = layer
        widget.targets.value = [layer]
        widget.despike.value = True
        run_dock(widget)
    assert widget.result.spikes_removed > 0  # (the scratch store, one chunk this small, is read by VCA whole)
    for kind in MAPS:
        np.testing.assert_array_equal(viewer.layers[f"scan · {kind} [1]"].data, viewer.layers[f"memory · {kind} [1]"].data)
    assert not list(scratch.iterdir())
