"""Bad files and bad arguments: each is a ValueError that says what was wrong, or is read safely.

One test per defect: each of these failed (a TypeError, a MemoryError, an external file read, an
Inf, a silently lost value) before the fix it guards.
"""

from __future__ import annotations

import io
import json
import struct
import time
import zipfile

import numpy as np
import pytest
import scipy.io as sio
from test_io import AXIS, NX, NY, B, smooth_cube, witec_struct, write_mat73

import napari_deeper as nd
from napari_deeper._validation import SAFE_MAGNITUDE
from napari_deeper.io import Cube, load_cube, save_cube


def _npy_with_header(path, header: bytes, payload: bytes = b"") -> None:
    """A version 1.0 ``.npy`` with a raw (possibly broken) header text."""
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload)


# --- readers: clear errors, no unbounded reads -------------------------------------------


def test_npy_header_that_does_not_tokenize(tmp_path):
    path = tmp_path / "tok.npy"
    _npy_with_header(path, b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4, ''')}")
    with pytest.raises(ValueError, match="tok.npy is not a readable .npy array"):
        load_cube(path)


def test_npy_negative_dimension(tmp_path):
    path = tmp_path / "neg.npy"
    _npy_with_header(path, b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, -4, 5), }", b"\0" * 64)
    with pytest.raises(ValueError, match=r"neg.npy .*negative shape \(3, -4, 5\)"):
        load_cube(path)


def test_mat73_dangling_soft_link_is_skipped_with_a_note(tmp_path):
    import h5py

    path = tmp_path / "dangling.mat"
    write_mat73(path, {"img": smooth_cube().transpose(1, 2, 0)})
    with h5py.File(path, "a") as h5:
        h5["lost"] = h5py.SoftLink("/nowhere")
    cube = load_cube(path)
    np.testing.assert_array_equal(cube.data, smooth_cube())
    assert any("'/lost' skipped" in note and "/nowhere" in note for note in cube.metadata["notes"])


def test_mat73_external_link_is_never_followed(tmp_path):
    import h5py

    write_mat73(tmp_path / "elsewhere.mat", {"img": np.ones((40, 40, 50))})
    path = tmp_path / "linked.mat"
    write_mat73(path, {"small": smooth_cube().transpose(1, 2, 0)})
    with h5py.File(path, "a") as h5:
        h5["img"] = h5py.ExternalLink(str(tmp_path / "elsewhere.mat"), "/img")
    cube = load_cube(path)
    assert cube.metadata["variable"] == "small"  # the larger, linked array was not read
    assert any("external link" in note and "never followed" in note for note in cube.metadata["notes"])


def test_mat73_soft_link_to_an_external_link_is_not_followed(tmp_path):
    import h5py

    write_mat73(tmp_path / "elsewhere.mat", {"img": np.ones((40, 40, 50))})
    path = tmp_path / "linked.mat"
    write_mat73(path, {"small": smooth_cube().transpose(1, 2, 0)})
    with h5py.File(path, "a") as h5:
        h5["hidden"] = h5py.ExternalLink(str(tmp_path / "elsewhere.mat"), "/img")
        h5["img"] = h5py.SoftLink("/hidden")
    cube = load_cube(path)
    assert cube.metadata["variable"] == "small"


def test_mat73_committed_datatype_is_skipped(tmp_path):
    import h5py

    path = tmp_path / "typed.mat"
    write_mat73(path, {"img": smooth_cube().transpose(1, 2, 0)})
    with h5py.File(path, "a") as h5:
        h5["kind"] = np.dtype("<f4")
    cube = load_cube(path)
    np.testing.assert_array_equal(cube.data, smooth_cube())
    assert any("committed datatype" in note for note in cube.metadata["notes"])


def test_mat73_null_reference_error_names_the_file(tmp_path):
    import h5py

    path = tmp_path / "nullref.mat"
    write_mat73(path, {"map": witec_struct(smooth_cube(), AXIS)})
    with h5py.File(path, "a") as h5:
        refs = h5["map/axisscale"][()]
        refs[0, 1] = h5py.Reference()
        del h5["map/axisscale"]
        h5["map"].create_dataset("axisscale", data=refs).attrs["MATLAB_class"] = np.bytes_("cell")
    with pytest.raises(ValueError, match="nullref.mat: Invalid HDF5 object reference"):
        load_cube(path)


def _npz_member(path, method, *, encrypted=False, corrupt=False, compress_type=None):
    """An .npz with one ``data.npy`` member, optionally marked encrypted, damaged or renumbered."""
    buffer = io.BytesIO()
    np.save(buffer, smooth_cube())
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        archive.writestr("data.npy", buffer.getvalue())
    raw = bytearray(path.read_bytes())
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    if encrypted:
        raw[local + 6] |= 1
        raw[central + 8] |= 1
    if compress_type is not None:
        raw[local + 8 : local + 10] = struct.pack("<H", compress_type)
        raw[central + 10 : central + 12] = struct.pack("<H", compress_type)
    if corrupt:
        name_length, extra_length = struct.unpack("<HH", raw[local + 26 : local + 30])
        start = local + 30 + name_length + extra_length + 20
        raw[start : start + 40] = bytes(b ^ 0x5A for b in raw[start : start + 40])
    path.write_bytes(bytes(raw))
    return path


def test_npz_unsupported_compression(tmp_path):
    path = _npz_member(tmp_path / "c.npz", zipfile.ZIP_STORED, compress_type=99)
    with pytest.raises(ValueError, match="c.npz:data.npy uses zip compression method 99"):
        load_cube(path)
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):  # other methods zipfile reads still work
        np.testing.assert_array_equal(load_cube(_npz_member(tmp_path / "ok.npz", method)).data, smooth_cube())


def test_npz_encrypted_member(tmp_path):
    path = _npz_member(tmp_path / "e.npz", zipfile.ZIP_DEFLATED, encrypted=True)
    with pytest.raises(ValueError, match="e.npz:data.npy is encrypted"):
        load_cube(path)


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA, zipfile.ZIP_BZIP2, zipfile.ZIP_STORED])
def test_npz_corrupt_stream(tmp_path, method):
    path = _npz_member(tmp_path / "d.npz", method, corrupt=True)
    with pytest.raises(ValueError, match="d.npz:data.npy is (damaged|not a readable .npy array)"):
        load_cube(path)


def test_npz_member_header_larger_than_the_member(tmp_path):
    path = tmp_path / "big.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (40000, 50000)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.npy", header.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match="big.npz:data.npy is truncated or damaged"):
        load_cube(path)


def test_sidecar_declaring_a_huge_axis_is_not_read(tmp_path):
    np.save(tmp_path / "c.npy", smooth_cube())
    _npy_with_header(tmp_path / "c_wavenumbers.npy", b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }")
    cube = load_cube(tmp_path / "c.npy", layout="byx")
    assert cube.wavenumbers is None
    assert any("1000000000000 values" in note and "not read" in note for note in cube.metadata["notes"])


def test_sidecar_shorter_than_its_header_is_refused(tmp_path):
    np.save(tmp_path / "c.npy", smooth_cube())
    _npy_with_header(tmp_path / "c_wavenumbers.npy", f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({B},), }}".encode())
    cube = load_cube(tmp_path / "c.npy", layout="byx")
    assert cube.wavenumbers is None
    assert any("truncated" in note for note in cube.metadata["notes"])


def test_text_sidecar_larger_than_an_axis_needs_is_not_read(tmp_path):
    np.save(tmp_path / "c.npy", smooth_cube())
    (tmp_path / "c_wavenumbers.txt").write_text("1.0\n" * 200_000)
    cube = load_cube(tmp_path / "c.npy", layout="byx")
    assert cube.wavenumbers is None
    assert any("c_wavenumbers.txt is 800,000 bytes" in note for note in cube.metadata["notes"])


def test_mat73_huge_declared_wavenumbers_are_not_read(tmp_path):
    import h5py

    path = tmp_path / "big_axis.mat"
    write_mat73(path, {"img": smooth_cube().transpose(1, 2, 0)})
    with h5py.File(path, "a") as h5:  # 3.2 GB declared, nothing written: a few KB on disk
        ds = h5.create_dataset("wavenumbers", shape=(400_000_000, 1), dtype="f8", chunks=(1 << 20, 1), compression="gzip")
        ds.attrs["MATLAB_class"] = np.bytes_("double")
    start = time.perf_counter()
    cube = load_cube(path)
    assert time.perf_counter() - start < 2
    assert cube.wavenumbers is None and cube.data.shape == (B, NY, NX)
    assert any("400000000 values" in note and "not read" in note for note in cube.metadata["notes"])


def test_mat73_array_larger_than_the_file_can_hold_is_refused(tmp_path):
    import h5py

    path = tmp_path / "hollow.mat"
    with h5py.File(path, "w") as h5:  # 400 MB declared, never written
        ds = h5.create_dataset("img", shape=(100, 1000, 1000), dtype="f4", chunks=(10, 100, 100), compression="gzip")
        ds.attrs["MATLAB_class"] = np.bytes_("single")
    with pytest.raises(ValueError, match="hollow.mat:img declares 400,000,000 bytes"):
        load_cube(path)


def test_saved_unit_napari_cannot_parse_is_dropped_with_a_note(tmp_path):
    save_cube(Cube(smooth_cube(), AXIS, {"spectral_unit": "1/cm"}), tmp_path / "u.npz")
    with np.load(tmp_path / "u.npz") as archive:
        arrays = dict(archive)
    for unit, expected in [("zorkmids", "1/cm"), ("cm^-1", "1/cm"), ("nm", "nm")]:
        record = json.loads(str(arrays["napari_deeper"]))
        record["spectral_unit"] = unit
        np.savez(tmp_path / "edited.npz", **{**arrays, "napari_deeper": np.array(json.dumps(record))})
        cube = load_cube(tmp_path / "edited.npz")
        assert cube.metadata["spectral_unit"] == expected
        dropped = [note for note in cube.metadata["notes"] if "'zorkmids'" in note]
        assert len(dropped) == (unit == "zorkmids")
    pint = pytest.importorskip("pint", reason="pint (napari's unit parser) is not installed")
    for unit in ("1/cm", "nm"):  # what napari is then given as the layer's unit parses
        pint.UnitRegistry()(unit)


def test_unusable_companion_in_own_mat_is_skipped_with_a_note(tmp_path):
    save_cube(Cube(smooth_cube(), AXIS, {"companions": {"good": smooth_cube(seed=3)}}), tmp_path / "c.mat")
    variables = {k: v for k, v in sio.loadmat(tmp_path / "c.mat").items() if not k.startswith("__")}
    variables["companion_flat"] = np.ones((3, 4))
    sio.savemat(tmp_path / "edited.mat", variables)
    cube = load_cube(tmp_path / "edited.mat")
    np.testing.assert_array_equal(cube.data, smooth_cube())
    assert list(cube.metadata["companions"]) == ["good"]
    [note] = [n for n in cube.metadata["notes"] if "companion 'flat' skipped" in n]
    assert "(3, 4)" in note and "layout" not in note


def test_load_cube_path_must_be_a_file_name(tmp_path):
    for bad in (None, 5, 2.5, ["a.npy"]):
        with pytest.raises(ValueError, match="path must be a file name"):
            load_cube(bad)
    np.save(tmp_path / "c.npy", smooth_cube())
    np.testing.assert_array_equal(load_cube(str(tmp_path / "c.npy").encode()).data, smooth_cube())


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


# --- writers: nothing lost silently --------------------------------------------------------


@pytest.mark.parametrize("ext", [".npz", ".mat"])
def test_companion_names_colliding_after_sanitising_are_all_kept(tmp_path, ext):
    companions = {"a b": smooth_cube(seed=1), "a_b": smooth_cube(seed=2), "a-b": smooth_cube(seed=3), "é": smooth_cube(seed=4)}
    save_cube(Cube(smooth_cube(), AXIS, {"companions": companions}), tmp_path / f"c{ext}")
    back = load_cube(tmp_path / f"c{ext}").metadata["companions"]
    assert sorted(back) == sorted(companions)
    for name, array in companions.items():
        np.testing.assert_array_equal(back[name], array)


def test_mat_companion_names_cut_at_63_characters_are_all_kept(tmp_path):
    long = "reference measurement of the same cell with a longer exposure"
    companions = {f"{long} {i}": smooth_cube(seed=i) for i in range(3)}
    save_cube(Cube(smooth_cube(), AXIS, {"companions": companions}), tmp_path / "c.mat")
    stored = [name for name in sio.whosmat(tmp_path / "c.mat") if name[0].startswith("companion_")]
    assert len(stored) == 3 and all(len(name) <= 63 for name, *_ in stored)
    back = load_cube(tmp_path / "c.mat").metadata["companions"]
    for name, array in companions.items():
        np.testing.assert_array_equal(back[name], array)


def test_labels_tiff_keeps_labels_beyond_32_bits(tmp_path):
    import tifffile

    from napari_deeper.io.layer_writers import write_labels_tiff

    labels = np.array([[0, 7], [2**32, 8589934599]], dtype=np.int64)
    [path] = write_labels_tiff(str(tmp_path / "labels.tif"), labels, {"name": "classes"})
    back = tifffile.imread(path)
    assert back.dtype == np.uint64 and np.array_equal(back, labels)


@pytest.mark.parametrize("shape", [(NY, NX), (NY, NX, 3)], ids=["map", "rgb"])
def test_maps_saved_as_npy_reopen_as_maps(tmp_path, shape):
    from napari_builtins.io import napari_get_reader

    from napari_deeper._reader import get_reader
    from napari_deeper.io.layer_writers import write_npy

    image = np.random.default_rng(0).random(shape).astype(np.float32)
    [path] = write_npy(str(tmp_path / "map.npy"), image, {"name": "map", "metadata": {}})
    assert get_reader(path) is None  # left to napari's own reader...
    [(data, *_rest)] = napari_get_reader(path)(path)  # ...which gives the map back as it was
    np.testing.assert_array_equal(data, image)
    np.save(tmp_path / "pixels.npy", np.ones((30, B), np.float32))  # a spectra matrix with its axis
    np.save(tmp_path / "pixels_wavenumbers.npy", AXIS)
    assert get_reader(str(tmp_path / "pixels.npy")) is not None


def test_endmembers_with_nan_are_refused_on_write(tmp_path):
    from napari_deeper.io.endmembers import save_endmembers_csv

    endmembers = np.ones((2, B))
    endmembers[1, 3] = np.nan
    with pytest.raises(ValueError, match="1 NaN / Inf values"):
        save_endmembers_csv(tmp_path / "em.csv", endmembers, AXIS)
    assert not (tmp_path / "em.csv").exists()
