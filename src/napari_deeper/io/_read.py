"""``load_cube``: recognise a file's layout and turn it into a float32 ``(B, Y, X)`` :class:`Cube`.

The layouts, tried in this order on the named arrays of a ``.mat`` or ``.npz`` file:

1. a file written by :func:`napari_deeper.io.save_cube` (it carries a ``napari_deeper`` record);
2. a WITec Project FIVE / Eigenvector "dataset" struct (``data``, ``imagesize``, ``axisscale``);
3. a noise-learning set (``cube`` / ``lcube`` / ``noise`` as bands x pixels, ``x``, ``size``);
4. a DeepeR denoising set (``Inputs``/``Outputs``, ``Train_*``/``Test_*`` or ``data``, pixels x bands);
5. otherwise the largest numeric 2-D or 3-D array (a DeepeR super-resolution image, etc.).

A ``.npy`` holds one array. Every guess (which axis holds the bands, how N spectra fold into an
image, which unit) is written to ``metadata["choices"]`` so that the user can see and undo it.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ._cube import (
    NONFINITE_MODES,
    Cube,
    axes_label,
    check_array_header,
    check_shape,
    count_nonfinite,
    describe,
    image_shape,
    is_numeric,
    parse_axes,
    parse_shape,
    parse_unit,
    spectral_axes_2d,
    spectral_axis_3d,
    to_byx,
)
from ._lazy import from_array, is_lazy, to_byx_lazy, wants_lazy
from ._text import TEXT_EXTENSIONS, read_text
from ._variables import (
    STREAM_ERRORS,
    Variable,
    as_text,
    matlab_hdf5_variables,
    matlab_v5_variables,
    npz_variables,
    read_npy_header,
)
from ._vendor import VENDOR_EXTENSIONS, read_vendor
from ._zarr import ZARR_SUFFIX, holds_map, is_store, read_zarr

EXTENSIONS = (".mat", ".npy", ".npz", ZARR_SUFFIX, *VENDOR_EXTENSIONS, *TEXT_EXTENSIONS)

#: Names under which files store the spectral axis, with the unit each name implies.
WAVENUMBER_KEYS = ("wavenumbers", "wavenumber", "raman_shift", "ramanshift", "shift", "wn", "axis", "x")
WAVELENGTH_KEYS = ("wavelengths", "wavelength", "lambda", "wl")
UNIT_KEYS = ("spectral_unit", "unit", "units")

DEEPER_MAIN = ("Inputs", "Train_Inputs", "Test_Inputs", "data")
DEEPER_PAIRED = ("Outputs", "Train_Outputs", "Test_Outputs")
NOISE_LEARNING = ("cube", "lcube", "noise")
OWN_RECORD = "napari_deeper"
COMPANION_PREFIX = "companion_"
DEFAULT_UNIT_NOTE = "the file does not state the spectral unit: assumed 1/cm"
#: Bytes a text sidecar may hold per spectral value (a number, a separator, some padding).
TEXT_BYTES_PER_VALUE = 100


def load_cube(path, shape=None, layout=None, nonfinite: str = "raise", raman_shift: bool | None = None,
              lazy: bool | None = None) -> Cube:
    """Read a hyperspectral cube from a ``.mat`` (v4-v7.3), ``.npy`` or ``.npz`` file, a zarr store
    (a ``.zarr`` folder), an instrument file (Renishaw ``.wdf``, Horiba LabSpec 6 ``.xml``,
    Trivista ``.tvf``; needs the ``formats`` extra) or a text table (``.txt``, ``.csv``, ``.tsv``).

    Parameters
    ----------
    path : str or Path
    shape : (Y, X), optional
        Image shape for files that store N spectra as a (pixels, bands) matrix; overrides the
        size stored in the file and the square / strip guesses.
    layout : str, optional
        The stored array's axes, to skip the guessing: "byx", "yxb", "xyb", ... for 3-D
        arrays, "nb" (pixels x bands) or "bn" for 2-D ones, as NumPy / ``scipy.io.loadmat``
        shows the array.
    nonfinite : "raise" | "zero" | "keep"
        NaN / Inf values: raise a ValueError that counts them (default), replace them with 0
        (noted in the metadata), or keep them as they are.
    raman_shift : bool, optional
        Instrument files with a wavelength axis: None converts it to Raman shift (1/cm) when the
        file states the laser line and the data look like Raman data; True always converts,
        False keeps the wavelengths (see docs/formats.md).
    lazy : bool, optional
        Leave the values on disk and return a dask array that reads them chunk by chunk when
        sliced: zarr stores always; ``.npy`` and MATLAB v7.3 (HDF5) 3-D cubes when True, or, with
        None, when the cube is larger than a quarter of the RAM. Other files are read whole.
        A lazy cube is not scanned for NaN / Inf at open (``nonfinite="zero"`` replaces them as
        the chunks are read); ``metadata["lazy"]`` is then True.

    Returns a :class:`Cube` (``data`` float32 ``(B, Y, X)``; a float32 ``(B, Y, X)`` ``.npy``
    stays a read-only memory map). Anything that is not a readable cube raises a ValueError
    that says what was found.
    """
    if nonfinite not in NONFINITE_MODES:
        raise ValueError(f"nonfinite must be one of {', '.join(NONFINITE_MODES)}; got {nonfinite!r}")
    path = as_path(path)
    if path.suffix.lower() == ZARR_SUFFIX or is_store(path):
        wants_lazy(lazy, ())  # checks the value; a zarr store always opens lazily
        if shape is not None:
            raise ValueError(f"shape= folds a (pixels, bands) matrix into an image; {path.name} holds a 3-D cube: leave it out")
        return _finish(read_zarr(path, layout), path, nonfinite)
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        raise ValueError(f"{path.name}: unsupported file type {ext!r}; napari-deeper reads {', '.join(EXTENSIONS)}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path.name} is an empty file")
    if shape is not None:
        shape = parse_shape(shape)
    if ext in VENDOR_EXTENSIONS:
        cube = read_vendor(path, shape, layout, raman_shift)
    elif ext in TEXT_EXTENSIONS:
        cube = read_text(path, shape, layout)
    else:
        if ext == ZARR_SUFFIX:
            raise ValueError(f"{path.name} is a file, not a zarr store (a folder)")
        reader = {".npy": _read_npy, ".npz": _read_npz, ".mat": _read_mat}[ext]
        wants_lazy(lazy, ())
        cube = reader(path, shape, layout, lazy)
    return _finish(cube, path, nonfinite)


def as_path(path) -> Path:
    """A file name (str, bytes or os.PathLike) as a Path, or a ValueError saying what was given."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise ValueError(
            f"path must be a file name (str or pathlib.Path), got {path!r} ({type(path).__name__})"
        )
    try:
        return Path(os.fsdecode(path))
    except (TypeError, ValueError) as error:
        raise ValueError(f"path {path!r} is not a usable file name: {error}") from None


# --- per container -------------------------------------------------------------------------


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes the header promises) of a ``.npy`` file, reading only its header."""
    with open(path, "rb") as handle:
        stored_shape, _fortran_order, dtype = read_npy_header(handle, path.name)
        offset = handle.tell()
    stored_shape = tuple(int(n) for n in stored_shape)
    return stored_shape, dtype, offset + int(np.prod(stored_shape)) * dtype.itemsize


def check_npy_size(path: Path, shape, dtype, needed: int) -> None:
    """Refuse a ``.npy`` file smaller than its header promises."""
    size = path.stat().st_size
    if size < needed:
        raise ValueError(
            f"{path.name} is truncated: its header promises a {describe(shape, dtype)} array "
            f"({needed:,} bytes) but the file has {size:,} bytes"
        )


def _read_npy(path: Path, shape, layout, lazy=None) -> Cube:
    stored_shape, dtype, needed = npy_header(path)
    check_array_header(stored_shape, dtype, f"{path.name} {describe(stored_shape, dtype)}")
    check_npy_size(path, stored_shape, dtype, needed)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, OverflowError) as error:
        raise ValueError(f"{path.name} could not be memory-mapped: {error}") from None
    variable = Variable(path.stem, "numeric", tuple(stored_shape), dtype, lambda: array, lazy_load=lambda: from_array(array))
    context = _Context(path, "npy", shape, layout, lazy)
    wavenumbers = context.sidecar(stored_shape)
    data, axes, choices = context.arrange(variable, _length(wavenumbers))
    return context.cube(data, wavenumbers, f"npy:{axes_label(axes)}", axes, choices)


def _read_npz(path: Path, shape, layout, lazy=None) -> Cube:
    try:
        variables = npz_variables(path)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"{path.name} is not a readable .npz archive: {error}") from None
    except STREAM_ERRORS as error:
        raise ValueError(f"{path.name} is a damaged .npz archive: {type(error).__name__}: {error}") from None
    return _guarded(path, lambda: _interpret(variables, _Context(path, "npz", shape, layout)))


def _read_mat(path: Path, shape, layout, lazy=None) -> Cube:
    import scipy.io.matlab as matlab

    try:
        major, _minor = matlab.matfile_version(str(path))
    except Exception:  # noqa: BLE001 - any failure here means "not a v4-v7 MAT file"
        major = None
    if major in (0, 1):
        try:
            variables = matlab_v5_variables(path)
        except Exception as error:  # noqa: BLE001 - scipy raises many types on damaged files
            raise ValueError(f"{path.name} is not a readable MATLAB file: {error}") from None
        return _guarded(path, lambda: _interpret(variables, _Context(path, "mat", shape, layout)))
    import h5py

    if not h5py.is_hdf5(str(path)):
        raise ValueError(
            f"{path.name} is not a MATLAB file (neither a v4-v7 MAT file nor a v7.3 / HDF5 one)"
        )
    try:
        h5file = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path.name} is not a readable MATLAB v7.3 (HDF5) file: {error}") from None
    context = _Context(path, "mat-v7.3", shape, layout, lazy)
    try:
        cube = _guarded(path, lambda: _interpret(matlab_hdf5_variables(h5file, context.notes), context))
    except BaseException:
        h5file.close()
        raise
    if not (is_lazy(cube.data) or any(is_lazy(c) for c in cube.metadata.get("companions", {}).values())):
        h5file.close()  # a lazy cube reads from the open file for as long as it is used
    return cube


def _guarded(path: Path, read):
    """Run ``read``; turn low-level read failures (damaged data blocks) into ValueErrors that
    name the file."""
    try:
        return read()
    except ValueError as error:
        if path.name in str(error):
            raise
        raise ValueError(f"{path.name}: {error}") from None
    except Exception as error:  # noqa: BLE001 - scipy / h5py raise many types on damaged files
        raise ValueError(
            f"{path.name} is damaged or truncated: {type(error).__name__}: {error}"
        ) from None


# --- layouts -------------------------------------------------------------------------------


def _interpret(variables: dict[str, Variable], context: _Context) -> Cube:
    context.variables = variables
    numeric = {n: v for n, v in variables.items() if v.kind == "numeric"}
    if OWN_RECORD in variables and "data" in numeric:
        return _own_format(variables, context)
    for name, variable in variables.items():
        if variable.kind == "struct":
            fields = variable.fields()
            if "data" in fields and fields["data"].kind == "numeric":
                return _witec_struct(name, fields, context)
    matrices = {n: v for n, v in numeric.items() if len(v.shape) == 2 and min(v.shape) > 1}
    if any(k in matrices for k in ("cube", "lcube")) or (
        "noise" in matrices and ("x" in numeric or "size" in numeric)
    ):
        return _noise_learning(matrices, numeric, context)
    if any(k in matrices for k in DEEPER_MAIN + DEEPER_PAIRED):
        return _deeper_pairs(matrices, numeric, context)
    return _largest_array(variables, numeric, context)


def _own_format(variables, context: _Context) -> Cube:
    """A file :func:`save_cube` wrote: no guesses; an unusable companion is skipped with a note."""
    record = _own_record(variables[OWN_RECORD], context)
    axes = "byx" if context.container == "npz" else "yxb"
    stored = axes_label(axes)
    main = variables["data"]
    what = f"{context.path.name}:data {describe(main.shape, main.dtype)}"
    if len(check_array_header(main.shape, main.dtype, what)) != 3:
        raise ValueError(f"{what} is not the {stored} cube napari-deeper writes")
    n_bands = int(main.shape[axes.index("b")])
    saved_unit = record.get("spectral_unit") or _text_of(context, UNIT_KEYS)
    unit = parse_unit(saved_unit) if saved_unit else None
    if saved_unit and unit is None:
        context.notes.append(
            f"the saved spectral unit {saved_unit!r} names neither a Raman shift (1/cm) nor a "
            "wavelength (nm): dropped, the axis is taken as 1/cm"
        )
    wavenumbers = None
    axis = variables.get("wavenumbers")
    if axis is not None and axis.kind == "numeric":
        values = _axis_values(context, axis, {n_bands})
        if values is not None:
            wavenumbers = (values, unit or "1/cm", "")
    data, _, _ = context.arrange(main, n_bands, layout=axes)
    stored_names = record.get("companion_names")
    stored_names = stored_names if isinstance(stored_names, dict) else {}
    companions = {}
    for name, variable in variables.items():
        if not name.startswith(COMPANION_PREFIX):
            continue
        label = str(stored_names.get(name[len(COMPANION_PREFIX):], name[len(COMPANION_PREFIX):]))
        try:
            if variable.kind != "numeric" or len(variable.shape) != 3:
                raise ValueError(
                    f"a {variable.kind} array of shape {describe(variable.shape)}, not a {stored} cube"
                )
            companions[label], _, _ = context.arrange(variable, n_bands, layout=axes)
        except ValueError as error:
            context.notes.append(f"companion {label!r} skipped: {error}")
    cube = context.cube(data, wavenumbers, f"napari-deeper:{context.container}", axes, [])
    saved = {k: v for k, v in record.items() if k not in cube.metadata and k != "companion_names"}
    cube.metadata.update(saved)
    if "format" in record:
        cube.metadata["saved_from_format"] = record["format"]
    cube.metadata["companions"] = companions
    return cube


def _own_record(variable: Variable, context: _Context) -> dict:
    """The JSON metadata record of an own-format file ({} with a note when it is unusable)."""
    text = variable.text() if variable.kind == "char" else None
    try:
        record = json.loads(text or "{}")
    except json.JSONDecodeError:
        record = None
    if not isinstance(record, dict):
        context.notes.append(f"the {OWN_RECORD!r} record is not a JSON object: its metadata is ignored")
        record = {}
    return record


def _witec_struct(name: str, fields: dict[str, Variable], context: _Context) -> Cube:
    """WITec Project FIVE export: ``data`` (pixels x bands), ``imagesize`` [ny nx], ``axisscale``."""
    data_variable = fields["data"]
    check_array_header(data_variable.shape, data_variable.dtype, f"{name}.data {describe(data_variable.shape, data_variable.dtype)}")
    file_shape = None
    if "imagesize" in fields and fields["imagesize"].kind == "numeric":
        size = np.asarray(fields["imagesize"].load()).ravel()
        file_shape = tuple(int(v) for v in size[:2]) if size.size >= 2 else None
    wavenumbers = None
    if "axisscale" in fields and fields["axisscale"].kind == "cell":
        scale = np.asarray(fields["axisscale"].load(), dtype=object)
        if scale.ndim == 2 and scale.shape[0] >= 2:
            values = scale[1, 0]
            label = as_text(scale[1, 1]) if scale.shape[1] >= 2 else None
            if isinstance(values, np.ndarray) and values.dtype.kind in "iuf" and values.size > 1:
                unit = parse_unit(label) if label else None
                wavenumbers = (np.asarray(values, dtype=np.float64).ravel(), unit, "axisscale{2,1}")
    data, axes, choices = context.arrange(
        data_variable, _length(wavenumbers), file_shape=file_shape, bands_first=False
    )
    space = _witec_image_axes(fields, data.shape[1:])
    cube = context.cube(data, wavenumbers, "witec-struct", axes, choices)
    if space is not None:
        cube.metadata.update(space)
    title = as_text(fields["name"].load()) if "name" in fields else None
    cube.metadata["variable"] = name
    if title:
        cube.metadata["title"] = title
    return cube


def _witec_image_axes(fields: dict[str, Variable], image_shape) -> dict | None:
    """Pixel size and origin from a WITec struct's ``imageaxisscale`` {y positions; x positions}.

    Used only when both axes list one evenly spaced position per pixel. The struct does not name
    the positions' unit; WITec Project writes them in µm.
    """
    if "imageaxisscale" not in fields or fields["imageaxisscale"].kind != "cell":
        return None
    scale = np.asarray(fields["imageaxisscale"].load(), dtype=object)
    if scale.ndim != 2 or scale.shape[0] < 2:
        return None
    steps, origin = [], []
    for values, n in zip(scale[:2, 0], image_shape):
        if not isinstance(values, np.ndarray) or values.dtype.kind not in "iuf" or values.size != n or n < 2:
            return None
        values = np.asarray(values, dtype=np.float64).ravel()
        step = np.diff(values)
        if not np.all(np.isfinite(values)) or not np.allclose(step, step[0], rtol=1e-6) or step[0] == 0:
            return None
        steps.append(float(step[0]))
        origin.append(float(values[0]))
    return {"pixel_size": steps, "origin": origin, "space_units": ["µm", "µm"], "space_axes": ["y", "x"]}


def _noise_learning(matrices, numeric, context: _Context) -> Cube:
    """Noise-learning sets: ``cube`` / ``lcube`` / ``noise`` are bands x pixels, ``x`` the axis."""
    present = [k for k in NOISE_LEARNING if k in matrices]
    main = present[0]
    wavenumbers = _vector(context, ("x",), matrices[main].shape)
    file_shape = None
    if "size" in numeric:
        size = np.asarray(numeric["size"].load()).ravel()
        file_shape = tuple(int(v) for v in size[:2]) if size.size >= 2 else None
    data, axes, choices = context.arrange(
        matrices[main], _length(wavenumbers), file_shape=file_shape, bands_first=True
    )
    cube = context.cube(data, wavenumbers, f"noise-learning:{main}", axes, choices)
    cube.metadata["companions"] = context.companions(
        {k: matrices[k] for k in present[1:]}, cube, file_shape=file_shape, bands_first=True
    )
    return cube


def _deeper_pairs(matrices, numeric, context: _Context) -> Cube:
    """DeepeR denoising sets: N x bands matrices; the axis comes from a sidecar ``axis.txt``."""
    names = [k for k in DEEPER_MAIN + DEEPER_PAIRED if k in matrices]
    main = names[0]
    lengths = matrices[main].shape
    wavenumbers = _vector(context, WAVENUMBER_KEYS + WAVELENGTH_KEYS, lengths) or context.sidecar(lengths)
    data, axes, choices = context.arrange(matrices[main], _length(wavenumbers), bands_first=False)
    cube = context.cube(data, wavenumbers, f"deeper-pairs:{main}", axes, choices)
    cube.metadata["companions"] = context.companions(
        {k: matrices[k] for k in names[1:]}, cube, bands_first=False
    )
    return cube


def _largest_array(variables, numeric, context: _Context) -> Cube:
    candidates = {
        n: v for n, v in numeric.items() if len(v.shape) >= 2 and sorted(v.shape)[-2] > 1
    }
    if not candidates:
        found = ", ".join(f"{n} ({v.kind} {describe(v.shape)})" for n, v in variables.items()) or "nothing"
        raise ValueError(
            f"{context.path.name} holds no numeric 2-D or 3-D array to read as a cube; found: {found}"
        )
    name = max(candidates, key=lambda n: int(np.prod(candidates[n].shape)))
    lengths = candidates[name].shape
    wavenumbers = _vector(context, WAVENUMBER_KEYS + WAVELENGTH_KEYS, lengths, exclude=name) or context.sidecar(lengths)
    data, axes, choices = context.arrange(candidates[name], _length(wavenumbers))
    if len(candidates) > 1:
        others = ", ".join(n for n in candidates if n != name)
        choices.insert(0, f"read {name!r}, the largest numeric array (also in the file: {others})")
    container = "mat" if context.container.startswith("mat") else context.container
    cube = context.cube(data, wavenumbers, f"{container}:{name}:{axes_label(axes)}", axes, choices)
    cube.metadata["variable"] = name
    return cube


def _vector(context: _Context, keys, lengths, exclude=None):
    """(values, unit, where) of the first spectral vector stored under one of ``keys``.

    The unit is the one a ``spectral_unit`` text states, else the one the name implies
    ("wavelengths" -> nm, "wavenumbers" -> 1/cm; "x" and "axis" say nothing). A vector whose
    declared length is none of ``lengths`` (the data's axis lengths) is skipped unread.
    """
    for key in keys:
        variable = context.variables.get(key)
        if (
            variable is None
            or variable.kind != "numeric"
            or key == exclude
            or sum(n > 1 for n in variable.shape) != 1
        ):
            continue
        values = _axis_values(context, variable, lengths)
        if values is None:
            continue
        stated_text = _text_of(context, UNIT_KEYS)
        stated = parse_unit(stated_text or "")
        if stated_text and stated is None:
            context.notes.append(f"spectral unit {stated_text!r} not understood (1/cm or nm expected): ignored")
        implied = "nm" if key in WAVELENGTH_KEYS else None if key in ("x", "axis") else "1/cm"
        return values, stated or implied, f"variable {key!r}"
    return None


def _axis_values(context: _Context, variable: Variable, lengths) -> np.ndarray | None:
    """A spectral vector's values, or None (noted, nothing read) when its length fits no axis."""
    count = int(np.prod(variable.shape))
    if count not in {int(n) for n in lengths}:
        context.notes.append(
            f"spectral axis from variable {variable.name!r} has {count} values but no axis of the "
            f"data {describe(lengths)} has that length: ignored, not read"
        )
        return None
    return np.asarray(variable.load(), dtype=np.float64).ravel()


def _length(wavenumbers) -> int | None:
    return None if wavenumbers is None else int(wavenumbers[0].size)


#: Longest text read as a unit (a longer char array is not a unit).
_MAX_UNIT_CHARS = 64


def _text_of(context: _Context, keys) -> str | None:
    for key in keys:
        variable = context.variables.get(key)
        if variable is not None and variable.kind == "char" and int(np.prod(variable.shape)) <= _MAX_UNIT_CHARS:
            return variable.text()
    return None


def sidecar_names(stem: str) -> list[tuple[str, str | None]]:
    """(file name, unit it implies) of the spectral-axis files looked for beside ``<stem>.*``."""
    return [
        (f"{stem}_wavenumbers.npy", "1/cm"),
        (f"{stem}_wavelengths.npy", "nm"),
        (f"{stem}_wavenumbers.txt", "1/cm"),
        (f"{stem}_wavelengths.txt", "nm"),
        (f"{stem}_axis.txt", None),
        ("axis.txt", None),
    ]


def is_plain_image(path) -> bool:
    """True for a ``.npy`` that holds an image, not a cube: a 2-D array (a map) or an RGB(A)
    ``(Y, X, 3 or 4)`` one, with no spectral-axis file beside it; and for a zarr store of a map.

    The napari reader leaves these to napari's own reader, so a map saved as ``.npy`` opens
    again as that map (``load_cube`` still reads a 2-D array as pixels x bands when asked).
    """
    path = Path(path)
    if path.suffix.lower() == ZARR_SUFFIX and is_store(path):
        return holds_map(path)
    if path.suffix.lower() != ".npy" or not path.is_file():
        return False
    try:
        shape, _dtype, _needed = npy_header(path)
    except ValueError:
        return False
    rgb = len(shape) == 3 and shape[2] in (3, 4) and min(shape[:2]) > 4
    if len(shape) != 2 and not rgb:
        return False
    return not any(path.with_name(name).is_file() for name, _unit in sidecar_names(path.stem))


# --- shared machinery ----------------------------------------------------------------------


class _Context:
    """What one load knows: the path, the container, the caller's overrides, and its notes."""

    def __init__(self, path: Path, container: str, shape, layout, lazy=None):
        self.path = path
        self.lazy = lazy
        self.container = container
        self.shape = shape
        self.layout = layout
        self.notes: list[str] = []
        self.variables: dict[str, Variable] = {}
        self.pixel_order = "F" if container.startswith("mat") else "C"
        self.prefer_last = container.startswith("mat")

    def arrange(self, variable: Variable, n_spectral, *, file_shape=None, bands_first=None, layout=None):
        """Check ``variable``'s header, decide its axes, load it and return ``(B, Y, X)`` data.

        ``n_spectral`` is the length of a known spectral axis (it picks the band axis).
        Returns the data, the stored axes ("yxb", "nb", ...) and the choices made.
        """
        what = f"{self.path.name}:{variable.name} {describe(variable.shape, variable.dtype)}"
        shape = check_array_header(variable.shape, variable.dtype, what)
        choices: list[str] = []
        layout = layout or self.layout
        if layout is not None:
            axes = parse_axes(layout, len(shape))
        elif len(shape) == 3:
            axis, why = spectral_axis_3d(shape, n_spectral, self.prefer_last)
            axes = {0: "byx", 1: "ybx", 2: "yxb"}[axis]
            choices.append(why)
        else:
            known = self.shape or file_shape
            n_pixels = None if known is None else int(np.prod(known))
            axes, why = spectral_axes_2d(shape, n_spectral, n_pixels, bands_first)
            choices.append(why)
        image = None
        if len(axes) == 2:
            n_pixels = shape[axes.index("n")]
            image, why = image_shape(n_pixels, self.shape, file_shape, self.pixel_order)
            choices.append(why)
        if len(axes) == 3 and variable.lazy_load is not None and self.shape is None and wants_lazy(self.lazy, shape):
            lazy = variable.lazy_load()
            if not (axes == "byx" and variable.dtype == np.float32 and self.container == "npy"):
                # (a float32 (B, Y, X) .npy stays the memory map it is: lazy already)
                data = to_byx_lazy(lazy.reshape(shape) if lazy.shape != shape else lazy, axes)
                return data, axes, [c for c in choices if c]
        array = variable.load()
        if not isinstance(array, np.ndarray) or not is_numeric(array.dtype):
            raise ValueError(f"{what} did not load as a numeric array")
        if array.shape != shape:
            array = array.reshape(shape)
        data = to_byx(array, axes, image, self.pixel_order)
        if len(axes) == 3 and self.shape is not None and data.shape[1:] != self.shape:
            check_shape(self.shape, data.shape[1] * data.shape[2])
            data = to_byx(data.reshape(data.shape[0], -1), "bn", self.shape, "C")
            choices.append(f"image refolded to {self.shape[0]} x {self.shape[1]} as asked (row-major)")
        return data, axes, [c for c in choices if c]

    def sidecar(self, lengths):
        """(values, unit, where) from a file next to this one, or None.

        ``lengths`` are the data's axis lengths: a sidecar declaring another length, or a text
        file larger than such an axis needs, is noted and not read.
        """
        lengths = {int(n) for n in lengths}
        for filename, unit in sidecar_names(self.path.stem):
            sidecar = self.path.with_name(filename)
            if not sidecar.is_file():
                continue
            try:
                values = self._sidecar_values(sidecar, lengths)
            except (ValueError, OSError, TypeError) as error:
                self.notes.append(f"could not read the spectral axis in {filename}: {error}")
                continue
            if values is not None:
                return values, unit, filename
        return None

    def _sidecar_values(self, sidecar: Path, lengths: set[int]) -> np.ndarray | None:
        """A sidecar's values as float64, checked from its header / size before reading."""
        if sidecar.suffix == ".npy":
            shape, dtype, needed = npy_header(sidecar)
            if not is_numeric(dtype) or sum(n > 1 for n in shape) > 1:
                raise ValueError(f"a {describe(shape, dtype)} array is not a spectral axis")
            count = int(np.prod(shape))
            if count not in lengths:
                self.notes.append(
                    f"spectral axis from {sidecar.name} has {count} values but no axis of the data "
                    f"{describe(sorted(lengths))} has that length: ignored, not read"
                )
                return None
            check_npy_size(sidecar, shape, dtype, needed)
            values = np.load(sidecar, allow_pickle=False)
        else:
            size, most = sidecar.stat().st_size, max(lengths)
            if size > TEXT_BYTES_PER_VALUE * most + 4096:
                self.notes.append(
                    f"{sidecar.name} is {size:,} bytes, more than a spectral axis of at most {most} "
                    "values needs: ignored, not read"
                )
                return None
            values = np.loadtxt(sidecar, dtype=np.float64, ndmin=1)
        return np.asarray(values, dtype=np.float64).ravel()

    def companions(self, variables: dict[str, Variable], cube: Cube, *, file_shape=None, bands_first=None) -> dict:
        """The other cubes of a paired set, arranged like the main one; unreadable ones noted."""
        out = {}
        n_bands = cube.data.shape[0]
        for name, variable in variables.items():
            try:
                data, _, choices = self.arrange(variable, n_bands, file_shape=file_shape, bands_first=bands_first)
            except ValueError as error:
                self.notes.append(f"companion {name!r} skipped: {error}")
                continue
            if data.shape[0] != n_bands:
                self.notes.append(f"companion {name!r} skipped: {data.shape[0]} bands, the main cube has {n_bands}")
                continue
            out[name] = data
            self.notes.extend(f"companion {name!r}: {c}" for c in choices if "square" in c or "strip" in c)
        return out

    def cube(self, data, wavenumbers, format_name: str, axes: str, choices: list[str]) -> Cube:
        unit = None
        axis = None
        if wavenumbers is not None:
            values, unit, where = wavenumbers
            if values.size != data.shape[0]:
                self.notes.append(
                    f"spectral axis from {where} has {values.size} values but the cube has "
                    f"{data.shape[0]} bands: ignored"
                )
                unit = None
            elif not np.all(np.isfinite(values)):
                self.notes.append(f"spectral axis from {where} contains NaN or Inf: ignored")
                unit = None
            else:
                axis = values
                if where and where.endswith((".npy", ".txt")):
                    self.notes.append(f"spectral axis read from {where}")
        if axis is not None and unit is None:
            choices = [*choices, DEFAULT_UNIT_NOTE]
        return Cube(
            data=data,
            wavenumbers=axis,
            metadata={
                "source": str(self.path),
                "format": format_name,
                "choices": "; ".join(choices),
                "spectral_unit": unit or "1/cm",
                "notes": self.notes,
                "companions": {},
                "container": self.container,
                "stored_axes": axes,
                "pixel_order": self.pixel_order if len(axes) == 2 else None,
            },
        )


def _finish(cube: Cube, path: Path, nonfinite: str) -> Cube:
    """Apply the NaN / Inf policy to the cube and its companions."""
    notes = cube.metadata.setdefault("notes", [])
    arrays = {"": cube.data, **cube.metadata.get("companions", {})}
    counts = {}
    for name, data in arrays.items():
        if nonfinite == "keep" and isinstance(data, np.memmap):
            continue
        if is_lazy(data):  # not read at open: NaN / Inf are met block by block when it is processed
            if nonfinite == "zero":
                fixed = data.map_blocks(np.nan_to_num, nan=0.0, posinf=0.0, neginf=0.0, dtype=np.float32)
                if name:
                    cube.metadata["companions"][name] = fixed
                else:
                    cube.data = fixed
                notes.append(f"{path.name}" + (f" ({name})" if name else "") + ": NaN and Inf values read as 0")
            continue
        n_nan, n_inf = count_nonfinite(data)
        counts[name] = (n_nan, n_inf)
        if not (n_nan or n_inf):
            continue
        what = f"{path.name}" + (f" ({name})" if name else "")
        if nonfinite == "raise":
            raise ValueError(
                f"{what} contains {n_nan} NaN and {n_inf} Inf values out of {data.size}; "
                "load with nonfinite='zero' to replace them with 0, or nonfinite='keep'"
            )
        if nonfinite == "zero":
            fixed = np.nan_to_num(np.array(data, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            if name:
                cube.metadata["companions"][name] = fixed
            else:
                cube.data = fixed
            notes.append(f"{what}: {n_nan} NaN and {n_inf} Inf values replaced with 0")
        else:
            notes.append(f"{what}: {n_nan} NaN and {n_inf} Inf values kept")
    if is_lazy(cube.data) or isinstance(cube.data, np.memmap):
        cube.metadata["lazy"] = True
    main = counts.get("")
    cube.metadata["nonfinite"] = None if main is None else {"nan": main[0], "inf": main[1]}
    return cube
