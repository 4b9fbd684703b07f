"""Instrument files through RosettaSciIO: Renishaw WiRE ``.wdf``, Horiba LabSpec 6 ``.xml``, Trivista ``.tvf``.

RosettaSciIO (``rsciio``, the HyperSpy project's reader library, GPL-3.0) is an optional extra,
``pip install "napari-deeper[formats]"``; without it these files raise a ValueError that says so.
RosettaSciIO decodes the files; this module turns what it returns into the one ``(B, Y, X)``
float32 :class:`Cube`:

- area maps stay maps, ``(B, Y, X)``; line scans become one row, ``(B, 1, N)``; series of spectra
  at one place (a z-scan, a time series) become one column, ``(B, N, 1)``, the series axis
  running down the image; a single spectrum is ``(B, 1, 1)``;
- a wavelength axis (nm) of Raman data is converted to Raman shift (1/cm) when the file states
  the laser line (the wavelengths are kept in ``metadata["original_axis"]``);
- the pixel size and position (µm, or s for a time series) go to ``metadata["pixel_size"]``,
  ``["origin"]``, ``["space_units"]``, ``["space_axes"]`` (and ``["rotation"]`` for a line scan
  at an angle), the white-light image of a ``.wdf`` map to ``metadata["white_light"]``, the
  acquisition settings to ``metadata["acquisition"]`` and a one-line summary to ``["about"]``.

Before RosettaSciIO reads a file, its structure is checked from a few bytes (the ``.wdf`` block
table, the first and last bytes of an XML file), so a truncated or foreign file is refused
without being read whole.
"""

from __future__ import annotations

import importlib
import logging
import re
import struct
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ._cube import Cube, check_array_header, describe, parse_unit, placement, unplaced

VENDOR_EXTENSIONS = (".wdf", ".xml", ".tvf")
INSTALL_HINT = 'pip install "napari-deeper[formats]"'

#: Raman shifts (1/cm) a Raman spectrum lies within; a wavelength axis that converts to shifts
#: outside it (photoluminescence, mostly) keeps its nm unless ``raman_shift=True``.
RAMAN_WINDOW = (-2000.0, 4500.0)

_PEEK = 4096
_WDF_HEADER = 512
_WDF_KINDS = {0: "Unspecified", 1: "Single", 2: "Series", 3: "Mapping"}
_WDF_SCANS = {0: "Unspecified", 1: "Static", 2: "Continuous", 3: "StepRepeat", 4: "FilterScan",
              5: "FilterImage", 6: "StreamLine", 7: "StreamLineHR", 8: "PointDetector"}
# WMAP flags (bits) and ORGN data types, as WiRE writes them.
_MAP_XYLINE = 128
_ORGN_X, _ORGN_Y, _ORGN_Z, _ORGN_TIME = 3, 4, 5, 11
_FILETIME_SECONDS = 1e-7  # WiRE's "Time" origin counts Windows FILETIME ticks of 100 ns

_FORMATS = {
    ".wdf": ("renishaw", "Renishaw WiRE .wdf"),
    ".xml": ("jobinyvon", "Horiba LabSpec 6 .xml"),
    ".tvf": ("trivista", "Trivista .tvf"),
}


def claims(path) -> bool:
    """Whether ``path`` looks like one of these instrument files, from its first bytes only."""
    path = Path(path)
    ext = path.suffix.lower()
    try:
        with open(path, "rb") as handle:
            head = handle.read(_PEEK)
    except OSError:
        return False
    if ext == ".wdf":
        return head[:4] == b"WDF1"
    if ext == ".xml":
        return b"<LSX_Data" in head
    if ext == ".tvf":
        return b"TriVista" in head or b"<XmlMain" in head
    return False


def read_vendor(path, shape=None, layout=None, raman_shift: bool | None = None) -> Cube:
    """Read a ``.wdf``, LabSpec ``.xml`` or ``.tvf`` file into a :class:`Cube` (see the module doc).

    ``raman_shift``: None converts a wavelength axis to Raman shift when the file states the
    laser line and every shift falls in :data:`RAMAN_WINDOW`; True converts whenever the laser
    line is known (a ValueError otherwise); False keeps the file's axis.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _FORMATS:
        raise ValueError(f"{path.name}: not an instrument file napari-deeper reads ({', '.join(VENDOR_EXTENSIONS)})")
    if shape is not None or layout is not None:
        raise ValueError(
            f"{path.name}: shape= and layout= apply to .mat/.npy/.npz arrays; a {_FORMATS[ext][1]} "
            "file states its own grid (correct it afterwards with io.relayout or the Cube layout dock)"
        )
    if raman_shift not in (None, True, False):
        raise ValueError(f"raman_shift must be None (automatic), True or False; got {raman_shift!r}")
    module_name, what = _FORMATS[ext]
    wdf = _wdf_structure(path) if ext == ".wdf" else None
    if ext != ".wdf":
        _check_xml(path, what, b"<LSX_Data" if ext == ".xml" else b"<XmlMain",
                   b"</LSX_Data>" if ext == ".xml" else b"</XmlMain>")
    module = _rsciio(module_name, path, what)
    with _rsciio_log() as warnings:
        try:
            signals = module.file_reader(str(path))
        except Exception as error:  # noqa: BLE001 - any failure of the decoder is a bad file
            raise ValueError(
                f"{path.name} could not be read as a {what} file: {type(error).__name__}: {error}"
            ) from None
    spectra = [s for s in signals if np.asarray(s["data"]).dtype.names is None]
    images = [s for s in signals if np.asarray(s["data"]).dtype.names is not None]
    if not spectra:
        raise ValueError(f"{path.name} holds no spectra (RosettaSciIO found {len(signals)} signal(s), none spectral)")
    notes: list[str] = []
    choices: list[str] = []
    if len(spectra) > 1:
        notes.append(f"{len(spectra) - 1} further signal(s) in the file not read")
    signal = spectra[0]
    values, unit, name = _signal_axis(signal, path)
    if wdf is not None:
        data, space, kind = _arrange_wdf(signal, wdf, path, notes)
    else:
        data, space, kind = _arrange_generic(signal, path, notes)
    acquisition = _acquisition(signal.get("metadata", {}), what, wdf)
    remark = str(_get(signal.get("metadata", {}), "General", "notes") or "")
    photoluminescence = bool(re.search(r"\bPL\b|lumines", remark, re.IGNORECASE))
    values, unit, original = _spectral_choice(values, unit, acquisition.get("laser_wavelength_nm"),
                                              raman_shift, photoluminescence, path, choices)
    metadata = {
        "source": str(path),
        "format": f"{module_name}:{kind}",
        "choices": "; ".join(choices),
        "spectral_unit": unit,
        "spectral_name": name if original is None else "Raman shift",
        "notes": notes,
        "companions": {},
        "container": ext[1:],
        "stored_axes": "yxb",
        "pixel_order": None,
        "acquisition": acquisition,
        **space,
    }
    if original is not None:
        metadata["original_axis"] = original
    if warnings:
        metadata["reader_warnings"] = warnings
    if images:
        white = _white_light(images[0])
        if white is not None:
            metadata["white_light"] = white
    metadata["about"] = about(metadata, data.shape, values, what)
    return Cube(data=data, wavenumbers=values, metadata=metadata)


# --- RosettaSciIO --------------------------------------------------------------------------


def _rsciio(module_name: str, path: Path, what: str):
    try:
        return importlib.import_module(f"rsciio.{module_name}")
    except ImportError:
        raise ValueError(
            f"{path.name} is a {what} file; napari-deeper reads it through RosettaSciIO "
            f"(GPL-3.0), an optional extra: {INSTALL_HINT}"
        ) from None


@contextmanager
def _rsciio_log():
    """Collect RosettaSciIO's log warnings (a list) instead of printing them."""
    logger = logging.getLogger("rsciio")
    records: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            text = record.getMessage()
            if "lumispy" not in text:  # an optional HyperSpy package, irrelevant here
                records.append(" ".join(text.split()))

    handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers = [_Keep(logging.WARNING)]
    logger.propagate = False
    try:
        yield records
    finally:
        logger.handlers, logger.propagate = handlers, propagate


def _signal_axis(signal: dict, path: Path):
    """(values float64, unit, name) of the spectral (non-navigation) axis."""
    axes = [a for a in signal["axes"] if not a.get("navigate", False)]
    if len(axes) != 1:
        raise ValueError(f"{path.name}: expected one spectral axis, found {len(axes)}")
    axis = axes[0]
    if axis.get("axis") is not None:
        values = np.asarray(axis["axis"], dtype=np.float64).ravel()
    else:
        size = int(axis["size"])
        values = float(axis.get("offset", 0.0)) + float(axis.get("scale", 1.0)) * np.arange(size)
    units = str(axis.get("units") or "")
    unit = parse_unit(units) or units or "1/cm"
    return values, unit, str(axis.get("name") or "")


def _spectral_choice(values, unit, laser_nm, raman_shift, photoluminescence, path: Path, choices: list[str]):
    """The axis to keep: the file's, or Raman shift from a wavelength axis and the laser line.

    ``photoluminescence``: the file's own remark marks it as PL, so the automatic choice keeps nm.
    """
    if raman_shift is False or unit != "nm":
        if raman_shift is True and unit != "nm":
            choices.append(f"the spectral axis is already in {unit}: kept")
        return values, unit, None
    if not laser_nm:
        if raman_shift is True:
            raise ValueError(f"{path.name}: the file does not state the laser line, so its wavelengths cannot become Raman shifts")
        choices.append("spectral axis kept in nm: the file does not state the laser line")
        return values, unit, None
    shift = 1e7 / laser_nm - 1e7 / values
    low, high = float(shift.min()), float(shift.max())
    if raman_shift is None and photoluminescence:
        choices.append("spectral axis kept in nm: the file's remark marks it as photoluminescence (PL); "
                       "load with raman_shift=True to convert")
        return values, unit, None
    if raman_shift is None and not (RAMAN_WINDOW[0] <= low and high <= RAMAN_WINDOW[1]):
        choices.append(
            f"spectral axis kept in nm: with the laser line at {laser_nm:.3f} nm it would span "
            f"{low:.0f} to {high:.0f} 1/cm, outside the Raman range {RAMAN_WINDOW[0]:.0f} to "
            f"{RAMAN_WINDOW[1]:.0f} 1/cm (photoluminescence?); load with raman_shift=True to convert"
        )
        return values, unit, None
    choices.append(
        f"wavelengths converted to Raman shift with the laser line at {laser_nm:.3f} nm "
        "(1e7/laser - 1e7/wavelength); the wavelengths are in metadata['original_axis'] "
        "(raman_shift=False keeps them)"
    )
    return shift, "1/cm", {"values": values, "unit": "nm"}


# --- Renishaw .wdf -------------------------------------------------------------------------


def _wdf_structure(path: Path) -> dict:
    """The block table and header fields of a ``.wdf`` file, read with a few seeks.

    Refuses a file that is not a WiRE file, whose blocks run past its end (truncated), or whose
    data block is smaller than its header promises.
    """
    size = path.stat().st_size
    blocks: dict[str, tuple[int, int]] = {}
    with open(path, "rb") as handle:
        if handle.read(4) != b"WDF1":
            raise ValueError(f"{path.name} is not a Renishaw WiRE file: it does not start with 'WDF1'")
        position = 0
        while position < size:
            handle.seek(position)
            header = handle.read(16)
            if len(header) < 16:
                raise ValueError(f"{path.name} is truncated: a block header at byte {position:,} is cut off")
            name = header[:4].decode("latin-1").strip("\x00 ")
            uid, length = struct.unpack("<IQ", header[4:])
            block = f"block {name!r}" if name.isprintable() and name else "an unnamed block"
            if length < 16:
                raise ValueError(f"{path.name} is damaged: {block} at byte {position:,} claims {length} bytes")
            if position + length > size:
                raise ValueError(
                    f"{path.name} is truncated: its {block} at byte {position:,} needs "
                    f"{length:,} bytes but the file ends at byte {size:,}"
                )
            blocks[f"{name}_{uid}"] = (position + 16, length - 16)
            position += length
        for required in ("WDF1_1", "DATA_0", "XLST_0"):
            if required not in blocks:
                raise ValueError(f"{path.name} is not a complete WiRE file: it has no {required[:4]} block")
        start, length = blocks["WDF1_1"]
        if length < _WDF_HEADER - 16:
            raise ValueError(f"{path.name} is damaged: its header block has {length} bytes")
        handle.seek(start)
        raw = handle.read(160)
        points, = struct.unpack_from("<I", raw, 44)
        capacity, measured = struct.unpack_from("<QQ", raw, 48)
        kind, = struct.unpack_from("<I", raw, 116)
        scan, = struct.unpack_from("<I", raw, 112)
        info = {
            "blocks": blocks,
            "points": int(points),
            "capacity": int(capacity),
            "measured": int(measured),
            "kind": _WDF_KINDS.get(int(kind), f"type {kind}"),
            "scan": _WDF_SCANS.get(int(scan), f"type {scan}"),
        }
        data_start, data_length = blocks["DATA_0"]
        needed = 4 * info["points"] * info["measured"]
        if info["points"] < 1 or info["measured"] < 1:
            raise ValueError(f"{path.name} holds no spectra ({info['measured']} spectra of {info['points']} points)")
        if data_length < needed:
            raise ValueError(
                f"{path.name} is truncated: its header promises {info['measured']} spectra of "
                f"{info['points']} points ({needed:,} bytes) but the data block has {data_length:,}"
            )
        check_array_header((info["measured"], info["points"]), np.float32,
                           f"{path.name} {describe((info['measured'], info['points']), np.float32)}")
        handle.seek(blocks["XLST_0"][0] + 8)
        first = np.fromfile(handle, dtype="<f4", count=2)
        info["reversed"] = bool(first.size == 2 and first[0] > first[1])
        info["origins"] = _wdf_origins(handle, blocks.get("ORGN_0"))
        info["map"] = _wdf_map(handle, blocks.get("WMAP_0"))
    return info


def _wdf_origins(handle, block) -> dict[int, np.ndarray]:
    """Per-spectrum stage positions of the ORGN block: data type -> values (one per planned spectrum)."""
    if block is None:
        return {}
    start, length = block
    handle.seek(start)
    count, = struct.unpack("<I", handle.read(4))
    if count == 0 or (length - 4) % count:
        return {}
    entries = ((length - 4) // count - 24) // 8
    origins = {}
    for index in range(count):
        handle.seek(start + 4 + index * (24 + 8 * entries))
        kind, = struct.unpack("<I", handle.read(4))
        handle.seek(20, 1)
        kind &= 0x7FFFFFFF
        dtype = "<u8" if kind == _ORGN_TIME else "<f8"
        origins[kind] = np.fromfile(handle, dtype=dtype, count=entries)
    return origins


def _wdf_map(handle, block) -> dict | None:
    """The WMAP block: map flags, offset, step and size along x, y, z."""
    if block is None:
        return None
    start, length = block
    if length < 48:
        return None
    handle.seek(start)
    raw = handle.read(48)
    flag, = struct.unpack_from("<I", raw, 0)
    offset = struct.unpack_from("<3f", raw, 8)
    step = struct.unpack_from("<3f", raw, 20)
    size = struct.unpack_from("<3I", raw, 32)
    return {"flag": int(flag), "offset": offset, "step": step, "size": tuple(int(n) for n in size)}


def _arrange_wdf(signal: dict, wdf: dict, path: Path, notes: list[str]):
    """(data (B, Y, X), space metadata, kind) of a ``.wdf`` signal, placed by stage positions."""
    array = np.asarray(signal["data"])
    bands = array.shape[-1]
    decoded = array.reshape(-1, bands)
    measured, capacity = wdf["measured"], wdf["capacity"]
    stopped = measured < capacity
    if stopped:
        notes.append(
            f"acquisition stopped early: {measured} of {capacity} spectra measured; "
            "the pixels not measured are NaN"
        )
    grid = wdf["map"]
    origins = wdf["origins"]
    if wdf["kind"] == "Mapping" and grid is not None:
        if grid["size"][2] > 1:
            raise ValueError(
                f"{path.name} is a 3-D (x, y, z) map of {grid['size'][0]} x {grid['size'][1]} x "
                f"{grid['size'][2]} points; napari-deeper reads 2-D maps, line scans, series and single spectra"
            )
        spectra = _measured_spectra(decoded, wdf, path)
        if grid["flag"] & _MAP_XYLINE:
            return _wdf_line(spectra, grid, origins, capacity, notes)
        return _wdf_area(spectra, grid, origins, wdf, notes)
    if wdf["kind"] == "Series":
        return _wdf_series(decoded, signal, origins, capacity, notes)
    if decoded.shape[0] != 1:
        notes.append(f"{decoded.shape[0]} spectra without positions: shown as a 1 x {decoded.shape[0]} strip")
        return decoded.T.reshape(bands, 1, -1).astype(np.float32), unplaced(), "spectra"
    return decoded.T.reshape(bands, 1, 1).astype(np.float32), unplaced(), "spectrum"


def _measured_spectra(decoded: np.ndarray, wdf: dict, path: Path) -> np.ndarray:
    """All measured spectra in file order: RosettaSciIO's, plus any it dropped from an unfinished line."""
    measured = wdf["measured"]
    if decoded.shape[0] >= measured:
        return decoded[:measured]
    start, _ = wdf["blocks"]["DATA_0"]
    points = wdf["points"]
    missing = measured - decoded.shape[0]
    with open(path, "rb") as handle:
        handle.seek(start + 4 * points * decoded.shape[0])
        extra = np.fromfile(handle, dtype="<f4", count=missing * points).reshape(missing, points)
    if wdf["reversed"]:
        extra = extra[:, ::-1]
    return np.concatenate([decoded, extra.astype(decoded.dtype)])


def _wdf_area(spectra, grid, origins, wdf, notes):
    nx, ny = grid["size"][0], grid["size"][1]
    (x0, y0, _), (dx, dy, _) = grid["offset"], grid["step"]
    count, bands = spectra.shape
    rows = cols = None
    if _ORGN_X in origins and _ORGN_Y in origins and dx and dy:
        x = origins[_ORGN_X][:count]
        y = origins[_ORGN_Y][:count]
        cols_f = (x - x0) / dx
        rows_f = (y - y0) / dy
        cols, rows = np.rint(cols_f).astype(np.int64), np.rint(rows_f).astype(np.int64)
        fits = (
            x.size == count
            and np.all((cols >= 0) & (cols < nx) & (rows >= 0) & (rows < ny))
            and np.all(np.abs(cols_f - cols) < 0.25)
            and np.all(np.abs(rows_f - rows) < 0.25)
            and np.unique(rows * nx + cols).size == count
        )
        if not fits:
            notes.append("the spectra's stored stage positions do not fit the map grid: placed in file order, row by row")
            rows = cols = None
    if rows is None:
        index = np.arange(count)
        rows, cols = index // nx, index % nx
    elif np.any(rows * nx + cols != np.arange(count)):
        notes.append(f"spectra placed by their stage positions (the file lists them in {wdf['scan']} order, not row by row)")
    if dx < 0:
        cols, x0, dx = nx - 1 - cols, x0 + (nx - 1) * dx, -dx
    if dy < 0:
        rows, y0, dy = ny - 1 - rows, y0 + (ny - 1) * dy, -dy
    data = np.full((bands, ny, nx), np.nan, dtype=np.float32)
    data[:, rows, cols] = spectra.T
    space = placement((dy, dx), (y0, x0), ("µm", "µm"), ("y", "x"))
    return data, space, "map"


def _wdf_line(spectra, grid, origins, capacity, notes):
    count, bands = spectra.shape
    dx, dy = grid["step"][0], grid["step"][1]
    step = float(np.hypot(dx, dy)) or 1.0
    if _ORGN_X in origins and _ORGN_Y in origins:
        x0, y0 = float(origins[_ORGN_X][0]), float(origins[_ORGN_Y][0])
    else:
        x0, y0 = float(grid["offset"][0]), float(grid["offset"][1])
    data = np.full((bands, 1, max(capacity, count)), np.nan, dtype=np.float32)
    data[:, 0, :count] = spectra.T
    space = placement((step, step), (y0, x0), ("µm", "µm"), ("y", "distance"))
    if dy:
        # The line runs at an angle: rotate the row so that it lies on the sample (world y, x).
        cos, sin = dx / step, dy / step
        space["rotation"] = [[cos, sin], [-sin, cos]]
        notes.append(f"line scan at {np.degrees(np.arctan2(dy, dx)):.1f}° to the x axis, {step:.4g} µm per step")
    return data, space, "line"


def _wdf_series(decoded, signal, origins, capacity, notes):
    count, bands = decoded.shape
    navigation = [a for a in signal["axes"] if a.get("navigate", False)]
    name = str(navigation[0].get("name", "")) if navigation else ""
    data = np.full((bands, max(capacity, count), 1), np.nan, dtype=np.float32)
    data[:, :count, 0] = decoded.T
    if name == "Time" and _ORGN_TIME in origins:
        ticks = origins[_ORGN_TIME][:count].astype(np.int64)
        seconds = (ticks - ticks[0]) * _FILETIME_SECONDS
        step = float(np.mean(np.diff(seconds))) if count > 1 else 1.0
        space = placement((step, step), (0.0, 0.0), ("s", "s"), ("time", "x"))
        space["series"] = {"axis": "time", "unit": "s", "values": [float(v) for v in seconds]}
        notes.append(f"time series of {count} spectra, {step:.3g} s apart on average (down the image)")
        return data, space, "time-series"
    if navigation and navigation[0].get("units"):
        axis = navigation[0]
        step = float(axis.get("scale", 1.0)) or 1.0
        origin = float(axis.get("offset", 0.0))
        unit = str(axis["units"])
        label = name.lower() or "series"
        space = placement((abs(step), abs(step)), (origin, 0.0), (unit, unit), (label, "x"))
        if step < 0:
            data = data[:, ::-1]
            space["origin"] = [origin + step * (data.shape[1] - 1), 0.0]
        notes.append(f"{label} series of {count} spectra, {abs(step):.4g} {unit} apart (down the image)")
        return data, space, f"{label}-series"
    notes.append(f"series of {count} spectra without a usable axis: one per row")
    return data, unplaced(), "series"


# --- Horiba LabSpec 6 .xml, Trivista .tvf --------------------------------------------------


def _check_xml(path: Path, what: str, root: bytes, end: bytes) -> None:
    """Refuse a foreign or truncated XML export from its first and last bytes."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(_PEEK)
        handle.seek(max(0, size - 256))
        tail = handle.read()
    if root not in head:
        found = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:60].decode("utf-8", "replace")
        raise ValueError(f"{path.name} is not a {what} file: no {root.decode()} element near its start (it begins {found!r})")
    if end not in tail:
        raise ValueError(f"{path.name} is truncated: a {what} file ends with {end.decode()}, this one does not")


def _arrange_generic(signal: dict, path: Path, notes: list[str]):
    """(data, space, kind) of a LabSpec or Trivista signal: maps, line scans and single spectra."""
    array = np.asarray(signal["data"])
    navigation = sorted(
        (a for a in signal["axes"] if a.get("navigate", False)), key=lambda a: a.get("index_in_array", 0)
    )
    bands = array.shape[-1]
    if array.ndim == 1:
        return array.reshape(bands, 1, 1).astype(np.float32), unplaced(), "spectrum"
    if array.ndim == 3 and len(navigation) == 2:
        cube = np.ascontiguousarray(np.moveaxis(array, -1, 0), dtype=np.float32)
        (ay, ax) = navigation
        space = placement((_step(ay), _step(ax)), (_offset(ay), _offset(ax)),
                       (_unit(ay), _unit(ax)), (str(ay.get("name", "y")).lower(), str(ax.get("name", "x")).lower()))
        return _positive(cube, space), space, "map"
    if array.ndim == 2 and len(navigation) == 1:
        (axis,) = navigation
        name = str(axis.get("name", "")).lower()
        step, origin, unit = _step(axis), _offset(axis), _unit(axis)
        # LabSpec states the fixed coordinate of a line ("X (µm)" for a line along y).
        setup = _get(signal.get("original_metadata", {}), "experimental_setup") or {}
        if name == "x":
            cube = np.ascontiguousarray(array.T[:, None, :], dtype=np.float32)
            fixed = float(setup.get("Y (µm)", 0.0))
            space = placement((step, step), (fixed, origin), (unit, unit), ("y", "x"))
        else:
            cube = np.ascontiguousarray(array.T[:, :, None], dtype=np.float32)
            fixed = float(setup.get("X (µm)", 0.0))
            space = placement((step, step), (origin, fixed), (unit, unit), (name or "y", "x"))
        notes.append(f"line of {array.shape[0]} spectra along {name or 'its axis'}")
        return _positive(cube, space), space, "line"
    raise ValueError(
        f"{path.name}: data of shape {describe(array.shape)} with {len(navigation)} position axes; "
        "napari-deeper reads maps, line scans and single spectra"
    )


def _step(axis) -> float:
    return float(axis.get("scale", 1.0))


def _offset(axis) -> float:
    return float(axis.get("offset", 0.0))


def _unit(axis) -> str:
    return str(axis.get("units") or "pixel")


def _positive(cube: np.ndarray, space: dict) -> np.ndarray:
    """Flip axes with a negative step so that the layer's scale is positive."""
    for axis in (0, 1):
        step = space["pixel_size"][axis]
        if step < 0:
            cube = np.ascontiguousarray(np.flip(cube, axis + 1))
            space["pixel_size"][axis] = -step
            space["origin"][axis] += step * (cube.shape[axis + 1] - 1)
    return cube


# --- shared pieces -------------------------------------------------------------------------


def _white_light(image: dict) -> dict | None:
    """The white-light image as ``{"data": (H, W, 3) uint8, "pixel_size", "origin", "units"}``."""
    rgb = np.asarray(image["data"])
    names = rgb.dtype.names or ()
    if not all(c in names for c in "RGB"):
        return None
    data = np.stack([rgb[c] for c in "RGB"], axis=-1).astype(np.uint8, copy=False)
    by_name = {str(a.get("name", "")).lower(): a for a in image.get("axes", [])}
    if "x" not in by_name or "y" not in by_name:
        return None
    ay, ax = by_name["y"], by_name["x"]
    return {
        "data": data,
        "pixel_size": [float(ay.get("scale", 1.0)), float(ax.get("scale", 1.0))],
        "origin": [float(ay.get("offset", 0.0)), float(ax.get("offset", 0.0))],
        "units": str(ax.get("units") or "µm"),
    }


def _get(tree: dict, *keys):
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _plain(value):
    """A JSON-safe Python scalar from a NumPy one."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _acquisition(metadata: dict, what: str, wdf: dict | None) -> dict:
    """Laser, exposure, accumulations, objective, date, instrument: what the file states."""
    laser = _get(metadata, "Acquisition_instrument", "Laser") or {}
    detector = _get(metadata, "Acquisition_instrument", "Detector") or {}
    spectrometer = _get(metadata, "Acquisition_instrument", "Spectrometer") or {}
    general = metadata.get("General", {})
    frames = _plain(detector.get("frames"))
    if isinstance(frames, float) and frames.is_integer():
        frames = int(frames)
    total = _plain(detector.get("integration_time"))
    exposure = _plain(detector.get("exposure_per_frame"))
    if exposure is None and total is not None and frames:
        exposure = float(total) / float(frames)
    date = " ".join(str(general[k]) for k in ("date", "time") if general.get(k))
    magnification = _plain(laser.get("objective_magnification"))
    fields = {
        "instrument": what.rsplit(" ", 1)[0],
        "title": general.get("title"),
        "date": date or None,
        "laser_wavelength_nm": _plain(laser.get("wavelength")),
        "exposure_s": exposure,
        "accumulations": frames,
        "integration_time_s": total,
        "objective": f"{magnification:g}x" if magnification else None,
        "grating_lines_per_mm": _plain(_get(spectrometer, "Grating", "groove_density")),
        "spectrometer": spectrometer.get("model"),
        "detector": detector.get("model"),
    }
    if wdf is not None:
        fields["measurement"] = wdf["kind"]
        fields["scan_type"] = wdf["scan"]
        fields["spectra_measured"] = wdf["measured"]
        fields["spectra_planned"] = wdf["capacity"]
    return {k: (float(v) if isinstance(v, float) else v) for k, v in fields.items() if v is not None}


def about(metadata: dict, shape, wavenumbers, what: str) -> str:
    """One sentence about a cube: what, how big, which axis, and how it was acquired."""
    bands, rows, cols = shape
    kind = metadata["format"].split(":", 1)[1]
    step_y, step_x = metadata["pixel_size"]
    units = metadata["space_units"]
    if kind == "spectrum":
        grid = "one spectrum"
    elif units[0] == "pixel":
        grid = f"{rows} x {cols} pixels"
    elif kind == "map":
        grid = f"{rows} x {cols} pixels of {step_y:.4g} x {step_x:.4g} {units[1]}"
    elif kind == "line":
        grid = f"{max(rows, cols)} spectra, {max(step_y, step_x):.4g} {units[1]} apart"
    else:
        grid = f"{rows} spectra, {step_y:.4g} {units[0]} apart"
    unit = metadata["spectral_unit"]
    axis = "" if wavenumbers is None else f" ({wavenumbers[0]:.1f}-{wavenumbers[-1]:.1f} {unit})"
    parts = [f"{what} {kind}: {grid}, {bands} bands{axis}"]
    acquisition = metadata.get("acquisition", {})
    if "laser_wavelength_nm" in acquisition:
        parts.append(f"laser {acquisition['laser_wavelength_nm']:.1f} nm")
    if "exposure_s" in acquisition:
        times = f"{acquisition['accumulations']} x " if acquisition.get("accumulations") else ""
        parts.append(f"{times}{acquisition['exposure_s']:.3g} s")
    if "objective" in acquisition:
        parts.append(f"objective {acquisition['objective']}")
    if "date" in acquisition:
        parts.append(acquisition["date"])
    if acquisition.get("spectra_measured", 0) < acquisition.get("spectra_planned", 0):
        parts.append(f"stopped early ({acquisition['spectra_measured']} of {acquisition['spectra_planned']} spectra)")
    return "; ".join(parts)
