"""Text exports of maps (long and wide tables): written from a simulated cube, read back, compared."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper._reader import get_reader
from napari_deeper.io._text import claims, sniff


@pytest.fixture(scope="module")
def cell():
    """A 6 x 5 simulated cell of 40 bands, and its stage positions (µm)."""
    sim = nd.simulate.simulate_cell(shape=(6, 5), n_bands=40, seed=0)
    ys, xs = np.meshgrid(-10 + 0.5 * np.arange(6), 100 + 0.5 * np.arange(5), indexing="ij")
    return sim.noisy, sim.wavenumbers, ys, xs


def number(value) -> str:
    return repr(float(value))  # shortest text that reads back as the same float64


def write_long(path, cube, axis, ys, xs, sep="\t", header="#X\t#Y\t#Wave\t#Intensity", order=None, descending=True):
    """One ``x y wavenumber intensity`` line per value, as WiRE writes a map."""
    bands, rows, cols = cube.shape
    y, x, b = np.meshgrid(np.arange(rows), np.arange(cols), np.arange(bands)[::-1] if descending else np.arange(bands), indexing="ij")
    y, x, b = y.ravel(), x.ravel(), b.ravel()
    if order is not None:
        y, x, b = y[order(y.size)], x[order(y.size)], b[order(y.size)]
    lines = [header] if header else []
    lines += [sep.join(number(v) for v in (xs[i, j], ys[i, j], axis[k], cube[k, i, j])) for i, j, k in zip(y, x, b)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_wide(path, cube, axis, ys, xs, sep=",", names=("x", "y"), rows=None):
    """A header row of wavenumbers led by position columns, then one spectrum per row."""
    bands, ny, nx = cube.shape
    lines = [sep.join([*names, *(number(w) for w in axis)])]
    order = range(ny * nx) if rows is None else rows
    for p in order:
        i, j = divmod(int(p), nx)
        positions = {"x": xs[i, j], "y": ys[i, j]}
        lines.append(sep.join([*(number(positions[n[0]]) for n in names), *(number(v) for v in cube[:, i, j])]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_long_table_as_wire_writes_it(cell, tmp_path):
    cube, axis, ys, xs = cell
    path = write_long(tmp_path / "map.txt", cube, axis, ys, xs)
    assert sniff(path).kind == "long" and get_reader(str(path)) is not None
    read = nd.load_cube(path)
    np.testing.assert_array_equal(read.data, cube)
    np.testing.assert_array_equal(read.wavenumbers, axis)
    assert read.metadata["format"] == "text:long"
    assert read.metadata["pixel_size"] == [0.5, 0.5] and read.metadata["origin"] == [-10.0, 100.0]
    assert "assumed 1/cm" in read.metadata["choices"] and "assumed µm" in read.metadata["choices"]
    assert any("high to low" in note for note in read.metadata["notes"])


def test_long_table_in_any_order_without_header(cell, tmp_path):
    cube, axis, ys, xs = cell
    shuffle = lambda n: np.random.default_rng(1).permutation(n)  # noqa: E731 - same order for every column
    path = write_long(tmp_path / "map.csv", cube, axis, ys, xs, sep=",", header=None, order=shuffle, descending=False)
    np.testing.assert_array_equal(nd.load_cube(path).data, cube)


def test_long_table_with_missing_lines_and_stage_jitter(cell, tmp_path):
    cube, axis, ys, xs = cell
    jitter = np.random.default_rng(2).normal(0, 1e-3, ys.shape)  # 1 nm of stage noise on 0.5 µm steps
    path = write_long(tmp_path / "map.txt", cube, axis, ys + jitter, xs - jitter)
    lines = path.read_text().splitlines()
    whole = tmp_path / "without_first_spectrum.txt"
    whole.write_text("\n".join(lines[:1] + lines[41:]) + "\n")  # pixel (0, 0): all its 40 lines gone
    read = nd.load_cube(whole, nonfinite="keep")
    assert read.data.shape == cube.shape
    assert np.isnan(read.data[:, 0, 0]).all()
    np.testing.assert_array_equal(read.data[:, 1:], cube[:, 1:])
    assert read.metadata["pixel_size"] == pytest.approx([0.5, 0.5], abs=1e-3)
    assert any("1 of 30 grid positions have no spectrum" in note for note in read.metadata["notes"])
    partial = tmp_path / "one_line_missing.txt"
    partial.write_text("\n".join(lines[:1] + lines[2:]) + "\n")  # the first line of pixel (0, 0) gone
    read = nd.load_cube(partial, nonfinite="keep")
    assert np.isnan(read.data[-1, 0, 0]) and np.isnan(read.data).sum() == 1  # the highest band, listed first
    assert any("1 of 1200 values are missing" in note for note in read.metadata["notes"])
    np.testing.assert_array_equal(np.nan_to_num(read.data, nan=cube[-1, 0, 0]), cube)


@pytest.mark.parametrize("sep", [",", "\t", " ", ";"])
def test_wide_table_rows_in_any_order(cell, tmp_path, sep):
    cube, axis, ys, xs = cell
    rows = np.random.default_rng(3).permutation(30)
    path = write_wide(tmp_path / "map.csv", cube, axis, ys, xs, sep=sep, rows=rows)
    assert sniff(path).kind == "wide" and get_reader(str(path)) is not None
    read = nd.load_cube(path)
    np.testing.assert_array_equal(read.data, cube)
    np.testing.assert_array_equal(read.wavenumbers, axis)
    assert read.metadata["pixel_size"] == [0.5, 0.5] and read.metadata["origin"] == [-10.0, 100.0]


def test_wide_table_with_y_before_x_and_units(cell, tmp_path):
    cube, axis, ys, xs = cell
    path = write_wide(tmp_path / "map.csv", cube, axis, ys, xs, names=("y (um)", "x (um)"))
    read = nd.load_cube(path)
    np.testing.assert_array_equal(read.data, cube)
    assert read.metadata["space_units"] == ["µm", "µm"] and "positions' unit" not in read.metadata["choices"]


def test_wide_table_without_positions_is_folded(cell, tmp_path):
    cube, axis, _, _ = cell
    flat = cube.reshape(40, -1).T  # 30 spectra, row by row
    lines = [",".join(number(w) for w in axis)] + [",".join(number(v) for v in row) for row in flat]
    path = tmp_path / "spectra.csv"
    path.write_text("\n".join(lines) + "\n")
    strip = nd.load_cube(path)
    assert strip.data.shape == (40, 1, 30) and "strip" in strip.metadata["choices"]
    np.testing.assert_array_equal(nd.load_cube(path, shape=(6, 5)).data, cube)


def test_single_spectrum(tmp_path):
    axis = np.linspace(400, 1800, 25)
    values = np.sin(axis / 100).astype(np.float32)
    path = tmp_path / "spectrum.txt"
    path.write_text("#Wave\t#Intensity\n" + "".join(f"{number(w)}\t{number(v)}\n" for w, v in zip(axis[::-1], values[::-1])))
    read = nd.load_cube(path)
    assert read.data.shape == (25, 1, 1) and read.metadata["format"] == "text:spectrum"
    np.testing.assert_array_equal(read.data[:, 0, 0], values)
    np.testing.assert_array_equal(read.wavenumbers, axis)


def test_depth_series_is_one_column(tmp_path):
    z = -2 + 0.25 * np.arange(7)
    axis = np.linspace(1000, 1100, 5)
    values = np.arange(35, dtype=np.float32).reshape(7, 5)
    text = "#Z\t#Wave\t#Intensity\n" + "".join(
        f"{number(z[i])}\t{number(axis[k])}\t{number(values[i, k])}\n" for i in range(7) for k in range(5)
    )
    path = tmp_path / "depth.txt"
    path.write_text(text)
    read = nd.load_cube(path)
    assert read.data.shape == (5, 7, 1)
    np.testing.assert_array_equal(read.data[:, :, 0], values.T)
    assert read.metadata["space_axes"] == ["z", "x"] and read.metadata["origin"] == [-2.0, 0.0]


def test_slanted_line_in_a_long_table(tmp_path):
    steps = np.arange(6)
    x, y = 3 + 0.6 * steps, 1 + 0.8 * steps  # 1 µm per step at 53.1° to the x axis
    axis = np.linspace(500, 600, 4)
    values = np.arange(24, dtype=np.float32).reshape(6, 4)
    text = "#X\t#Y\t#Wave\t#Intensity\n" + "".join(
        f"{number(x[i])}\t{number(y[i])}\t{number(axis[k])}\t{number(values[i, k])}\n" for i in range(6) for k in range(4)
    )
    path = tmp_path / "line.txt"
    path.write_text(text)
    read = nd.load_cube(path)
    assert read.data.shape == (4, 1, 6)
    np.testing.assert_array_equal(read.data[:, 0, :], values.T)
    rotation = np.array(read.metadata["rotation"])
    step = read.metadata["pixel_size"][1]
    world = np.array(read.metadata["origin"]) + (rotation @ np.array([np.zeros(6), step * steps])).T
    np.testing.assert_allclose(world, np.stack([y, x], axis=1), atol=1e-9)


def test_truncated_and_inconsistent_tables_are_refused(cell, tmp_path):
    cube, axis, ys, xs = cell
    path = write_wide(tmp_path / "map.csv", cube, axis, ys, xs)
    text = path.read_text()
    cut = tmp_path / "cut.csv"
    cut.write_text(text[: len(text) - 40])  # the last row loses its last values
    with pytest.raises(ValueError, match="cut.csv is not a complete wide table"):
        nd.load_cube(cut)
    twice = tmp_path / "twice.csv"
    twice.write_text(text + text.splitlines()[1] + "\n")
    with pytest.raises(ValueError, match="twice.csv: two or more spectra have the same position"):
        nd.load_cube(twice)
    long = write_long(tmp_path / "long.txt", cube, axis, ys, xs)
    lines = long.read_text().splitlines()
    long.write_text("\n".join(lines + lines[1:3]) + "\n")
    with pytest.raises(ValueError, match=r"long.txt: some \(position, wavenumber\) pairs appear on more than one line"):
        nd.load_cube(long)


def test_decimal_commas_are_named(tmp_path):
    path = tmp_path / "de.csv"
    path.write_text("x;y;Wave;Intensity\n1;2;500;10\n1;2;501,5;11,25\n")
    with pytest.raises(ValueError, match="decimal comma"):
        nd.load_cube(path)


def test_tables_that_are_not_ours_are_declined(tmp_path):
    """get_reader judges .txt/.csv files from their first bytes and leaves others to napari."""
    points = tmp_path / "points.csv"
    points.write_text("index,axis-0,axis-1\n0,10.5,3.25\n1,11.0,4.0\n")
    endmembers = tmp_path / "endmembers.csv"
    endmembers.write_text("wavenumber,lipids,nucleic acids,proteins\n501.27,0.01,0.04,0.02\n502.1,0.02,0.05,0.03\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("Sample prepared on 3 May.\nLaser 532 nm.\n")
    sums = tmp_path / "md5sums.txt"
    sums.write_text("d41d8cd98f00b204e9800998ecf8427e  a.wdf\n")
    binary = tmp_path / "huge.csv"
    with open(binary, "wb") as handle:
        handle.truncate(4 << 30)  # 4 GiB of NUL bytes (sparse): binary, judged from the first 64 KiB
    for path in (points, endmembers, notes, sums, binary):
        assert not claims(path), path.name
        assert get_reader(str(path)) is None, path.name
    with pytest.raises(ValueError, match="notes.txt is not a text table napari-deeper reads"):
        nd.load_cube(notes)


def test_long_header_line_is_read_past_the_first_64_kib(tmp_path):
    axis = 100 + 0.001 * np.arange(8000)  # a header row of ~90 KB
    spectra = np.arange(2 * 8000, dtype=np.float32).reshape(2, 8000)
    lines = ["x,y," + ",".join(number(w) for w in axis)]
    lines += [f"{x},0.0," + ",".join(number(v) for v in row) for x, row in zip((0.0, 1.0), spectra)]
    path = tmp_path / "wide.csv"
    path.write_text("\n".join(lines) + "\n")
    assert sniff(path).kind == "wide"
    read = nd.load_cube(path)
    assert read.data.shape == (8000, 1, 2)
    np.testing.assert_array_equal(read.data[:, 0, :], spectra.T)
