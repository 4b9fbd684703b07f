"""Instrument files (Renishaw .wdf, Horiba LabSpec 6 .xml, Trivista .tvf) read through RosettaSciIO.

The files are RosettaSciIO's own test data (GPL-3.0), kept beside the checkout in
``shared/data/vendor/`` and never copied into the repository; tests that need them skip, with
the reason, when the folder or RosettaSciIO is absent. Values are compared with what
RosettaSciIO's ``file_reader`` returns for the same file.
"""

from __future__ import annotations

import importlib.util
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper.io._vendor import claims

VENDOR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vendor"
HAVE_RSCIIO = importlib.util.find_spec("rsciio") is not None

#: file -> (cube shape, spectral unit as read by default, format, pixel size, origin, white light)
FILES = {
    "renishaw_test_map2.wdf": ((1015, 20, 20), "nm", "renishaw:map", (1.0, 1.0), (-105970.296875, 4950.7998046875), True),
    "renishaw_test_map.wdf": ((47, 3, 3), "1/cm", "renishaw:map", (100.0, 100.0), (-100.0, -100.0), True),
    "renishaw_test_linescan.wdf": ((40, 1, 5), "1/cm", "renishaw:line", (30.0, 30.0), (-50.0, -50.0), True),
    "renishaw_test_spectrum.wdf": ((36, 1, 1), "1/cm", "renishaw:spectrum", (1.0, 1.0), (0.0, 0.0), False),
    "renishaw_test_zscan.wdf": ((1015, 40, 1), "1/cm", "renishaw:z-series", (0.5, 0.5), (-10.0, 0.0), False),
    "renishaw_test_timeseries.wdf": ((1007, 3, 1), "1/cm", "renishaw:time-series", (3.0665045, 3.0665045), (0.0, 0.0), False),
    "interrupted_acquisition.wdf": ((1010, 4, 4), "1/cm", "renishaw:map", (10.0, 10.0), (3334.234375, 9250.0732421875), True),
    "jobinyvon_test_map_x3-y2.xml": ((34, 2, 3), "nm", "jobinyvon:map", (2.0, 2.0), (-1.0, -2.0), False),
    "jobinyvon_test_linescan.xml": ((34, 3, 1), "nm", "jobinyvon:line", (0.5, 0.5), (0.0, 0.2), False),
    "trivista_test_map.tvf": ((1024, 9, 9), "nm", "trivista:map", (0.025, 0.025), (-0.1, -0.1), False),
}


def rsciio_read(path: Path) -> list[dict]:
    """What RosettaSciIO's own reader returns for ``path``."""
    module = {".wdf": "renishaw", ".xml": "jobinyvon", ".tvf": "trivista"}[path.suffix]
    return importlib.import_module(f"rsciio.{module}").file_reader(str(path))


def as_rsciio_layout(data: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Our ``(B, Y, X)`` cube in RosettaSciIO's axis order (positions first, bands last)."""
    bands, rows, cols = data.shape
    if reference.ndim == 1:
        return data[:, 0, 0]
    if reference.ndim == 3:
        return data.transpose(1, 2, 0)[: reference.shape[0], : reference.shape[1]]
    line = data[:, 0, :] if rows == 1 else data[:, :, 0]
    return line.T[: reference.shape[0]]


def reference_axis(signal: dict) -> np.ndarray:
    (axis,) = [a for a in signal["axes"] if not a.get("navigate", False)]
    return np.asarray(axis["axis"], dtype=np.float64)


@pytest.fixture
def vendor() -> Path:
    """The vendor folder; the test skips, saying why, when it or RosettaSciIO is absent."""
    if not VENDOR.is_dir():
        pytest.skip(f"vendor test files not found at {VENDOR} (RosettaSciIO's GPL-3.0 test data, kept outside the repository)")
    if not HAVE_RSCIIO:
        pytest.skip('RosettaSciIO is not installed: pip install "napari-deeper[formats]"')
    return VENDOR


@pytest.mark.parametrize("name", list(FILES))
def test_values_equal_rosettasciio(vendor, name):
    path = vendor / name
    shape, unit, format_name, pixel_size, origin, white = FILES[name]
    cube = nd.load_cube(path, nonfinite="keep", raman_shift=False)
    signals = rsciio_read(path)
    reference = np.asarray(signals[0]["data"])
    assert cube.data.shape == shape and cube.data.dtype == np.float32
    np.testing.assert_array_equal(as_rsciio_layout(cube.data, reference), reference.astype(np.float32))
    np.testing.assert_array_equal(cube.wavenumbers, reference_axis(signals[0]))
    metadata = cube.metadata
    assert metadata["format"] == format_name
    assert metadata["pixel_size"] == pytest.approx(pixel_size) and metadata["origin"] == pytest.approx(origin)
    assert ("white_light" in metadata) == white
    default = nd.load_cube(path, nonfinite="keep")
    assert default.metadata["spectral_unit"] == unit
    np.testing.assert_array_equal(default.data, cube.data)


def test_wavelengths_become_raman_shift_with_the_laser_line(vendor):
    path = vendor / "renishaw_test_map.wdf"
    signal = rsciio_read(path)[0]
    wavelengths = reference_axis(signal)
    laser = signal["metadata"]["Acquisition_instrument"]["Laser"]["wavelength"]
    cube = nd.load_cube(path)
    assert cube.metadata["spectral_unit"] == "1/cm"
    np.testing.assert_allclose(cube.wavenumbers, 1e7 / laser - 1e7 / wavelengths, rtol=0, atol=1e-9)
    assert cube.wavenumbers[0] == pytest.approx(1931.9, abs=0.1)
    np.testing.assert_array_equal(cube.metadata["original_axis"]["values"], wavelengths)
    assert cube.metadata["original_axis"]["unit"] == "nm"
    assert "converted to Raman shift" in cube.metadata["choices"]
    kept = nd.load_cube(path, raman_shift=False)
    assert kept.metadata["spectral_unit"] == "nm" and "original_axis" not in kept.metadata


def test_photoluminescence_keeps_nm_unless_asked(vendor):
    map2 = nd.load_cube(vendor / "renishaw_test_map2.wdf")  # 110-6524 1/cm: not a Raman range
    assert map2.metadata["spectral_unit"] == "nm" and "outside the Raman range" in map2.metadata["choices"]
    forced = nd.load_cube(vendor / "renishaw_test_map2.wdf", raman_shift=True)
    assert forced.metadata["spectral_unit"] == "1/cm" and forced.wavenumbers[-1] == pytest.approx(6524, abs=1)
    horiba = nd.load_cube(vendor / "jobinyvon_test_map_x3-y2.xml")  # its remark says "PL"
    assert horiba.metadata["spectral_unit"] == "nm" and "photoluminescence (PL)" in horiba.metadata["choices"]
    with pytest.raises(ValueError, match="does not state the laser line"):
        nd.load_cube(vendor / "trivista_test_map.tvf", raman_shift=True)
    with pytest.raises(ValueError, match="raman_shift must be"):
        nd.load_cube(vendor / "trivista_test_map.tvf", raman_shift="yes")


def test_interrupted_map_keeps_measured_pixels_and_marks_the_rest(vendor):
    path = vendor / "interrupted_acquisition.wdf"
    with pytest.raises(ValueError, match="4040 NaN"):
        nd.load_cube(path)  # NaN are refused by default, as for every file
    cube = nd.load_cube(path, nonfinite="keep")
    reference = np.asarray(rsciio_read(path)[0]["data"])  # the 3 complete rows
    assert reference.shape == (3, 4, 1010)
    np.testing.assert_array_equal(cube.data[:, :3].transpose(1, 2, 0), reference)
    assert np.isnan(cube.data[:, 3]).all() and not np.isnan(cube.data[:, :3]).any()
    assert any("stopped early: 12 of 16 spectra" in note for note in cube.metadata["notes"])
    assert cube.metadata["acquisition"]["scan_type"] == "StreamLineHR"
    assert "stopped early (12 of 16 spectra)" in cube.metadata["about"]


def test_unfinished_line_is_kept_too(vendor, tmp_path):
    """A map stopped in the middle of a line: RosettaSciIO keeps whole lines, we keep every spectrum."""
    original = vendor / "interrupted_acquisition.wdf"
    copy = tmp_path / "stopped_mid_line.wdf"
    raw = bytearray(original.read_bytes())
    assert struct.unpack_from("<Q", raw, 16 + 56)[0] == 12  # spectra written
    struct.pack_into("<Q", raw, 16 + 56, 10)  # as if the acquisition had stopped after 10
    copy.write_bytes(bytes(raw))
    full = np.asarray(rsciio_read(original)[0]["data"])
    assert np.asarray(rsciio_read(copy)[0]["data"]).shape == (2, 4, 1010)
    cube = nd.load_cube(copy, nonfinite="keep")
    measured = ~np.isnan(cube.data[0])
    assert measured.sum() == 10 and measured[2, :2].all() and not measured[2, 2:].any()
    np.testing.assert_array_equal(cube.data[:, 2, :2].T, full[2, :2])
    np.testing.assert_array_equal(cube.data[:, :2].transpose(1, 2, 0), full[:2])


def edited_map(original: Path, copy: Path, edit_spectra, edit_x) -> Path:
    """A copy of a .wdf map whose spectra (9, 47) and x positions (9,) were changed in place."""
    from napari_deeper.io._vendor import _wdf_structure

    raw = bytearray(original.read_bytes())
    info = _wdf_structure(original)
    points, count = info["points"], info["measured"]
    start = info["blocks"]["DATA_0"][0]
    spectra = np.frombuffer(bytes(raw[start : start + 4 * points * count]), dtype="<f4").reshape(count, points).copy()
    raw[start : start + spectra.nbytes] = edit_spectra(spectra).tobytes()
    orgn = info["blocks"]["ORGN_0"][0]
    for index in range(struct.unpack_from("<I", raw, orgn)[0]):
        entry = orgn + 4 + index * (24 + 8 * count)
        if struct.unpack_from("<I", raw, entry)[0] & 0x7FFFFFFF == 3:  # the x positions
            x = np.frombuffer(bytes(raw[entry + 24 : entry + 24 + 8 * count]), dtype="<f8").copy()
            raw[entry + 24 : entry + 24 + 8 * count] = edit_x(x).tobytes()
    struct.pack_into("<I", raw, info["blocks"]["WMAP_0"][0], 4)  # WiRE's "alternating" map flag
    copy.write_bytes(bytes(raw))
    return copy


def reversed_middle_row(values):
    values[3:6] = values[3:6][::-1]
    return values


def test_snake_ordered_map_is_placed_by_stage_positions(vendor, tmp_path):
    """A map acquired in a snake: the middle row's spectra stored right to left, as their positions say."""
    original = vendor / "renishaw_test_map.wdf"  # 3 x 3 spectra of 47 points
    copy = edited_map(original, tmp_path / "snake.wdf", reversed_middle_row, reversed_middle_row)
    snake = nd.load_cube(copy)
    np.testing.assert_array_equal(snake.data, nd.load_cube(original).data)
    assert any("placed by their stage positions" in note for note in snake.metadata["notes"])
    # RosettaSciIO reshapes in file order: its middle row comes out mirrored.
    mirrored = np.asarray(rsciio_read(copy)[0]["data"])
    np.testing.assert_array_equal(mirrored[1, ::-1], snake.data[:, 1].T)


def test_positions_off_the_grid_fall_back_to_file_order(vendor, tmp_path):
    original = vendor / "renishaw_test_map.wdf"
    copy = edited_map(original, tmp_path / "odd.wdf", lambda spectra: spectra, lambda x: x + 37.0)
    cube = nd.load_cube(copy)
    assert any("do not fit the map grid: placed in file order" in note for note in cube.metadata["notes"])
    np.testing.assert_array_equal(cube.data.transpose(1, 2, 0), np.asarray(rsciio_read(copy)[0]["data"]))


def test_white_light_image_and_its_position(vendor):
    path = vendor / "renishaw_test_map2.wdf"
    image = rsciio_read(path)[1]
    cube = nd.load_cube(path)
    white = cube.metadata["white_light"]
    rgb = np.asarray(image["data"])
    assert white["data"].shape == (480, 752, 3) and white["data"].dtype == np.uint8
    for channel, name in enumerate("RGB"):
        np.testing.assert_array_equal(white["data"][..., channel], rgb[name])
    axes = {a["name"]: a for a in image["axes"]}
    assert white["pixel_size"] == pytest.approx([float(axes["y"]["scale"]), float(axes["x"]["scale"])])
    assert white["origin"] == pytest.approx([axes["y"]["offset"], axes["x"]["offset"]])
    # The 20 x 20 µm map lies inside the 384 x 606 µm field of the white-light image.
    (y0, x0), (dy, dx) = cube.metadata["origin"], cube.metadata["pixel_size"]
    height, width = np.array(white["data"].shape[:2]) * white["pixel_size"]
    assert white["origin"][0] <= y0 and y0 + 20 * dy <= white["origin"][0] + height
    assert white["origin"][1] <= x0 and x0 + 20 * dx <= white["origin"][1] + width


def test_slanted_line_scan_lies_along_its_stage_positions(vendor):
    cube = nd.load_cube(vendor / "renishaw_test_linescan.wdf")
    rotation = np.array(cube.metadata["rotation"])
    step = cube.metadata["pixel_size"][1]
    origin = np.array(cube.metadata["origin"])
    world = origin + (rotation @ np.array([[0.0] * 5, step * np.arange(5)])).T  # (y, x) of each pixel
    stage = -50 + 21.213203 * np.arange(5)  # the X and Y positions WiRE stored (ORGN block)
    np.testing.assert_allclose(world, np.stack([stage, stage], axis=1), atol=1e-4)


def test_series_axes(vendor):
    zscan = nd.load_cube(vendor / "renishaw_test_zscan.wdf")
    assert zscan.metadata["space_axes"] == ["z", "x"] and zscan.metadata["space_units"] == ["µm", "µm"]
    series = nd.load_cube(vendor / "renishaw_test_timeseries.wdf")
    # WiRE stores the times as Windows FILETIME ticks of 100 ns (RosettaSciIO labels them ns).
    times = series.metadata["series"]["values"]
    assert series.metadata["space_units"] == ["s", "s"] and times[0] == 0
    assert times[1] == pytest.approx(3.0884593) and times[2] == pytest.approx(6.133009)


def test_acquisition_metadata(vendor):
    renishaw = nd.load_cube(vendor / "renishaw_test_map2.wdf").metadata["acquisition"]
    assert renishaw["laser_wavelength_nm"] == pytest.approx(325.0003)
    assert renishaw["accumulations"] == 2 and renishaw["exposure_s"] == 2.0
    assert renishaw["date"] == "2022-02-04 16:16:43" and renishaw["measurement"] == "Mapping"
    horiba = nd.load_cube(vendor / "jobinyvon_test_linescan.xml")
    acquisition = horiba.metadata["acquisition"]
    assert acquisition["objective"] == "100x" and acquisition["accumulations"] == 2
    assert acquisition["exposure_s"] == 1.0 and acquisition["laser_wavelength_nm"] == 632.817
    assert horiba.metadata["about"].startswith("Horiba LabSpec 6 .xml line: 3 spectra, 0.5 µm apart, 34 bands")


def test_rosettasciio_log_is_kept_not_printed(vendor, capfd):
    cube = nd.load_cube(vendor / "interrupted_acquisition.wdf", nonfinite="keep")
    assert any("Unfinished measurement" in text for text in cube.metadata["reader_warnings"])
    assert "RosettaSciIO" not in capfd.readouterr().err


@pytest.mark.parametrize("name", ["renishaw_test_map2.wdf", "jobinyvon_test_map_x3-y2.xml", "trivista_test_map.tvf"])
def test_truncated_files_are_refused_by_name(vendor, tmp_path, name):
    raw = (vendor / name).read_bytes()
    for length in (len(raw) // 2, len(raw) - 5):
        copy = tmp_path / f"cut_{length}{Path(name).suffix}"
        copy.write_bytes(raw[:length])
        with pytest.raises(ValueError, match=rf"{copy.name} is truncated"):
            nd.load_cube(copy)


def test_foreign_files_are_refused(tmp_path):
    wdf = tmp_path / "photo.wdf"
    wdf.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValueError, match="photo.wdf is not a Renishaw WiRE file"):
        nd.load_cube(wdf)
    xml = tmp_path / "settings.xml"
    xml.write_text('<?xml version="1.0"?>\n<config><item>1</item></config>\n')
    assert not claims(xml)
    with pytest.raises(ValueError, match="settings.xml is not a Horiba LabSpec 6 .xml file"):
        nd.load_cube(xml)
    tvf = tmp_path / "other.tvf"
    tvf.write_text("<root/>")
    with pytest.raises(ValueError, match="other.tvf is not a Trivista .tvf file"):
        nd.load_cube(tvf)


def test_a_large_foreign_file_is_refused_from_its_first_bytes(tmp_path):
    """A 4 GiB (sparse) file is judged from its block table, not read."""
    big = tmp_path / "huge.wdf"
    with open(big, "wb") as handle:
        handle.write(b"WDF1" + struct.pack("<IQ", 1, 512))
        handle.truncate(4 << 30)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="huge.wdf is damaged: an unnamed block at byte 512 claims 0 bytes"):
        nd.load_cube(big)
    assert time.perf_counter() - start < 0.5


def minimal_wdf(path: Path, points: int = 3) -> Path:
    """The smallest file with a WiRE block table: header, one spectrum, its axis."""
    header = bytearray(512)
    header[:16] = b"WDF1" + struct.pack("<IQ", 1, 512)
    struct.pack_into("<IQQ", header, 16 + 44, points, 1, 1)
    data = b"DATA" + struct.pack("<IQ", 0, 16 + 4 * points) + np.arange(points, dtype="<f4").tobytes()
    axis = b"XLST" + struct.pack("<IQ", 0, 24 + 4 * points) + struct.pack("<II", 1, 1)
    axis += np.linspace(500, 600, points, dtype="<f4").tobytes()
    path.write_bytes(bytes(header) + data + axis)
    return path


def test_without_rosettasciio_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rsciio", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "rsciio.renishaw", None)
    path = minimal_wdf(tmp_path / "scan.wdf")
    assert claims(path)
    with pytest.raises(ValueError, match=r'scan.wdf is a Renishaw WiRE .wdf file.*pip install "napari-deeper\[formats\]"'):
        nd.load_cube(path)


def test_claims_reads_only_the_first_bytes(tmp_path):
    assert not claims(tmp_path / "missing.xml")
    assert claims(minimal_wdf(tmp_path / "a.wdf"))
    labspec = tmp_path / "export.xml"
    labspec.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<LSX_Data>\n')
    assert claims(labspec)


def test_vendor_files_refuse_shape_and_layout(vendor):
    with pytest.raises(ValueError, match="renishaw_test_map.wdf: shape= and layout= apply to .mat"):
        nd.load_cube(vendor / "renishaw_test_map.wdf", shape=(9, 1))


def test_rosettasciio_is_imported_only_to_read_an_instrument_file():
    code = "import sys, napari_deeper as nd, napari_deeper.io, napari_deeper._reader; print('rsciio' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.gui
@pytest.mark.parametrize("name", list(FILES))
def test_open_in_napari(vendor, name, notifications, make_napari_viewer):
    """Each file opens by napari's own open path: its axis, its size and place in µm, its white light."""
    path = vendor / name
    shape, unit, _, pixel_size, origin, white = FILES[name]
    cube = nd.load_cube(path, nonfinite="keep")
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-deeper")
    assert notifications["error"] == []
    assert [layer.name for layer in layers] == ([f"{path.stem} white light"] if white else []) + [path.stem]
    layer = layers[-1]
    np.testing.assert_array_equal(layer.data, cube.data)
    np.testing.assert_array_equal(layer.metadata["wavenumbers"], cube.wavenumbers)
    assert layer.axis_labels[0] == ("wavelength" if unit == "nm" else "wavenumber")
    assert str(layer.units[0]) == ("nanometer" if unit == "nm" else "1 / centimeter")
    assert tuple(layer.scale[1:]) == pytest.approx(pixel_size)
    assert tuple(layer.translate[1:]) == pytest.approx(origin)
    spatial = cube.metadata["space_units"][0]
    assert str(layer.units[1]) == {"µm": "micrometer", "s": "second", "pixel": "pixel"}[spatial]
    assert layer.metadata["acquisition"] == cube.metadata["acquisition"]
    assert f"About {path.name}: {cube.metadata['about']}" in notifications["info"]
    if white:
        image = layers[0]
        assert image.rgb and viewer.layers.index(image) < viewer.layers.index(layer)  # beneath the map
        # Every pixel of the map lies on the white-light image, in world coordinates (µm).
        corners = [layer.data_to_world((0, r, c)) for r in (0, layer.data.shape[1] - 1) for c in (0, layer.data.shape[2] - 1)]
        for corner in corners:
            row, col = image.world_to_data(corner[1:])
            assert 0 <= row <= image.data.shape[0] and 0 <= col <= image.data.shape[1]


@pytest.mark.gui
def test_slanted_line_scan_in_napari(vendor, make_napari_viewer):
    viewer = make_napari_viewer()
    _, line = viewer.open(str(vendor / "renishaw_test_linescan.wdf"), plugin="napari-deeper")
    stage = -50 + 21.213203 * np.arange(5)
    world = np.array([line.data_to_world((0, 0, j))[1:] for j in range(5)])
    np.testing.assert_allclose(world, np.stack([stage, stage], axis=1), atol=1e-4)


@pytest.mark.gui
def test_truncated_file_in_napari_opens_nothing(vendor, tmp_path, notifications, make_napari_viewer):
    raw = (vendor / "renishaw_test_map2.wdf").read_bytes()
    cut = tmp_path / "cut.wdf"
    cut.write_bytes(raw[: len(raw) // 2])
    viewer = make_napari_viewer()
    viewer.open(str(cut), plugin="napari-deeper")
    assert len(viewer.layers) == 0
    assert len(notifications["error"]) == 1 and "cut.wdf is truncated" in notifications["error"][0]
