"""Spectral processing on ``(B, Y, X)`` cubes: band maps, crop, normalisation, baseline, spikes.

Pure NumPy (SciPy for the median filters), vectorised over pixels. Functions that read only a
few bands (:func:`band_map`, :func:`crop`, :func:`pixel_spectra`) accept memory-mapped cubes and
read just what they need.
"""

from .bands import (
    BAND_MAP_MODES,
    band_map,
    band_map_steps,
    band_maps_steps,
    band_window,
    crop,
    spectral_axis,
)
from .preprocess import (
    NORMALISATIONS,
    Preprocessed,
    fill_nonfinite,
    find_spikes,
    normalise,
    preprocess_steps,
    remove_baseline,
    remove_baseline_steps,
    remove_spikes,
)
from .stats import pixel_spectra, roi_stats, save_spectra_csv

__all__ = [
    "BAND_MAP_MODES",
    "NORMALISATIONS",
    "Preprocessed",
    "band_map",
    "band_map_steps",
    "band_maps_steps",
    "band_window",
    "crop",
    "fill_nonfinite",
    "find_spikes",
    "normalise",
    "pixel_spectra",
    "preprocess_steps",
    "remove_baseline",
    "remove_baseline_steps",
    "remove_spikes",
    "roi_stats",
    "save_spectra_csv",
    "spectral_axis",
]
