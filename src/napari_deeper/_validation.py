"""Input checks shared by every core entry point: one place for the error messages."""

from __future__ import annotations

import numbers

import numpy as np

#: The largest magnitude a value may have to go through the float32 arithmetic of the methods.
#: Their squares, summed over the largest cube napari-deeper opens (2**31 values), stay below
#: float32's maximum (3.4e38): sqrt(3.4e38 / 2**31) = 4.0e14. Larger finite values would give
#: Inf or silently wrong results (the super-resolution networks' PCA goes wrong from about 1e19).
SAFE_MAGNITUDE = float(np.float32(1e14))  # 1e14 as float32 holds it, so 1e14 itself passes

# Bytes of one chunk when a cube with NaN / Inf is scanned for its largest finite value.
_CHUNK_BYTES = 64 << 20


def as_cube(data, name: str = "data", allow_nonfinite: bool = False, check_range: bool = True) -> np.ndarray:
    """Return ``data`` as a float32 ``(B, Y, X)`` array or raise a ``ValueError`` saying why not.

    Arrays that are already float32 are returned without a copy (memory maps stay memory maps).
    A masked array comes back as a float32 copy with its masked values set to NaN (so they
    count as NaN below). ``check_range`` refuses finite values larger in magnitude than
    :data:`SAFE_MAGNITUDE` (operations that only move or write values pass False).
    """
    if data is None:
        raise ValueError(f"{name} is None; expected a (bands, y, x) array")
    masked = np.ma.isMaskedArray(data)
    if masked:
        check_real_dtype(data.dtype, name)
        n_masked = int(np.ma.count_masked(data))
        data = np.ma.filled(data.astype(np.float32), np.nan)
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(
            f"{name} must be a 3-D (bands, y, x) cube, got an array of shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    check_real_dtype(arr.dtype, name)
    arr = arr.astype(np.float32, copy=False)
    if allow_nonfinite and not check_range:
        return arr
    low, high = float(arr.min()), float(arr.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        if not allow_nonfinite:
            check_finite(arr, name, f" ({n_masked} of them masked)" if masked and n_masked else "")
        low, high = _finite_range(arr)
    if check_range:
        check_magnitude(max(abs(low), abs(high)), name)
    return arr


def check_real_dtype(dtype, name: str = "data") -> None:
    """Refuse every dtype but integers and floats (booleans, complex, timedelta64, text...)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iuf":
        raise ValueError(
            f"{name} must hold real numbers (integers or floats), got dtype {dtype}"
        )


def check_magnitude(largest: float, name: str = "data") -> None:
    """Refuse a largest finite magnitude above :data:`SAFE_MAGNITUDE`, saying how to rescale."""
    if largest > SAFE_MAGNITUDE:
        factor = 10.0 ** np.ceil(np.log10(largest / SAFE_MAGNITUDE))
        raise ValueError(
            f"{name} holds values as large as {largest:.3g}; napari-deeper computes in float32 and "
            f"accepts magnitudes up to {SAFE_MAGNITUDE:.0e} (beyond that, sums of squares overflow "
            f"to Inf). Rescale the data first, e.g. divide it by {factor:.0e}"
        )


def _finite_range(arr: np.ndarray) -> tuple[float, float]:
    """(smallest, largest) finite value of ``arr``, scanned band chunk by band chunk; (0, 0) if none."""
    low, high = np.inf, -np.inf
    step = max(1, _CHUNK_BYTES // max(1, arr[:1].size * 4))
    for start in range(0, arr.shape[0], step):
        block = np.asarray(arr[start : start + step])
        finite = block[np.isfinite(block)]
        if finite.size:
            low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    return (0.0, 0.0) if low > high else (low, high)


def check_finite(arr: np.ndarray, name: str = "data", detail: str = "") -> None:
    """Raise a ``ValueError`` that counts the NaN and Inf values, if there are any."""
    n_nan = int(np.count_nonzero(np.isnan(arr)))
    n_inf = int(np.count_nonzero(np.isinf(arr)))
    if n_nan or n_inf:
        raise ValueError(
            f"{name} contains {n_nan} NaN{detail} and {n_inf} Inf values out of {arr.size}; "
            "replace them first (e.g. napari_deeper.io.replace_nonfinite)"
        )


def as_wavenumbers(wavenumbers, n_bands: int) -> np.ndarray | None:
    """Return the spectral axis as a float64 1-D array of length ``n_bands`` (or None)."""
    if wavenumbers is None:
        return None
    w = np.asarray(wavenumbers)
    check_real_dtype(w.dtype, "wavenumbers")
    w = w.astype(np.float64).ravel()
    if w.shape != (n_bands,):
        raise ValueError(
            f"wavenumbers has {w.size} values but the data has {n_bands} bands"
        )
    if not np.all(np.isfinite(w)):
        raise ValueError("wavenumbers contains NaN or Inf")
    return w


def as_real(value, name: str) -> float:
    """A finite real number as a float, or a ``ValueError`` naming the parameter and the value."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def as_seed(seed, name: str = "seed"):
    """A seed ``np.random.default_rng`` accepts: None, an integer >= 0, a Generator or a SeedSequence."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise ValueError(
            f"{name} must be None, an integer >= 0 or a numpy Generator, got {seed!r} ({type(seed).__name__})"
        )
    if seed < 0:
        raise ValueError(f"{name} must be >= 0, got {seed}")
    return int(seed)


def check_method(method: str, registry) -> str:
    """Return the lowercase method name, or raise a ``ValueError`` listing the known ones."""
    name = str(method).lower()
    if name not in registry:
        known = ", ".join(sorted(registry))
        raise ValueError(f"unknown method {method!r}; choose one of: {known}")
    return name
