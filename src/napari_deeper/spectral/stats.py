"""Spectra of chosen pixels and regions: what the Spectra plot draws, and its CSV table."""

from __future__ import annotations

import csv
from pathlib import Path

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


def save_spectra_csv(path, spectra, axis_label: str = "wavenumber") -> Path:
    """Write spectra to CSV: one column for the spectral axis (headed ``axis_label``), then one
    column per spectrum; returns the path written.

    ``spectra`` is a list of ``(label, axis, values)``. Spectra on different axes (a cropped
    layer beside a full one) share the union of the axis values, and a cell is empty where a
    spectrum has no value. Numbers are the shortest text that reads back as the same float64.
    """
    spectra = [(str(label), np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel())
               for label, x, y in spectra]
    if not spectra:
        raise ValueError("nothing to export: no spectrum given")
    for label, x, y in spectra:
        if x.size != y.size:
            raise ValueError(f"spectrum {label!r} has {y.size} values on an axis of {x.size}")
    x = np.unique(np.concatenate([s[1] for s in spectra]))
    table = np.full((x.size, len(spectra)), np.nan)
    for column, (_label, sx, sy) in enumerate(spectra):
        table[np.searchsorted(x, sx), column] = sy
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([axis_label, *(s[0] for s in spectra)])
        for value, row in zip(x, table):
            writer.writerow([repr(float(value)), *("" if np.isnan(v) else repr(float(v)) for v in row)])
    return path
