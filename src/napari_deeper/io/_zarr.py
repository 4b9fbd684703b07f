"""Zarr stores: cubes and maps opened lazily, and written block by block with whole spectra per chunk.

The layout napari-deeper writes (docs/formats.md) is a zarr group with

- ``data``: the ``(B, Y, X)`` float32 cube (or a ``(Y, X)`` / ``(k, Y, X)`` map), zstd-compressed,
  in shards of every band of :data:`TILE` x :data:`TILE` pixels (a spectrum is in one shard file,
  read with one request), each shard made of chunks of :data:`BAND_CHUNK` bands (showing one band
  reads 1/16th of a 500-band cube, not all of it);
- ``wavenumbers``: the ``(B,)`` float64 spectral axis, when there is one;
- the attribute ``napari_deeper``: the metadata record (the same JSON record ``.npz`` keeps).

A store is written in a hidden folder beside its final name and moved there only once complete:
a cancelled or failed write (a full disk) leaves nothing under the name asked for, and an
existing store of that name is replaced only when ``overwrite=True``, after the new one is whole.
"""

from __future__ import annotations

import errno
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..compute import Progress, Steps, run
from ._cube import Cube, axes_label, check_array_header, describe, parse_axes, parse_unit, spectral_axis_3d
from ._lazy import from_array, to_byx_lazy

ZARR_SUFFIX = ".zarr"
DATA = "data"
WAVENUMBERS = "wavenumbers"
RECORD = "napari_deeper"
#: Pixels along each side of a shard: a (500, 64, 64) float32 shard holds 8 MiB.
TILE = 64
#: Bands per chunk inside a shard.
BAND_CHUNK = 32
#: Names a foreign store may give its spectral axis, with the unit each implies.
AXIS_NAMES = {"wavenumbers": "1/cm", "wavenumber": "1/cm", "raman_shift": "1/cm", "wavelengths": "nm",
              "wavelength": "nm"}


def is_store(path) -> bool:
    """Whether ``path`` is a zarr store (a folder holding zarr v3 or v2 metadata)."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray"))


def chunk_shape(shape, tile: int = TILE) -> tuple[int, ...]:
    """Shards of a ``(..., Y, X)`` array: leading axes (bands, maps) whole, ``tile`` pixels a side."""
    shape = tuple(int(n) for n in shape)
    return (*shape[:-2], min(tile, shape[-2]), min(tile, shape[-1]))


def layout_of(shards) -> dict:
    """``create_array`` arguments for ``shards``: :data:`BAND_CHUNK`-band chunks inside every
    shard of a cube with more bands than that; plain chunks otherwise (maps, few bands)."""
    shards = tuple(int(n) for n in shards)
    if len(shards) < 3 or shards[0] <= BAND_CHUNK:
        return {"chunks": shards}
    whole = -(-shards[0] // BAND_CHUNK) * BAND_CHUNK  # a shard is a whole number of chunks
    return {"shards": (whole, *shards[1:]), "chunks": (BAND_CHUNK, *shards[1:])}


# --- reading ---------------------------------------------------------------------------------


def read_zarr(path: Path, layout=None) -> Cube:
    """A lazy :class:`Cube` from a zarr store: its data is a dask array, nothing is read but metadata.

    The cube is the store's ``data`` array, else its largest 3-D numeric array (a store that is
    one array is that array). A 1-D or 2-D array has no spectral axis next to its image axes and
    is refused; a 3-D one without a ``wavenumbers`` array keeps band numbers (noted), like a
    ``.npy`` without its sidecar.
    """
    import zarr

    if not is_store(path):
        raise ValueError(f"{path.name} is not a zarr store: a folder with zarr.json (v3) or .zgroup / .zarray (v2) expected")
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as error:  # noqa: BLE001 - zarr raises many types on damaged metadata
        raise ValueError(f"{path.name} is not a readable zarr store: {type(error).__name__}: {error}") from None
    if isinstance(node, zarr.Array):
        arrays, attrs = {path.stem: node}, dict(node.attrs)
    else:
        arrays, attrs = {name: node[name] for name in node.array_keys()}, dict(node.attrs)
    record = attrs.get(RECORD) if isinstance(attrs.get(RECORD), dict) else {}
    notes: list[str] = []
    name, array = _main_array(path, arrays)
    what = f"{path.name}:{name} {describe(array.shape, array.dtype)}"
    shape = check_array_header(array.shape, array.dtype, what)
    if len(array.shape) != 3:
        raise ValueError(
            f"{what} has no spectral axis: napari-deeper opens a zarr store's (bands, y, x) cube "
            f"(a 3-D array, its axis in a {WAVENUMBERS!r} array); a {len(array.shape)}-D array is a map or "
            "a matrix. Open a map with napari's own reader, or save the cube with napari_deeper.io.save_cube"
        )
    axis, unit = _spectral_axis(arrays, attrs, record, shape, notes)
    choices = []
    if record and layout is None:
        axes = "byx"
    elif layout is not None:
        axes = parse_axes(layout, 3)
    else:
        band, why = spectral_axis_3d(shape, None if axis is None else axis.size, prefer_last=False)
        axes = {0: "byx", 1: "ybx", 2: "yxb"}[band]
        choices.append(why)
    data = to_byx_lazy(from_array(array), axes)
    if axis is not None and axis.size != data.shape[0]:
        notes.append(f"spectral axis has {axis.size} values but the cube has {data.shape[0]} bands: ignored")
        axis = None
    if axis is None:
        notes.append("the store has no spectral axis (no 'wavenumbers' array): bands are numbered 0..B-1")
    if axes != "byx":
        notes.append(f"stored as {axes_label(axes)}: every band read gathers all chunks; save as (B,Y,X) for speed")
    metadata = {k: v for k, v in record.items() if k not in ("notes", "choices", "companions")}
    if "format" in record:
        metadata["saved_from_format"] = record["format"]
    metadata.update({
        "source": str(path),
        "format": f"zarr:{name}:{axes_label(axes)}" if not record else "napari-deeper:zarr",
        "choices": "; ".join(c for c in choices if c),
        "spectral_unit": unit or "1/cm",
        "notes": notes,
        "companions": {},
        "container": "zarr",
        "stored_axes": axes,
        "pixel_order": None,
        "lazy": True,
    })
    return Cube(data=data, wavenumbers=axis, metadata=metadata)


def holds_map(path) -> bool:
    """Whether a zarr store's main array is a 2-D (or 1-D) image rather than a cube (metadata only)."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
        arrays = {Path(path).stem: node} if isinstance(node, zarr.Array) else {n: node[n] for n in node.array_keys()}
        return len(_main_array(Path(path), arrays)[1].shape) < 3
    except Exception:  # noqa: BLE001 - an unreadable store is left to the reader, which says why
        return False


def _main_array(path: Path, arrays: dict):
    if DATA in arrays:
        return DATA, arrays[DATA]
    numeric = {n: a for n, a in arrays.items() if np.dtype(a.dtype).kind in "iuf" and len(a.shape) >= 1}
    if not numeric:
        found = ", ".join(f"{n} {describe(a.shape, a.dtype)}" for n, a in arrays.items()) or "no arrays"
        raise ValueError(f"{path.name} holds no numeric array to read as a cube; found: {found}")
    cubes = {n: a for n, a in numeric.items() if len(a.shape) == 3} or numeric
    name = max(cubes, key=lambda n: (len(cubes[n].shape), int(np.prod(cubes[n].shape))))
    return name, cubes[name]


def _spectral_axis(arrays: dict, attrs: dict, record: dict, shape, notes: list[str]):
    """(values, unit) of the store's spectral axis, or (None, None)."""
    stated = parse_unit(record.get("spectral_unit") or attrs.get("spectral_unit") or "")
    for name, unit in AXIS_NAMES.items():
        array = arrays.get(name)
        if array is None:
            continue
        if len(array.shape) != 1 or int(array.shape[0]) not in shape:
            notes.append(f"array {name!r} {describe(array.shape)} fits no axis of the cube {describe(shape)}: ignored")
            continue
        values = np.asarray(array[...], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            notes.append(f"spectral axis {name!r} contains NaN or Inf: ignored")
            continue
        return values, stated or unit
    return None, None


# --- writing ---------------------------------------------------------------------------------


class StoreWriter:
    """A zarr store being written block by block, in a hidden folder until :meth:`commit`.

    ``write`` turns a full disk (or any other failed write) into a ValueError that says so;
    :meth:`discard` removes the partial store. Used as a context manager, leaving the block
    without a commit (an error, a cancelled generator) discards it.
    """

    def __init__(self, path, shape, *, wavenumbers=None, record: dict | None = None, chunks=None,
                 compress: bool = True, overwrite: bool = False):
        import zarr

        self.path = Path(path)
        if self.path.suffix.lower() != ZARR_SUFFIX:
            raise ValueError(f"cannot write a zarr store to {self.path.name}: the name must end in {ZARR_SUFFIX}")
        if not self.path.parent.is_dir():
            raise ValueError(f"cannot write to {self.path}: the folder {self.path.parent} does not exist")
        if self.path.exists() and not overwrite:
            raise ValueError(f"{self.path} exists already; pass overwrite=True to replace it")
        self.shape = tuple(int(n) for n in shape)
        self.chunks = tuple(chunks) if chunks is not None else chunk_shape(self.shape)
        self.overwrite = overwrite
        self.partial = self.path.with_name(f".{self.path.name}.partial-{uuid.uuid4().hex[:8]}")
        self.committed = False
        needed = int(np.prod(self.shape)) * 4
        free = shutil.disk_usage(self.path.parent).free
        if not compress and needed > free:
            raise ValueError(
                f"not enough disk space for {self.path.name}: it needs {needed / 2**30:.2f} GiB and "
                f"{self.path.parent} has {free / 2**30:.2f} GiB free"
            )
        try:
            group = zarr.open_group(str(self.partial), mode="w")
            self.array = group.create_array(
                DATA, shape=self.shape, **layout_of(self.chunks), dtype="float32",
                compressors="auto" if compress else None, fill_value=np.nan,
            )
            if wavenumbers is not None:
                group.create_array(WAVENUMBERS, data=np.asarray(wavenumbers, dtype=np.float64))
            group.attrs[RECORD] = record or {}
        except OSError as error:
            self.discard()
            raise self._failed(error) from None

    def write(self, where, block) -> None:
        """Store ``block`` at ``where`` (a tuple of slices); a failed write raises a ValueError."""
        try:
            self.array[where] = np.asarray(block, dtype=np.float32)
        except OSError as error:
            self.discard()
            raise self._failed(error) from None

    def commit(self) -> Path:
        """Move the complete store to its name (replacing an older one when allowed); return it."""
        if self.path.exists() and self.overwrite:
            old = self.path.with_name(f".{self.path.name}.old-{uuid.uuid4().hex[:8]}")
            self.path.rename(old)
            self.partial.rename(self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            self.partial.rename(self.path)
        self.committed = True
        return self.path

    def discard(self) -> None:
        """Remove the partial store (nothing under the final name is touched)."""
        shutil.rmtree(self.partial, ignore_errors=True)

    def _failed(self, error: OSError) -> ValueError:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(self.path.parent).free
            return ValueError(
                f"the disk filled up while writing {self.path.name} ({free / 2**30:.2f} GiB left in "
                f"{self.path.parent}); the partial store was removed. Free some space or choose "
                "another folder"
            )
        return ValueError(f"could not write {self.path.name}: {error}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.committed:
            self.discard()
        return False


def tiles(shape, chunks):
    """``(slice_y, slice_x)`` of every chunk-aligned spatial tile of a ``(..., Y, X)`` array."""
    ny, nx = shape[-2:]
    ty, tx = chunks[-2:]
    for y in range(0, ny, ty):
        for x in range(0, nx, tx):
            yield slice(y, min(ny, y + ty)), slice(x, min(nx, x + tx))


def write_zarr_steps(data, path, wavenumbers=None, record: dict | None = None, *, chunks=None,
                     compress: bool = True, overwrite: bool = False) -> Steps[Path]:
    """Write a ``(Y, X)``, ``(k, Y, X)`` or ``(B, Y, X)`` array (NumPy, memory map or dask) to a
    zarr store tile by tile, yielding progress; return the store's path.

    Only one tile of every band is in memory at a time, so a lazy cube larger than memory
    exports too. Closing the generator (cancel) or an error removes the partial store.
    """
    shape = tuple(int(n) for n in data.shape)
    if len(shape) not in (2, 3) or 0 in shape:
        raise ValueError(f"only (Y, X) maps and (bands, Y, X) cubes are written to zarr, got shape {describe(shape)}")
    np.dtype(data.dtype)  # refuse non-arrays early
    with StoreWriter(path, shape, wavenumbers=wavenumbers, record=record, chunks=chunks,
                     compress=compress, overwrite=overwrite) as writer:
        spans = list(tiles(shape, writer.chunks))
        message = f"writing {Path(path).name}"
        yield Progress(0, len(spans), message)
        for done, (ys, xs) in enumerate(spans, 1):
            where = (*(slice(None),) * (len(shape) - 2), ys, xs)
            writer.write(where, np.asarray(data[where]))
            yield Progress(done, len(spans), message)
        return writer.commit()


def write_zarr(data, path, wavenumbers=None, record: dict | None = None, **options) -> Path:
    """:func:`write_zarr_steps` run to the end."""
    return run(write_zarr_steps(data, path, wavenumbers, record, **options))


def open_result(path):
    """The ``data`` array of a store napari-deeper wrote, as a lazy dask array."""
    import zarr

    return from_array(zarr.open_group(str(path), mode="r")[DATA])
