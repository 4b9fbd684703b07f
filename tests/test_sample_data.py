"""Sample data: plain LayerData tuples, and the same layers opened through napari's menu path."""

from __future__ import annotations

import numpy as np
import pytest

from napari_deeper import _sample_data
from napari_deeper.training import simulate as sim


def _check_layer_tuple(layer_data):
    data, kwargs, kind = layer_data
    assert kind == "image"
    assert data.ndim == 3 and data.dtype == np.float32
    meta = kwargs["metadata"]
    w = meta["wavenumbers"]
    assert w.shape == (data.shape[0],) and np.all(np.diff(w) > 0)
    truth = meta["ground_truth"]
    assert truth["abundances"].shape == (len(truth["names"]), *data.shape[1:])
    assert truth["endmembers"].shape == (len(truth["names"]), data.shape[0])
    assert truth["clean"].shape == data.shape
    assert truth["names"] == list(sim.COMPONENTS)
    assert meta["napari_deeper"]["operation"] == "simulate"
    assert kwargs["axis_labels"] == ("wavenumber", "y", "x")
    assert kwargs["units"] == ("1/cm", "pixel", "pixel")
    return data, kwargs


def test_denoise_pair_is_one_field_at_two_snrs():
    high, low = (_check_layer_tuple(layer) for layer in _sample_data.denoise_pair())
    assert high[0].shape == low[0].shape == (500, 64, 64)
    assert high[1]["metadata"]["napari_deeper"]["params"]["photons"] == 1000.0
    assert low[1]["metadata"]["napari_deeper"]["params"]["photons"] == 20.0
    clean = high[1]["metadata"]["ground_truth"]["clean"]
    np.testing.assert_array_equal(clean, low[1]["metadata"]["ground_truth"]["clean"])
    error_high = np.abs(high[0] - clean).mean()
    error_low = np.abs(low[0] - clean).mean()
    # sqrt(1000 / 20) ~ 7x more noise at low SNR
    assert 5 < error_low / error_high < 9
    # the layer is reproducible from the public API and its metadata
    w = high[1]["metadata"]["wavenumbers"]
    again = sim.simulate_cell((64, 64), wavenumbers=w, photons=20.0, seed=0)
    np.testing.assert_array_equal(again.noisy, low[0])


def test_superres_pair_lr_is_skip_sampled_hr():
    hr, lr = (_check_layer_tuple(layer) for layer in _sample_data.superres_pair())
    assert hr[0].shape == (500, 64, 64) and lr[0].shape == (500, 32, 32)
    np.testing.assert_array_equal(lr[0], hr[0][:, 1::2, 1::2])
    assert tuple(lr[1]["scale"]) == (1.0, 2.0, 2.0)
    assert tuple(lr[1]["translate"]) == (0.0, 1.0, 1.0)
    np.testing.assert_array_equal(
        lr[1]["metadata"]["ground_truth"]["abundances"],
        hr[1]["metadata"]["ground_truth"]["abundances"][:, 1::2, 1::2],
    )


@pytest.mark.gui
def test_samples_open_in_a_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-deeper", "denoise_pair")
    assert [layer.name for layer in viewer.layers] == [
        "cell high SNR (1000 photons)",
        "cell low SNR (20 photons)",
    ]
    for layer in viewer.layers:
        assert layer.data.shape == (500, 64, 64)
        assert layer.metadata["wavenumbers"].shape == (500,)
        assert tuple(layer.axis_labels) == ("wavenumber", "y", "x")
        assert [str(unit) for unit in layer.units] == ["1 / centimeter", "pixel", "pixel"]
        assert "ground_truth" in layer.metadata

    viewer.layers.clear()
    viewer.open_sample("napari-deeper", "superres_pair")
    hr, lr = viewer.layers
    assert lr.data.shape == (500, 32, 32)
    # LR pixel (i, j) sits on HR pixel (2i+1, 2j+1) in world coordinates and holds its spectrum
    for i, j in [(0, 0), (3, 7), (31, 31)]:
        world = lr.data_to_world((0, i, j))
        hr_index = np.round(hr.world_to_data(world)).astype(int)
        np.testing.assert_allclose(hr.world_to_data(world), (0, 2 * i + 1, 2 * j + 1))
        np.testing.assert_array_equal(lr.data[:, i, j], hr.data[:, hr_index[1], hr_index[2]])
