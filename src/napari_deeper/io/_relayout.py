"""Corrections of how a cube was read: reorder its axes, fold a strip into an image, drop NaNs.

These are the operations behind the Cube layout widget. They never change their input: each
returns a new C-contiguous float32 ``(B, Y, X)`` array, built band chunk by band chunk so that a
memory-mapped cube is not read into memory twice.
"""

from __future__ import annotations

import numpy as np

from .. import compute
from .._validation import as_cube
from ._cube import _CHUNK_BYTES, check_shape, parse_axes, to_byx

PIXEL_ORDERS = ("C", "F")


def relayout(data, order: str | None = None, shape=None, pixel_order: str = "C") -> np.ndarray:
    """Return ``data`` rearranged as ``(B, Y, X)``.

    ``order`` names the axes ``data`` has now, e.g. "yxb" for a cube read bands-last, or
    "bxy" for one whose rows and columns are swapped (None: already "byx"). ``shape`` (Y, X)
    folds the pixels into a new image: a ``(B, 1, N)`` strip becomes ``(B, Y, X)`` with
    Y * X = N. ``pixel_order`` says how the N pixels were listed: "C" row by row (NumPy),
    "F" column by column (MATLAB).
    """
    return compute.run(relayout_steps(data, order, shape, pixel_order))


def relayout_steps(data, order: str | None = None, shape=None, pixel_order: str = "C"):
    """:func:`relayout` as a steps generator (yields progress per band chunk)."""
    array = as_cube(data, "data", allow_nonfinite=True, check_range=False)
    axes = parse_axes(order or "byx", 3)
    if pixel_order not in PIXEL_ORDERS:
        raise ValueError(f"pixel_order must be 'C' (row-major) or 'F' (column-major), got {pixel_order!r}")
    view = np.transpose(array, [axes.index(c) for c in "byx"])
    n_bands, height, width = view.shape
    target = (height, width) if shape is None else check_shape(shape, height * width)
    out = np.empty((n_bands, *target), dtype=np.float32)
    step = _band_step(height * width)
    yield compute.Progress(0, n_bands, "Rearranging the cube")
    for start in range(0, n_bands, step):
        block = view[start : start + step]
        if shape is None:
            out[start : start + step] = block
        else:
            flat = np.ascontiguousarray(block).reshape(block.shape[0], -1)
            out[start : start + step] = to_byx(flat, "bn", target, pixel_order)
        yield compute.Progress(min(n_bands, start + step), n_bands, "Rearranging the cube")
    return out


def replace_nonfinite(data, value: float = 0.0) -> np.ndarray:
    """A copy of the ``(B, Y, X)`` cube with every NaN and +-Inf replaced by ``value``."""
    return compute.run(replace_nonfinite_steps(data, value))[0]


def replace_nonfinite_steps(data, value: float = 0.0):
    """Steps generator of :func:`replace_nonfinite`; returns ``(cube, n_nan, n_inf)``."""
    array = as_cube(data, "data", allow_nonfinite=True, check_range=False)
    out = np.empty(array.shape, dtype=np.float32)
    n_bands = array.shape[0]
    step = _band_step(array.shape[1] * array.shape[2])
    n_nan = n_inf = 0
    yield compute.Progress(0, n_bands, "Replacing NaN / Inf")
    for start in range(0, n_bands, step):
        block = np.array(array[start : start + step], dtype=np.float32)
        nan, inf = np.isnan(block), np.isinf(block)
        n_nan += int(np.count_nonzero(nan))
        n_inf += int(np.count_nonzero(inf))
        block[nan | inf] = value
        out[start : start + step] = block
        yield compute.Progress(min(n_bands, start + step), n_bands, "Replacing NaN / Inf")
    return out, n_nan, n_inf


def _band_step(pixels_per_band: int) -> int:
    return max(1, _CHUNK_BYTES // max(1, 4 * pixels_per_band))
