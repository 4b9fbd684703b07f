"""Text exports of maps: long tables (one value per line) and wide tables (one spectrum per row).

Layouts recognised, from the first lines of the file (a header row is optional where noted):

- **long**: ``x y wavenumber intensity`` per line, as Renishaw WiRE and WITec export maps (WiRE
  writes a ``#X  #Y  #Wave  #Intensity`` header); ``position wavenumber intensity`` for a line or
  depth series (header needed: ``#Z  #Wave  #Intensity``); ``wavenumber intensity`` for a single
  spectrum. The lines may come in any order; a missing (position, wavenumber) pair is NaN.
- **wide**: a header row whose cells are the wavenumbers, led by up to two position columns
  (``x``, ``y``), then one spectrum per row: ``x, y, I(w1), I(w2), ...``. A header row of five or
  more wavenumbers alone (increasing or decreasing) means spectra without positions: they are
  folded like a pixel list, row by row (square, else a strip; ``shape=`` decides).

Separators: tabs, commas, semicolons or runs of spaces; lines starting with ``#`` before the data
are comments (the last one before the data, or a plain text line there, is the header). The
image grid is rebuilt from the x, y positions (jitter of the stage readings merged), so rows may
be listed in any order; the pixel size comes from the positions. Numbers are parsed by
``np.loadtxt`` in one pass; the layout is decided from the first 64 KiB without reading the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._cube import MAX_ELEMENTS, Cube, check_array_header, describe, image_shape, parse_unit, placement, unplaced

TEXT_EXTENSIONS = (".txt", ".csv", ".tsv")

_PEEK = 1 << 16
_MAX_PEEK = 8 << 20  # a wide table's header row of many wavenumbers may be long
_SPECTRAL_NAME = re.compile(r"wave|shift|raman|cm|nm|lambda|energy|freq", re.IGNORECASE)
_NAME_UNIT = re.compile(r"(µm|μm|um\b|micron|mm\b|nm\b|\bs\b|sec)", re.IGNORECASE)
UNIT_NOTE = "the file does not state the spectral unit: assumed 1/cm"
_BYTES_PER_VALUE = 8  # the fewest a number and its separator take in an export ("12.5678\t")


@dataclass
class TextLayout:
    """How a text table is laid out: what :func:`sniff` found in its first lines."""

    kind: str  # "long", "wide" or "spectrum"
    delimiter: str | None  # None: runs of whitespace
    skiprows: int  # lines before the first data line
    names: list[str]  # header cells ([] when there is no header)
    n_columns: int
    n_positions: int  # position columns (x, y, z...) before the spectral values


def claims(path) -> bool:
    """Whether ``path`` is a text table this module reads, from its first bytes only."""
    try:
        return sniff(path) is not None
    except (OSError, ValueError):
        return False


def sniff(path) -> TextLayout | None:
    """The layout of a text table, or None when its first lines are not one we read."""
    lines = _first_lines(Path(path))
    if lines is None:
        return None
    header = None
    for index, line in enumerate(lines):
        text = line.strip()
        if not text:
            continue
        delimiter = _delimiter(text)
        cells = _cells(text, delimiter)
        if len(cells) >= 2 and all(_is_number(c) for c in cells):
            following = [ln.strip() for ln in lines[index + 1:] if ln.strip()]
            if following and len(_cells(following[0], delimiter)) != len(cells):
                return None
            if header is None and following and len(cells) >= 5 and _monotonic(cells):
                # a header row of wavenumbers alone: spectra without positions
                return TextLayout("wide", delimiter, index + 1, cells, len(cells), 0)
            return _classify(cells, header, delimiter, index)
        header = (text, index)
    return None


def read_text(path, shape=None, layout=None) -> Cube:
    """Read a long or wide text table into a :class:`Cube` (see the module doc)."""
    path = Path(path)
    if layout is not None:
        raise ValueError(f"{path.name}: layout= applies to .mat/.npy/.npz arrays; a text table's columns say what they hold")
    found = sniff(path)
    if found is None:
        raise ValueError(
            f"{path.name} is not a text table napari-deeper reads: expected 'x y wavenumber intensity' "
            "lines (long), a header row of wavenumbers with one spectrum per row (wide), or "
            "'wavenumber intensity' lines (one spectrum)"
        )
    table = _load(path, found)
    choices: list[str] = []
    notes: list[str] = []
    names = found.names
    blocks = None
    if found.kind == "wide":
        k = found.n_positions
        axis = np.array([float(c) for c in names[k:]], dtype=np.float64)
        spectra = table[:, k:]
        positions = table[:, :k]
        unit_name = ""
        if axis.size > 1 and axis[0] > axis[-1]:
            axis, spectra = axis[::-1], spectra[:, ::-1]
            notes.append("bands reversed so that the spectral axis increases")
    else:
        k = found.n_positions
        unit_name = names[k] if names else ""
        blocks = _spectrum_blocks(table, k) if k else None
        if blocks is not None:  # spectrum after spectrum, all on one axis: read as rows of spectra
            positions, axis, spectra = blocks
            if axis[0] > axis[-1]:
                axis, spectra = axis[::-1], spectra[:, ::-1]
                notes.append("the file lists each spectrum from high to low; bands reversed so the axis increases")
        else:
            positions, waves, values = table[:, :k], table[:, k], table[:, k + 1]
            axis, band = np.unique(waves, return_inverse=True)
    unit = parse_unit(unit_name) if unit_name else None
    if unit is None:
        choices.append(UNIT_NOTE)
        unit = "1/cm"
    if shape is not None and (k or found.kind == "spectrum"):
        raise ValueError(
            f"{path.name}: shape= folds spectra listed without positions; this table places them by its position columns"
        )
    position_names = [n.lower() for n in names[:k]] if names else []
    if found.kind == "wide" or blocks is not None:
        data, space, kind = _place_spectra(spectra, positions, position_names, shape, path, choices, notes)
    else:
        data, space, kind = _place_values(positions, band, values, axis.size, position_names, path, choices, notes)
    metadata = {
        "source": str(path),
        "format": f"text:{found.kind}",
        "choices": "; ".join(choices),
        "spectral_unit": unit,
        "notes": notes,
        "companions": {},
        "container": "text",
        "stored_axes": "nb",
        "pixel_order": "C" if kind == "folded" else None,
        **space,
    }
    return Cube(data=data, wavenumbers=axis, metadata=metadata)


# --- layout detection ------------------------------------------------------------------------


def _first_lines(path: Path) -> list[str] | None:
    """The complete lines of the first 64 KiB of ``path`` (more when a header line is longer).

    None for a binary file (one with NUL bytes).
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        chunk = handle.read(_PEEK)
        while len(chunk) < size and chunk.count(b"\n") < 3 and len(chunk) < _MAX_PEEK:
            chunk += handle.read(3 * len(chunk))
    if b"\x00" in chunk:
        return None
    if len(chunk) < size:
        chunk = chunk[: chunk.rfind(b"\n") + 1]
    try:
        text = chunk.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = chunk.decode("latin-1")
    return text.splitlines()


def _delimiter(line: str) -> str | None:
    for candidate in ("\t", ";", ","):
        if candidate in line:
            return candidate
    return None


def _cells(line: str, delimiter: str | None) -> list[str]:
    cells = line.split(delimiter) if delimiter else line.split()
    cells = [c.strip().lstrip("#").strip().strip('"') for c in cells]
    while cells and cells[-1] == "" and delimiter:
        cells.pop()  # a trailing separator
    return cells


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _monotonic(cells) -> bool:
    steps = np.diff([float(c) for c in cells])
    return bool(np.all(steps > 0) or np.all(steps < 0))


def _classify(cells, header, delimiter, data_row) -> TextLayout | None:
    n = len(cells)
    names = _cells(header[0], delimiter) if header is not None else []
    if names and len(names) != n:
        names = _cells(header[0], None) if len(_cells(header[0], None)) == n else []
    if names:
        tail = 0
        for cell in reversed(names):
            if not _is_number(cell):
                break
            tail += 1
        if tail >= 3:
            k = n - tail
            if k > 2 or any(_is_number(c) for c in names[:k]):
                return None
            return TextLayout("wide", delimiter, data_row, names, n, k)
    if n == 2:
        return TextLayout("spectrum", delimiter, data_row, names, n, 0)
    if n == 4:
        if names and not (_SPECTRAL_NAME.search(names[2]) or names[0].lower().startswith("x")):
            return None
        return TextLayout("long", delimiter, data_row, names, n, 2)
    if n == 3 and names and _SPECTRAL_NAME.search(names[1]):
        return TextLayout("long", delimiter, data_row, names, n, 1)
    return None


# --- parsing ---------------------------------------------------------------------------------


def _load(path: Path, found: TextLayout) -> np.ndarray:
    """All numbers of the table as float64 ``(rows, columns)``, in one ``np.loadtxt`` pass."""
    size = path.stat().st_size
    if size // _BYTES_PER_VALUE > MAX_ELEMENTS:
        raise ValueError(
            f"{path.name} is {size / 2**30:.1f} GiB of text, about {size // _BYTES_PER_VALUE:,} numbers; "
            "napari-deeper reads text tables of at most 2**31 numbers: export the map in the "
            "instrument's own format, or save it as .npy"
        )
    try:
        table = np.loadtxt(
            path,
            delimiter=found.delimiter,
            skiprows=found.skiprows,
            comments="#",
            ndmin=2,
            dtype=np.float64,
            encoding="utf-8-sig",
        )
    except (ValueError, UnicodeDecodeError) as error:
        hint = ""
        if found.delimiter == ";":
            hint = " (numbers with a decimal comma are not read: export with a decimal point)"
        raise ValueError(f"{path.name} is not a complete {found.kind} table: {error}{hint}") from None
    if table.shape[1] != found.n_columns:
        raise ValueError(
            f"{path.name}: the table has {table.shape[1]} columns, its first line {found.n_columns}"
        )
    if table.shape[0] == 0:
        raise ValueError(f"{path.name} has a header but no data rows")
    return table


def _spectrum_blocks(table, k):
    """(positions (N, k), axis (B,), spectra (N, B)) of a long table listed spectrum by spectrum.

    That is how WiRE and WITec write them: each spectrum's B lines in a row at one position, every
    spectrum on the same strictly monotonic axis. None when the lines come in any other order
    (or some are missing): they are then placed one by one.
    """
    positions = table[:, :k]
    changes = np.flatnonzero(np.any(positions[1:] != positions[:-1], axis=1))
    bands = int(changes[0]) + 1 if changes.size else table.shape[0]
    n = table.shape[0] // bands
    if bands < 2 or n * bands != table.shape[0]:
        return None
    blocks = table.reshape(n, bands, k + 2)
    axis = blocks[0, :, k]
    steps = np.diff(axis)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        return None
    if not (np.all(blocks[:, :, :k] == blocks[:, :1, :k]) and np.all(blocks[:, :, k] == axis)):
        return None
    return blocks[:, 0, :k], axis.copy(), blocks[:, :, k + 1]


def _place_values(positions, band, values, n_bands, names, path, choices, notes):
    """Long table: scatter each (position, band, value) line into the (B, Y, X) grid."""
    if positions.shape[1] == 0:
        if np.unique(band).size != band.size:
            raise ValueError(
                f"{path.name}: a two-column table is one spectrum, but some wavenumbers appear twice "
                "(several spectra without positions cannot be placed)"
            )
        data = np.full((n_bands, 1, 1), np.nan, dtype=np.float32)
        data[band, 0, 0] = values
        return data, unplaced(), "spectrum"
    rows, cols, space, kind = _grid(positions, names, path, choices, notes)
    ny, nx = space.pop("_shape")
    cells = rows * nx + cols
    n_pixels = np.unique(cells).size
    if n_bands * n_pixels > 2 * cells.size:
        raise ValueError(
            f"{path.name}: the spectra do not share one spectral axis ({n_bands} distinct wavenumbers "
            f"over {n_pixels} positions and {cells.size} lines); napari-deeper needs one axis for all spectra"
        )
    flat = band * (ny * nx) + cells
    if np.unique(flat).size != flat.size:
        raise ValueError(f"{path.name}: some (position, wavenumber) pairs appear on more than one line")
    check_array_header((n_bands, ny, nx), np.float32, f"{path.name} grid {describe((n_bands, ny, nx))}")
    data = np.full((n_bands, ny * nx), np.nan, dtype=np.float32)
    data.reshape(-1)[flat] = values
    missing = n_bands * ny * nx - flat.size
    if missing > 0:
        notes.append(f"{missing} of {n_bands * ny * nx} values are missing from the table: NaN")
    return data.reshape(n_bands, ny, nx), space, kind


def _place_spectra(spectra, positions, names, shape, path, choices, notes):
    """Wide table: one spectrum per row, placed by its positions (or folded as a pixel list)."""
    n, n_bands = spectra.shape
    if positions.shape[1] == 0:
        (ny, nx), why = image_shape(n, shape, None, "C")
        if why:
            choices.append(why)
        data = np.ascontiguousarray(spectra.T.reshape(n_bands, ny, nx), dtype=np.float32)
        return data, unplaced(), "folded"
    rows, cols, space, kind = _grid(positions, names, path, choices, notes)
    ny, nx = space.pop("_shape")
    cells = rows * nx + cols
    if np.unique(cells).size != cells.size:
        raise ValueError(f"{path.name}: two or more spectra have the same position")
    check_array_header((n_bands, ny, nx), np.float32, f"{path.name} grid {describe((n_bands, ny, nx))}")
    data = np.full((n_bands, ny * nx), np.nan, dtype=np.float32)
    data[:, cells] = spectra.T
    if cells.size < ny * nx:
        notes.append(f"{ny * nx - cells.size} of {ny * nx} grid positions have no spectrum: NaN")
    return data.reshape(n_bands, ny, nx), space, kind


def _grid(positions, names, path, choices, notes):
    """Rows, columns and the space record of each line's position (one or two coordinates).

    The (x, y) pairs become a grid of the distinct x and y values; points that all lie on one
    slanted line (a line scan) become one row, placed along the line.
    """
    units = _position_unit(names, choices)
    if positions.shape[1] == 1:
        name = names[0] if names else "position"
        index, centres = _cluster(positions[:, 0])
        step, origin = _spacing(centres, name, notes)
        axis = re.sub(r"\W.*", "", name) or "position"
        if axis.startswith("x"):
            space = placement((step, step), (0.0, origin), (units, units), ("y", "x"))
            space["_shape"] = (1, centres.size)
            return np.zeros_like(index), index, space, "line"
        space = placement((step, step), (origin, 0.0), (units, units), (axis, "x"))
        space["_shape"] = (centres.size, 1)
        return index, np.zeros_like(index), space, "series"
    x, y = positions[:, 0], positions[:, 1]
    if len(names) >= 2 and names[0].startswith("y") and names[1].startswith("x"):
        x, y = y, x
    cols, xs = _cluster(x)
    rows, ys = _cluster(y)
    cells = np.unique(rows * xs.size + cols)
    if xs.size > 2 and xs.size == ys.size == cells.size:
        line = _as_line(ys[rows], xs[cols], ys[cells // xs.size], xs[cells % xs.size], units, notes)
        if line is not None:
            return line
    dy, y0 = _spacing(ys, "y", notes)
    dx, x0 = _spacing(xs, "x", notes)
    space = placement((dy, dx), (y0, x0), (units, units), ("y", "x"))
    space["_shape"] = (ys.size, xs.size)
    return rows, cols, space, "map"


def _as_line(y, x, point_y, point_x, units, notes):
    """A slanted line scan as one row, or None when the distinct points are not collinear.

    ``y``, ``x``: each line's position; ``point_y``, ``point_x``: the distinct points. The row
    starts at the first line's point and runs towards the farthest point.
    """
    points = np.stack([point_y, point_x], axis=1)
    singular = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
    if singular[0] == 0 or singular[1] > 1e-3 * singular[0]:
        return None
    start = np.array([y[0], x[0]])
    far = points[np.argmax(np.hypot(*(points - start).T))]
    dy, dx = (far - start) / np.hypot(*(far - start))
    index, centres = _cluster((y - start[0]) * dy + (x - start[1]) * dx)
    if centres[0] < -1e-9 * max(1.0, abs(centres[-1])):
        return None  # the first point is not at one end of the line
    step, _ = _spacing(centres, "distance", notes)
    space = placement((step, step), start, (units, units), ("y", "distance"))
    space["rotation"] = [[float(dx), float(dy)], [float(-dy), float(dx)]]
    space["_shape"] = (1, centres.size)
    notes.append(f"positions lie on one line at {np.degrees(np.arctan2(dy, dx)):.1f}° to the x axis: read as a line scan")
    return np.zeros_like(index), index, space, "line"


def _cluster(values):
    """(index of each value's cluster, cluster centres): distinct positions, stage jitter merged.

    Sorted gaps between distinct values are steps; when the smallest gaps are more than ten
    times smaller than the next larger ones, those small gaps are jitter and merged.
    """
    unique, inverse = np.unique(values, return_inverse=True)
    if unique.size < 3:
        return inverse, unique
    gaps = np.diff(unique)
    ordered = np.sort(gaps)
    ratios = ordered[1:] / np.maximum(ordered[:-1], np.finfo(float).tiny)
    jump = int(np.argmax(ratios))
    if ratios[jump] <= 10:
        return inverse, unique
    new_cluster = np.concatenate([[True], gaps > ordered[jump]])
    label = np.cumsum(new_cluster) - 1
    centres = np.bincount(label, weights=unique) / np.bincount(label)
    return label[inverse], centres


def _spacing(centres, name, notes):
    """(step, origin) of sorted positions; uneven steps noted (the median is used)."""
    if centres.size < 2:
        return 1.0, float(centres[0]) if centres.size else 0.0
    steps = np.diff(centres)
    step = float(np.median(steps))
    if np.max(np.abs(steps - step)) > 0.01 * abs(step):
        notes.append(f"{name} positions are not evenly spaced (steps {steps.min():.4g} to {steps.max():.4g}): "
                     f"pixel size = median step {step:.4g}")
    return step, float(centres[0])


def _position_unit(names, choices) -> str:
    for name in names:
        found = _NAME_UNIT.search(name)
        if found:
            text = found.group(1).lower()
            return {"µm": "µm", "μm": "µm", "um": "µm", "micron": "µm", "sec": "s"}.get(text, text)
    choices.append("the file does not state the positions' unit: assumed µm")
    return "µm"

