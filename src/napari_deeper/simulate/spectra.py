"""Raman spectra: the spectral axis, pseudo-Voigt bands, the component library, random spectra,
fluorescence backgrounds, per-pixel band variation and training pairs of single spectra.

Each biological component (nucleic acids, proteins, lipids, carotenoids, the substrate) is a sum
of pseudo-Voigt bands at literature positions, ``V = rho*G + (1-rho)*L`` with ``rho = 0.6785`` as
in the noise-learning paper (He et al., Nat. Commun. 2024).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ._checks import _axis, _fraction, _generator, _non_negative, _positive, _positive_int, _range_pair
from .noise import DEFAULT_READ_NOISE, _add_spikes, _count_noise

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
maps and endmembers everywhere in the simulator, so label 0 is the substrate (outside the cell).
"""

# Typical per-pixel variation at ``variation=1``: band-position shift (cm-1, standard deviation),
# relative width change and relative height change (standard deviations).
SHIFT_STD = 1.5
WIDTH_STD = 0.05
HEIGHT_STD = 0.08
_SHIFT_LEVELS = 7  # shift grid (cubic interpolation: 5 levels span the range, 1 extra per side)
_WIDTH_LEVELS = 2  # width grid (linear interpolation)
_HEIGHT_MODES = 2  # random relative-height patterns per component

DEFAULT_BACKGROUND = 0.5
"""Fluorescence strength relative to the strongest Raman band of a pure component."""


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


def _background_strength(background) -> float:
    if background is True:
        return DEFAULT_BACKGROUND
    if background is False or background is None:
        return 0.0
    return _non_negative(background, "background")


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
