"""Sample data: plain LayerData tuples, and the same layers opened through napari's menu path."""

from __future__ import annotations

import fnmatch
import hashlib
import tomllib
from pathlib import Path

import numpy as np
import pytest

from napari_deeper import _sample_data, load_cube
from napari_deeper import simulate as sim
from napari_deeper._sample_data import THP1_FILE, THP1_ORIGIN

ROOT = Path(__file__).resolve().parents[1]
#: the copy beside the repository that the shipped sample was taken from (absent on a bare clone)
SHARED_THP1 = ROOT.parent / "shared" / "data" / "thp1_witec_40x40x500.mat"


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


def test_thp1_sample_is_the_shipped_file_as_load_cube_reads_it():
    [(data, kwargs, kind)] = _sample_data.thp1_cell()
    assert kind == "image" and kwargs["name"] == "THP-1 cell (WITec)"
    cube = load_cube(THP1_FILE)
    assert data.shape == (500, 40, 40) and data.dtype == np.float32
    np.testing.assert_array_equal(data, cube.data)
    meta = kwargs["metadata"]
    np.testing.assert_array_equal(meta["wavenumbers"], cube.wavenumbers)
    assert meta["wavenumbers"][0] == pytest.approx(501.27, abs=0.01)
    assert meta["wavenumbers"][-1] == pytest.approx(1802.47, abs=0.01)
    assert meta["sample"]["licence"] == "BSD-3-Clause"
    assert "RamanSPy" in meta["sample"]["source"] and "Georgiev" in meta["sample"]["copyright"]
    assert "Nat. Commun. 8, 14843 (2017)" in meta["sample"]["reference"]
    record = meta["napari_deeper"]
    assert record["operation"] == "load" and record["format"] == "witec-struct" and record["choices"] == ""
    assert kwargs["axis_labels"] == ("wavenumber", "y", "x") and kwargs["units"][0] == "1/cm"


def test_shipped_thp1_file_is_intact_and_its_terms_sit_beside_it():
    assert hashlib.md5(THP1_FILE.read_bytes()).hexdigest() == THP1_ORIGIN["md5"]
    readme = (THP1_FILE.parent / "README.md").read_text(encoding="utf-8")
    licence = (THP1_FILE.parent / "LICENSE").read_text(encoding="utf-8")
    for fact in (THP1_ORIGIN["md5"], "BSD-3-Clause", "RamanSPy", "Nat. Commun.", THP1_ORIGIN["copyright"]):
        assert fact in readme, fact
    assert "BSD 3-Clause License" in licence and THP1_ORIGIN["copyright"] in licence


def test_package_data_ships_the_sample_file_and_its_terms():
    """The wheel's package-data patterns cover the sample file and the notes beside it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["napari_deeper"]
    package = THP1_FILE.parents[1]
    for path in (THP1_FILE, THP1_FILE.parent / "README.md", THP1_FILE.parent / "LICENSE"):
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


@pytest.mark.skipif(not SHARED_THP1.exists(), reason=f"no shared copy at {SHARED_THP1} to compare with")
def test_shipped_thp1_file_is_the_shared_one():
    assert THP1_FILE.read_bytes() == SHARED_THP1.read_bytes()


@pytest.mark.gui
def test_real_sample_opens_from_the_file_menu(make_napari_viewer):
    """File > Open Sample > napari-deeper > THP-1 cell, WITec, real, clicked as a user would."""
    viewer = make_napari_viewer()

    def actions(menu, path=()):
        for action in menu.actions():
            if action.menu() is not None:
                yield from actions(action.menu(), (*path, action.text()))
            else:
                yield (*path, action.text()), action

    found = dict(actions(viewer.window._qt_window.menuBar()))
    found[("&File", "Open Sample", "napari-deeper", "THP-1 cell, WITec, real")].trigger()
    [layer] = viewer.layers
    assert layer.name == "THP-1 cell (WITec)" and layer.data.shape == (500, 40, 40)
    assert layer.metadata["wavenumbers"].shape == (500,)
    assert tuple(layer.axis_labels) == ("wavenumber", "y", "x")
    assert [str(unit) for unit in layer.units] == ["1 / centimeter", "micrometer", "micrometer"]
    assert tuple(layer.scale) == (1.0, 0.625, 0.625)
    assert layer.metadata["sample"] == THP1_ORIGIN
