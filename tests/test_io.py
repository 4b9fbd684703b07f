"""Reading and writing cubes: every layout built as a real file, bad files, round trips."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import scipy.io as sio

from napari_deeper.io import (
    Cube,
    count_nonfinite,
    load_cube,
    relayout,
    replace_nonfinite,
    save_cube,
)

B, NY, NX = 12, 6, 9  # a non-square image, so that row/column mix-ups show


def smooth_cube(bands=B, ny=NY, nx=NX, seed=0) -> np.ndarray:
    """A (B, Y, X) float32 cube whose every value tells its (b, y, x): mix-ups cannot hide."""
    b, y, x = np.meshgrid(np.arange(bands), np.arange(ny), np.arange(nx), indexing="ij")
    noise = np.random.default_rng(seed).normal(0, 0.01, (bands, ny, nx))
    return (1000 * b + 10 * y + 0.1 * x + noise).astype(np.float32)


def matlab_pixels(cube: np.ndarray) -> np.ndarray:
    """(pixels, bands) as MATLAB's reshape(img, [], B) lists them: column by column."""
    return cube.transpose(2, 1, 0).reshape(-1, cube.shape[0])


def numpy_pixels(cube: np.ndarray) -> np.ndarray:
    """(pixels, bands) as cube.reshape(B, -1).T lists them: row by row."""
    return cube.reshape(cube.shape[0], -1).T


AXIS = np.linspace(500.0, 1800.0, B)

MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


def write_mat73(path, variables: dict) -> None:
    """A v7.3 MAT file as MATLAB writes it: HDF5 behind a 512-byte header, arrays transposed.

    Values: numeric arrays, str (char), dict (struct), object arrays (cells).
    """
    import h5py

    with h5py.File(path, "w", userblock_size=512) as h5:
        refs = h5.create_group("#refs#")
        counter = iter(range(10**6))

        def put(group, name, value):
            if isinstance(value, dict):
                sub = group.create_group(name)
                sub.attrs["MATLAB_class"] = np.bytes_("struct")
                for key, item in value.items():
                    put(sub, key, item)
                return
            if isinstance(value, str):
                codes = np.array([[ord(c) for c in value]], dtype=np.uint16)
                ds = group.create_dataset(name, data=codes.T)
                ds.attrs["MATLAB_class"] = np.bytes_("char")
                ds.attrs["MATLAB_int_decode"] = np.int32(2)
                return
            if isinstance(value, np.ndarray) and value.dtype == object:
                ref_array = np.empty(value.shape, dtype=h5py.ref_dtype)
                for index, item in np.ndenumerate(value):
                    key = f"r{next(counter)}"
                    put(refs, key, item)
                    ref_array[index] = refs[key].ref
                ds = group.create_dataset(name, data=ref_array.T)
                ds.attrs["MATLAB_class"] = np.bytes_("cell")
                return
            array = np.asarray(value)
            ds = group.create_dataset(name, data=array.T)
            ds.attrs["MATLAB_class"] = np.bytes_({"float64": "double", "float32": "single"}.get(str(array.dtype), str(array.dtype)))

        for name, value in variables.items():
            put(h5, name, value)
    with open(path, "r+b") as handle:
        handle.write(MATLAB_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")


def witec_struct(cube: np.ndarray, axis: np.ndarray, label: str = "rel. 1/cm") -> dict:
    axisscale = np.empty((2, 2), dtype=object)
    axisscale[0, 0] = np.zeros((0, 0))
    axisscale[0, 1] = ""
    axisscale[1, 0] = axis.reshape(1, -1)
    axisscale[1, 1] = label
    return {
        "name": "test map",
        "imagesize": np.array([[cube.shape[1], cube.shape[2]]], dtype=np.uint8),
        "data": matlab_pixels(cube),
        "axisscale": axisscale,
    }


# --- the real WITec file -------------------------------------------------------------------


def test_real_witec_file_opens_as_its_cube(thp1_path):
    cube = load_cube(thp1_path)
    assert cube.data.shape == (500, 40, 40)
    assert cube.data.dtype == np.float32 and cube.data.flags.c_contiguous
    assert cube.wavenumbers.shape == (500,) and cube.wavenumbers.dtype == np.float64
    assert cube.wavenumbers[0] == pytest.approx(501.27, abs=0.01)
    assert cube.wavenumbers[-1] == pytest.approx(1802.47, abs=0.01)
    assert cube.metadata["format"] == "witec-struct"
    assert cube.metadata["choices"] == ""  # no questions asked
    assert cube.metadata["spectral_unit"] == "1/cm"
    assert cube.metadata["source"] == str(thp1_path)


def test_real_witec_orientation_is_spatially_continuous(thp1_path):
    cube = load_cube(thp1_path)
    raw = sio.loadmat(thp1_path)["Struct_3DTHP1map001L5BRSubBG"][0, 0]["data"]
    # RamanSPy's reconstruction of the same file, (y, x, B)
    np.testing.assert_array_equal(cube.data, raw.reshape(40, 40, -1).transpose(2, 1, 0))

    def neighbour_correlation(image):
        image = (image - image.mean()) / image.std()
        return (
            np.corrcoef(image[1:].ravel(), image[:-1].ravel())[0, 1],
            np.corrcoef(image[:, 1:].ravel(), image[:, :-1].ravel())[0, 1],
        )

    along_y, along_x = neighbour_correlation(cube.data.sum(0))
    assert along_y > 0.8 and along_x > 0.8
    # folding the same pixel list with a wrong stride breaks the cell apart
    wrong = raw.sum(1).reshape(80, 20)
    assert min(neighbour_correlation(wrong)) < 0.6


# --- MATLAB layouts ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_witec_struct_non_square_column_major(tmp_path, version):
    cube = smooth_cube()
    path = tmp_path / "witec.mat"
    struct = witec_struct(cube, AXIS)
    if version == "v5":
        sio.savemat(path, {"Struct_map": struct})
    else:
        write_mat73(path, {"Struct_map": struct})
    loaded = load_cube(path)
    np.testing.assert_array_equal(loaded.data, cube)
    np.testing.assert_array_equal(loaded.wavenumbers, AXIS)
    assert loaded.metadata["format"] == "witec-struct"
    assert loaded.metadata["choices"] == ""
    assert loaded.metadata["title"] == "test map"


def test_witec_unit_in_nm(tmp_path):
    path = tmp_path / "witec_nm.mat"
    sio.savemat(path, {"s": witec_struct(smooth_cube(), AXIS, label="Wavelength [nm]")})
    assert load_cube(path).metadata["spectral_unit"] == "nm"


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_deeper_pairs_square_with_axis_sidecar(tmp_path, version):
    inputs, outputs = smooth_cube(ny=8, nx=8), smooth_cube(ny=8, nx=8, seed=1)
    path = tmp_path / "pairs.mat"
    variables = {"Inputs": matlab_pixels(inputs), "Outputs": matlab_pixels(outputs)}
    sio.savemat(path, variables) if version == "v5" else write_mat73(path, variables)
    np.savetxt(tmp_path / "axis.txt", AXIS)
    cube = load_cube(path)
    assert cube.metadata["format"] == "deeper-pairs:Inputs"
    np.testing.assert_array_equal(cube.data, inputs)
    np.testing.assert_array_equal(cube.metadata["companions"]["Outputs"], outputs)
    np.testing.assert_allclose(cube.wavenumbers, AXIS)
    assert "8 x 8 (square" in cube.metadata["choices"]
    assert "assumed 1/cm" in cube.metadata["choices"]
    assert cube.metadata["spectral_unit"] == "1/cm"


def test_deeper_train_test_sets_and_strip(tmp_path):
    train, test = smooth_cube(ny=5, nx=6), smooth_cube(ny=4, nx=4, seed=2)
    path = tmp_path / "sets.mat"
    sio.savemat(
        path,
        {
            "Train_Inputs": matlab_pixels(train),
            "Train_Outputs": matlab_pixels(train),
            "Test_Inputs": matlab_pixels(test),
            "Test_Outputs": matlab_pixels(test),
        },
    )
    cube = load_cube(path)
    assert cube.metadata["format"] == "deeper-pairs:Train_Inputs"
    # 30 spectra: not square -> a 1 x 30 strip, with a note saying how to set the shape
    assert cube.data.shape == (B, 1, 30)
    assert "strip" in cube.metadata["choices"] and "shape=(Y, X)" in cube.metadata["choices"]
    assert set(cube.metadata["companions"]) == {"Train_Outputs", "Test_Inputs", "Test_Outputs"}
    np.testing.assert_array_equal(cube.metadata["companions"]["Test_Inputs"], test)
    # the user gives the shape: the strip folds column-major, as MATLAB listed it
    folded = load_cube(path, shape=(5, 6))
    np.testing.assert_array_equal(folded.data, train)
    # and relayout does the same to the strip afterwards
    np.testing.assert_array_equal(relayout(cube.data, shape=(5, 6), pixel_order="F"), train)


def test_deeper_data_key(tmp_path):
    cube = smooth_cube(ny=4, nx=4)
    path = tmp_path / "data.mat"
    sio.savemat(path, {"data": matlab_pixels(cube)})
    loaded = load_cube(path)
    assert loaded.metadata["format"] == "deeper-pairs:data"
    np.testing.assert_array_equal(loaded.data, cube)


def test_deeper_superres_image_is_first_variable(tmp_path):
    cube = smooth_cube(bands=40, ny=16, nx=16)
    path = tmp_path / "sr.mat"
    sio.savemat(path, {"img": cube.transpose(1, 2, 0)})
    loaded = load_cube(path)
    np.testing.assert_array_equal(loaded.data, cube)
    assert loaded.metadata["format"] == "mat:img:(Y,X,B)"
    assert "two other axes are equal" in loaded.metadata["choices"]


def test_noise_learning_layout(tmp_path):
    cube, noise = smooth_cube(), smooth_cube(seed=3)
    path = tmp_path / "nl.mat"
    sio.savemat(
        path,
        {"cube": matlab_pixels(cube).T, "noise": matlab_pixels(noise).T, "x": AXIS, "size": [NY, NX]},
    )
    loaded = load_cube(path)
    assert loaded.metadata["format"] == "noise-learning:cube"
    np.testing.assert_array_equal(loaded.data, cube)
    np.testing.assert_array_equal(loaded.metadata["companions"]["noise"], noise)
    np.testing.assert_array_equal(loaded.wavenumbers, AXIS)
    assert "assumed 1/cm" in loaded.metadata["choices"]


def test_generic_mat_takes_largest_array_and_notes_it(tmp_path):
    cube = smooth_cube(bands=30, ny=5, nx=5)
    path = tmp_path / "generic.mat"
    sio.savemat(path, {"small": np.ones((3, 4)), "spectra": cube.transpose(1, 2, 0), "wavenumbers": np.arange(30.0)})
    loaded = load_cube(path)
    np.testing.assert_array_equal(loaded.data, cube)
    np.testing.assert_array_equal(loaded.wavenumbers, np.arange(30.0))
    assert "'spectra', the largest numeric array" in loaded.metadata["choices"]


# --- NumPy files ---------------------------------------------------------------------------


def test_npy_bands_first_float32_stays_memory_mapped(tmp_path):
    cube = smooth_cube()
    path = tmp_path / "cube.npy"
    np.save(path, cube)
    loaded = load_cube(path)
    assert isinstance(loaded.data, np.memmap)
    assert not loaded.data.flags.writeable
    np.testing.assert_array_equal(loaded.data, cube)
    assert loaded.metadata["format"] == "npy:(B,Y,X)"


@pytest.mark.parametrize(
    "stored, layout",
    [
        (lambda c: c.transpose(1, 2, 0), "yxb"),
        (lambda c: c.transpose(2, 1, 0), "xyb"),
        (lambda c: c, "byx"),
    ],
)
def test_npy_orientations_with_wavenumber_sidecar(tmp_path, stored, layout):
    cube = smooth_cube(bands=NY)  # bands == Y: only the sidecar's length can't decide alone
    path = tmp_path / "cube.npy"
    np.save(path, np.asarray(stored(cube), dtype=np.float64))
    np.save(tmp_path / "cube_wavenumbers.npy", np.arange(NY, dtype=float))
    loaded = load_cube(path, layout=layout)
    np.testing.assert_array_equal(loaded.data, cube)
    assert loaded.data.dtype == np.float32 and loaded.data.flags.c_contiguous
    np.testing.assert_array_equal(loaded.wavenumbers, np.arange(NY))
    assert loaded.metadata["choices"] == ""


def test_npy_spectral_axis_guessed_from_sidecar_length(tmp_path):
    cube = smooth_cube()
    np.save(tmp_path / "m.npy", cube.transpose(1, 2, 0))
    np.save(tmp_path / "m_wavenumbers.npy", AXIS)
    loaded = load_cube(tmp_path / "m.npy")
    np.testing.assert_array_equal(loaded.data, cube)
    assert loaded.metadata["format"] == "npy:(Y,X,B)"


def test_npy_spectral_axis_guessed_without_axis(tmp_path):
    cube = smooth_cube(bands=50, ny=8, nx=8)
    np.save(tmp_path / "m.npy", cube.transpose(1, 2, 0).astype(np.int32))
    loaded = load_cube(tmp_path / "m.npy")
    np.testing.assert_array_equal(loaded.data, cube.astype(np.int32).astype(np.float32))
    assert loaded.wavenumbers is None
    assert "bands = axis 2" in loaded.metadata["choices"]


def test_npy_pixels_by_bands_square_row_major(tmp_path):
    cube = smooth_cube(bands=7, ny=5, nx=5)
    np.save(tmp_path / "m.npy", numpy_pixels(cube))
    loaded = load_cube(tmp_path / "m.npy")
    np.testing.assert_array_equal(loaded.data, cube)
    assert "25 is a square number" in loaded.metadata["choices"]
    assert "5 x 5 (square, row-major)" in loaded.metadata["choices"]


def test_npy_fortran_order(tmp_path):
    cube = smooth_cube()
    np.save(tmp_path / "f.npy", np.asfortranarray(cube))
    np.testing.assert_array_equal(load_cube(tmp_path / "f.npy", layout="byx").data, cube)


def test_npz_wavelength_key_means_nm(tmp_path):
    cube = smooth_cube()
    np.savez(tmp_path / "w.npz", cube=cube.transpose(1, 2, 0), wavelengths=np.linspace(800, 900, B))
    loaded = load_cube(tmp_path / "w.npz")
    np.testing.assert_array_equal(loaded.data, cube)
    assert loaded.metadata["spectral_unit"] == "nm"
    assert loaded.metadata["format"] == "npz:cube:(Y,X,B)"


def test_npz_pixels_with_x_axis(tmp_path):
    cube = smooth_cube(ny=4, nx=4)
    np.savez(tmp_path / "p.npz", spectra=numpy_pixels(cube), x=AXIS)
    loaded = load_cube(tmp_path / "p.npz")
    np.testing.assert_array_equal(loaded.data, cube)
    np.testing.assert_array_equal(loaded.wavenumbers, AXIS)
    assert "assumed 1/cm" in loaded.metadata["choices"]


def test_shape_argument_folds_pixels(tmp_path):
    cube = smooth_cube()
    np.save(tmp_path / "p.npy", numpy_pixels(cube))
    np.testing.assert_array_equal(load_cube(tmp_path / "p.npy", shape=(NY, NX)).data, cube)
    with pytest.raises(ValueError, match="54 spectra"):
        load_cube(tmp_path / "p.npy", shape=(5, 5))


# --- bad input -----------------------------------------------------------------------------


def _write_npy_header(path, shape, dtype="<f4", payload=b""):
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    with open(path, "wb") as handle:
        handle.write(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + payload)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("junk.mat", b"this is not a MATLAB file at all" * 8, "not a MATLAB file"),
        ("junk.npy", b"\x00\x01 garbage" * 20, "not a readable .npy"),
        ("junk.npz", b"PK\x03\x04 broken zip" * 10, "not a readable .npz"),
        ("empty.npy", b"", "empty file"),
        ("cube.tif", b"II*\x00", "unsupported file type"),
    ],
)
def test_corrupt_files_raise_clear_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_cube(path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_cube(tmp_path / "nothing.npy")


@pytest.mark.parametrize(
    "array, message",
    [
        (np.arange(500.0), "1-D array"),
        (np.array(3.0), "scalar"),
        (np.zeros((0, 4, 4), np.float32), "empty"),
        (np.array([["a", "b"], ["c", "d"]]), "does not hold real numbers"),
        (np.ones((2, 3, 4), dtype=complex), "does not hold real numbers"),
        (np.ones((2, 3, 4, 5)), "4-D array"),
    ],
)
def test_not_a_cube(tmp_path, array, message):
    np.save(tmp_path / "a.npy", array)
    with pytest.raises(ValueError, match=message):
        load_cube(tmp_path / "a.npy")


def test_truncated_npy(tmp_path):
    np.save(tmp_path / "t.npy", np.ones((10, 10, 10), np.float32))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        load_cube(tmp_path / "t.npy")


def test_absurd_npy_header_rejected_without_reading(tmp_path):
    _write_npy_header(tmp_path / "huge.npy", (100000, 100000, 1000))
    with pytest.raises(ValueError, match=r"2\*\*31"):
        load_cube(tmp_path / "huge.npy")


def test_absurd_mat_v5_dimensions_rejected_from_header(tmp_path):
    path = tmp_path / "huge.mat"
    sio.savemat(path, {"x": np.ones((3, 7))})
    raw = bytearray(path.read_bytes())
    dims = np.array([3, 7], "<i4").tobytes()
    at = raw.index(dims)
    raw[at : at + 8] = np.array([200000, 200000], "<i4").tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"2\*\*31"):
        load_cube(path)


def test_absurd_mat_v73_rejected_before_loading(tmp_path):
    import h5py

    path = tmp_path / "huge73.mat"
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("cube", shape=(1000, 2000, 2000), dtype="f4", chunks=(1, 100, 100))
        ds.attrs["MATLAB_class"] = np.bytes_("single")
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"2\*\*31"):
        load_cube(path)
    assert time.perf_counter() - start < 5


def test_mat_without_numeric_arrays(tmp_path):
    path = tmp_path / "text.mat"
    sio.savemat(path, {"note": "hello", "vector": np.arange(5.0)})
    with pytest.raises(ValueError, match="no numeric 2-D or 3-D array"):
        load_cube(path)


def test_truncated_mat(tmp_path):
    path = tmp_path / "cut.mat"
    sio.savemat(path, {"img": smooth_cube().transpose(1, 2, 0)})
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(ValueError, match="cut.mat is damaged or truncated"):
        load_cube(path)


def test_nan_policy(tmp_path):
    cube = smooth_cube()
    cube[0, 0, 0] = np.nan
    cube[1, 2, 3] = np.inf
    cube[2, 2, 3] = np.nan
    np.save(tmp_path / "n.npy", cube)
    with pytest.raises(ValueError, match="2 NaN and 1 Inf"):
        load_cube(tmp_path / "n.npy")
    zeroed = load_cube(tmp_path / "n.npy", nonfinite="zero")
    assert np.isfinite(zeroed.data).all() and zeroed.data[0, 0, 0] == 0
    assert any("replaced with 0" in note for note in zeroed.metadata["notes"])
    kept = load_cube(tmp_path / "n.npy", nonfinite="keep")
    assert np.isnan(kept.data[0, 0, 0])
    with pytest.raises(ValueError, match="nonfinite must be"):
        load_cube(tmp_path / "n.npy", nonfinite="interpolate")


def test_bad_arguments(tmp_path):
    np.save(tmp_path / "c.npy", smooth_cube())
    with pytest.raises(ValueError, match="layout 'yx'"):
        load_cube(tmp_path / "c.npy", layout="yx")
    with pytest.raises(ValueError, match="two integers"):
        load_cube(tmp_path / "c.npy", shape=(3, 4, 5))


def test_mismatched_sidecar_is_ignored_with_a_note(tmp_path):
    np.save(tmp_path / "c.npy", smooth_cube())
    np.save(tmp_path / "c_wavenumbers.npy", np.arange(5.0))
    loaded = load_cube(tmp_path / "c.npy", layout="byx")
    assert loaded.wavenumbers is None
    assert any("ignored" in note for note in loaded.metadata["notes"])


# --- writing -------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".npy", ".npz", ".mat"])
def test_round_trip_is_exact(tmp_path, ext):
    data = np.random.default_rng(1).normal(size=(B, NY, NX)).astype(np.float32)
    data[3, 2, 1] = np.nan
    axis = np.sort(np.random.default_rng(2).uniform(400, 1800, B))
    written = save_cube(Cube(data, axis, {"spectral_unit": "1/cm", "title": "cell"}), tmp_path / f"c{ext}")
    back = load_cube(written[0], nonfinite="keep")
    assert back.data.dtype == np.float32 and back.data.shape == data.shape
    assert back.data.tobytes() == data.tobytes()
    assert back.wavenumbers.dtype == np.float64 and back.wavenumbers.tobytes() == axis.tobytes()
    assert back.metadata["spectral_unit"] == "1/cm"
    assert back.metadata["choices"] == ""
    if ext != ".npy":
        assert back.metadata["format"] == f"napari-deeper:{ext[1:]}"
        assert back.metadata["title"] == "cell"


@pytest.mark.parametrize("ext", [".npz", ".mat"])
def test_round_trip_keeps_companions_and_nm(tmp_path, ext):
    data, outputs = smooth_cube(), smooth_cube(seed=5)
    metadata = {"spectral_unit": "nm", "companions": {"Outputs": outputs}}
    save_cube(Cube(data, AXIS, metadata), tmp_path / f"p{ext}")
    back = load_cube(tmp_path / f"p{ext}")
    np.testing.assert_array_equal(back.data, data)
    np.testing.assert_array_equal(back.metadata["companions"]["Outputs"], outputs)
    assert back.metadata["spectral_unit"] == "nm"


def test_npy_sidecar_carries_the_unit(tmp_path):
    written = save_cube(smooth_cube(), tmp_path / "w.npy", wavenumbers=AXIS, metadata={"spectral_unit": "nm"})
    assert written[1].endswith("w_wavelengths.npy")
    assert load_cube(tmp_path / "w.npy").metadata["spectral_unit"] == "nm"


def test_mat_layout_is_matlab_friendly(tmp_path):
    cube = smooth_cube()
    save_cube(cube, tmp_path / "m.mat", wavenumbers=AXIS)
    raw = sio.loadmat(tmp_path / "m.mat")
    assert raw["data"].shape == (NY, NX, B) and raw["data"].dtype == np.float32
    assert raw["wavenumbers"].shape == (1, B)
    assert json.loads(str(raw["napari_deeper"][0]))["spectral_unit"] == "1/cm"


def test_save_overwriting_its_own_memory_map(tmp_path):
    path = tmp_path / "self.npy"
    np.save(path, smooth_cube())
    cube = load_cube(path)
    save_cube(cube, path)
    np.testing.assert_array_equal(load_cube(path).data, smooth_cube())


def test_save_errors(tmp_path):
    with pytest.raises(ValueError, match=".npy, .npz or .mat"):
        save_cube(smooth_cube(), tmp_path / "c.tif")
    with pytest.raises(ValueError, match="5 values but the data has 12 bands"):
        save_cube(smooth_cube(), tmp_path / "c.npz", wavenumbers=np.arange(5.0))
    with pytest.raises(ValueError, match="does not exist"):
        save_cube(smooth_cube(), tmp_path / "missing" / "c.npy")
    with pytest.raises(ValueError, match="3-D"):
        save_cube(np.ones((4, 4)), tmp_path / "c.npy")


# --- corrections ---------------------------------------------------------------------------


def test_relayout_orders_and_folds_without_touching_input():
    cube = smooth_cube()
    stored = cube.transpose(1, 2, 0).copy()
    before = stored.copy()
    np.testing.assert_array_equal(relayout(stored, order="yxb"), cube)
    np.testing.assert_array_equal(relayout(cube.transpose(0, 2, 1), order="bxy"), cube)
    np.testing.assert_array_equal(stored, before)
    strip = numpy_pixels(cube).T.reshape(B, 1, NY * NX)
    np.testing.assert_array_equal(relayout(strip, shape=(NY, NX)), cube)
    with pytest.raises(ValueError, match="Y \\* X = 54"):
        relayout(strip, shape=(7, 7))
    with pytest.raises(ValueError, match="layout 'bb'"):
        relayout(cube, order="bb")


def test_replace_nonfinite_and_count():
    cube = smooth_cube()
    cube[0, 0, :3] = [np.nan, np.inf, -np.inf]
    assert count_nonfinite(cube) == (1, 2)
    fixed = replace_nonfinite(cube)
    assert np.isfinite(fixed).all() and fixed[0, 0, 0] == 0 and np.isnan(cube[0, 0, 0])
