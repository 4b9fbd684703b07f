"""``save_cube``: write a cube so that :func:`napari_deeper.io.load_cube` reads it back exactly.

Layouts written (documented in docs/formats.md):

- ``.npy``: the ``(B, Y, X)`` float32 data only; the spectral axis goes to a sidecar
  ``<name>_wavenumbers.npy`` (``<name>_wavelengths.npy`` for data in nm).
- ``.npz``: ``data`` ``(B, Y, X)`` float32, ``wavenumbers`` float64 (if any), ``napari_deeper``
  (the metadata as a JSON string, with ``spectral_unit``), and ``companion_<name>`` cubes.
- ``.zarr`` (a folder, :func:`napari_deeper.io.save_zarr`): ``data`` ``(B, Y, X)`` float32 chunked
  as every band of 64 x 64 pixels, ``wavenumbers``, the record as the ``napari_deeper`` attribute;
  written tile by tile, so a lazy cube larger than memory is exported too.
- ``.mat`` (MATLAB v5): ``data`` ``(Y, X, B)`` single (MATLAB's rows x columns x bands),
  ``wavenumbers`` 1 x B double, ``spectral_unit`` and ``napari_deeper`` (JSON) as text, and
  ``companion_<name>`` cubes as ``(Y, X, B)`` too.

Companion names are made into identifiers (ASCII letters, digits, ``_``; at most 63 characters
with the prefix, MATLAB's limit); names that would then collide get ``_2``, ``_3``... and the
record keeps every original name, so no companion is lost or renamed on reading back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .._validation import as_cube, as_wavenumbers
from ._cube import Cube, parse_unit
from ._lazy import is_lazy
from ._read import COMPANION_PREFIX, OWN_RECORD
from ._zarr import ZARR_SUFFIX, write_zarr_steps

SPECTRAL_UNITS = ("1/cm", "nm")
FORMAT_VERSION = 1
# MATLAB v5 files store each variable's size in 32 bits.
_MAT_V5_MAX_BYTES = 2**31 - 1
# MATLAB's longest variable name.
_MAT_NAME_CHARS = 63


def save_cube(cube, path, wavenumbers=None, metadata: dict | None = None) -> list[str]:
    """Write ``cube`` (a :class:`Cube`, or a ``(B, Y, X)`` array) to ``.npy``, ``.npz``, ``.mat`` or
    a ``.zarr`` store (see :func:`save_zarr`).

    ``wavenumbers`` and ``metadata`` override the Cube's own (or go with a bare array).
    NaN / Inf values are written as they are. Returns the paths written.
    """
    path = Path(path)
    if isinstance(cube, Cube):
        data = cube.data
        wavenumbers = cube.wavenumbers if wavenumbers is None else wavenumbers
        metadata = {**cube.metadata, **(metadata or {})}
    else:
        data = cube
        metadata = dict(metadata or {})
    if path.suffix.lower() == ZARR_SUFFIX:
        if metadata.get("companions"):
            raise ValueError(
                f"a zarr store holds one cube; {path.name} cannot keep the companions "
                f"{', '.join(map(str, metadata['companions']))}: save them as .npz, or each to its own store"
            )
        return [str(save_zarr(data, path, wavenumbers, metadata))]
    if is_lazy(data):
        raise ValueError(f"a lazy (dask) cube is written to a .zarr store, not to {path.name}: it may not fit in memory")
    data = as_cube(data, "cube data", allow_nonfinite=True, check_range=False)
    wavenumbers = as_wavenumbers(wavenumbers, data.shape[0])
    given_unit = metadata.get("spectral_unit") or "1/cm"
    unit = parse_unit(given_unit)
    if unit not in SPECTRAL_UNITS:
        raise ValueError(f"spectral_unit must be one of {SPECTRAL_UNITS}, got {given_unit!r}")
    companions = {
        str(name): as_cube(array, f"companion {name!r}", allow_nonfinite=True, check_range=False)
        for name, array in (metadata.get("companions") or {}).items()
    }
    ext = path.suffix.lower()
    if ext not in (".npy", ".npz", ".mat"):
        raise ValueError(f"cannot save to {path.name}: use a .npy, .npz or .mat file name")
    if not path.parent.is_dir():
        raise ValueError(f"cannot save to {path}: the folder {path.parent} does not exist")
    data = _detach_from(data, path)
    stored = companion_names(companions, _MAT_NAME_CHARS if ext == ".mat" else None)
    record = _record(metadata, unit)
    record["companion_names"] = {key[len(COMPANION_PREFIX):]: name for name, key in stored.items()}
    record = json.dumps(record)
    companions = {stored[name]: array for name, array in companions.items()}
    if ext == ".npy":
        return _save_npy(data, wavenumbers, unit, path)
    if ext == ".npz":
        arrays = {"data": data, OWN_RECORD: np.array(record)}
        if wavenumbers is not None:
            arrays["wavenumbers"] = wavenumbers
        arrays.update(companions)
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
        return [str(path)]
    return _save_mat(data, wavenumbers, unit, record, companions, path)


def save_zarr_steps(data, path, wavenumbers=None, metadata: dict | None = None, *, chunks=None,
                    overwrite: bool = True):
    """Write a cube ``(B, Y, X)`` or a map ``(Y, X)`` / ``(k, Y, X)`` to a zarr store, tile by tile,
    yielding progress; return the store's path.

    ``data`` may be a NumPy array, a memory map or a dask array (read one tile of every band at a
    time). ``chunks`` defaults to every band (or map) of 64 x 64 pixels, so a spectrum is one chunk.
    The store is complete or absent: it is written beside its name and moved there at the end.
    """
    path = Path(path)
    metadata = dict(metadata or {})
    shape = getattr(data, "shape", None)
    if shape is None or len(shape) not in (2, 3) or 0 in tuple(shape):
        raise ValueError(f"a zarr store takes a (bands, y, x) cube or a (y, x) map; got shape {shape}")
    if np.dtype(data.dtype).kind not in "iuf":
        raise ValueError(f"cube data must hold real numbers (integers or floats), got dtype {data.dtype}")
    n_bands = int(shape[0]) if len(shape) == 3 else 1
    wavenumbers = as_wavenumbers(wavenumbers, n_bands) if len(shape) == 3 else None
    given_unit = metadata.get("spectral_unit") or "1/cm"
    unit = parse_unit(given_unit)
    if unit not in SPECTRAL_UNITS:
        raise ValueError(f"spectral_unit must be one of {SPECTRAL_UNITS}, got {given_unit!r}")
    record = _record({k: v for k, v in metadata.items() if k not in ("lazy", "container", "source")}, unit)
    return (yield from write_zarr_steps(data, path, wavenumbers, record, chunks=chunks, overwrite=overwrite))


def save_zarr(data, path, wavenumbers=None, metadata: dict | None = None, *, chunks=None, overwrite: bool = True):
    """:func:`save_zarr_steps` run to the end: the path of the store written."""
    from ..compute import run

    return run(save_zarr_steps(data, path, wavenumbers, metadata, chunks=chunks, overwrite=overwrite))


def companion_names(companions: dict, max_chars: int | None = None) -> dict[str, str]:
    """Original companion name -> the variable name it is stored under (distinct, prefixed).

    Each name becomes an ASCII identifier after ``companion_``, cut to ``max_chars`` in all;
    a name that would then collide with an earlier one gets ``_2``, ``_3``... (inside the cut).
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in companions:
        base = COMPANION_PREFIX + _identifier(name)
        candidate, number = base[:max_chars], 1
        while candidate in taken:
            number += 1
            suffix = f"_{number}"
            candidate = (base[: max_chars - len(suffix)] if max_chars else base) + suffix
        taken.add(candidate)
        out[name] = candidate
    return out


def _save_npy(data, wavenumbers, unit, path: Path) -> list[str]:
    np.save(path, np.ascontiguousarray(data))
    written = [str(path)]
    if wavenumbers is not None:
        sidecar = path.with_name(f"{path.stem}_{'wavelengths' if unit == 'nm' else 'wavenumbers'}.npy")
        np.save(sidecar, wavenumbers)
        written.append(str(sidecar))
    return written


def _save_mat(data, wavenumbers, unit, record, companions, path: Path) -> list[str]:
    import scipy.io as sio

    for name, array in {"data": data, **companions}.items():
        if array.nbytes > _MAT_V5_MAX_BYTES:
            raise ValueError(
                f"{name} is {array.nbytes / 2**30:.1f} GiB; MATLAB v5 files hold at most 2 GiB "
                "per variable: save as .npy or .npz instead"
            )
    variables = {
        "data": np.transpose(data, (1, 2, 0)),
        "spectral_unit": unit,
        OWN_RECORD: record,
    }
    if wavenumbers is not None:
        variables["wavenumbers"] = wavenumbers.reshape(1, -1)
    for name, array in companions.items():
        variables[name] = np.transpose(array, (1, 2, 0))
    sio.savemat(str(path), variables, do_compression=False)
    return [str(path)]


def _record(metadata: dict, unit: str) -> dict:
    """The JSON-safe part of the metadata (arrays and companions are stored as arrays)."""
    record = {}
    for key, value in metadata.items():
        if key == "companions":
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        record[key] = value
    record["spectral_unit"] = unit
    record["napari_deeper_format_version"] = FORMAT_VERSION
    return record


def _identifier(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", str(name)) or "unnamed"


def _detach_from(data: np.ndarray, path: Path) -> np.ndarray:
    """A memory map of the very file being overwritten must be read into memory first."""
    if not path.exists():
        return data
    array = data
    while isinstance(array, np.ndarray):
        filename = getattr(array, "filename", None)
        if filename and Path(filename).resolve() == path.resolve():
            return np.array(data)
        array = array.base
    return data
