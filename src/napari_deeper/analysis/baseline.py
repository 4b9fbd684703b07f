"""Baseline (fluorescence background) removal on whole cubes, with pybaselines' methods.

pybaselines fits one spectrum per call. Measured on 500-band spectra, its Python overhead per
call dominates, and a thread pool over pixels gained 0.85-1.27x on two cores (the GIL is held
between the small solves), so the methods that cost the most are written here again for many
spectra at once, with pybaselines' exact rules (weights, stopping tests, padding), and checked
against it in the tests:

* the Whittaker family (asls, arpls, airpls, iarpls): every spectrum solves
  ``(W + lam D'D) z = W y`` with its own weights ``W`` but the same banded ``D'D``. The banded
  LDL' factorisation runs along the bands once for all spectra of a chunk (each step is one
  NumPy operation over the spectra), 5-9x faster than LAPACK's banded Cholesky on the same
  stacked system, whose cost is one BLAS call per column;
* the polynomial family (modpoly, imodpoly): batched least squares (per-spectrum weights go
  through ``(N, p, p)`` normal equations);
* snip: the clipping filter on all spectra at once.

The other methods (rubberband, aspls, mor) call pybaselines one spectrum at a time, in chunks
that yield progress. Spectra whose fit has converged leave the loop early. BLAS is held to one
thread meanwhile: on a busy two-core machine its threads made the polynomial fits 3.7x slower.

Defaults are chosen for Raman spectra of 500-1000 bands at 1-3 cm-1 spacing (the fingerprint
region of a cell, fluorescence that varies over hundreds of cm-1): each is the value, on a grid,
with the smallest residual background on simulated cell spectra (proteins, nucleic acids and
lipids on a fluorescence twice the strongest band) at 100 and at 10^5 photons, taking both into
account (benchmarks/analysis.py measures it). ``lam`` and the window lengths are in band units,
as in pybaselines, so a much finer axis needs larger values.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from .._validation import as_cube, check_method
from ..compute import Progress, Steps, chunks, one_blas_thread, run
from ..spectral.bands import spectral_axis

_TINY = np.finfo(np.float64).tiny
_CHUNK = 2048  # spectra per chunk: about 120 MB of float64 work arrays at 500 bands
_FEW = 64  # below this many systems, LAPACK's banded solver beats the band loop


# --------------------------------------------------------------------------------------------
# Batched banded solver for the Whittaker smoother


def difference_penalty(n_bands: int, diff_order: int) -> list[np.ndarray]:
    """The diagonals of ``D'D`` for the ``diff_order``-th difference matrix ``D`` (B - d, B).

    Returns ``[main (B,), first superdiagonal (B-1,), ..., d-th (B-d,)]``; the matrix is
    symmetric, so these are also its subdiagonals.
    """
    d = int(diff_order)
    stencil = np.diff(np.eye(d + 1), d, axis=0)[0]  # e.g. [1, -2, 1] for d = 2
    diagonals = [np.zeros(n_bands - k) for k in range(d + 1)]
    for k in range(d + 1):
        for m in range(d + 1 - k):
            # row j of D holds stencil[m] at column j + m; it adds stencil[m] * stencil[m + k]
            # to entry (j + m, j + m + k) for every row j = 0 .. B - d - 1
            diagonals[k][m : m + n_bands - d] += stencil[m] * stencil[m + k]
    return diagonals


def solve_banded_batch(main: np.ndarray, offdiagonals: list[np.ndarray], rhs: np.ndarray) -> np.ndarray:
    """Solve ``A_j x_j = b_j`` for many symmetric positive definite banded matrices at once.

    ``main`` is ``(B, n)``: the main diagonal of each of the ``n`` systems (bands first);
    ``offdiagonals[k - 1]`` is the ``k``-th superdiagonal, ``(B - k,)``, shared by all systems;
    ``rhs`` is ``(B, n)``. Returns ``x`` as ``(B, n)``.

    Many systems: one LDL' factorisation along the bands, each step one NumPy operation over
    all systems (its cost is about ``25 B`` operations whatever ``n``). Few systems (fewer than
    :data:`_FEW`, as when only slow-converging spectra are left): LAPACK's banded Cholesky on
    the block-diagonal stack of them, whose cost grows with ``n`` from nothing.
    """
    n_bands, n = main.shape
    u = len(offdiagonals)
    if n < _FEW:
        from scipy.linalg import solveh_banded

        stacked = np.zeros((u + 1, n, n_bands))
        for k, diagonal in enumerate(offdiagonals, start=1):
            stacked[u - k, :, k:] = diagonal  # upper form: row u - k holds superdiagonal k
        stacked[u] = main.T
        x = solveh_banded(stacked.reshape(u + 1, -1), np.ascontiguousarray(rhs.T).ravel(),
                          overwrite_ab=True, overwrite_b=True, check_finite=False)
        return x.reshape(n, n_bands).T
    diag = np.empty_like(main)
    lower = [np.zeros_like(main) for _ in range(u)]  # lower[k-1][i] = L[i + k, i]
    scaled = [np.zeros_like(main) for _ in range(u)]  # lower * diag, reused below
    product = np.empty(n)
    for i in range(n_bands):
        d_i = diag[i]
        d_i[:] = main[i]
        for k in range(1, min(u, i) + 1):
            np.multiply(lower[k - 1][i - k], scaled[k - 1][i - k], out=product)
            d_i -= product
        for k in range(1, min(u, n_bands - 1 - i) + 1):
            value = scaled[k - 1][i]
            value[:] = offdiagonals[k - 1][i]
            for m in range(1, min(u - k, i) + 1):
                np.multiply(lower[k + m - 1][i - m], scaled[m - 1][i - m], out=product)
                value -= product
            np.divide(value, d_i, out=lower[k - 1][i])
    x = rhs.copy()
    for i in range(1, n_bands):
        for k in range(1, min(u, i) + 1):
            np.multiply(lower[k - 1][i - k], x[i - k], out=product)
            x[i] -= product
    x /= diag
    for i in range(n_bands - 2, -1, -1):
        for k in range(1, min(u, n_bands - 1 - i) + 1):
            np.multiply(lower[k - 1][i], x[i + k], out=product)
            x[i] -= product
    return x


def _negative_stats(residual: np.ndarray):
    """Count, mean and sample std (ddof=1) of the negative residuals of each column."""
    negative = residual < 0
    count = negative.sum(axis=0)
    values = np.where(negative, residual, 0.0)
    mean = values.sum(axis=0) / np.maximum(count, 1)
    spread = np.where(negative, residual - mean, 0.0)
    std = np.sqrt((spread * spread).sum(axis=0) / np.maximum(count - 1, 1))
    std = np.where((count < 2) | (std == 0), _TINY, std)
    return negative, count, mean, std


def _relative_change(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """pybaselines' ``relative_difference`` per column: ``|new - old| / |old|``."""
    return np.linalg.norm(new - old, axis=0) / np.maximum(np.linalg.norm(old, axis=0), _TINY)


def _reweight_asls(y, z, iteration, weights, p):
    new = np.where(y > z, p, 1.0 - p)
    return new, _relative_change(weights, new), np.zeros(y.shape[1], dtype=bool)


def _reweight_arpls(y, z, iteration, weights):
    from scipy.special import expit

    residual = y - z
    _, count, mean, std = _negative_stats(residual)
    new = expit(-(2.0 / std) * (residual - (2.0 * std - mean)))
    return new, _relative_change(weights, new), count < 2


def _reweight_iarpls(y, z, iteration, weights):
    residual = y - z
    _, count, _, std = _negative_stats(residual)
    with np.errstate(over="ignore", invalid="ignore"):
        inner = (np.exp(min(iteration, 100)) / std) * (residual - 2.0 * std)
        ratio = inner / np.sqrt(1.0 + inner * inner)
    # a noise-free spectrum has a tiny std: inner overflows and the ratio is its sign
    new = 0.5 * (1.0 - np.where(np.isfinite(ratio), ratio, np.sign(inner)))
    return new, _relative_change(weights, new), count < 2


def _reweight_airpls(y, z, iteration, weights):
    residual = y - z
    negative = residual < 0
    count = negative.sum(axis=0)
    l1 = np.where(negative, residual, 0.0).sum(axis=0)
    log_max = np.log(np.finfo(np.float64).max)
    inner = np.clip(min(iteration, 50) / np.where(l1 == 0, -1.0, l1) * residual, 0.0,
                    log_max - np.spacing(log_max))
    new = np.where(negative, np.exp(inner), 0.0)
    return new, np.abs(l1) / np.maximum(np.abs(y).sum(axis=0), _TINY), count < 2


def _whittaker(spectra, reweight, lam, diff_order, max_iter, tol, counts_from_one=False,
               **extra) -> np.ndarray:
    """The iteratively reweighted Whittaker smoother of pybaselines, for ``(B, n)`` spectra.

    Each round solves every pending spectrum's system, asks ``reweight`` for new weights, the
    change and which spectra must stop early, and keeps the spectra whose change is below
    ``tol`` (or that stopped early) with the baseline just solved.
    """
    n_bands, n = spectra.shape
    penalty = [lam * diagonal for diagonal in difference_penalty(n_bands, diff_order)]
    baseline = np.empty_like(spectra)
    pending = np.arange(n)
    y = spectra
    weights = np.ones_like(spectra)
    first = 1 if counts_from_one else 0
    for iteration in range(first, max_iter + 1 + first):
        z = solve_banded_batch(penalty[0][:, None] + weights, penalty[1:], weights * y)
        new, change, stop = reweight(y, z, iteration, weights, **extra)
        done = stop | (change < tol) | (iteration == max_iter + first)
        if done.any():
            baseline[:, pending[done]] = z[:, done]
            keep = ~done
            pending, y, weights = pending[keep], y[:, keep], new[:, keep]
            if pending.size == 0:
                break
        else:
            weights = new
    return baseline


def _asls(spectra, axis, lam, p, diff_order, max_iter, tol):
    return _whittaker(spectra, _reweight_asls, lam, diff_order, max_iter, tol, p=p)


def _arpls(spectra, axis, lam, diff_order, max_iter, tol):
    return _whittaker(spectra, _reweight_arpls, lam, diff_order, max_iter, tol)


def _iarpls(spectra, axis, lam, diff_order, max_iter, tol):
    return _whittaker(spectra, _reweight_iarpls, lam, diff_order, max_iter, tol, counts_from_one=True)


def _airpls(spectra, axis, lam, diff_order, max_iter, tol):
    return _whittaker(spectra, _reweight_airpls, lam, diff_order, max_iter, tol, counts_from_one=True)


# --------------------------------------------------------------------------------------------
# Polynomial family


def _design(axis: np.ndarray, order: int) -> np.ndarray:
    """Legendre design matrix ``(B, order + 1)`` on the axis mapped onto [-1, 1]."""
    span = float(np.ptp(axis))
    scaled = (axis - axis.min()) / span * 2.0 - 1.0 if span > 0 else np.zeros_like(axis)
    return np.polynomial.legendre.legvander(scaled, order)


def _modpoly(spectra, axis, poly_order, max_iter, tol):
    from ..spectral.preprocess import _modpoly_fit

    design = _design(axis, poly_order)
    return _modpoly_fit(spectra, design, np.linalg.pinv(design), max_iter, tol)


def _weighted_fit(design, weights, values):
    """Weighted least-squares polynomial fits of ``(B, n)`` values: the fitted ``(B, n)``."""
    gram = np.einsum("bp,bn,bq->npq", design, weights, design)
    coef = np.linalg.solve(gram, ((weights * values).T @ design)[:, :, None])[:, :, 0]  # (n, p)
    return design @ coef.T


def _imodpoly(spectra, axis, poly_order, max_iter, tol, num_std):
    """pybaselines' imodpoly (Zhao et al. 2007) with ``mask_initial_peaks``, many spectra at once."""
    design = _design(axis, poly_order)
    n = spectra.shape[1]
    baseline = np.empty_like(spectra)
    fit = design @ (np.linalg.pinv(design) @ spectra)
    deviation = np.std(spectra - fit, axis=0)
    weights = np.where(fit + deviation < spectra, 0.0, 1.0)
    short = weights.sum(axis=0) <= poly_order  # too few points left: keep them all
    weights[:, short] = 1.0
    pending = np.arange(n)
    y = spectra.copy()
    for iteration in range(max_iter):
        y = np.minimum(y, fit + num_std * deviation)
        fit = _weighted_fit(design, weights, y)
        new_deviation = np.std(y - fit, axis=0)
        # pybaselines' relative_difference(new_deviation, deviation): relative to the new one
        change = np.abs(new_deviation - deviation) / np.maximum(np.abs(new_deviation), _TINY)
        done = (change < tol) | (iteration == max_iter - 1)
        deviation = new_deviation
        if done.any():
            baseline[:, pending[done]] = fit[:, done]
            keep = ~done
            pending, y, fit, deviation, weights = (
                pending[keep], y[:, keep], fit[:, keep], deviation[keep], weights[:, keep]
            )
            if pending.size == 0:
                break
    return baseline


# --------------------------------------------------------------------------------------------
# SNIP


def _extrapolated_edges(spectra: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """pybaselines' default padding: a straight line fit to the ``length`` end points, extended."""
    n_bands = spectra.shape[0]
    window = min(length, n_bands)
    t = np.arange(window, dtype=np.float64)
    t_centred = t - t.mean()
    denominator = max(float(t_centred @ t_centred), _TINY)
    edges = []
    for block, outside in ((spectra[:window], np.arange(-length, 0)),
                           (spectra[n_bands - window :], np.arange(window, window + length))):
        slope = (t_centred @ block) / denominator if window > 1 else np.zeros(block.shape[1])
        mean = block.mean(axis=0)
        edges.append(mean + (outside - t.mean())[:, None] * slope)
    return edges[0], edges[1]


def _snip(spectra, axis, max_half_window, decreasing):
    """pybaselines' snip (filter order 2, no smoothing), many spectra at once."""
    n_bands = spectra.shape[0]
    half = min(int(max_half_window), (n_bands - 1) // 2)
    left, right = _extrapolated_edges(spectra, half)
    padded = np.concatenate([left, spectra, right], axis=0)
    total = padded.shape[0]
    windows = range(half, 0, -1) if decreasing else range(1, half + 1)
    for i in windows:
        means = 0.5 * (padded[: total - 2 * i] + padded[2 * i :])
        np.minimum(padded[i : total - i], means, out=padded[i : total - i])
    return padded[half : half + n_bands]


# --------------------------------------------------------------------------------------------
# Methods that pybaselines runs one spectrum at a time


def _per_spectrum(name: str) -> Callable:
    def fit(spectra, axis, **params):
        from pybaselines import Baseline

        fitter = getattr(Baseline(x_data=axis), name)
        out = np.empty_like(spectra)
        with warnings.catch_warnings():
            # pybaselines warns per spectrum when a fit stops at max_iter; not per-pixel news
            warnings.simplefilter("ignore", category=UserWarning)
            for j in range(spectra.shape[1]):
                out[:, j] = fitter(spectra[:, j], **params)[0]
        return out

    fit.__name__ = f"_{name}"
    fit.__doc__ = f"pybaselines' {name}, one spectrum at a time."
    return fit


# --------------------------------------------------------------------------------------------
# Registry and checks


@dataclass(frozen=True)
class BaselineMethod:
    """One baseline method: its fit of ``(B, n)`` spectra, its defaults and what it does.

    ``vectorised`` says whether the fit runs on all spectra at once (else pybaselines loops).
    """

    name: str
    fit: Callable[..., np.ndarray]
    defaults: Mapping[str, object]
    summary: str
    vectorised: bool = True


_WHITTAKER = {"diff_order": 2, "max_iter": 50, "tol": 1e-3}

BASELINE_METHODS = MappingProxyType({
    "arpls": BaselineMethod(
        "arpls", _arpls, {"lam": 1e5, **_WHITTAKER},
        "asymmetrically reweighted penalized least squares (Baek et al. 2015)"),
    "asls": BaselineMethod(
        "asls", _asls, {"lam": 1e5, "p": 0.02, **_WHITTAKER},
        "asymmetric least squares (Eilers & Boelens 2005)"),
    "airpls": BaselineMethod(
        "airpls", _airpls, {"lam": 1e5, **_WHITTAKER},
        "adaptive iteratively reweighted penalized least squares (Zhang et al. 2010)"),
    "iarpls": BaselineMethod(
        "iarpls", _iarpls, {"lam": 3e3, **_WHITTAKER},
        "improved arPLS (Ye et al. 2020)"),
    "modpoly": BaselineMethod(
        "modpoly", _modpoly, {"poly_order": 3, "max_iter": 250, "tol": 1e-3},
        "modified polyfit (Lieber & Mahadevan-Jansen 2003)"),
    "imodpoly": BaselineMethod(
        "imodpoly", _imodpoly, {"poly_order": 3, "max_iter": 250, "tol": 1e-3, "num_std": 1.0},
        "improved modified polyfit (Zhao et al. 2007)"),
    "snip": BaselineMethod(
        "snip", _snip, {"max_half_window": 20, "decreasing": False},
        "statistics-sensitive non-linear iterative peak clipping (Ryan et al. 1988)"),
    "rubberband": BaselineMethod(
        "rubberband", _per_spectrum("rubberband"), {"segments": 5},
        "lower convex hull, in segments so that it follows a bowed background (pybaselines, "
        "one spectrum at a time)", False),
    "aspls": BaselineMethod(
        "aspls", _per_spectrum("aspls"), {"lam": 1e6, "diff_order": 2, "max_iter": 100, "tol": 1e-3},
        "adaptive smoothness penalized least squares (Zhang et al. 2020; pybaselines, one "
        "spectrum at a time)", False),
    "mor": BaselineMethod(
        "mor", _per_spectrum("mor"), {"half_window": 40},
        "morphological opening (Perez-Pueyo et al. 2010; pybaselines, one spectrum at a time)",
        False),
})
"""Baseline method name -> :class:`BaselineMethod`; ``arpls`` is the default."""


def _check_params(method: BaselineMethod, params: dict, n_bands: int) -> dict:
    """Defaults filled in; unknown names and values out of range raise a ``ValueError``."""
    unknown = sorted(set(params) - set(method.defaults))
    if unknown:
        raise ValueError(
            f"baseline method {method.name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(method.defaults)}"
        )
    checked = {**method.defaults, **params}

    def need(condition: bool, text: str) -> None:
        if not condition:
            raise ValueError(f"baseline method {method.name!r}: {text}")

    for name, value in checked.items():
        default = method.defaults[name]
        if isinstance(default, bool):
            checked[name] = bool(value)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"baseline parameter {name!r} must be a number, got {value!r}") from None
        need(np.isfinite(number), f"{name} must be finite, got {value!r}")
        if isinstance(default, int):
            need(number.is_integer(), f"{name} must be a whole number, got {value!r}")
            checked[name] = int(number)
        else:
            checked[name] = number
    if "lam" in checked:
        need(checked["lam"] > 0, f"lam must be positive, got {checked['lam']}")
    if "p" in checked:
        need(0 < checked["p"] < 1, f"p must be between 0 and 1, got {checked['p']}")
    if "diff_order" in checked:
        need(1 <= checked["diff_order"] <= 3, f"diff_order must be 1, 2 or 3, got {checked['diff_order']}")
        need(n_bands > checked["diff_order"] + 1,
             f"needs more than {checked['diff_order'] + 1} bands, the data has {n_bands}")
    if "poly_order" in checked:
        need(0 <= checked["poly_order"] < n_bands - 1,
             f"poly_order must be between 0 and {n_bands - 2}, got {checked['poly_order']}")
    for name in ("max_iter", "max_half_window", "half_window", "segments"):
        if name in checked:
            need(checked[name] >= 1, f"{name} must be at least 1, got {checked[name]}")
    for name in ("tol", "num_std"):
        if name in checked:
            need(checked[name] >= 0, f"{name} must not be negative, got {checked[name]}")
    return checked


def _spectra_steps(flat: np.ndarray, axis: np.ndarray, method: BaselineMethod, params: dict,
                   subtract: bool) -> Steps[np.ndarray]:
    """Baselines (or corrected spectra) of ``(B, n)`` spectra, a chunk of spectra at a time."""
    n = flat.shape[1]
    out = np.empty(flat.shape, dtype=np.float32)
    message = f"baseline ({method.name})"
    yield Progress(0, n, message)
    for columns in chunks(n, _CHUNK):
        spectra = flat[:, columns].astype(np.float64)
        with one_blas_thread():  # thin products: BLAS threads only add contention
            baseline = method.fit(spectra, axis, **params)
        out[:, columns] = spectra - baseline if subtract else baseline
        yield Progress(columns.stop, n, message)
    return out


def _prepare(data, wavenumbers, method, params):
    name = check_method(method, BASELINE_METHODS)
    chosen = BASELINE_METHODS[name]
    array = np.asarray(data)
    if array.ndim not in (1, 3):
        raise ValueError(
            f"data must be a (bands, y, x) cube or one (bands,) spectrum, got shape {array.shape}"
        )
    cube = as_cube(array.reshape(array.shape[0], 1, 1) if array.ndim == 1 else array)
    axis = spectral_axis(wavenumbers, cube.shape[0])
    checked = _check_params(chosen, params, cube.shape[0])
    return chosen, cube, axis, checked, array.shape


def remove_baseline_steps(data, wavenumbers=None, method: str = "arpls", **params) -> Steps[np.ndarray]:
    """Steps version of :func:`remove_baseline`: yields progress per chunk of spectra."""
    chosen, cube, axis, checked, shape = _prepare(data, wavenumbers, method, params)
    flat = cube.reshape(cube.shape[0], -1)
    corrected = yield from _spectra_steps(flat, axis, chosen, checked, subtract=True)
    return corrected.reshape(shape)


def remove_baseline(data, wavenumbers=None, method: str = "arpls", **params) -> np.ndarray:
    """The cube with a smooth background subtracted from every spectrum (float32, same shape).

    ``method`` is one of :data:`BASELINE_METHODS` (``arpls`` by default); ``params`` override
    its defaults and use pybaselines' names (``lam``, ``p``, ``poly_order``,
    ``max_half_window``, ...). ``data`` may also be one ``(B,)`` spectrum. The input is not
    modified.
    """
    return run(remove_baseline_steps(data, wavenumbers, method, **params))


def estimate_baseline_steps(data, wavenumbers=None, method: str = "arpls", **params) -> Steps[np.ndarray]:
    """Steps version of :func:`estimate_baseline`."""
    chosen, cube, axis, checked, shape = _prepare(data, wavenumbers, method, params)
    flat = cube.reshape(cube.shape[0], -1)
    baseline = yield from _spectra_steps(flat, axis, chosen, checked, subtract=False)
    return baseline.reshape(shape)


def estimate_baseline(data, wavenumbers=None, method: str = "arpls", **params) -> np.ndarray:
    """The background itself (what :func:`remove_baseline` subtracts), same shape as ``data``.

    For a live preview pass one ``(B,)`` spectrum: it returns in milliseconds.
    """
    return run(estimate_baseline_steps(data, wavenumbers, method, **params))
