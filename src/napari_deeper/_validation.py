"""Input checks shared by every core entry point: one place for the error messages."""

from __future__ import annotations

import numpy as np


def as_cube(data, name: str = "data", allow_nonfinite: bool = False) -> np.ndarray:
    """Return ``data`` as a float32 ``(B, Y, X)`` array or raise a ``ValueError`` saying why not.

    Arrays that are already float32 are returned without a copy (memory maps stay memory maps).
    """
    if data is None:
        raise ValueError(f"{name} is None; expected a (bands, y, x) array")
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must be a 3-D (bands, y, x) cube, got an array of shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not allow_nonfinite:
        check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray, name: str = "data") -> None:
    """Raise a ``ValueError`` that counts the NaN and Inf values, if there are any."""
    n_nan = int(np.count_nonzero(np.isnan(arr)))
    n_inf = int(np.count_nonzero(np.isinf(arr)))
    if n_nan or n_inf:
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} Inf values out of {arr.size}; "
            "replace them first (e.g. napari_deeper.io.replace_nonfinite)"
        )


def as_wavenumbers(wavenumbers, n_bands: int) -> np.ndarray | None:
    """Return the spectral axis as a float64 1-D array of length ``n_bands`` (or None)."""
    if wavenumbers is None:
        return None
    w = np.asarray(wavenumbers, dtype=np.float64).ravel()
    if w.shape != (n_bands,):
        raise ValueError(
            f"wavenumbers has {w.size} values but the data has {n_bands} bands"
        )
    if not np.all(np.isfinite(w)):
        raise ValueError("wavenumbers contains NaN or Inf")
    return w


def check_method(method: str, registry) -> str:
    """Return the lowercase method name, or raise a ``ValueError`` listing the known ones."""
    name = str(method).lower()
    if name not in registry:
        known = ", ".join(sorted(registry))
        raise ValueError(f"unknown method {method!r}; choose one of: {known}")
    return name
