"""Interpolation baselines on the skip-sampling grid: nearest, bilinear and bicubic.

Low resolution means skip-sampling: LR pixel ``i`` is HR pixel ``f*i + f//2``. So HR pixel ``o``
sits at LR coordinate ``(o - f//2) / f``. Every method is separable and linear, so each axis is
one small ``(N, n)`` matrix built once (cached) from ``scipy.ndimage.map_coordinates`` applied to
unit vectors; applying it is a batched matrix product over all bands at once (BLAS speed, no
per-band Python loop). Long axes are applied block by block, each block of output rows using only
the input rows its weights reach, so the cost per output pixel stays constant on large images.

- ``nearest``: pixel replication; output pixel ``f*i + f//2`` (and its block) equals input ``i``.
- ``bilinear``: linear between LR sample positions, clamped (edge value) beyond the first and last.
- ``bicubic``: cubic B-spline interpolation (scipy ``order=3``) through the LR samples, with the
  edge-replicating boundary (``mode="nearest"``) so the half-pixel border extrapolation does not
  overshoot.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import compute

ORDERS = {"nearest": 0, "bilinear": 1, "bicubic": 3}
#: Input pixels of context a tile needs to be upscaled as part of the whole image: the cubic
#: spline's weights fall below 1e-7 after 12.
MARGIN = 12
#: weights below this fraction of the largest one are dropped (cubic splines decay as 0.268^k)
_NEGLIGIBLE = 1e-7
#: Axes longer than ``_DENSE_LIMIT`` input pixels are applied ``_BLOCK`` output rows at a time:
#: a row of the bicubic matrix has about 12 weights, so a dense product on a long axis is mostly
#: zeros (at 64 and 64, 2x on 128 to 1024 pixel axes took 2-4x less time than dense up to 256)
_BLOCK = 64
_DENSE_LIMIT = 64


def lr_coordinates(n_out: int, scale: int) -> np.ndarray:
    """LR coordinate of each HR pixel on the skip-sampling grid: ``(o - f//2) / f``."""
    return (np.arange(n_out, dtype=np.float64) - scale // 2) / scale


@lru_cache(maxsize=64)
def axis_matrix(n_in: int, scale: int, order: int) -> np.ndarray:
    """The ``(n_in * scale, n_in)`` float32 matrix that interpolates one axis."""
    from scipy.ndimage import map_coordinates

    n_out = n_in * scale
    if order == 0:
        matrix = np.zeros((n_out, n_in), dtype=np.float32)
        matrix[np.arange(n_out), np.arange(n_out) // scale] = 1.0
        matrix.setflags(write=False)
        return matrix
    coords = lr_coordinates(n_out, scale)
    if order == 1:
        coords = np.clip(coords, 0, n_in - 1)
    matrix = np.empty((n_out, n_in), dtype=np.float64)
    unit = np.zeros(n_in, dtype=np.float64)
    for j in range(n_in):
        unit[:] = 0.0
        unit[j] = 1.0
        matrix[:, j] = map_coordinates(unit, coords[None], order=order, mode="nearest")
    matrix[np.abs(matrix) < _NEGLIGIBLE * np.abs(matrix).max()] = 0.0
    matrix = matrix.astype(np.float32)
    matrix.setflags(write=False)
    return matrix


def _reach(matrix: np.ndarray, rows: slice) -> slice:
    """The input columns that output ``rows`` of ``matrix`` use."""
    used = np.flatnonzero(np.any(matrix[rows] != 0, axis=0))
    return slice(int(used[0]), int(used[-1]) + 1) if used.size else slice(0, 0)


def apply_axis(data: np.ndarray, matrix: np.ndarray, axis: int) -> np.ndarray:
    """Interpolate ``data`` (..., Y, X) along ``axis`` (-2 for Y, -1 for X) with ``matrix``."""
    n_out, n_in = matrix.shape
    if axis == -2:
        if n_in <= _DENSE_LIMIT:
            return np.matmul(matrix, data)
        out = np.empty(data.shape[:-2] + (n_out, data.shape[-1]), dtype=np.float32)
        for start in range(0, n_out, _BLOCK):
            rows = slice(start, min(n_out, start + _BLOCK))
            cols = _reach(matrix, rows)
            out[..., rows, :] = np.matmul(matrix[rows, cols], data[..., cols, :])
        return out
    if n_in <= _DENSE_LIMIT:
        return np.matmul(data, matrix.T)
    out = np.empty(data.shape[:-1] + (n_out,), dtype=np.float32)
    for start in range(0, n_out, _BLOCK):
        rows = slice(start, min(n_out, start + _BLOCK))
        cols = _reach(matrix, rows)
        out[..., rows] = np.matmul(data[..., cols], matrix[rows, cols].T)
    return out


def interpolate(data: np.ndarray, scale: int, method: str = "bicubic") -> np.ndarray:
    """Upscale ``data`` (..., Y, X) by ``scale`` with ``method`` on the skip-sampling grid."""
    order = ORDERS[method]
    data = np.asarray(data, dtype=np.float32)
    rows = axis_matrix(data.shape[-2], scale, order)
    cols = axis_matrix(data.shape[-1], scale, order)
    return apply_axis(apply_axis(data, rows, -2), cols, -1).astype(np.float32, copy=False)


def interpolate_steps(data: np.ndarray, scale: int, method: str = "bicubic") -> compute.Steps[np.ndarray]:
    """:func:`interpolate` a ``(B, Y, X)`` cube a few bands at a time, yielding progress.

    Only the output and one chunk of intermediates are held: the chunk size follows the memory
    available, so large cubes stay within it.
    """
    b, y, x = data.shape
    out = np.empty((b, y * scale, x * scale), dtype=np.float32)
    per_band = 4.0 * (y * scale) * (x * scale + x) * 2
    size = compute.chunk_size(per_band, None, maximum=b)
    message = f"{method} x{scale}"
    yield compute.Progress(0, b, message)
    for part in compute.chunks(b, size):
        out[part] = interpolate(data[part], scale, method)
        yield compute.Progress(part.stop, b, message)
    return out
