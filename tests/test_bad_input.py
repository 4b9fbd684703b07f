"""Bad files and bad arguments: each is a ValueError that says what was wrong, or is read safely.

One test per defect: each of these failed (a TypeError, a MemoryError, an external file read, an
Inf, a silently lost value) before the fix it guards.
"""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper._validation import SAFE_MAGNITUDE
from napari_deeper.io import load_cube, save_cube
from test_io import B, NX, NY, smooth_cube


# --- arguments and input arrays ------------------------------------------------------------


@pytest.mark.parametrize("argument, value", [("center", "x"), ("width", "30"), ("center", None), ("width", True)])
def test_band_map_numbers_are_checked(argument, value):
    parameters = {"center": 5.0, "width": 3.0, argument: value}
    with pytest.raises(ValueError, match=rf"band {argument} must be a number, got {value!r}"):
        nd.band_map(smooth_cube(), None, **parameters)


@pytest.mark.parametrize("seed", ["x", 1.5, -1, True])
def test_vca_seed_is_checked(seed):
    with pytest.raises(ValueError, match="seed must be"):
        nd.vca(smooth_cube(), 2, seed=seed)


def test_timedelta_arrays_are_not_numbers(tmp_path):
    cube = smooth_cube().astype(np.int64).astype("m8[s]")
    with pytest.raises(ValueError, match=r"must hold real numbers .* timedelta64"):
        nd.denoise(cube, "savgol")
    with pytest.raises(ValueError, match=r"must hold real numbers .* timedelta64"):
        nd.band_map(cube, None, center=5, width=3)
    np.save(tmp_path / "t.npy", cube)
    with pytest.raises(ValueError, match="does not hold real numbers"):
        load_cube(tmp_path / "t.npy")


def test_masked_arrays_keep_their_mask_as_nan(tmp_path):
    data = np.ma.masked_array(smooth_cube(), mask=np.zeros((B, NY, NX), bool))
    data.mask[:, 2, 3] = True
    data.data[:, 2, 3] = 1e6  # the hidden values must not leak into any result
    with pytest.raises(ValueError, match=r"NaN \(\d+ of them masked\)"):
        nd.band_map(data, None, center=5, width=3)
    with pytest.raises(ValueError, match=rf"{B} NaN \({B} of them masked\)"):
        nd.denoise(data, "savgol")
    save_cube(data, tmp_path / "m.npy")
    back = load_cube(tmp_path / "m.npy", nonfinite="keep")
    assert np.isnan(back.data[:, 2, 3]).all() and np.isfinite(back.data).sum() == data.count()
    assert not np.isnan(data.data).any()  # the input is not changed


def _near_float32_max() -> np.ndarray:
    return (smooth_cube() / smooth_cube().max() * 3e38).astype(np.float32)


@pytest.mark.parametrize(
    "run",
    [
        lambda cube: nd.band_map(cube, None, center=5, width=3),
        lambda cube: nd.upscale(cube, 2, method="bicubic"),
        lambda cube: nd.upscale(cube, 2, method="hyrisr", device="cpu"),
        lambda cube: nd.upscale(cube, 2, method="srresnet", device="cpu"),
        lambda cube: nd.denoise(cube, "savgol"),
    ],
    ids=["band_map", "bicubic", "hyrisr", "srresnet", "savgol"],
)
def test_values_near_float32_max_are_refused(run):
    with pytest.raises(ValueError, match=r"values as large as [\d.]+e\+38.*up to 1e\+14.*divide it by 1e\+2[45]"):
        run(_near_float32_max())


@pytest.mark.parametrize("method", ["hyrisr", "srresnet"])
def test_networks_refuse_values_their_pca_gets_wrong(method):
    cube = nd.simulate.simulate_cell((12, 12), n_bands=40, seed=2).noisy.astype(np.float32)
    with pytest.raises(ValueError, match="values as large as"):
        nd.upscale(cube / cube.max() * 1e19, 2, method=method, device="cpu")  # was 15% off, silently


@pytest.mark.parametrize("method", ["bicubic", "hyrisr", "srresnet", "savgol"])
def test_values_up_to_the_bound_give_the_scaled_result(method):
    cube = nd.simulate.simulate_cell((12, 12), n_bands=40, seed=2).noisy.astype(np.float32)
    cube /= cube.max()
    scale = np.float32(SAFE_MAGNITUDE)
    if method == "savgol":
        small, large = nd.denoise(cube, method), nd.denoise(cube * scale, method)
    else:
        small = nd.upscale(cube, 2, method=method, device="cpu")
        large = nd.upscale(cube * scale, 2, method=method, device="cpu")
    np.testing.assert_allclose(large / scale, small, rtol=1e-3, atol=1e-5)


def test_band_area_beyond_float32_is_refused():
    axis = np.linspace(0.0, 1e30, B)
    with pytest.raises(ValueError, match="beyond float32's range"):
        nd.band_map(smooth_cube() * 1e10, axis, center=5e29, width=4e29)
