"""Physics-based simulation of Raman spectra and hyperspectral Raman images of cells.

Everything the plugin trains on, tests against and ships as sample data comes from here. The
model follows what a confocal Raman microscope records:

* **Bands.** Each biological component (nucleic acids, proteins, lipids, carotenoids, the
  substrate) is a sum of pseudo-Voigt bands at literature positions, ``V = rho*G + (1-rho)*L``
  with ``rho = 0.6785`` as in the noise-learning paper (He et al., Nat. Commun. 2024).
* **Mixing.** A pixel's spectrum is the sum of the components weighted by their local amounts
  (the abundance maps), as linear unmixing assumes, plus per-pixel variation of band positions,
  widths and relative heights (local chemical environment), so that the cube is not exactly
  low-rank, plus a smooth fluorescence background that varies across the image.
* **Detection.** The clean cube is scaled so that its brightest value is ``photons`` counts, then
  Poisson shot noise, Gaussian read noise and optionally cosmic-ray spikes are added, and the
  result is scaled back to the units of the clean cube.

Pure numpy, vectorised (no per-pixel loops) and seeded: the same seed gives the same data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

PSEUDO_VOIGT_RHO = 0.6785
"""Gaussian fraction of the pseudo-Voigt profile used by the noise-learning paper."""

_FOUR_LN2 = 4.0 * np.log(2.0)

# Bands as (centre cm-1, FWHM cm-1, relative height). Positions and assignments from Movasaghi,
# Rehman & Rehman, Appl. Spectrosc. Rev. 42, 493 (2007), Notingher & Hench, Expert Rev. Med.
# Devices 3, 215 (2006), Czamara et al., J. Raman Spectrosc. 46, 4 (2015) (lipids) and
# Withnall et al., J. Raman Spectrosc. 34, 104 (2003) (carotenoids). Widths are typical of
# cells measured at room temperature; heights are relative within one component.
COMPONENTS = MappingProxyType(
    {
        # Glass coverslip / water-like background: few, very broad bands (the sharp CaF2 line at
        # 322 cm-1 is below the fingerprint range, so it is not modelled).
        "substrate": (
            (450.0, 180.0, 1.00),  # Si-O-Si bending (fused silica), tail into the range
            (800.0, 160.0, 0.35),  # Si-O-Si symmetric stretch
            (1080.0, 140.0, 0.25),  # Si-O stretch
            (1640.0, 110.0, 0.30),  # water H-O-H bending
        ),
        "proteins": (
            (621.0, 10.0, 0.10),  # phenylalanine C-C twist
            (643.0, 10.0, 0.12),  # tyrosine C-C twist
            (758.0, 12.0, 0.18),  # tryptophan ring breathing
            (828.0, 14.0, 0.15),  # tyrosine Fermi doublet
            (852.0, 14.0, 0.18),  # tyrosine Fermi doublet / proline
            (935.0, 25.0, 0.30),  # C-C stretch, alpha-helix backbone
            (1004.0, 8.0, 0.85),  # phenylalanine ring breathing
            (1032.0, 12.0, 0.22),  # phenylalanine C-H in-plane bend
            (1125.0, 22.0, 0.25),  # C-N stretch
            (1250.0, 45.0, 0.45),  # amide III
            (1340.0, 30.0, 0.40),  # CH deformation
            (1450.0, 32.0, 1.00),  # CH2/CH3 deformation
            (1555.0, 18.0, 0.15),  # tryptophan
            (1605.0, 16.0, 0.18),  # phenylalanine / tyrosine ring
            (1660.0, 45.0, 0.85),  # amide I (C=O stretch)
        ),
        "nucleic acids": (
            (670.0, 14.0, 0.25),  # thymine / guanine ring breathing
            (728.0, 14.0, 0.35),  # adenine ring breathing
            (785.0, 16.0, 1.00),  # cytosine/uracil/thymine ring breathing + O-P-O backbone
            (813.0, 14.0, 0.30),  # O-P-O stretch (RNA)
            (1095.0, 22.0, 0.70),  # PO2- symmetric stretch
            (1240.0, 30.0, 0.30),  # thymine / cytosine, amide-like ring modes
            (1340.0, 24.0, 0.65),  # adenine / guanine
            (1375.0, 18.0, 0.30),  # thymine
            (1485.0, 20.0, 0.50),  # guanine / adenine
            (1575.0, 20.0, 0.60),  # guanine / adenine
        ),
        "lipids": (
            (718.0, 12.0, 0.30),  # choline C-N symmetric stretch
            (875.0, 16.0, 0.20),  # choline C-N asymmetric stretch
            (1065.0, 20.0, 0.50),  # C-C skeletal stretch (trans)
            (1080.0, 25.0, 0.35),  # C-C skeletal stretch (gauche)
            (1130.0, 18.0, 0.45),  # C-C skeletal stretch (trans)
            (1265.0, 25.0, 0.45),  # =C-H in-plane deformation
            (1300.0, 22.0, 0.80),  # CH2 twisting
            (1440.0, 25.0, 1.00),  # CH2 scissoring
            (1660.0, 22.0, 0.75),  # C=C stretch (unsaturated chains)
            (1745.0, 20.0, 0.35),  # C=O ester stretch
        ),
        "carotenoids": (
            (957.0, 12.0, 0.08),  # C-H out-of-plane wag
            (1005.0, 10.0, 0.25),  # CH3 rocking
            (1155.0, 12.0, 0.75),  # C-C stretch of the polyene chain
            (1520.0, 14.0, 1.00),  # C=C stretch of the polyene chain
        ),
    }
)
"""Component name -> bands ``(centre cm-1, FWHM cm-1, relative height)``.

The order (substrate, proteins, nucleic acids, lipids, carotenoids) is the order of the abundance
maps and endmembers everywhere in this module, so label 0 is the substrate (outside the cell).
"""

# Typical per-pixel variation at ``variation=1``: band-position shift (cm-1, standard deviation),
# relative width change and relative height change (standard deviations).
SHIFT_STD = 1.5
WIDTH_STD = 0.05
HEIGHT_STD = 0.08
_SHIFT_LEVELS = 7  # shift grid (cubic interpolation: 5 levels span the range, 1 extra per side)
_WIDTH_LEVELS = 2  # width grid (linear interpolation)
_HEIGHT_MODES = 2  # random relative-height patterns per component

_NORMAL_COUNTS = 1000.0  # above this many expected counts, shot noise is drawn as a normal

DEFAULT_READ_NOISE = 1.0
"""Gaussian read noise in counts (standard deviation)."""
DEFAULT_BACKGROUND = 0.5
"""Fluorescence strength relative to the strongest Raman band of a pure component."""


# --------------------------------------------------------------------------------------------
# Checks


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _shape2d(shape, minimum: int = 1) -> tuple[int, int]:
    try:
        dims = tuple(shape)
    except TypeError:
        dims = ()
    if len(dims) != 2:
        raise ValueError(f"shape must be (y, x), got {shape!r}")
    return tuple(_positive_int(d, "each entry of shape", minimum) for d in dims)


def _non_negative(value, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _positive(value, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _fraction(value, name: str) -> float:
    value = _non_negative(value, name)
    if value > 1:
        raise ValueError(f"{name} is a fraction of pixels and must be in [0, 1], got {value!r}")
    return value


def _axis(wavenumbers, minimum: int = 2) -> np.ndarray:
    w = np.asarray(wavenumbers, dtype=np.float64)
    if w.ndim != 1 or w.size < minimum:
        raise ValueError(
            f"wavenumbers must be a 1-D array of at least {minimum} values, got shape {w.shape}"
        )
    if not np.all(np.isfinite(w)):
        raise ValueError("wavenumbers contains NaN or Inf")
    return w


def _range_pair(value, name: str, low_limit: float = 0.0, integer: bool = False):
    """A ``(low, high)`` pair with ``low_limit <= low <= high`` (a single number means both)."""
    pair = np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
    if pair.size == 1:
        pair = np.repeat(pair, 2)
    if pair.size != 2 or not np.all(np.isfinite(pair)) or pair[0] > pair[1] or pair[0] < low_limit:
        raise ValueError(
            f"{name} must be a number or a (low, high) pair with {low_limit} <= low <= high, "
            f"got {value!r}"
        )
    if integer:
        if not np.all(pair == np.round(pair)):
            raise ValueError(f"{name} must hold integers, got {value!r}")
        return int(pair[0]), int(pair[1])
    return float(pair[0]), float(pair[1])


def _generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be a numpy Generator, an integer seed or None, got {type(rng)}")


# --------------------------------------------------------------------------------------------
# Spectral axis and band shapes


def wavenumber_axis(
    n_bands: int = 500,
    start: float = 500.0,
    stop: float = 1800.0,
    jitter: float = 0.0,
    seed=None,
    laser_nm: float | None = None,
) -> np.ndarray:
    """An increasing Raman-shift axis of ``n_bands`` values from ``start`` to ``stop`` (cm-1).

    By default the steps are uniform. With ``laser_nm`` (the excitation wavelength) the axis is
    uniform in scattered *wavelength* instead, as a grating spectrometer with a linear detector
    records it: the steps in cm-1 then shrink smoothly towards high shifts (by about 16 % over
    500-1800 cm-1 at 532 nm, as in WITec exports). ``jitter`` > 0 adds small random step
    changes: each step is multiplied by ``1 + jitter * u`` with ``u`` uniform in [-1, 1]
    (``jitter`` < 1 keeps the axis increasing). The end points stay exactly ``start`` and
    ``stop``.
    """
    n_bands = _positive_int(n_bands, "n_bands", 2)
    start, stop = float(start), float(stop)
    if not (np.isfinite(start) and np.isfinite(stop)) or stop <= start:
        raise ValueError(f"stop must be greater than start, got start={start}, stop={stop}")
    jitter = _non_negative(jitter, "jitter")
    if jitter >= 1:
        raise ValueError(f"jitter must be in [0, 1) so the axis keeps increasing, got {jitter}")
    steps = np.ones(n_bands - 1)
    if jitter > 0:
        steps += jitter * np.random.default_rng(seed).uniform(-1.0, 1.0, n_bands - 1)
    fraction = np.concatenate([[0.0], np.cumsum(steps)])
    fraction /= fraction[-1]
    if laser_nm is None:
        w = start + (stop - start) * fraction
    else:
        laser = 1e7 / _positive(laser_nm, "laser_nm")  # absolute wavenumber of the laser, cm-1
        if stop >= laser:
            raise ValueError(
                f"a Raman shift of {stop} cm-1 is beyond the {laser_nm} nm laser's "
                f"{laser:.0f} cm-1; use a longer laser_nm or a smaller stop"
            )
        low, high = 1e7 / (laser - start), 1e7 / (laser - stop)  # scattered wavelengths, nm
        w = laser - 1e7 / (low + (high - low) * fraction)
    w[0], w[-1] = start, stop
    return w


def _profile(offsets: np.ndarray, fwhms: np.ndarray, rho: float) -> np.ndarray:
    """Unit-height pseudo-Voigt at ``offsets`` from the centre, in the dtype of ``offsets``.

    Written in place with constants of the array's dtype: float32 stays float32 (about 10x
    faster than letting numpy promote to float64 halfway).
    """
    dtype = np.result_type(offsets, fwhms)
    u2 = np.divide(offsets, fwhms, dtype=dtype)
    u2 *= u2
    gauss = np.multiply(u2, dtype.type(-_FOUR_LN2))
    np.exp(gauss, out=gauss)
    gauss *= dtype.type(rho)
    u2 *= dtype.type(4.0)
    u2 += dtype.type(1.0)
    np.reciprocal(u2, out=u2)
    u2 *= dtype.type(1.0 - rho)
    u2 += gauss
    return u2


def pseudo_voigt(wavenumbers, centers, fwhms, heights, rho: float = PSEUDO_VOIGT_RHO) -> np.ndarray:
    """Sum of pseudo-Voigt bands: ``V = rho*G + (1-rho)*L`` with the same FWHM for G and L.

    ``centers``, ``fwhms`` and ``heights`` broadcast to a common shape ``(..., P)`` (P bands per
    spectrum); the result has shape ``(..., B)`` for ``B`` wavenumbers. Each band has its height
    at its centre and its FWHM exactly as given. Bands outside the axis contribute only their
    tails. Returns float64.
    """
    w = _axis(wavenumbers, minimum=1)
    c, f, h = np.broadcast_arrays(
        np.asarray(centers, dtype=np.float64),
        np.asarray(fwhms, dtype=np.float64),
        np.asarray(heights, dtype=np.float64),
    )
    rho = float(rho)
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho (the Gaussian fraction) must be in [0, 1], got {rho}")
    if c.ndim == 0:
        c, f, h = c[None], f[None], h[None]
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(h)) and np.all(np.isfinite(f))):
        raise ValueError("centers, fwhms and heights must be finite")
    if np.any(f <= 0):
        raise ValueError("fwhms must all be > 0")
    lead, n_peaks = c.shape[:-1], c.shape[-1]
    c, f, h = (a.reshape(-1, n_peaks) for a in (c, f, h))
    out = np.empty((c.shape[0], w.size), dtype=np.float64)
    rows = max(1, int(4_000_000 // max(1, n_peaks * w.size)))
    for s in range(0, c.shape[0], rows):
        sl = slice(s, s + rows)
        prof = _profile(w - c[sl, :, None], f[sl, :, None], rho)
        out[sl] = np.einsum("np,npb->nb", h[sl], prof)
    return out.reshape(*lead, w.size)


def _band_table(names) -> tuple[list[str], list[np.ndarray]]:
    if names is None:
        names = list(COMPONENTS)
    elif isinstance(names, str):
        names = [names]
    names = [str(n) for n in names]
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown or not names:
        raise ValueError(
            f"unknown component(s) {unknown or names!r}; choose from: {', '.join(COMPONENTS)}"
        )
    return names, [np.asarray(COMPONENTS[n], dtype=np.float64) for n in names]


def component_spectra(wavenumbers, names=None) -> tuple[np.ndarray, list[str]]:
    """Pure spectra of the library components on ``wavenumbers``: ``(endmembers (k, B), names)``.

    ``names`` defaults to all of :data:`COMPONENTS` in its order. Band heights are the
    library's relative heights (1 for each component's strongest band; overlapping neighbours
    add to it), and a band outside the axis shows only its tail, if at all. float32.
    """
    w = _axis(wavenumbers)
    names, tables = _band_table(names)
    spectra = np.stack([pseudo_voigt(w, t[:, 0], t[:, 1], t[:, 2]) for t in tables])
    return spectra.astype(np.float32), names


# --------------------------------------------------------------------------------------------
# Random spectra and backgrounds


def _peak_sums(
    w: np.ndarray, counts: np.ndarray, centers, fwhms, heights, rho: float
) -> np.ndarray:
    """``(n, B)`` float32 sums of ``counts[i]`` bands each, from flat per-band parameters."""
    n = counts.size
    out = np.zeros((n, w.size), dtype=np.float32)
    ends = np.cumsum(counts)
    starts = ends - counts
    w32 = w.astype(np.float32)
    c = np.asarray(centers, np.float32)
    f = np.asarray(fwhms, np.float32)
    h = np.asarray(heights, np.float32)
    per_chunk = max(1, int(4_000_000 // max(1, w.size)))  # bands evaluated at once
    i = 0
    while i < n:
        # spectra i..j whose bands fit in one chunk (at least one spectrum)
        j = max(i + 1, int(np.searchsorted(ends, starts[i] + per_chunk, side="right")))
        j = min(j, n)
        lo, hi = starts[i], ends[j - 1]
        if hi > lo:
            prof = _profile(w32 - c[lo:hi, None], f[lo:hi, None], rho) * h[lo:hi, None]
            has = counts[i:j] > 0
            rows = np.arange(i, j)[has]
            out[rows] = np.add.reduceat(prof, starts[i:j][has] - lo, axis=0)
        i = j
    return out


def random_spectra(
    n: int,
    wavenumbers,
    rng,
    n_peaks=(1, 10),
    fwhm=(5.0, 40.0),
    height=(0.05, 1.0),
    rho: float = PSEUDO_VOIGT_RHO,
) -> np.ndarray:
    """``(n, B)`` float32 sums of random pseudo-Voigt bands, as in the noise-learning paper.

    Each spectrum gets an integer number of bands drawn uniformly from ``n_peaks`` (inclusive),
    with centres uniform over the axis, FWHMs uniform in ``fwhm`` (cm-1) and heights uniform in
    ``height``. A spectrum with zero bands is all zeros.
    """
    n = _positive_int(n, "n", 0)
    w = _axis(wavenumbers)
    rng = _generator(rng)
    lo_n, hi_n = _range_pair(n_peaks, "n_peaks", 0, integer=True)
    lo_f, hi_f = _range_pair(fwhm, "fwhm")
    if lo_f <= 0:
        raise ValueError(f"fwhm must be > 0, got {fwhm!r}")
    lo_h, hi_h = _range_pair(height, "height")
    counts = rng.integers(lo_n, hi_n + 1, size=n)
    total = int(counts.sum())
    centers = rng.uniform(w.min(), w.max(), total)
    fwhms = rng.uniform(lo_f, hi_f, total)
    heights = rng.uniform(lo_h, hi_h, total)
    return _peak_sums(w, counts, centers, fwhms, heights, rho)


def fluorescence_background(
    n: int, wavenumbers, rng, strength: float = DEFAULT_BACKGROUND, degree: int = 3
) -> np.ndarray:
    """``(n, B)`` float32 smooth, positive fluorescence backgrounds.

    Each background is a Bernstein polynomial of ``degree`` on the axis with random non-negative
    coefficients (so it is positive and smooth, a slope, a bow or a broad hump), scaled so its
    maximum is ``strength`` times a factor uniform in [0.2, 1].
    """
    n = _positive_int(n, "n", 0)
    w = _axis(wavenumbers)
    rng = _generator(rng)
    strength = _non_negative(strength, "strength")
    degree = _positive_int(degree, "degree", 0)
    t = (w - w.min()) / (w.max() - w.min())
    k = np.arange(degree + 1)
    binom = np.array([math.comb(degree, int(i)) for i in k], dtype=np.float64)
    basis = binom[:, None] * t[None] ** k[:, None] * (1 - t[None]) ** (degree - k)[:, None]
    coefficients = rng.uniform(0.05, 1.0, (n, degree + 1)).astype(np.float32)
    amplitude = strength * rng.uniform(0.2, 1.0, n)
    shapes = coefficients @ basis.astype(np.float32)
    shapes *= (amplitude / shapes.max(axis=1, initial=1e-30)).astype(np.float32)[:, None]
    return shapes


# --------------------------------------------------------------------------------------------
# Per-pixel band variation: spectra interpolated on a grid of shifted / broadened versions


@dataclass(frozen=True)
class _VariationBasis:
    """Each component's spectrum on a (shift x width) grid, plus relative-height patterns.

    A pixel's spectrum is interpolated on the grid, cubically along the shift (Catmull-Rom) and
    linearly along the width, plus a small multiple of each height pattern. Over the whole
    range of shifts and widths at ``variation=1`` it stays within 2.5 % (of the component's
    maximum) of the exactly evaluated shifted and broadened spectrum; linear interpolation
    along the shift would lose 6 % of the narrowest band's height between grid points.
    """

    spectra: np.ndarray  # (K, G*H + J, B) float32
    shift_levels: np.ndarray  # (G,) cm-1
    width_levels: np.ndarray  # (H,) relative width
    n_modes: int

    @property
    def grid_size(self) -> int:
        return self.shift_levels.size * self.width_levels.size


def _variation_basis(w: np.ndarray, tables, variation: float, rng) -> _VariationBasis:
    if variation > 0:
        smax = 3.0 * SHIFT_STD * variation
        wmax = min(0.9, 3.0 * WIDTH_STD * variation)
        step = 2.0 * smax / (_SHIFT_LEVELS - 3)
        shifts = np.linspace(-smax - step, smax + step, _SHIFT_LEVELS)
        widths = np.linspace(1.0 - wmax, 1.0 + wmax, _WIDTH_LEVELS)
        n_modes = _HEIGHT_MODES
    else:
        shifts, widths, n_modes = np.zeros(1), np.ones(1), 0
    per_component = []
    for table in tables:
        c, f, h = table[:, 0], table[:, 1], table[:, 2]
        grid = pseudo_voigt(w, c + shifts[:, None, None], f * widths[None, :, None], h)
        grid = grid.reshape(-1, w.size)
        patterns = rng.uniform(-1.0, 1.0, (n_modes, h.size))
        modes = pseudo_voigt(w, c, f, h * patterns) if n_modes else np.empty((0, w.size))
        per_component.append(np.concatenate([grid, modes]))
    return _VariationBasis(np.stack(per_component).astype(np.float32), shifts, widths, n_modes)


def _linear_weights(values: np.ndarray, levels: np.ndarray):
    """Lower grid index and the weight of the upper neighbour for linear interpolation."""
    step = levels[1] - levels[0]
    t = (np.clip(values, levels[0], levels[-1]) - levels[0]) / step
    lower = np.minimum(np.floor(t).astype(np.intp), levels.size - 2)
    return lower, (t - lower).astype(np.float32)


def _cubic_weights(values: np.ndarray, levels: np.ndarray):
    """Catmull-Rom interpolation on ``levels`` (one spare level at each end).

    Returns the index of the grid point just below each value (from 1 to ``G - 3``) and the
    weights of the points at offsets -1, 0, +1, +2 from it (they sum to 1).
    """
    step = levels[1] - levels[0]
    t = (np.clip(values, levels[1], levels[-2]) - levels[0]) / step
    lower = np.clip(np.floor(t).astype(np.intp), 1, levels.size - 3)
    t = (t - lower).astype(np.float32)
    t2, t3 = t * t, t * t * t
    weights = (
        0.5 * (-t3 + 2 * t2 - t),
        0.5 * (3 * t3 - 5 * t2 + 2),
        0.5 * (-3 * t3 + 4 * t2 + t),
        0.5 * (t3 - t2),
    )
    return lower, weights


def _mix(basis: _VariationBasis, abundances, shifts, widths, heights) -> np.ndarray:
    """``(B, N)`` float32 spectra: sum over components of abundance x varied component spectrum.

    ``abundances``, ``shifts`` (cm-1) and ``widths`` (relative change) are ``(K, N)``;
    ``heights`` is ``(K, J, N)`` (relative height-pattern amounts, clipped to +-0.9).
    The result can dip a hair below zero far from bands (cubic weights); callers clip it.
    """
    k, m, b = basis.spectra.shape
    n = abundances.shape[1]
    n_widths = basis.width_levels.size
    coef = np.zeros((k, m, n), dtype=np.float32)
    if basis.grid_size == 1:
        coef[:, 0, :] = 1.0
    else:
        # the 4 x 2 grid points each pixel uses are distinct entries
        gs, shift_weights = _cubic_weights(shifts, basis.shift_levels)
        gw, ww = _linear_weights(1.0 + widths, basis.width_levels)
        comp = np.arange(k)[:, None]
        pix = np.arange(n)[None, :]
        for ds, shift_weight in zip((-1, 0, 1, 2), shift_weights):
            row = (gs + ds) * n_widths + gw
            coef[comp, row, pix] = shift_weight * (1 - ww)
            coef[comp, row + 1, pix] = shift_weight * ww
    if basis.n_modes:
        coef[:, basis.grid_size :, :] = np.clip(heights, -0.9, 0.9)
    coef *= np.asarray(abundances, dtype=np.float32)[:, None, :]
    return basis.spectra.reshape(k * m, b).T @ coef.reshape(k * m, n)


# --------------------------------------------------------------------------------------------
# Spatial structure


def _smooth_fields(n: int, shape: tuple[int, int], rng, sigma: float) -> np.ndarray:
    """``(n, Y, X)`` smooth random fields, zero mean and unit std.

    White noise filtered by a Gaussian of ``sigma`` pixels in Fourier space (periodic, which a
    random texture does not mind, and fast for any image size).
    """
    white = rng.standard_normal((n, *shape))
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    transfer = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    smooth = np.fft.irfft2(np.fft.rfft2(white) * transfer, s=shape)
    smooth -= smooth.mean(axis=(1, 2), keepdims=True)
    std = smooth.std(axis=(1, 2), keepdims=True)
    return np.divide(smooth, std, out=np.zeros_like(smooth), where=std > 1e-12)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class _Blob:
    """An irregular ellipse: normalised radius (1 on the outline) of any point, and a soft mask."""

    def __init__(self, rng, center, radii, roughness: float):
        self.center = np.asarray(center, dtype=np.float64)
        self.radii = np.asarray(radii, dtype=np.float64)
        self.angle = rng.uniform(0.0, np.pi)
        # outline = 1 + a sum of low-order harmonics of the polar angle (a lumpy ellipse)
        self.orders = np.arange(2, 6)
        self.amplitudes = roughness * rng.uniform(0.0, 1.0, self.orders.size) / (self.orders - 1)
        self.phases = rng.uniform(0.0, 2 * np.pi, self.orders.size)

    def radius(self, y, x) -> np.ndarray:
        dy, dx = y - self.center[0], x - self.center[1]
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        u = (dy * cos + dx * sin) / self.radii[0]
        v = (-dy * sin + dx * cos) / self.radii[1]
        theta = np.arctan2(v, u)
        harmonics = np.cos(self.orders[:, None] * theta.ravel() + self.phases[:, None])
        outline = 1.0 + (self.amplitudes @ harmonics).reshape(np.shape(theta))
        return np.hypot(u, v) / outline

    def point(self, r, theta) -> tuple[np.ndarray, np.ndarray]:
        """Image coordinates of normalised polar points (before the outline's roughness)."""
        u, v = r * np.cos(theta) * self.radii[0], r * np.sin(theta) * self.radii[1]
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        return self.center[0] + u * cos - v * sin, self.center[1] + u * sin + v * cos

    def mask(self, y, x, edge: float) -> np.ndarray:
        """1 inside, 0 outside, a smooth edge about ``edge`` pixels wide."""
        return _sigmoid((1.0 - self.radius(y, x)) * self.radii.mean() / edge)


def _soft_discs(y, x, centers_y, centers_x, radii, edge: float) -> np.ndarray:
    """Maximum over small round objects with smooth edges, ``(Y, X)`` in [0, 1]."""
    if len(radii) == 0:
        return np.zeros(np.broadcast_shapes(y.shape, x.shape))
    d = np.hypot(y[None] - centers_y[:, None, None], x[None] - centers_x[:, None, None])
    return _sigmoid((radii[:, None, None] - d) / edge).max(axis=0)


def _places(rng, cell: _Blob, nucleus: _Blob, n: int, r_max: float):
    """``n`` random points inside ``cell`` (normalised radius < ``r_max``), outside the nucleus."""
    candidates = max(64, 20 * n)
    r = r_max * np.sqrt(rng.uniform(0.0, 1.0, candidates))
    theta = rng.uniform(0.0, 2 * np.pi, candidates)
    py, px = cell.point(r, theta)
    keep = (nucleus.radius(py, px) > 1.2) & (cell.radius(py, px) < r_max)
    return py[keep][:n], px[keep][:n]


def cell_abundances(shape, rng, n_components: int = len(COMPONENTS)) -> np.ndarray:
    """``(k, Y, X)`` float32 non-negative abundance maps of one cell on a substrate.

    Maps follow the order of :data:`COMPONENTS` (the first ``n_components`` of substrate,
    proteins, nucleic acids, lipids, carotenoids): the substrate outside the cell, proteins in
    the cytoplasm (an irregular ellipse with some texture), nucleic acids in the nucleus (and a
    little in the cytoplasm, RNA), several small lipid droplets and a few carotenoid spots in
    the cytoplasm. Edges are smooth (about 1.5 % of the image size, at least 0.7 pixels).
    Values are amounts in units where a pure component has abundance about 1.
    """
    ny, nx = _shape2d(shape, 4)
    k = _positive_int(n_components, "n_components", 1)
    if k > len(COMPONENTS):
        raise ValueError(f"n_components must be between 1 and {len(COMPONENTS)}, got {k}")
    rng = _generator(rng)
    size = min(ny, nx)
    edge = max(0.7, 0.015 * size)
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)

    center = np.array([ny, nx]) / 2.0 - 0.5 + rng.uniform(-0.06, 0.06, 2) * np.array([ny, nx])
    cell = _Blob(rng, center, rng.uniform(0.28, 0.38, 2) * np.array([ny, nx]), roughness=0.12)
    offset = cell.point(rng.uniform(0.0, 0.3), rng.uniform(0.0, 2 * np.pi))
    nucleus = _Blob(rng, offset, rng.uniform(0.38, 0.5, 2) * cell.radii, roughness=0.05)
    cell_mask = cell.mask(y, x, edge)
    nucleus_mask = nucleus.mask(y, x, edge) * cell_mask

    n_droplets = int(rng.integers(5, 12))
    dy, dx = _places(rng, cell, nucleus, n_droplets, 0.85)
    droplet_radii = np.maximum(0.7, rng.uniform(0.02, 0.045, dy.size) * size)
    droplets = _soft_discs(y, x, dy, dx, droplet_radii, max(0.35, 0.3 * edge))
    n_spots = int(rng.integers(2, 5))
    sy, sx = _places(rng, cell, nucleus, n_spots, 0.9)
    spot_radii = np.maximum(0.6, rng.uniform(0.01, 0.022, sy.size) * size)
    spots = _soft_discs(y, x, sy, sx, spot_radii, max(0.3, 0.25 * edge))

    texture = _smooth_fields(2, (ny, nx), rng, 0.04 * size)
    organelles = np.maximum(droplets, spots)
    maps = np.stack(
        [
            1.0 - 0.85 * cell_mask,
            0.7 * cell_mask * np.clip(1.0 + 0.2 * texture[0], 0.0, None)
            * (1.0 - 0.35 * nucleus_mask) * (1.0 - 0.6 * organelles),
            0.9 * nucleus_mask * np.clip(1.0 + 0.15 * texture[1], 0.0, None) + 0.05 * cell_mask,
            2.0 * droplets + 0.06 * cell_mask,
            1.0 * spots,
        ]
    )
    return np.clip(maps[:k], 0.0, None).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Detection: photon counting, read noise, cosmic rays


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


# --------------------------------------------------------------------------------------------
# Simulated images


@dataclass
class SimulatedCube:
    """A simulated hyperspectral image with its ground truth.

    ``clean`` and ``noisy`` are ``(B, Y, X)`` float32 in the same units; ``endmembers`` are the
    pure component spectra (without per-pixel variation), ``abundances`` their ``(k, Y, X)``
    maps, ``photons`` the counts of the brightest clean value, ``metadata`` the parameters and
    seed that reproduce the cube.
    """

    clean: np.ndarray
    noisy: np.ndarray
    wavenumbers: np.ndarray
    abundances: np.ndarray
    endmembers: np.ndarray
    names: list[str]
    photons: float
    metadata: dict = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        """``(Y, X)`` index of the dominant component (largest abundance) at each pixel."""
        return np.argmax(self.abundances, axis=0)


def _background_strength(background) -> float:
    if background is True:
        return DEFAULT_BACKGROUND
    if background is False or background is None:
        return 0.0
    return _non_negative(background, "background")


def _cell_clean(shape, w, n_components, background, variation, rng):
    """Clean cube, abundances, pure endmembers and names for one simulated cell."""
    ny, nx = shape
    n = ny * nx
    abundances = cell_abundances(shape, rng, n_components)
    names, tables = _band_table(list(COMPONENTS)[:n_components])
    endmembers, _ = component_spectra(w, names)
    basis = _variation_basis(w, tables, variation, rng)
    k = len(names)
    if variation > 0:
        fields = _smooth_fields(k * (2 + basis.n_modes), shape, rng, 0.08 * min(shape))
        fields = fields.reshape(k, 2 + basis.n_modes, n)
        shifts = SHIFT_STD * variation * fields[:, 0]
        widths = WIDTH_STD * variation * fields[:, 1]
        heights = HEIGHT_STD * variation * fields[:, 2:]
    else:
        shifts = widths = np.zeros((k, n))
        heights = np.zeros((k, 0, n))
    clean = _mix(basis, abundances.reshape(k, n), shifts, widths, heights)
    if background > 0:
        shapes = fluorescence_background(3, w, rng, background)
        inside = np.clip(1.0 - abundances[0], 0.0, 1.0).reshape(n) if k > 1 else np.zeros(n)
        maps = np.exp(0.3 * _smooth_fields(3, shape, rng, 0.15 * min(shape)).reshape(3, n))
        maps *= (0.4 + 0.6 * inside) / 3.0
        clean += shapes.T @ maps.astype(np.float32)
    clean = np.maximum(clean, 0.0).reshape(w.size, ny, nx).astype(np.float32)
    return clean, abundances, endmembers, names


def simulate_cell(
    shape=(64, 64),
    wavenumbers=None,
    n_bands: int = 500,
    photons: float = 100.0,
    read_noise: float = DEFAULT_READ_NOISE,
    background=True,
    variation: float = 1.0,
    spikes: float = 0.0,
    seed=0,
    n_components: int = len(COMPONENTS),
) -> SimulatedCube:
    """Simulate a Raman image of one cell: ``SimulatedCube`` with clean and noisy ``(B, Y, X)``.

    ``clean`` mixes the component spectra by :func:`cell_abundances`, with spatially smooth
    per-pixel variation of band positions (``1.5 * variation`` cm-1 std), widths (5 %) and
    relative heights (8 %), plus (``background``: True, False or a strength) a fluorescence
    background that varies smoothly across the image and is stronger inside the cell. ``noisy``
    is :func:`add_noise` of it at ``photons`` counts for the brightest value. ``wavenumbers``
    defaults to ``wavenumber_axis(n_bands)`` (500-1800 cm-1). Everything, noise included, is
    fixed by ``seed``; the noise is drawn last, so cubes that differ only in ``photons``,
    ``read_noise`` or ``spikes`` share the same clean cube.
    """
    shape = _shape2d(shape, 4)
    w = wavenumber_axis(n_bands) if wavenumbers is None else _axis(wavenumbers)
    photons = _positive(photons, "photons")
    read_noise = _non_negative(read_noise, "read_noise")
    strength = _background_strength(background)
    variation = _non_negative(variation, "variation")
    spikes = _fraction(spikes, "spikes")
    rng = np.random.default_rng(seed)
    clean, abundances, endmembers, names = _cell_clean(
        shape, w, n_components, strength, variation, rng
    )
    noisy = add_noise(clean, photons, rng, read_noise, spikes, band_axis=0)
    metadata = {
        "generator": "napari_deeper.training.simulate.simulate_cell",
        "shape": list(shape),
        "n_bands": int(w.size),
        "wavenumber_range": [float(w.min()), float(w.max())],
        "photons": photons,
        "read_noise": read_noise,
        "background": strength,
        "variation": variation,
        "spikes": spikes,
        "n_components": len(names),
        "seed": seed if seed is None else int(seed),
    }
    return SimulatedCube(clean, noisy, w, abundances, endmembers, names, photons, metadata)


def skip_sample(hr, factor: int) -> np.ndarray:
    """Low-resolution image as a raster microscope takes it with ``factor`` times fewer points.

    LR pixel ``i`` is HR pixel ``factor * i + factor // 2`` along both spatial axes, i.e.
    ``hr[:, f//2::f, f//2::f]`` (a copy). In world coordinates the LR image therefore has
    ``scale = factor`` and ``translate = factor // 2`` (in HR pixels).
    """
    factor = _positive_int(factor, "factor", 1)
    arr = np.asarray(hr)
    if arr.ndim != 3:
        raise ValueError(f"hr must be a 3-D (bands, y, x) cube, got shape {arr.shape}")
    if min(arr.shape[1:]) < factor:
        raise ValueError(
            f"hr is {arr.shape[1]}x{arr.shape[2]} pixels, too small for factor {factor}"
        )
    offset = factor // 2
    return np.ascontiguousarray(arr[:, offset::factor, offset::factor])


def simulate_superres_pair(
    shape=(64, 64),
    factor: int = 2,
    wavenumbers=None,
    n_bands: int = 500,
    photons: float = 100.0,
    read_noise: float = DEFAULT_READ_NOISE,
    background=True,
    variation: float = 1.0,
    spikes: float = 0.0,
    seed=0,
) -> tuple[SimulatedCube, np.ndarray, np.ndarray]:
    """``(hr, lr_noisy, lr_clean)``: a simulated HR cell and its skip-sampled LR version.

    ``hr`` is :func:`simulate_cell` at ``shape``; ``lr_noisy = skip_sample(hr.noisy, factor)``
    and ``lr_clean = skip_sample(hr.clean, factor)`` (the LR scan measures the same points with
    the same dwell time, so its noise is that of the HR pixels it lands on).
    """
    factor = _positive_int(factor, "factor", 1)
    hr = simulate_cell(
        shape, wavenumbers, n_bands, photons, read_noise, background, variation, spikes, seed
    )
    hr.metadata["factor"] = factor
    return hr, skip_sample(hr.noisy, factor), skip_sample(hr.clean, factor)


# --------------------------------------------------------------------------------------------
# Training pairs of single spectra


def spectra_batch(
    n: int,
    wavenumbers,
    rng,
    photons=(5.0, 1000.0),
    read_noise: float = DEFAULT_READ_NOISE,
    background: float = DEFAULT_BACKGROUND,
    variation: float = 1.0,
    extra_peaks=(0, 3),
    spikes: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy (n, B), clean (n, B))`` float32 training pairs for spectral denoisers.

    Each clean spectrum is a random mixture of the library components (each present with
    probability 0.6, at least one, Gamma-distributed amounts) with per-spectrum band shifts,
    width and height changes (scaled by ``variation``), plus 0-3 random pseudo-Voigt bands
    (``extra_peaks``, heights 5-50 % of the mixture's maximum) and a fluorescence background
    of strength ``background``; it is normalised to a maximum of 1. Its photon count is drawn
    log-uniformly in ``photons`` (a number or a ``(low, high)`` pair), Poisson and read noise
    (and spikes in a fraction ``spikes`` of the spectra) are added, and ``noisy`` is scaled back
    to the units of ``clean``.
    """
    n = _positive_int(n, "n", 1)
    w = _axis(wavenumbers)
    rng = _generator(rng)
    lo, hi = _range_pair(photons, "photons")
    if lo <= 0:
        raise ValueError(f"photons must be > 0, got {photons!r}")
    read_noise = _non_negative(read_noise, "read_noise")
    background = _background_strength(background)
    variation = _non_negative(variation, "variation")
    spikes = _fraction(spikes, "spikes")
    lo_extra, hi_extra = _range_pair(extra_peaks, "extra_peaks", 0, integer=True)

    names, tables = _band_table(None)
    k = len(names)
    basis = _variation_basis(w, tables, variation, rng)
    present = rng.random((k, n)) < 0.6
    present[rng.integers(0, k, n), np.arange(n)] = True
    amounts = (rng.gamma(0.8, 1.0, (k, n)) + 0.05) * present
    shifts = rng.normal(0.0, SHIFT_STD * variation, (k, n))
    widths = rng.normal(0.0, WIDTH_STD * variation, (k, n))
    heights = rng.normal(0.0, HEIGHT_STD * variation, (k, basis.n_modes, n))
    clean = _mix(basis, amounts, shifts, widths, heights).T
    clean = np.maximum(clean, 0.0)
    clean /= clean.max(axis=1, keepdims=True)
    if hi_extra > 0:
        clean += random_spectra(n, w, rng, n_peaks=(lo_extra, hi_extra), height=(0.05, 0.5))
    if background > 0:
        clean += fluorescence_background(n, w, rng, background)
    clean /= clean.max(axis=1, keepdims=True)
    clean = np.ascontiguousarray(clean, dtype=np.float32)

    counts_peak = np.exp(rng.uniform(np.log(lo), np.log(hi), n)).astype(np.float32)
    counts = _count_noise(clean * counts_peak[:, None], rng, read_noise)
    _add_spikes(counts, rng, spikes, counts_peak)
    noisy = counts / counts_peak[:, None]
    return noisy.astype(np.float32, copy=False), clean
