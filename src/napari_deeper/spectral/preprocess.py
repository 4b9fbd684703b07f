"""Spectral preprocessing: normalisation, baseline and cosmic-ray removal, NaN filling.

Every function works on whole cubes at once (no per-pixel Python loops) and returns a new array;
inputs are never modified. :func:`preprocess_steps` chains them for the Preprocess widget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validation import as_cube, check_method
from ..compute import Progress, Steps, chunk_size, chunks, run, share
from ..io import replace_nonfinite_steps
from .bands import crop as crop_bands
from .bands import spectral_axis

NORMALISATIONS = ("max", "minmax", "vector", "area", "cube-max", "cube-minmax")


def _safe_divide(numerator: np.ndarray, denominator) -> np.ndarray:
    """``numerator / denominator`` with zero wherever the denominator is not positive."""
    denominator = np.broadcast_to(np.asarray(denominator, dtype=np.float64), numerator.shape)
    out = np.zeros(numerator.shape, dtype=np.float32)
    np.divide(numerator, denominator, out=out, where=denominator > 0, casting="unsafe")
    return out


def normalise(data, mode: str, wavenumbers=None) -> np.ndarray:
    """Scale each spectrum (or the whole cube) so that intensities become comparable.

    Per spectrum: ``"max"`` divides by the largest absolute value, ``"minmax"`` maps the
    spectrum onto [0, 1], ``"vector"`` divides by the L2 norm, ``"area"`` divides by the area
    under the absolute spectrum (trapezoid over ``wavenumbers``, band spacing 1 when None).
    Per cube: ``"cube-max"`` and ``"cube-minmax"`` do the same with one factor for all pixels,
    so relative intensities between pixels survive. Spectra that are all zero (or flat, for the
    min-max modes) come out as zeros, never NaN.
    """
    mode = check_method(mode, NORMALISATIONS)
    cube = as_cube(data)
    if mode == "max":
        return _safe_divide(cube, np.abs(cube).max(axis=0))
    if mode == "minmax":
        low = cube.min(axis=0)
        return _safe_divide(cube - low, cube.max(axis=0).astype(np.float64) - low)
    if mode == "vector":
        norm = np.sqrt(np.einsum("byx,byx->yx", cube, cube, dtype=np.float64))
        return _safe_divide(cube, norm)
    if mode == "area":
        axis = spectral_axis(wavenumbers, cube.shape[0])
        area = np.abs(np.trapezoid(np.abs(cube), axis, axis=0))
        return _safe_divide(cube, area)
    if mode == "cube-max":
        return _safe_divide(cube, float(np.abs(cube).max()))
    low, high = float(cube.min()), float(cube.max())
    return _safe_divide(cube - np.float32(low), high - low)


_normalise = normalise  # preprocess_steps takes an argument of the same name


def fill_nonfinite(data, value: float = 0.0) -> tuple[np.ndarray, int]:
    """A float32 copy of ``data`` with NaN and Inf replaced by ``value``, and how many there were.

    The band-chunked work is :func:`napari_deeper.io.replace_nonfinite_steps`'s.
    """
    cube, n_nan, n_inf = run(replace_nonfinite_steps(data, value))
    return cube, n_nan + n_inf


def _modpoly_fit(spectra, design, solve, iterations: int, tolerance: float) -> np.ndarray:
    """Modified-polyfit baselines of ``(B, n)`` spectra; converged pixels drop out of the loop."""
    baseline = np.empty_like(spectra)
    work = spectra.copy()
    fit = design @ (solve @ work)
    pending = np.arange(spectra.shape[1])  # columns of work/fit are these pixels
    for _ in range(iterations):
        np.minimum(work, fit, out=work)
        new_fit = design @ (solve @ work)
        change = np.linalg.norm(new_fit - fit, axis=0)
        scale = np.maximum(np.linalg.norm(fit, axis=0), np.finfo(np.float64).tiny)
        fit = new_fit
        converged = change < tolerance * scale
        if converged.any():
            baseline[:, pending[converged]] = fit[:, converged]
            keep = ~converged
            pending, work, fit = pending[keep], work[:, keep], fit[:, keep]
            if pending.size == 0:
                return baseline
    baseline[:, pending] = fit
    return baseline


def remove_baseline_steps(
    data, wavenumbers=None, order: int = 3, iterations: int = 100, tolerance: float = 1e-3
) -> Steps[np.ndarray]:
    """Steps version of :func:`remove_baseline`: yields progress per chunk of pixels."""
    cube = as_cube(data)
    n_bands = cube.shape[0]
    order = int(order)
    if not 0 <= order < n_bands:
        raise ValueError(f"baseline order must be between 0 and {n_bands - 1} (bands - 1), got {order}")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    axis = spectral_axis(wavenumbers, n_bands)
    span = float(np.ptp(axis))
    scaled = (axis - axis.min()) / span * 2.0 - 1.0 if span > 0 else np.zeros_like(axis)
    design = np.polynomial.legendre.legvander(scaled, order)  # (B, order+1), well conditioned
    solve = np.linalg.pinv(design)  # (order+1, B): least-squares coefficients, all pixels at once
    flat = cube.reshape(n_bands, -1)
    n_pixels = flat.shape[1]
    corrected = np.empty_like(flat)
    size = min(chunk_size(n_bands * 8 * 6), 16384)
    message = f"baseline (polynomial order {order})"
    yield Progress(0, n_pixels, message)
    for pixels in chunks(n_pixels, size):
        spectra = flat[:, pixels].astype(np.float64)
        corrected[:, pixels] = spectra - _modpoly_fit(spectra, design, solve, iterations, tolerance)
        yield Progress(pixels.stop, n_pixels, message)
    return corrected.reshape(cube.shape)


def remove_baseline(data, wavenumbers=None, order: int = 3, iterations: int = 100,
                    tolerance: float = 1e-3) -> np.ndarray:
    """Subtract a smooth fluorescence background from every spectrum (modified polyfit).

    The iterative polynomial fit of Lieber & Mahadevan-Jansen (2003): fit a polynomial of
    ``order`` to the spectrum, clip the spectrum to the fit from above, refit, until the fit
    changes by less than ``tolerance`` (relative) or after ``iterations`` rounds. Peaks lie above
    the fit and are left out of it; what remains is the background. All pixels of a chunk are fit
    together with one matrix product.
    """
    return run(remove_baseline_steps(data, wavenumbers, order, iterations, tolerance))


def _noise_level(cube: np.ndarray, *, peak: float | None = None) -> np.ndarray:
    """Per-pixel noise standard deviation from the second difference along the bands (robust).

    Its floor is 1e-6 of ``peak``, the largest absolute value of the cube (``cube``'s own when
    None; a block of a streamed cube is given the whole cube's, so its floor is the same).
    """
    if cube.shape[0] < 3:
        return np.full(cube.shape[1:], np.inf, dtype=np.float32)
    second = np.diff(cube, n=2, axis=0)
    sigma = 1.4826 * np.median(np.abs(second), axis=0) / np.sqrt(6.0)
    peak = float(np.abs(cube).max()) if peak is None else float(peak)
    floor = 1e-6 * peak + np.finfo(np.float32).tiny
    return np.maximum(sigma, floor).astype(np.float32)


def _spectral_median(cube: np.ndarray, size: int = 5) -> np.ndarray:
    """Running median over ``size`` bands; the two end bands on each side use the nearest
    ``size`` interior bands instead, so a two-band spike at the very end is not its own median."""
    from scipy.ndimage import median_filter

    n_bands = cube.shape[0]
    if n_bands < size:
        return np.broadcast_to(np.median(cube, axis=0), cube.shape).copy()
    reference = median_filter(cube, size=(size, 1, 1), mode="nearest")
    edge = size // 2
    if n_bands >= size + 2 * edge:
        reference[:edge] = np.median(cube[edge : edge + size], axis=0)
        reference[-edge:] = np.median(cube[-edge - size : -edge], axis=0)
    return reference


def find_spikes(data, threshold: float = 8.0, *, peak: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flag cosmic-ray spikes; returns ``(mask (B, Y, X) bool, replacement (B, Y, X))``.

    A value is a spike when it stands more than ``threshold`` noise levels above both the median
    of its 3x3 spatial neighbours (same band) and the median of its own spectrum over 5 bands.
    Real Raman peaks are wider than a few bands and shared by neighbouring pixels, so they fail
    one test or the other; a cosmic ray, one pixel and one to three bands wide, passes both.
    The bands right next to a spike are flagged too when they stand more than ``threshold/2``
    above the spatial median (the spike's wings). Images narrower than 3 pixels use the spectral
    test alone. ``replacement`` holds the spatial median (spectral where there is no spatial
    one), the value that :func:`remove_spikes` puts in place of a spike. ``peak`` is the whole
    cube's largest absolute value when ``data`` is one block of it (see :func:`_noise_level`).
    """
    from scipy.ndimage import median_filter

    if threshold <= 0:
        raise ValueError(f"spike threshold must be positive, got {threshold}")
    cube = as_cube(data)
    n_bands, n_rows, n_cols = cube.shape
    sigma = _noise_level(cube, peak=peak)[None]
    spectral_median = _spectral_median(cube)
    spectral_z = (cube - spectral_median) / sigma
    if n_rows >= 3 and n_cols >= 3:
        spatial_median = median_filter(cube, size=(1, 3, 3), mode="mirror")
        spatial_z = (cube - spatial_median) / sigma
        mask = (spatial_z > threshold) & (spectral_z > threshold)
        replacement = spatial_median
    else:
        spatial_z = spectral_z
        mask = spectral_z > threshold
        replacement = spectral_median
    neighbours = np.zeros_like(mask)
    neighbours[1:] |= mask[:-1]
    neighbours[:-1] |= mask[1:]
    mask |= neighbours & (spatial_z > threshold / 2)
    return mask, replacement


def remove_spikes(data, threshold: float = 8.0) -> np.ndarray:
    """A copy of ``data`` with cosmic-ray spikes replaced by the median of their neighbours.

    See :func:`find_spikes` for the test; lower ``threshold`` removes more (and risks touching
    real signal), higher removes only the strongest spikes.
    """
    mask, replacement = find_spikes(data, threshold)
    cleaned = np.array(as_cube(data), dtype=np.float32, copy=True)
    cleaned[mask] = replacement[mask]
    return cleaned


@dataclass
class Preprocessed:
    """What :func:`preprocess_steps` returns: the new cube (a dask array over its zarr store
    when :func:`napari_deeper.stream.preprocess_steps` streamed it), its axis, and what was done."""

    data: np.ndarray
    wavenumbers: np.ndarray | None
    steps: list[dict] = field(default_factory=list)


def preprocess_steps(
    data,
    wavenumbers=None,
    crop: tuple[float | None, float | None] | None = None,
    fill: float | None = None,
    despike: float | None = None,
    baseline: int | None = None,
    normalise: str | None = None,
) -> Steps[Preprocessed]:
    """Crop, fill NaN/Inf, remove spikes, remove the baseline and normalise, in that order.

    Each argument left None skips its step: ``crop=(start, stop)`` in wavenumbers, ``fill`` the
    value for NaN/Inf, ``despike`` the spike threshold, ``baseline`` the polynomial order,
    ``normalise`` one of :data:`NORMALISATIONS`. Returns a :class:`Preprocessed` whose ``steps``
    lists each step with its parameters (and, for fill and despike, how many values changed).
    The input is never modified.
    """
    if normalise is not None:
        check_method(normalise, NORMALISATIONS)
    planned = [name for name, value in (("crop", crop), ("fill", fill), ("despike", despike),
                                        ("baseline", baseline), ("normalise", normalise))
               if value is not None]
    total = max(1, len(planned))
    done: list[dict] = []

    def progress(message: str) -> Progress:
        return Progress(1000 * len(done), 1000 * total, message)

    yield progress("preprocessing")
    if crop is not None:
        start, stop = crop
        cube, wavenumbers = crop_bands(data, wavenumbers, start, stop)
        done.append({"step": "crop", "start": start, "stop": stop, "bands": int(cube.shape[0])})
        yield progress("cropped")
    else:
        cube = np.array(as_cube(data, allow_nonfinite=fill is not None), dtype=np.float32, copy=True)
    if fill is not None:
        cube, count = fill_nonfinite(cube, fill)
        done.append({"step": "fill", "value": fill, "replaced": count})
        yield progress(f"replaced {count} NaN/Inf values")
    if despike is not None:
        mask, replacement = find_spikes(cube, despike)
        cube[mask] = replacement[mask]
        done.append({"step": "despike", "threshold": despike, "replaced": int(mask.sum())})
        yield progress(f"replaced {int(mask.sum())} spike values")
    if baseline is not None:
        cube = yield from share(remove_baseline_steps(cube, wavenumbers, order=baseline), 1000 * len(done), 1000,
                                1000 * total)
        cube = cube.astype(np.float32, copy=False)
        done.append({"step": "baseline", "method": "modpoly", "order": int(baseline)})
        yield progress("baseline removed")
    if normalise is not None:
        cube = _normalise(cube, normalise, wavenumbers)
        done.append({"step": "normalise", "mode": normalise})
        yield progress(f"normalised ({normalise})")
    return Preprocessed(cube, wavenumbers, done)

