"""A noise model per cube: Poisson-Gaussian gain and read-noise variance, and cosmic-ray spikes.

A CCD behind a Raman spectrometer counts photons (Poisson) and adds read noise (Gaussian), and
the file stores ``a`` data units per photon. The variance of a value ``y`` is then

    var(y) = a * E[y] + b

with ``a`` the *gain* (data units per photon) and ``b`` the variance where the signal is zero
(read noise, plus the shot noise of anything subtracted before the file was written, such as a
fluorescence background). :func:`estimate_noise` fits ``a`` and ``b`` on the cube itself, as Foi
et al. (IEEE TIP 17, 1737, 2008) do for images:

1. **Local means and residuals that do not share noise.** At every interior position the local
   mean is the 3 x 3 x 3 box average; the residuals are the normalised second differences
   ``(y[-1] - 2 y[0] + y[1]) / sqrt(6)`` along the bands, along y and along x. Each residual
   kernel sums to zero over the box, so (for noise that varies slowly) a residual is
   uncorrelated with its local mean, and its variance is the noise variance at that position.
2. **Robust variance per level.** Positions are binned by local mean (equal counts per bin); in
   each bin the variance of each residual is a sigma-clipped variance (values beyond 4 robust
   standard deviations dropped, corrected for the clipping), so spikes and the rare sharp
   feature do not count. Structure in the signal (a narrow Raman band, a cell's edge) only adds
   variance to a residual, so each bin keeps the smallest of the three: the direction in which
   the signal is smoothest there.
3. **Weighted straight-line fit** of variance against level, each bin weighted by the inverse
   variance of its estimate (``2 v^2 / n``), bins lying far above the line (signal that leaked
   into every residual) dropped and the line refitted.

Cosmic-ray spikes are values that stand far above both their spectral neighbours (median over
5 bands) and their spatial neighbours (median over 3 x 3 pixels), in units of the model's noise
at that level; a run of neighbouring bands in one spectrum counts as one spike.

The same functions work on background-subtracted data: values below zero are levels like any
other, and ``b`` then holds the subtracted background's shot noise. A negative ``b`` means the
data's zero lies below the zero of the photon counts (a dark offset left in): the photons start
at ``-b / a``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .._validation import as_cube, check_finite
from ..compute import ordered_map, thread_budget

#: Values examined at most (positions in the fit); larger cubes are read in evenly spaced strips.
MAX_VALUES = 4_000_000
#: Values of a strip whose residuals are taken at once (:func:`_thinned_pairs`).
PAIR_VALUES = 2_000_000
#: Positions the straight-line fit uses at most (evenly thinned from those examined).
FIT_VALUES = 400_000
#: A value this many noise standard deviations above both medians is a spike.
SPIKE_THRESHOLD = 8.0
#: Stabilise when the variance at the brightest level exceeds the lowest variance this many times.
STABILISE_RATIO = 1.5
_CLIP = 4.0
# Variance of a standard normal truncated to [-c, c], the correction of a clipped variance.
_CLIP_FACTOR = 0.998929


@dataclass(frozen=True)
class NoiseModel:
    """A cube's Poisson-Gaussian noise: ``var(y) = gain * E[y] + read_variance`` (data units).

    ``photons_at_max`` is how many photons the brightest level of the cube (the 99.9th
    percentile of local means, above the photon zero) corresponds to; ``regime`` says which part
    of the noise dominates at that level; ``spikes`` counts the cosmic-ray spikes found in
    ``spectra_examined`` spectra. ``levels`` and ``variances`` are the binned measurements the
    line was fitted to (for plots), ``used`` marks the bins the fit kept.
    """

    gain: float
    read_variance: float
    spikes: int
    spectra_examined: int
    photons_at_max: float
    regime: str
    brightest: float
    min_variance: float
    gain_error: float = float("nan")
    levels: tuple = field(default=(), repr=False)
    variances: tuple = field(default=(), repr=False)
    used: tuple = field(default=(), repr=False)

    @classmethod
    def white(cls, variance: float) -> NoiseModel:
        """Noise of the same ``variance`` at every level (e.g. 1 after variance stabilisation)."""
        return cls(0.0, float(variance), 0, 0, float("inf"), "read-noise limited", 0.0, float(variance), 0.0)

    @property
    def needs_stabilising(self) -> bool:
        """True when the noise variance at the brightest level is over :data:`STABILISE_RATIO`
        times the lowest variance measured: the noise then depends on the intensity enough for a
        variance-stabilising transform to matter."""
        return bool(self.gain > 0 and self.variance(self.brightest) > STABILISE_RATIO * self.min_variance)

    @property
    def zero(self) -> float:
        """The data value where the photon count is zero: 0, or ``-b / a`` when ``b`` < 0."""
        if self.read_variance < 0 and self.gain > 0:
            return -self.read_variance / self.gain
        return 0.0

    def variance(self, level) -> np.ndarray:
        """Noise variance at ``level`` (array-like), never below the lowest variance measured."""
        line = self.gain * np.asarray(level, dtype=np.float64) + self.read_variance
        return np.maximum(line, self.min_variance)

    @property
    def shot_fraction(self) -> float:
        """Share of the variance at the brightest level that is shot noise (0 to 1)."""
        shot = self.gain * max(self.brightest - self.zero, 0.0)
        total = shot + max(self.read_variance, 0.0)
        return float(shot / total) if total > 0 else 0.0

    def describe(self) -> str:
        """One sentence a biologist reads: what limits the noise and how many photons there were."""
        if self.gain <= 0 or not np.isfinite(self.photons_at_max):
            text = "Read-noise limited: no measurable shot noise (noise the same at every intensity)"
        else:
            text = f"{self.regime.capitalize()}, about {_round(self.photons_at_max)} photons at the brightest band"
            if not self.gain_error <= 0.25 * self.gain:
                text += (" (uncertain: the intensities span too narrow a range to measure the gain to better "
                         f"than {100 * self.gain_error / self.gain:.0f} %)")
        if self.read_variance >= 0:
            text += f"; noise where there is no signal: {np.sqrt(self.read_variance):.3g} (data units)"
        else:
            text += f"; a dark offset of about {self.zero:.3g} (data units) is left in"
        spikes = "no cosmic-ray spikes" if self.spikes == 0 else (
            f"{self.spikes} cosmic-ray spike{'s' if self.spikes != 1 else ''}")
        return f"{text}; {spikes} in {self.spectra_examined} spectra."

    def as_dict(self) -> dict:
        """Plain numbers for provenance (the binned measurements left out)."""
        keep = ("gain", "read_variance", "spikes", "spectra_examined", "photons_at_max", "regime", "brightest",
                "min_variance", "gain_error")
        return {k: v for k, v in asdict(self).items() if k in keep}


def _round(value: float) -> str:
    """A photon count to two significant figures, as a person would say it."""
    if value >= 100:
        return f"{float(f'{value:.2g}'):,.0f}"
    return f"{value:.2g}" if value < 10 else f"{round(value):d}"


def _strips(n_rows: int, n_values_per_row: int, max_values: int) -> list[slice]:
    """Row ranges (each with its 1-row halo) to examine: all rows, or evenly spaced strips."""
    if n_rows * n_values_per_row <= max_values:
        return [slice(0, n_rows)]
    rows_wanted = max(3, max_values // max(1, n_values_per_row))
    height = max(3, min(n_rows, 32, rows_wanted))
    n_strips = max(1, rows_wanted // height)
    starts = np.linspace(0, n_rows - height, n_strips).astype(int)
    return [slice(int(s), int(s) + height) for s in np.unique(starts)]


def _shifted(a: np.ndarray, axis: int, start: int, n: int) -> np.ndarray:
    """The view ``a[..., start:start + n, ...]`` along ``axis``."""
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, start + n)
    return a[tuple(index)]


def _window_sums(a: np.ndarray, halves) -> np.ndarray:
    """Sum over the window ``[i - h, i + h]`` along every axis, at the positions where it fits."""
    for axis, h in enumerate(halves):
        if h == 0:
            continue
        n = a.shape[axis] - 2 * h
        a = sum(_shifted(a, axis, s, n) for s in range(2 * h + 1))
    return a


def _interior(a: np.ndarray, halves, axis: int, offset: int) -> np.ndarray:
    """The view of ``a`` at the positions where the window of half-widths ``halves`` fits,
    moved by ``offset`` along ``axis``."""
    return a[tuple(slice(h + (offset if i == axis else 0), n - h + (offset if i == axis else 0))
                   for i, (h, n) in enumerate(zip(halves, a.shape)))]


# Residual kernels: (axis, weights). Each sums to zero, so it is blind to a constant level;
# the fourth difference is also blind to curvature, so narrow Raman bands leak less into it.
_KERNELS = (
    (0, np.array([1.0, -2.0, 1.0])),
    (0, np.array([1.0, -4.0, 6.0, -4.0, 1.0])),
    (1, np.array([1.0, -2.0, 1.0])),
    (2, np.array([1.0, -2.0, 1.0])),
)


def _pairs(block: np.ndarray, spatial: bool):
    """Per residual kernel: ``(binning level, level, residual)`` at every interior position.

    ``block`` is float32 (with its typical level subtracted, so the window sums lose nothing).
    The residual is the normalised kernel response along its line of positions; ``level`` is the
    mean over that line; the *binning* level is the mean over the rest of the window (5 bands x
    3 x 3 pixels, or 9 bands for a single line of spectra). The binning level shares no values
    with the line, so choosing a bin by it selects neither noisy residuals nor noisy levels (no
    regression dilution).
    """
    window = (2, 1, 1) if spatial else (4, 0, 0)
    total = _window_sums(block, window)
    n_window = int(np.prod([2 * h + 1 for h in window]))
    out = []
    for axis, weights in _KERNELS:
        if not spatial and axis != 0:
            continue
        length = weights.size
        half = length // 2
        taps = [_interior(block, window, axis, s - half) for s in range(length)]
        # The kernels are symmetric: add the taps of equal weight first.
        paired = [taps[k] + taps[-1 - k] for k in range(half)]
        residual = float(weights[half]) * taps[half]
        for w, pair in zip(weights[:half], paired):
            residual += float(w) * pair
        residual /= float(np.sqrt(np.sum(weights**2)))
        line_sum = taps[half] + sum(paired)
        rest = (total - line_sum) / (n_window - length)
        out.append((rest.ravel(), (line_sum / np.float32(length)).ravel(), residual.ravel()))
    return out


def _thinned_pairs(block: np.ndarray, spatial: bool, thin: int, centre: float):
    """:func:`_pairs` of ``block - centre``, every ``thin``-th position kept, a few bands at a time.

    Yields, per piece of :data:`PAIR_VALUES` values, the kernels' ``(binning level, level,
    residual)`` with ``centre`` added back: the same values, in the same order, as thinning the
    pairs of the whole block (positions are ordered band first, and a piece of output bands
    needs the window's half-width of bands on either side), without the dozen float32 copies of
    the whole block the pairs take (a 32-row strip of a 2048-pixel-wide cube of 500 bands is
    0.12 GiB).
    """
    half = 2 if spatial else 4  # the window's half-width along the bands
    reach = 1 if spatial else 0
    n_out = block.shape[0] - 2 * half
    per_band = (block.shape[1] - 2 * reach) * (block.shape[2] - 2 * reach)
    step = max(1, PAIR_VALUES // max(1, block.shape[1] * block.shape[2]))
    for first in range(0, n_out, step):
        last = min(n_out, first + step)
        piece = block[first : last + 2 * half] - np.float32(centre)
        start = -(first * per_band) % thin
        yield [(binning[start::thin] + centre, level[start::thin] + centre, residual[start::thin])
               for binning, level, residual in _pairs(piece, spatial)]


def _kernel_axes(spatial: bool) -> list[int]:
    """The axis of each kernel :func:`_pairs` returns, in its order."""
    return [axis for axis, _ in _KERNELS if spatial or axis == 0]


def _clipped_variance(r: np.ndarray) -> float:
    """Variance of ``r`` after dropping values beyond 4 robust standard deviations (Gaussian-corrected).

    The first scale is the median absolute deviation of (at most 4096 evenly spaced) values;
    then the clipped variance is iterated to its fixed point.
    """
    sample = r[:: max(1, r.size // 4096)]
    centre = float(np.median(sample))
    scale = 1.4826 * float(np.median(np.abs(sample - centre)))
    if not scale > 0:
        scale = float(np.std(r))
    if not scale > 0:
        return 0.0
    for _ in range(4):
        kept = r[np.abs(r - centre) <= _CLIP * scale]
        centre = float(kept.mean(dtype=np.float64))
        new = float(np.sqrt(kept.var(dtype=np.float64) / _CLIP_FACTOR))
        done = abs(new - scale) <= 1e-3 * scale
        scale = new
        if done:
            break
    return scale**2


def _bin_index(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """``np.searchsorted(inner_edges, values, side="right")`` of float32 ``values`` as uint8, for a
    few dozen edges: one comparison per edge over all values, about 4x faster than the binary
    search's unpredictable branches. Each edge is rounded up to the nearest float32, so the
    comparisons stay in float32 and give the float64 ones' answer."""
    values = np.asarray(values, dtype=np.float32)
    up = inner_edges.astype(np.float32)
    up = np.where(up < inner_edges, np.nextafter(up, np.float32(np.inf)), up)
    index = np.zeros(values.size, dtype=np.uint8)
    for edge in up:
        index += values >= edge
    return index


def _kernel_bins(kernel, inner_edges: np.ndarray, n_bins: int) -> list[tuple[float, float, int]]:
    """One kernel's ``(mean level, residual variance, count)`` in each bin of binning level."""
    binning, level, residual = kernel
    index = _bin_index(binning, inner_edges)
    order = np.argsort(index, kind="stable")  # each bin's values contiguous, in their order
    level, residual = level[order], residual[order]
    ends = np.cumsum(np.bincount(index, minlength=n_bins))
    rows = []
    for start, end in zip([0, *ends[:-1]], ends):
        if end - start < 16:
            rows.append((np.nan, np.inf, 0))
        else:
            rows.append((float(level[start:end].mean(dtype=np.float64)), _clipped_variance(residual[start:end]),
                         int(end - start)))
    return rows


def _binned(kernels, axes, n_bins: int):
    """Per bin of binning level: mean level, residual variance, count.

    Bins have equal counts (quantiles of the first kernel's binning level); every kernel is
    binned on the same edges, the kernels in threads (:func:`~napari_deeper.compute.thread_budget`).
    In each bin, each axis keeps its kernel whose residual varies least, and the bin takes the
    median over the axes: signal that leaks into one axis (a narrow band along the spectrum, an
    edge across the image) and noise correlated along one axis (which makes its residuals too
    *small*) both leave the other two axes to decide.
    """
    # (numpy's selection is several times faster on sorted values, and the quantiles are the same)
    edges = np.quantile(np.sort(kernels[0][0]), np.linspace(0, 1, n_bins + 1))
    per_kernel = list(ordered_map(lambda k: _kernel_bins(k, edges[1:-1], n_bins), kernels,
                                  min(thread_budget(), len(kernels))))
    levels, variances, counts = [], [], []
    for i in range(n_bins):
        per_axis = [min((rows[i] for rows, ax in zip(per_kernel, axes) if ax == axis), key=lambda row: row[1])
                    for axis in sorted(set(axes))]
        best = sorted(per_axis, key=lambda row: row[1])[(len(per_axis) - 1) // 2]
        if best[2]:
            levels.append(best[0])
            variances.append(best[1])
            counts.append(best[2])
    return np.array(levels), np.array(variances), np.array(counts, dtype=np.float64)


def fit_line(levels: np.ndarray, variances: np.ndarray, counts: np.ndarray, rounds: int = 4):
    """Weighted, outlier-trimmed fit of ``variance = a * level + b``: ``(a, b, bins used, error of a)``.

    Each bin's weight is the inverse variance of a variance estimate, ``n / (2 v^2)`` with ``v``
    the fitted variance; bins more than 3 standard errors above the line (signal left in every
    residual) are dropped and the line refitted. The standard error of ``a`` is inflated by the
    misfit (reduced chi-square) when the points scatter more than their errors say.
    """
    used = np.ones(levels.size, dtype=bool)
    floor = max(float(variances[variances > 0].min(initial=np.inf)), np.finfo(float).tiny)
    fitted = np.maximum(variances, floor)
    a, b, error_a = 0.0, float(np.median(variances)), np.inf
    for _ in range(rounds):
        if used.sum() < 3:
            break
        w = counts[used] / (2.0 * fitted[used] ** 2)
        design = np.stack([levels[used], np.ones(int(used.sum()))], axis=1)
        normal = design.T @ (design * w[:, None])
        (a, b) = np.linalg.solve(normal, design.T @ (w * variances[used]))
        line = a * levels + b
        fitted = np.maximum(line, floor)
        chi2 = float(np.sum(w * (variances[used] - line[used]) ** 2)) / max(1, int(used.sum()) - 2)
        error_a = float(np.sqrt(np.linalg.inv(normal)[0, 0] * max(1.0, chi2)))
        keep = variances - line <= 3.0 * np.sqrt(2.0 / counts) * fitted
        if np.array_equal(keep, used):
            break
        used = keep
    return float(a), float(b), used, error_a


def _spikes_in(block: np.ndarray, model: NoiseModel, threshold: float) -> np.ndarray:
    """Flat indices of the values in a ``(B, y, x)`` block that are cosmic-ray spikes.

    A spike stands above both the median of its spectrum over 5 bands and the median of its
    3 x 3 spatial neighbourhood (mirrored at the edges) by more than ``threshold`` noise standard
    deviations (the model's, at that median) and by more than the median itself: it at least
    doubles the value. The second rule keeps a narrow bright band at a cell's edge, many noise
    levels above both medians in a bright cube, from counting. Along an axis of fewer than 3
    pixels the neighbourhood is that axis's one pixel (a line scan compares each spectrum with its
    two neighbours on the line); a single spectrum has the spectral test alone. The medians are
    taken only where a value stands that far above the *minimum* of each neighbourhood, which
    every spike must (a median is never below the minimum, and the noise never falls with the
    level).
    """
    from scipy.ndimage import minimum_filter

    n_bands, n_rows, n_cols = block.shape
    reach = (1 if n_rows >= 3 else 0, 1 if n_cols >= 3 else 0)
    spatial = any(reach)
    low_spectral = minimum_filter(block, size=(5, 1, 1), mode="nearest")
    candidate = block - low_spectral > threshold * np.sqrt(model.variance(low_spectral))
    if spatial:
        low_spatial = minimum_filter(block, size=(1, 2 * reach[0] + 1, 2 * reach[1] + 1), mode="mirror")
        candidate &= block - low_spatial > threshold * np.sqrt(model.variance(low_spatial))
    b, y, x = np.nonzero(candidate)
    if b.size == 0:
        return b
    value = block[b, y, x]
    # 5 bands around each candidate; the two bands at each end look inward, so that a spike at
    # the very end is not its own median.
    first = np.clip(b - 2, 0, max(0, n_bands - 5))
    if n_bands >= 9:
        first = np.clip(b - 2, 2, n_bands - 7)
    bands = first[:, None] + np.arange(min(5, n_bands))[None]
    spectral = np.median(block[bands, y[:, None], x[:, None]], axis=1)
    level = spectral
    keep = value - spectral > np.maximum(threshold * np.sqrt(model.variance(spectral)), np.abs(spectral))
    if spatial:
        yy = np.abs(y[:, None, None] + np.arange(-reach[0], reach[0] + 1)[None, :, None])
        xx = np.abs(x[:, None, None] + np.arange(-reach[1], reach[1] + 1)[None, None, :])
        yy = np.where(yy > n_rows - 1, 2 * (n_rows - 1) - yy, yy)
        xx = np.where(xx > n_cols - 1, 2 * (n_cols - 1) - xx, xx)
        around = block[b[:, None, None], yy, xx].reshape(b.size, -1)
        level = np.median(around, axis=1)
        keep &= value - level > np.maximum(threshold * np.sqrt(model.variance(level)), np.abs(level))
    return np.ravel_multi_index((b[keep], y[keep], x[keep]), block.shape)


def _count_runs(flat_index: np.ndarray, shape) -> int:
    """How many runs of consecutive bands (one spectrum each) the flagged values form."""
    b, y, x = np.unravel_index(flat_index, shape)
    key = (y.astype(np.int64) * shape[2] + x) * shape[0] + b
    previous = np.isin(key - 1, key) & (b > 0)
    return int(np.count_nonzero(~previous))


def estimate_noise(data, max_values: int = MAX_VALUES, spikes: bool = True,
                   spike_threshold: float = SPIKE_THRESHOLD) -> NoiseModel:
    """Fit the Poisson-Gaussian noise model of a ``(B, Y, X)`` cube; returns a :class:`NoiseModel`.

    Examines at most ``max_values`` values (evenly spaced strips of rows, or evenly spaced
    spectra, on larger cubes, so the cost stays bounded) and fits the line to at most
    :data:`FIT_VALUES` positions of them; ``spikes=False`` skips counting cosmic-ray spikes
    (faster). Images smaller than 5 x 5 pixels use the residuals along the bands alone. A cube
    with fewer than 9 bands, too few values to bin, or no variation at all raises a
    ``ValueError``. The input is never modified. A lazy (dask) cube is read only where examined:
    its strips, checked for NaN and Inf as they are read (a cube in memory is checked whole).
    """
    from ..io._lazy import is_lazy

    lazy = is_lazy(data) and min(data.shape[1:], default=0) >= 5
    cube = data if lazy else as_cube(data, "data")
    n_bands, n_rows, n_cols = cube.shape
    if n_bands < 9:
        raise ValueError(f"estimating the noise needs at least 9 bands, got {n_bands}")
    if not lazy and not np.ptp(cube) > 0:
        raise ValueError("data is constant: there is no noise (or signal) to model")
    spatial = n_rows >= 5 and n_cols >= 5
    if spatial:
        strips = _strips(n_rows, n_bands * n_cols, max_values)
        blocks = [(rows, slice(None)) for rows in strips]
        n_examined = sum(len(range(*rows.indices(n_rows))) for rows in strips) * n_cols
    else:
        cube = cube.reshape(n_bands, 1, n_rows * n_cols)
        step = max(1, cube.shape[2] * n_bands // max_values)
        blocks = [(slice(None), slice(None, None, step))]
        n_examined = len(range(0, cube.shape[2], step))
    n_positions = n_examined * n_bands
    thin = max(1, n_positions // FIT_VALUES)
    kernels = None
    # Residuals are taken in float32 about the cube's typical level, where the window sums stay exact.
    centre = float(np.median(np.asarray(cube[::3, :: max(1, n_rows // 8), :: max(1, cube.shape[2] // 64)])))
    varies = not lazy  # (checked whole above)
    for index in blocks:
        block = np.asarray(cube[(slice(None), *index)], dtype=np.float32)
        if lazy:
            check_finite(block, "data")
            varies = varies or bool(np.ptp(block) > 0)
        for found in _thinned_pairs(block, spatial, thin, centre):
            kernels = [[[x] for x in k] for k in found] if kernels is None else [
                [acc + [x] for acc, x in zip(ks, k)] for ks, k in zip(kernels, found)]
    if not varies:
        raise ValueError("data is constant where examined: there is no noise (or signal) to model")
    kernels = [tuple(np.concatenate(x) for x in k) for k in kernels]
    mean = kernels[0][1]
    if mean.size < 8 * 16:
        raise ValueError(
            f"data of shape {tuple(data.shape)} gives only {mean.size} positions to estimate the noise from; "
            "it needs at least 128 (e.g. 5 x 5 pixels of 9 bands, or 16 spectra of 17 bands)"
        )
    n_bins = int(np.clip(mean.size // 4000, 8, 32))
    levels, variances, counts = _binned(kernels, _kernel_axes(spatial), n_bins)
    a, b, used, gain_error = fit_line(levels, variances, counts)
    if a < 0:  # no measurable growth of the variance with the signal: Gaussian noise only
        a, b = 0.0, float(np.average(variances[used], weights=counts[used]))
    brightest = float(np.quantile(np.sort(mean), 0.999))
    zero = -b / a if (b < 0 and a > 0) else 0.0
    photons = (brightest - zero) / a if a > 0 else float("inf")
    kept = np.asarray(used) & (variances > 0)
    floor = float(variances[kept].min()) if kept.any() else float(np.finfo(np.float32).tiny)
    model = NoiseModel(a, b, 0, int(n_examined), float(photons), "", brightest, floor, float(gain_error),
                       tuple(levels), tuple(variances), tuple(bool(u) for u in used))
    fraction = model.shot_fraction
    regime = "shot-noise limited" if fraction >= 0.75 else "read-noise limited" if fraction <= 0.25 else "mixed"
    n_spikes = 0
    if spikes:
        for index in blocks:
            block = np.asarray(cube[(slice(None), *index)], dtype=np.float32)
            n_spikes += _count_runs(_spikes_in(block, model, spike_threshold), block.shape)
    return replace(model, spikes=n_spikes, regime=regime)
