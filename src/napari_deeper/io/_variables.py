"""A file's named arrays, listed from headers and loaded one at a time, when asked.

MATLAB v4-v7 files are listed with ``scipy.io.whosmat``, v7.3 (HDF5) files with h5py, ``.npz``
archives from each member's ``.npy`` header. Every :class:`Variable` reports its shape as
``scipy.io.loadmat`` / NumPy would show it: HDF5 datasets written by MATLAB are stored with their
axes reversed, and are transposed back here, so the layout rules see one orientation.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

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
    read wherever the format allows that (HDF5).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: np.dtype | None
    _load: Callable[[], object]
    _fields: Callable[[], dict] | None = None

    def load(self):
        return self._load()

    def fields(self) -> dict[str, "Variable"]:
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
        variables[name] = _v5_variable(path, name, kind, tuple(shape), dtype)
    return variables


def _v5_variable(path: Path, name: str, kind: str, shape, dtype) -> Variable:
    def load():
        import scipy.io as sio

        value = sio.loadmat(
            str(path), variable_names=[name], squeeze_me=False, struct_as_record=False
        )[name]
        return _plain_v5(value)

    def fields():
        value = load()
        return {k: in_memory(k, v) for k, v in value.items()} if isinstance(value, dict) else {}

    return Variable(name, kind, shape, None if dtype is None else np.dtype(dtype), load, fields)


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


def matlab_hdf5_variables(h5file) -> dict[str, Variable]:
    """The top-level variables of an open ``h5py.File`` written by MATLAB (or like MATLAB)."""
    return {
        name: _h5_variable(h5file, name, item)
        for name, item in h5file.items()
        if not name.startswith("#")
    }


def _h5_class(item) -> str:
    value = item.attrs.get("MATLAB_class", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _h5_variable(h5file, name: str, item) -> Variable:
    import h5py

    if isinstance(item, h5py.Group):
        return Variable(
            name,
            "struct",
            (1, 1),
            None,
            lambda: {k: v.load() for k, v in _h5_fields(h5file, item).items()},
            lambda: _h5_fields(h5file, item),
        )
    matlab_class = _h5_class(item)
    if item.attrs.get("MATLAB_empty", 0):
        return Variable(name, "other", (0,), None, lambda: np.zeros((0,)))
    shape = tuple(reversed(item.shape))
    if matlab_class == "char":
        return Variable(name, "char", shape, None, lambda: _h5_char(item))
    if matlab_class == "cell" or item.dtype.kind == "O":
        return Variable(name, "cell", shape, None, lambda: _h5_cell(h5file, item))
    if matlab_class == "logical" or item.dtype.kind not in "iuf":
        return Variable(name, "other", shape, item.dtype, lambda: np.asarray(item[()]).T)
    return Variable(name, "numeric", shape, item.dtype, lambda: np.ascontiguousarray(np.asarray(item[()]).T))


def _h5_fields(h5file, group) -> dict[str, Variable]:
    return {name: _h5_variable(h5file, name, item) for name, item in group.items()}


def _h5_char(dataset) -> str:
    codes = np.asarray(dataset[()]).T.ravel()
    return "".join(chr(int(c)) for c in codes if int(c))


def _h5_cell(h5file, dataset) -> np.ndarray:
    refs = np.asarray(dataset[()]).T
    out = np.empty(refs.shape, dtype=object)
    for index, ref in np.ndenumerate(refs):
        out[index] = _h5_variable(h5file, "", h5file[ref]).load()
    return out


# --- .npz archives -------------------------------------------------------------------------


def npz_variables(path: Path) -> dict[str, Variable]:
    """The arrays of an ``.npz``, listed from their headers; values are read on ``load()``."""
    variables = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            with archive.open(member) as handle:
                shape, _fortran, dtype = read_npy_header(handle, f"{path.name}:{member}")
            name = member[: -len(".npy")]
            kind = "numeric" if dtype.kind in "iuf" else "char" if dtype.kind in "US" else "other"
            variables[name] = Variable(name, kind, shape, dtype, _npz_loader(path, name))
    return variables


def _npz_loader(path: Path, name: str):
    def load():
        with np.load(path, allow_pickle=False) as archive:
            return archive[name]

    return load


def read_npy_header(handle, what: str):
    """(shape, fortran_order, dtype) from an open ``.npy`` stream, or a ValueError."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(handle)
        if version == (1, 0):
            return npy_format.read_array_header_1_0(handle)
        return npy_format.read_array_header_2_0(handle)
    except (ValueError, OSError, SyntaxError, EOFError) as error:
        raise ValueError(f"{what} is not a readable .npy array: {error}") from None
