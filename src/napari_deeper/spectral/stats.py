"""Spectra of chosen pixels and regions: what the Spectra plot draws."""

from __future__ import annotations

import numpy as np

from .bands import lazy_cube


def pixel_spectra(data, rows, cols) -> np.ndarray:
    """The spectra at pixels ``(rows[i], cols[i])`` as an ``(n, B)`` float32 array."""
    cube = lazy_cube(data)
    rows = np.atleast_1d(np.asarray(rows, dtype=np.intp))
    cols = np.atleast_1d(np.asarray(cols, dtype=np.intp))
    rows, cols = np.broadcast_arrays(rows, cols)
    _, n_rows, n_cols = cube.shape
    outside = (rows < 0) | (rows >= n_rows) | (cols < 0) | (cols >= n_cols)
    if np.any(outside):
        raise ValueError(
            f"{int(outside.sum())} pixel(s) lie outside the image of {n_rows} x {n_cols} pixels"
        )
    return np.ascontiguousarray(np.asarray(cube[:, rows, cols], dtype=np.float32).T)


def roi_stats(data, mask) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and standard deviation spectra ``(B,)`` over the pixels where ``mask`` is True.

    Returns ``(mean, std, n_pixels)``; the standard deviation is the population one (ddof=0).
    Only the selected pixels are converted, so large cubes are not copied.
    """
    cube = lazy_cube(data)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != cube.shape[1:]:
        raise ValueError(f"mask has shape {mask.shape} but the image is {cube.shape[1:]}")
    n_pixels = int(np.count_nonzero(mask))
    if n_pixels == 0:
        raise ValueError("the mask selects no pixel")
    values = np.asarray(np.asarray(cube)[:, mask], dtype=np.float64)
    return values.mean(axis=1).astype(np.float32), values.std(axis=1).astype(np.float32), n_pixels
