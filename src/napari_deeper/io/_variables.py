"""A file's named arrays, listed from headers and loaded one at a time, when asked.

MATLAB v4-v7 files are listed with ``scipy.io.whosmat``, v7.3 (HDF5) files with h5py, ``.npz``
archives from each member's ``.npy`` header. Every :class:`Variable` reports its shape as
``scipy.io.loadmat`` / NumPy would show it: HDF5 datasets written by MATLAB are stored with their
axes reversed, and are transposed back here, so the layout rules see one orientation.

Nothing is read that the file's size cannot hold: every Variable knows its file's size, and its
``load()`` refuses an array declaring more than :data:`MAX_EXPANSION` times that, before reading.
HDF5 links are inspected before they are followed: external links (and datasets whose data lie
in other files) are never followed, dangling soft links and committed datatypes are
skipped, each with a note.
"""

from __future__ import annotations

import lzma
import tokenize
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from ._lazy import from_array

#: How many times its own size a file may expand to: deflate's best ratio (1032:1), the
#: compression MATLAB (v7, v7.3) and ``np.savez_compressed`` use. An array declaring more bytes
#: than ``MAX_EXPANSION`` times the file's size cannot be in the file (damaged or forged header).
MAX_EXPANSION = 1032

#: Errors that reading a damaged compressed stream raises, besides OSError / EOFError.
STREAM_ERRORS = (zlib.error, lzma.LZMAError, zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError)

_MATLAB_NUMERIC = {
    "double": np.float64,
    "single": np.float32,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
}


@dataclass
class Variable:
    """One named value in a file: its kind, shape and dtype, and how to load it.

    ``kind`` is "numeric", "char", "struct", "cell" or "other". ``fields`` (structs only)
    returns the struct's fields as Variables, so a struct's big array is checked before it is
    read wherever the format allows that (HDF5). ``file_size`` is the size of the file it is in
    (None: already in memory); ``load()`` refuses an array that declares more bytes than
    :data:`MAX_EXPANSION` times that, without reading it. ``source`` names the file in messages.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: np.dtype | None
    _load: Callable[[], object]
    _fields: Callable[[], dict] | None = None
    file_size: int | None = None
    source: str = ""
    #: A dask array over the stored values, for files that can be read lazily (None: they cannot).
    lazy_load: Callable[[], object] | None = None

    @property
    def nbytes(self) -> int:
        """Bytes the declared shape and dtype take (1 byte per element when the dtype is unknown)."""
        count = prod(max(0, int(n)) for n in self.shape)
        return count * (self.dtype.itemsize if self.dtype is not None else 1)

    def load(self):
        if self.file_size is not None and self.nbytes > MAX_EXPANSION * self.file_size:
            raise ValueError(
                f"{self.source}:{self.name} declares {self.nbytes:,} bytes of data, more than a "
                f"{self.file_size:,}-byte file can hold even compressed: the file is damaged or "
                "its header is wrong"
            )
        return self._load()

    def fields(self) -> dict[str, Variable]:
        return self._fields() if self._fields is not None else {}

    def text(self) -> str | None:
        """The value as a string (char arrays, 0-d string arrays), else None."""
        if self.kind != "char":
            return None
        return as_text(self.load())


def as_text(value) -> str | None:
    """A MATLAB char array / NumPy string array / str as one Python string (None if not text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "US":
        return "".join(str(v) for v in value.ravel())
    return None


def in_memory(name: str, value) -> Variable:
    """Wrap an already loaded value as a Variable."""
    if isinstance(value, dict):
        return Variable(name, "struct", (1, 1), None, lambda: value, lambda: {k: in_memory(k, v) for k, v in value.items()})
    if as_text(value) is not None:
        return Variable(name, "char", (1, len(as_text(value))), None, lambda: value)
    if isinstance(value, np.ndarray) and value.dtype == object:
        return Variable(name, "cell", value.shape, None, lambda: value)
    array = np.asarray(value)
    kind = "numeric" if array.dtype.kind in "iuf" else "other"
    return Variable(name, kind, array.shape, array.dtype, lambda: array)


# --- MATLAB v4-v7 --------------------------------------------------------------------------


def matlab_v5_variables(path: Path) -> dict[str, Variable]:
    import scipy.io as sio

    listing = sio.whosmat(str(path))
    file_size = path.stat().st_size
    variables = {}
    for name, shape, matlab_class in listing:
        if name.startswith("__"):
            continue
        dtype = _MATLAB_NUMERIC.get(matlab_class)
        if dtype is not None:
            kind = "numeric"
        elif matlab_class in ("struct", "object"):
            kind = "struct"
        elif matlab_class in ("char", "cell"):
            kind = matlab_class
        else:
            kind = "other"
        variable = _v5_variable(path, name, kind, tuple(shape), dtype)
        variable.file_size, variable.source = file_size, path.name
        variables[name] = variable
    return variables


def _v5_variable(path: Path, name: str, kind: str, shape, dtype) -> Variable:
    def load():
        import scipy.io as sio

        value = sio.loadmat(
            str(path), variable_names=[name], squeeze_me=False, struct_as_record=False
        )[name]
        return _plain_v5(value)

    def fields():
        value = variable.load()
        return {k: in_memory(k, v) for k, v in value.items()} if isinstance(value, dict) else {}

    variable = Variable(name, kind, shape, None if dtype is None else np.dtype(dtype), load, fields)
    return variable


def _plain_v5(value):
    """scipy's structs and 1 x 1 wrappers as plain dicts, strings and arrays."""
    from scipy.io.matlab import mat_struct

    if isinstance(value, mat_struct):
        return {f: _plain_v5(getattr(value, f)) for f in value._fieldnames}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            return as_text(value)
        if value.dtype == object:
            if value.size == 1 and isinstance(value.flat[0], mat_struct):
                return _plain_v5(value.flat[0])
            out = np.empty(value.shape, dtype=object)
            for index, item in np.ndenumerate(value):
                out[index] = _plain_v5(item)
            return out
    return value


# --- MATLAB v7.3 (HDF5) --------------------------------------------------------------------

#: Soft links followed in a row before a chain counts as a loop.
_MAX_LINK_DEPTH = 16


def matlab_hdf5_variables(h5file, notes: list[str]) -> dict[str, Variable]:
    """The top-level variables of an open ``h5py.File`` written by MATLAB (or like MATLAB).

    Members that are not plain groups or datasets of this file (external links, dangling soft
    links, committed datatypes, data stored in other files) are skipped with a line in ``notes``.
    """
    reader = _Hdf5(h5file, notes)
    return reader.members(h5file, skip_hidden=True)


class _Hdf5:
    """Walks one HDF5 file without leaving it: the objects' sizes are checked before reading."""

    def __init__(self, h5file, notes: list[str]):
        self.file = h5file
        self.notes = notes
        self.source = Path(h5file.filename).name
        self.file_size = Path(h5file.filename).stat().st_size

    def members(self, group, skip_hidden: bool = False) -> dict[str, Variable]:
        out = {}
        for name in group:
            if skip_hidden and name.startswith("#"):
                continue
            item, why = self.resolve(group, name)
            if item is None:
                where = group.name.rstrip("/") + "/" + name
                self.notes.append(f"HDF5 member {where!r} skipped: {why}")
                continue
            out[name] = self.variable(name, item)
        return out

    def resolve(self, group, name: str, depth: int = 0):
        """(object, "") for a member of this file, or (None, why not) without following it out."""
        import h5py

        if depth > _MAX_LINK_DEPTH:
            return None, f"more than {_MAX_LINK_DEPTH} soft links in a row (a loop?)"
        try:
            link = group.get(name, getlink=True)
        except (KeyError, ValueError, RuntimeError) as error:
            return None, f"unreadable link ({error})"
        if link is None:
            return None, "missing"
        if isinstance(link, h5py.ExternalLink):
            return None, f"an external link to {link.filename}:{link.path}, which is never followed"
        if isinstance(link, h5py.SoftLink):
            current = self.file if link.path.startswith("/") else group
            for part in [p for p in link.path.split("/") if p]:
                if not isinstance(current, h5py.Group):
                    return None, f"a dangling soft link to {link.path}"
                current, why = self.resolve(current, part, depth + 1)
                if current is None:
                    return None, f"a soft link to {link.path}, which is {why}"
            return current, ""
        item = group[name]
        if isinstance(item, h5py.Datatype):
            return None, "a committed datatype, not data"
        if isinstance(item, h5py.Dataset) and (item.external or item.is_virtual):
            return None, "a dataset whose data lie in other files, which are never read"
        if not isinstance(item, (h5py.Group, h5py.Dataset)):
            return None, f"not a group or a dataset ({type(item).__name__})"
        return item, ""

    def variable(self, name: str, item) -> Variable:
        import h5py

        if isinstance(item, h5py.Group):
            return Variable(
                name,
                "struct",
                (1, 1),
                None,
                lambda: {k: v.load() for k, v in self.members(item).items()},
                lambda: self.members(item),
            )
        variable = self._dataset_variable(name, item)
        variable.file_size, variable.source = self.file_size, self.source
        return variable

    def _dataset_variable(self, name: str, item) -> Variable:
        matlab_class = _h5_class(item)
        if item.attrs.get("MATLAB_empty", 0):
            return Variable(name, "other", (0,), None, lambda: np.zeros((0,)))
        shape = tuple(reversed(item.shape))
        if matlab_class == "char":
            return Variable(name, "char", shape, item.dtype, lambda: _h5_char(item))
        if matlab_class == "cell" or item.dtype.kind == "O":
            return Variable(name, "cell", shape, item.dtype, lambda: self.cell(item))
        if matlab_class == "logical" or item.dtype.kind not in "iuf":
            return Variable(name, "other", shape, item.dtype, lambda: np.asarray(item[()]).T)
        return Variable(name, "numeric", shape, item.dtype, lambda: np.ascontiguousarray(np.asarray(item[()]).T),
                        lazy_load=lambda: _lazy_dataset(item))

    def cell(self, dataset) -> np.ndarray:
        """A cell array: each object reference is read as a variable of this file."""
        import h5py

        refs = np.asarray(dataset[()]).T
        out = np.empty(refs.shape, dtype=object)
        for index, ref in np.ndenumerate(refs):
            item = self.file[ref]
            if isinstance(item, h5py.Datatype) or (isinstance(item, h5py.Dataset) and (item.external or item.is_virtual)):
                raise ValueError(f"{self.source}: a cell of {dataset.name!r} refers to data that is not in this file")
            out[index] = self.variable("", item).load()
        return out


def _lazy_dataset(item):
    """A dask array over an HDF5 dataset in MATLAB's orientation (its axes reversed), unread."""
    return from_array(item).T


def _h5_class(item) -> str:
    value = item.attrs.get("MATLAB_class", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _h5_char(dataset) -> str:
    codes = np.asarray(dataset[()]).T.ravel()
    return "".join(chr(int(c)) for c in codes if int(c))


# --- .npz archives -------------------------------------------------------------------------

#: Zip compression methods read (those Python's zipfile reads), with the most a member's bytes
#: can expand: stored (``np.savez``) 1, deflated (``np.savez_compressed``) :data:`MAX_EXPANSION`;
#: bzip2 and LZMA have no small bound, so only their directory sizes are checked.
NPZ_METHODS = {
    zipfile.ZIP_STORED: ("stored", 1),
    zipfile.ZIP_DEFLATED: ("deflated", MAX_EXPANSION),
    zipfile.ZIP_BZIP2: ("bzip2", None),
    zipfile.ZIP_LZMA: ("LZMA", None),
}


def npz_variables(path: Path) -> dict[str, Variable]:
    """The arrays of an ``.npz``, listed from their headers; values are read on ``load()``.

    Every ``.npy`` member is checked before anything is read: not encrypted, a compression
    method zipfile reads, and its header's array fits in the member's size (which must itself fit
    the compressed size, for stored and deflated members).
    """
    variables = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            what = f"{path.name}:{info.filename}"
            _check_member(info, what)
            try:
                with archive.open(info) as handle:
                    shape, _fortran, dtype = read_npy_header(handle, what)
                    header_bytes = handle.tell()
            except STREAM_ERRORS as error:
                raise ValueError(f"{what} is damaged: {type(error).__name__}: {error}") from None
            needed = header_bytes + prod(shape) * dtype.itemsize
            if needed > info.file_size:
                raise ValueError(
                    f"{what} is truncated or damaged: its header promises a {tuple(shape)} {dtype} "
                    f"array ({needed:,} bytes) but the member holds {info.file_size:,} bytes"
                )
            name = info.filename[: -len(".npy")]
            kind = "numeric" if dtype.kind in "iuf" else "char" if dtype.kind in "US" else "other"
            variables[name] = Variable(name, kind, shape, dtype, _npz_loader(path, name, what))
    return variables


def _check_member(info: zipfile.ZipInfo, what: str) -> None:
    """Refuse an encrypted member, an unsupported compression, or sizes no stream could have."""
    if info.flag_bits & 0x1:
        raise ValueError(f"{what} is encrypted; napari-deeper reads only unencrypted .npz archives")
    if info.compress_type not in NPZ_METHODS:
        raise ValueError(
            f"{what} uses zip compression method {info.compress_type}; napari-deeper reads "
            "stored, deflated, bzip2 and LZMA members (np.savez and np.savez_compressed write the "
            "first two)"
        )
    method, expansion = NPZ_METHODS[info.compress_type]
    if expansion is not None and info.file_size > expansion * info.compress_size + (0 if expansion == 1 else 64):
        raise ValueError(
            f"{what} is damaged: it claims {info.file_size:,} bytes from {info.compress_size:,} "
            f"{method} bytes"
        )


def _npz_loader(path: Path, name: str, what: str):
    def load():
        try:
            with np.load(path, allow_pickle=False) as archive:
                return archive[name]
        except (*STREAM_ERRORS, MemoryError) as error:
            raise ValueError(f"{what} is damaged: {type(error).__name__}: {error}") from None

    return load


def read_npy_header(handle, what: str):
    """(shape, fortran_order, dtype) from an open ``.npy`` stream, or a ValueError."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(handle)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(handle)
        else:
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(handle)
    except (ValueError, OSError, SyntaxError, EOFError, TypeError, tokenize.TokenError, RecursionError) as error:
        raise ValueError(f"{what} is not a readable .npy array: {type(error).__name__}: {error}") from None
    except STREAM_ERRORS as error:
        raise ValueError(f"{what} is damaged: {type(error).__name__}: {error}") from None
    if any(int(n) < 0 for n in shape):
        raise ValueError(f"{what} is not a readable .npy array: its header declares the negative shape {tuple(shape)}")
    return shape, fortran_order, dtype
