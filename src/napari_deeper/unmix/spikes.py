"""Endmembers that look like cosmic-ray spikes: a peak a few bands wide, in one pixel only.

VCA picks the most extreme pixels, and a pixel hit by a cosmic ray is extreme: on raw scans it
can take an endmember of its own. :func:`spike_like_endmembers` finds those, so the Unmix dock
can warn (and spike removal before VCA, the dock's default, keeps them from being picked).
"""

from __future__ import annotations

import numpy as np

#: a peak at most this many bands wide (above half its height) is spike-like
MAX_SPIKE_BANDS = 2
#: ... when it stands this many noise levels above the spectrum's running median
MIN_SPIKE_SIGMA = 10.0
#: ... and its pixel's 3 x 3 neighbours have less than this share of it (a spike is in one pixel)
NEIGHBOUR_SHARE = 0.3
_MEDIAN_BANDS = 9


def _sharp_part(spectra: np.ndarray) -> np.ndarray:
    """Each ``(n, B)`` spectrum minus its running median over :data:`_MEDIAN_BANDS` bands."""
    from scipy.ndimage import median_filter

    return spectra - median_filter(spectra, size=(1, _MEDIAN_BANDS), mode="nearest")


def spike_like_endmembers(endmembers, source, pixel_indices) -> list[dict]:
    """The endmembers whose strongest feature is a cosmic-ray spike, as ``{"component", "band", "bands"}``.

    An endmember is spike-like when its strongest narrow peak (the spectrum above its running
    median) is at most :data:`MAX_SPIKE_BANDS` bands wide at half height, at least
    :data:`MIN_SPIKE_SIGMA` noise levels high and has no deep dip beside it (a step in the
    spectrum, or a spike already replaced, is not a spike), and is missing from the 3 x 3
    neighbours of the endmember's pixel in the ``source`` cube ``(B, Y, X)`` (``pixel_indices``:
    VCA's flat indices): a Raman band is shared by neighbouring pixels, a cosmic ray is not. The
    spectral test alone cannot tell (sampled coarsely, a real band is 1-2 bands wide too), so
    endmembers without pixels (``source`` or ``pixel_indices`` None: loaded from a file) are
    never flagged. ``band`` is the peak's band (0-based) and ``bands`` its width. A lazy
    ``source`` (a dask array) is read only in those 3 x 3 windows.
    """
    from ..io._lazy import is_lazy

    em = np.atleast_2d(np.asarray(endmembers, dtype=np.float64))
    if source is None or pixel_indices is None or em.ndim != 2 or em.shape[1] < _MEDIAN_BANDS:
        return []
    source = source if is_lazy(source) else np.asarray(source)
    sharp = _sharp_part(em)
    second = np.diff(em, n=2, axis=1)
    sigma = np.maximum(1.4826 * np.median(np.abs(second), axis=1) / np.sqrt(6.0), 1e-12 * np.abs(em).max() + 1e-30)
    found = []
    for index, (excess, noise) in enumerate(zip(sharp, sigma)):
        band = int(np.argmax(excess))
        height = excess[band]
        if not height >= MIN_SPIKE_SIGMA * noise:
            continue
        above = excess > height / 2
        low = band
        while low > 0 and above[low - 1]:
            low -= 1
        high = band
        while high < len(above) - 1 and above[high + 1]:
            high += 1
        width = high - low + 1
        around = excess[max(0, low - MAX_SPIKE_BANDS - 2) : high + MAX_SPIKE_BANDS + 3]
        if width > MAX_SPIKE_BANDS or around.min() < -height / 2:  # too wide, or an edge / a dip beside it
            continue
        if _missing_from_neighbours(source, int(pixel_indices[index]), low, high, height):
            found.append({"component": index, "band": band, "bands": int(width)})
    return found


def _missing_from_neighbours(cube: np.ndarray, flat_index: int, low: int, high: int, height: float) -> bool:
    """Whether the pixel's 3 x 3 neighbours lack the peak of bands ``low..high`` (a one-pixel feature)."""
    y, x = (int(i) for i in np.unravel_index(flat_index, cube.shape[1:]))
    top, left = max(0, y - 1), max(0, x - 1)
    window = np.asarray(cube[:, top : y + 2, left : x + 2], dtype=np.float64)  # one read, also of a lazy cube
    spectra = window.reshape(window.shape[0], -1).T  # row by row, as the pixels lie
    neighbours = np.delete(spectra, (y - top) * window.shape[2] + (x - left), axis=0)
    if neighbours.size == 0:
        return True
    excess = _sharp_part(neighbours)[:, low : high + 1].max(axis=1)
    return bool(np.median(excess) < NEIGHBOUR_SHARE * height)
