"""Detection: photon counting (Poisson shot noise), Gaussian read noise and cosmic-ray spikes.

A clean, non-negative signal is scaled so that its brightest value is ``photons`` counts, the
noise is drawn in counts, and the result is scaled back to the units of the signal.
"""

from __future__ import annotations

import numpy as np

from ._checks import _fraction, _generator, _non_negative, _positive

_NORMAL_COUNTS = 1000.0  # above this many expected counts, shot noise is drawn as a normal

DEFAULT_READ_NOISE = 1.0
"""Gaussian read noise in counts (standard deviation)."""


def _count_noise(expected: np.ndarray, rng, read_noise: float) -> np.ndarray:
    """Poisson shot noise on the expected counts plus Gaussian read noise (float32 counts).

    Works in chunks to keep memory small. Above ``_NORMAL_COUNTS`` expected counts the Poisson
    distribution is drawn as its normal approximation (skewness below 3 %), which is several
    times faster and indistinguishable at that level.
    """
    flat = np.ascontiguousarray(expected).reshape(-1)
    out = np.empty(flat.size, dtype=np.float32)
    step = 1 << 20
    for start in range(0, flat.size, step):
        lam = flat[start : start + step].astype(np.float64)
        bright = lam >= _NORMAL_COUNTS
        if bright.any():
            counts = np.empty(lam.size, dtype=np.float64)
            counts[~bright] = rng.poisson(lam[~bright])
            counts[bright] = lam[bright] + np.sqrt(lam[bright]) * rng.standard_normal(
                int(bright.sum())
            )
        else:
            counts = rng.poisson(lam)
        out[start : start + step] = counts
    if read_noise > 0:
        out += np.float32(read_noise) * rng.standard_normal(out.size, dtype=np.float32)
    return out.reshape(np.shape(expected))


def _add_spikes(spectra: np.ndarray, rng, fraction: float, peak_counts) -> None:
    """Add cosmic-ray spikes in place to a fraction of the spectra (``(..., B)`` counts).

    A spike is one band, sometimes spilling into the next one, between 2 and 10 times the
    spectrum's peak counts: very bright and very narrow, unlike any Raman band.
    """
    if fraction <= 0:
        return
    lead, n_bands = spectra.shape[:-1], spectra.shape[-1]
    n_spectra = int(np.prod(lead))
    hit = np.flatnonzero(rng.random(n_spectra) < fraction)
    if hit.size == 0:
        return
    band = rng.integers(0, n_bands, hit.size)
    peak = np.broadcast_to(np.asarray(peak_counts, dtype=np.float32).reshape(-1), (n_spectra,))[hit]
    amplitude = peak * rng.uniform(2.0, 10.0, hit.size).astype(np.float32)
    index = np.unravel_index(hit, lead)
    spectra[(*index, band)] += amplitude
    spill = band + 1 < n_bands
    spill_index = tuple(i[spill] for i in index)
    spectra[(*spill_index, band[spill] + 1)] += amplitude[spill] * rng.uniform(
        0.0, 0.4, int(spill.sum())
    ).astype(np.float32)


def add_noise(
    clean,
    photons: float,
    rng,
    read_noise: float = DEFAULT_READ_NOISE,
    spikes: float = 0.0,
    band_axis: int = 0,
) -> np.ndarray:
    """Detector noise for a clean, non-negative signal; float32 in the units of ``clean``.

    ``clean`` is scaled so that its largest value is ``photons`` counts; Poisson shot noise and
    Gaussian read noise (``read_noise`` counts, standard deviation) are added, and a fraction
    ``spikes`` of the spectra get a cosmic-ray spike; the counts are then scaled back. The noise
    standard deviation at a value ``s`` is therefore about ``sqrt(s * max(clean) / photons)``.
    ``band_axis`` is the spectral axis of ``clean`` (0 for a ``(B, Y, X)`` cube, -1 for
    ``(n, B)`` spectra); it matters only for spikes.
    """
    arr = np.asarray(clean)
    if arr.size == 0:
        raise ValueError(f"clean is empty (shape {arr.shape})")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"clean must hold real numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("clean contains NaN or Inf")
    if arr.min() < 0:
        raise ValueError(
            "clean must be non-negative (an expected photon signal); "
            f"its minimum is {arr.min():.3g}"
        )
    peak = float(arr.max())
    if peak == 0:
        raise ValueError("clean is all zero, so there is no signal to scale to photons")
    photons = _positive(photons, "photons")
    read_noise = _non_negative(read_noise, "read_noise")
    spikes = _fraction(spikes, "spikes")
    if not -arr.ndim <= band_axis < arr.ndim:
        raise ValueError(f"band_axis {band_axis} is out of range for an array of {arr.ndim} dims")
    rng = _generator(rng)
    scale = photons / peak
    counts = _count_noise(arr.astype(np.float32) * np.float32(scale), rng, read_noise)
    _add_spikes(np.moveaxis(counts, band_axis, -1), rng, spikes, photons)
    counts /= np.float32(scale)
    return counts
