"""Band-ratio maps (e.g. 2850/2930 lipid order, 1660/1450 protein/lipid), masked where the
denominator band is noise."""

from __future__ import annotations

import numpy as np

from .._validation import as_cube, check_method
from ..compute import Progress, Steps, run
from ..spectral.bands import band_map, spectral_axis
from ..spectral.preprocess import _noise_level
from .peaks import band_pairs, fit_peaks_steps

RATIO_MODES = ("area", "height", "fitted-area", "fitted-height")


def _area_weights(n_bands: int, axis: np.ndarray, center: float, half_window: float) -> np.ndarray:
    """The ``(B,)`` coefficients ``c`` of the band area as a linear function of the spectrum.

    :func:`napari_deeper.spectral.band_map` with ``baseline=True`` is linear in the spectrum:
    its value for the spectrum ``e_j`` (1 in band ``j``, 0 elsewhere) is ``c_j``. White noise of
    standard deviation ``sigma`` in every band then gives the area a standard deviation
    ``sigma * |c|``.
    """
    unit = np.eye(n_bands, dtype=np.float32)[:, :, None]  # pixel j holds e_j
    return band_map(unit, axis, center, 2.0 * half_window, "area", baseline=True)[:, 0]


def band_ratio_steps(data, wavenumbers=None, numerator=(2850.0, 15.0), denominator=(2930.0, 15.0),
                     mode: str = "area", threshold: float = 3.0, shape: str = "lorentzian") -> Steps[dict]:
    """Steps version of :func:`band_ratio`."""
    mode = check_method(mode, RATIO_MODES)
    if not threshold >= 0:
        raise ValueError(f"threshold must be a number >= 0 (noise standard deviations), got {threshold!r}")
    (num,), (den,) = band_pairs(numerator), band_pairs(denominator)
    cube = as_cube(data)
    axis = spectral_axis(wavenumbers, cube.shape[0])
    yield Progress(0, 3, "band ratio")
    denominator_area = band_map(cube, axis, den[0], 2.0 * den[1], "area", baseline=True)
    sigma = _noise_level(cube) * float(np.linalg.norm(_area_weights(cube.shape[0], axis, *den)))
    yield Progress(1, 3, "band ratio: denominator noise")
    failed = np.zeros(cube.shape[1:], dtype=bool)
    if mode in ("area", "height"):
        top = band_map(cube, axis, num[0], 2.0 * num[1], mode, baseline=True)
        bottom = denominator_area if mode == "area" else band_map(
            cube, axis, den[0], 2.0 * den[1], mode, baseline=True)
    else:
        fit = yield from fit_peaks_steps(cube, axis, [num, den], shape=shape)
        key = "area" if mode == "fitted-area" else "height"
        top, bottom = fit[key][0], fit[key][1]
        failed = fit["failed"].any(axis=0)
    yield Progress(2, 3, "band ratio")
    noise = denominator_area < threshold * sigma
    masked = noise | failed | ~(bottom > 0) | ~np.isfinite(top)
    ratio = np.full(cube.shape[1:], np.nan, dtype=np.float32)
    np.divide(top, bottom, out=ratio, where=~masked, casting="unsafe")
    n = masked.size
    message = (
        f"ratio {num[0]:g}/{den[0]:g} ({mode}): {n - int(masked.sum())} of {n} pixels; "
        f"{int(noise.sum())} masked where the {den[0]:g} band is below {threshold:g} noise "
        "standard deviations"
    )
    others = int((masked & ~noise).sum())
    if others:
        message += f", {others} where it is not positive or a fit failed"
    yield Progress(3, 3, "band ratio")
    return {"ratio": ratio, "mask": masked, "numerator": np.asarray(top, dtype=np.float32),
            "denominator": np.asarray(bottom, dtype=np.float32), "noise": sigma.astype(np.float32),
            "message": message}


def band_ratio(data, wavenumbers=None, numerator=(2850.0, 15.0), denominator=(2930.0, 15.0),
               mode: str = "area", threshold: float = 3.0, shape: str = "lorentzian") -> dict:
    """The ``(Y, X)`` map of band ``numerator`` over band ``denominator``, each ``(center, half_window)``.

    ``mode``: ``"area"`` or ``"height"`` above the straight line joining the window's edges
    (:func:`napari_deeper.spectral.band_map` with ``baseline=True``), or ``"fitted-area"`` /
    ``"fitted-height"`` of a :func:`fit_peaks` fit of ``shape``. A pixel is masked (NaN in
    ``ratio``, True in ``mask``) where the denominator band's area is below ``threshold``
    standard deviations of its noise (the noise level of the spectrum, from its second
    differences, carried through the area), where the denominator is not positive, or where
    a fit failed. Returns ``ratio``, ``mask``, ``numerator``, ``denominator``, ``noise`` (the
    standard deviation of the denominator's area) and ``message``.
    """
    return run(band_ratio_steps(data, wavenumbers, numerator, denominator, mode, threshold, shape))
