"""Parameters chosen on the cube itself, with no clean answer: self-supervised losses.

A denoiser ``f`` is *J-invariant* when its output at a value does not look at that value. For
such an ``f`` and noise that is independent between values with zero mean (Batson & Royer,
Noise2Self, ICML 2019),

    E |f(y) - y|^2 = E |f(y) - x|^2 + E |y - x|^2,

so the loss against the *noisy* data ranks parameters exactly as the loss against the unknown
clean ``x`` would. What each method uses:

* **linear smoothers** (Savitzky-Golay, Whittaker): the leave-one-out prediction, which for a
  smoother matrix ``H`` is ``(f(y)_i - H_ii y_i) / (1 - H_ii)``, so the loss is
  ``mean(((f(y) - y) / (1 - H_ii))^2)``: exact, one run per candidate (Savitzky-Golay's ``H_ii``
  comes from its polynomial fit, the Whittaker's from the banded inverse);
* **wavelet shrinkage** (non-linear): here the masked version (bands replaced by the mean of
  their neighbours, as scikit-image's ``calibrate_denoiser`` does for images) is a different
  denoiser from the shrinker itself, and its best threshold measured 2 to 8 times larger; the
  threshold is chosen instead by Stein's unbiased risk estimate (SURE) with the cube's own noise
  model (:mod:`.noise`), the divergence from one random probe (Monte-Carlo SURE), which targets
  the shrinker itself;
* **PCA rank**: bi-cross-validation over pixels and bands (Owen & Perry, Ann. Appl. Stat. 3, 564,
  2009): hold out a block of pixels x bands, predict it from the other three blocks through the
  rank-``k`` fit of the block that shares neither, ``A ~ B D_k^+ C``, and keep the ``k`` with the
  smallest error, summed over a 2 x 2 grid of folds.

Every search runs on at most :data:`SAMPLE_SPECTRA` spectra, evenly spaced over the image, so
its cost does not grow with the cube.
"""

from __future__ import annotations

import numpy as np

#: Spectra the per-spectrum calibrations use at most (evenly spaced over the pixels).
SAMPLE_SPECTRA = 1024
#: Whittaker lambdas searched (band units), before the refinement around the best.
WHITTAKER_LAMBDAS = tuple(np.geomspace(1e-2, 1e8, 41))
SAVGOL_ORDERS = (2, 3, 4)
WAVELET_SCALES = tuple(np.geomspace(0.25, 4.0, 9))


def sample_spectra(data: np.ndarray, n: int = SAMPLE_SPECTRA, dtype=np.float64) -> np.ndarray:
    """``(B, n)`` spectra (float64, or ``dtype``) at evenly spaced pixels (all of them when there are fewer).

    ``data`` is a ``(B, Y, X)`` cube (in memory or lazy: only those spectra are read) or its
    pixels ``(B, N)`` (a view or a lazy :class:`~napari_deeper.io._lazy.FlatPixels`)."""
    from ..io._lazy import FlatPixels, is_lazy

    if data.ndim == 2:
        flat = data
    else:
        flat = FlatPixels(data) if is_lazy(data) else data.reshape(data.shape[0], -1)
    index = np.unique(np.linspace(0, flat.shape[1] - 1, min(n, flat.shape[1])).round().astype(int))
    return np.asarray(flat[:, index], dtype=dtype)


def _loo_loss(smoothed: np.ndarray, spectra: np.ndarray, diagonal: np.ndarray) -> float:
    """Leave-one-out (J-invariant) loss of a linear smoother with hat diagonal ``diagonal``."""
    keep = diagonal < 1 - 1e-9
    residual = (smoothed[keep] - spectra[keep]) / (1.0 - diagonal[keep, None])
    return float(np.mean(residual**2))


def _savgol_edge(window: int, order: int) -> np.ndarray:
    """``(window, window)`` projection onto polynomials of ``order`` over ``window`` bands."""
    t = np.arange(window, dtype=np.float64)
    q, _ = np.linalg.qr(np.vander((t - t.mean()) / window, order + 1))
    return q @ q.T


def savgol_smooth(spectra: np.ndarray, window: int, order: int) -> np.ndarray:
    """``scipy.signal.savgol_filter(spectra, window, order, axis=0, mode="interp")``, faster.

    The same linear operator: inside, the convolution; within half a window of each end, the
    polynomial fitted to the first (last) ``window`` bands, applied as one projection matrix to
    every spectrum at once instead of a least-squares fit per call.
    """
    from scipy.ndimage import correlate1d
    from scipy.signal import savgol_coeffs

    out = correlate1d(spectra, savgol_coeffs(window, order, use="dot"), axis=0, mode="constant")
    half = window // 2
    edge = _savgol_edge(window, order)
    out[:half] = edge[:half] @ spectra[:window]
    out[-half:] = edge[window - half:] @ spectra[-window:]
    return out


def savgol_hat_diagonal(n_bands: int, window: int, order: int) -> np.ndarray:
    """Diagonal of :func:`savgol_smooth` as a matrix: how much each band keeps of itself.

    Inside, it is the centre coefficient of the filter; within half a window of either end,
    the diagonal of the edge polynomial's projection.
    """
    from scipy.signal import savgol_coeffs

    diagonal = np.full(n_bands, savgol_coeffs(window, order)[window // 2])
    half = window // 2
    edge = np.diag(_savgol_edge(window, order))
    diagonal[:half] = edge[:half]
    diagonal[n_bands - half:] = edge[window - half:]
    return diagonal


def savgol_windows(n_bands: int, order: int) -> list[int]:
    """Odd windows to search: 5 to a third of the bands (at most 201), about 12 % apart, each
    at least ``order + 2`` (a window of ``order + 1`` bands interpolates: nothing to validate)."""
    top = min(201, max(5, n_bands // 3))
    grid = np.unique(np.geomspace(5, top, 24).round().astype(int) // 2 * 2 + 1)
    return [int(w) for w in grid if order + 1 < w <= n_bands]


def _smoothing_pays(smoothed: np.ndarray, spectra: np.ndarray, diagonal: np.ndarray, noise) -> bool:
    """Whether a linear smoother's SURE under the noise model is below leaving the data as they are.

    SURE of ``H y`` is ``|Hy - y|^2 - sum(var) + 2 sum(H_ii var)``; the data themselves have risk
    ``sum(var)``. Leave-one-out ranks the smoothers against each other but cannot rank them
    against no smoothing (whose leave-one-out prediction is undefined); this does.
    """
    variance = value_variance(spectra, noise)
    risk = np.mean((smoothed - spectra) ** 2) - np.mean(variance) + 2.0 * np.mean(diagonal[:, None] * variance)
    return bool(risk < np.mean(variance))


def _noise(data, noise):
    from .noise import estimate_noise

    return estimate_noise(data, max_values=500_000, spikes=False) if noise is None else noise


def calibrate_savgol(data: np.ndarray, orders=SAVGOL_ORDERS, noise=None) -> dict:
    """Savitzky-Golay ``window`` and ``order`` with the lowest leave-one-out loss on the cube.

    When even the best of them does not beat the data themselves (SURE under ``noise``, the cube's
    noise model, estimated when None), returns window 3, order 2: the data left as they are.
    """
    spectra = sample_spectra(data)
    n_bands = spectra.shape[0]
    best = None
    for order in orders:
        for window in savgol_windows(n_bands, order):
            smoothed = savgol_smooth(spectra, window, order)
            diagonal = savgol_hat_diagonal(n_bands, window, order)
            loss = _loo_loss(smoothed, spectra, diagonal)
            if best is None or loss < best[0]:
                best = (loss, {"window": window, "order": order}, smoothed, diagonal)
    if best is None:
        raise ValueError(f"{n_bands} bands are too few to calibrate a Savitzky-Golay filter (need at least 5)")
    if not _smoothing_pays(best[2], spectra, best[3], _noise(data, noise)):
        return {"window": 3, "order": 2}
    return best[1]


def _whittaker(spectra: np.ndarray, lam: float):
    """Whittaker-smoothed ``spectra`` and the smoother's diagonal."""
    from scipy.linalg import cho_solve_banded

    from .classical import whittaker_factor, whittaker_hat_diagonal

    factor = whittaker_factor(spectra.shape[0], lam)
    return cho_solve_banded((factor, False), spectra), whittaker_hat_diagonal(spectra.shape[0], lam, factor)


def whittaker_loss(spectra: np.ndarray, lam: float) -> float:
    """Leave-one-out loss of the Whittaker smoother with ``lam`` on ``(B, n)`` spectra."""
    smoothed, diagonal = _whittaker(spectra, lam)
    return _loo_loss(smoothed, spectra, diagonal)


def calibrate_whittaker(data: np.ndarray, lambdas=WHITTAKER_LAMBDAS, noise=None) -> float:
    """The Whittaker ``lam`` with the lowest leave-one-out loss (grid, then a finer look around it).

    0 (the data left as they are) when even that one does not beat the data themselves (SURE
    under ``noise``, the cube's noise model, estimated when None).
    """
    spectra = sample_spectra(data)
    grid = np.asarray(lambdas, dtype=np.float64)
    losses = np.array([whittaker_loss(spectra, lam) for lam in grid])
    i = int(np.argmin(losses))
    low, high = grid[max(0, i - 1)], grid[min(grid.size - 1, i + 1)]
    fine = np.geomspace(low, high, 9)
    fine_losses = np.array([whittaker_loss(spectra, lam) for lam in fine])
    lam = float(fine[int(np.argmin(fine_losses))])
    smoothed, diagonal = _whittaker(spectra, lam)
    return lam if _smoothing_pays(smoothed, spectra, diagonal, _noise(data, noise)) else 0.0


def sure_loss(fn, spectra: np.ndarray, variance: np.ndarray, delta: float = 0.01, seed: int = 0) -> float:
    """Monte-Carlo SURE of a denoiser ``fn`` on noisy values with per-value noise ``variance``.

    Stein's unbiased risk estimate, ``|f(y) - y|^2 - sum(var) + 2 sum(var_i df_i/dy_i)``, per
    value, with the divergence from one random probe (Ramani, Blu & Unser, IEEE TIP 17, 1540,
    2008): ``eps' (f(y + delta sigma eps) - f(y)) / delta`` with ``eps`` standard normal, scaled
    by the noise standard deviation of each value. Unbiased for Gaussian noise of known
    variance; the probe's own error is negligible on a million values.
    """
    rng = np.random.default_rng(seed)
    out = fn(spectra)
    sigma = np.sqrt(variance)
    probe = sigma * rng.standard_normal(spectra.shape)
    divergence = float(np.sum(probe * (fn(spectra + delta * probe) - out))) / delta
    return float(np.mean((out - spectra) ** 2) - np.mean(variance) + 2.0 * divergence / spectra.size)


def value_variance(spectra: np.ndarray, noise) -> np.ndarray:
    """Noise variance of each value of ``(B, n)`` spectra under a noise model (at the 3-band mean)."""
    level = spectra.copy()
    level[1:-1] = (spectra[:-2] + spectra[1:-1] + spectra[2:]) / 3.0
    return noise.variance(level)


def calibrate_wavelet(data: np.ndarray, wavelet: str = "sym8", mode: str = "soft",
                      threshold: str = "bayesshrink", noise=None, scales=WAVELET_SCALES) -> dict:
    """Wavelet ``level`` and ``threshold_scale`` with the lowest SURE under the cube's noise model.

    ``noise`` is a :class:`~napari_deeper.denoise.noise.NoiseModel` (estimated when None). SURE,
    not masking: the masked (J-invariant) version of a wavelet shrinker is a different denoiser,
    whose best threshold measured 2 to 8 times the best threshold of the shrinker itself.
    """
    import pywt

    from .classical import _wavelet_block
    from .noise import estimate_noise

    spectra = sample_spectra(data)
    n_bands = spectra.shape[0]
    top = pywt.dwt_max_level(n_bands, pywt.Wavelet(wavelet).dec_len)
    if top < 1:
        raise ValueError(f"{n_bands} bands are too few for a wavelet decomposition with {wavelet!r}")
    noise = estimate_noise(data, spikes=False) if noise is None else noise
    variance = value_variance(spectra, noise)
    best = None
    for level in range(max(1, top - 2), top + 1):
        for scale in scales:
            loss = sure_loss(lambda block, level=level, scale=scale: _wavelet_block(block, wavelet, level, mode, threshold, scale),
                             spectra, variance)
            if best is None or loss < best[0]:
                best = (loss, {"level": level, "threshold_scale": float(scale)})
    return best[1]


def _cumulative_errors(a: np.ndarray, p: np.ndarray, q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``|A - sum_{j<k} w_j p_j q_j^T|^2`` for every ``k`` = 0..r, without forming the sums."""
    cross = np.einsum("ij,ik,kj->j", p, a, q.T)  # p_j' A q_j
    gram = (p.T @ p) * (q @ q.T) * np.outer(w, w)
    quad = np.cumsum(np.cumsum(gram, axis=0), axis=1).diagonal()
    return np.concatenate([[0.0], -2.0 * np.cumsum(w * cross) + quad]) + float(np.sum(a**2))


def bcv_errors(matrix: np.ndarray, max_rank: int, folds: tuple[int, int] = (2, 2), seed: int = 0) -> np.ndarray:
    """Bi-cross-validation error of the rank-``k`` fit for ``k`` = 0..``max_rank``.

    ``matrix`` is ``(pixels, bands)``, already centred. Rows and columns are shuffled (seeded),
    split into ``folds``; each held-out block ``A`` is predicted as ``B V_k S_k^-2 V_k' D' C``
    (that is ``B D_k^+ C``) from the eigendecomposition of the retained block's Gram matrix
    ``D'D``. Returns the errors summed over all folds.
    """
    rng = np.random.default_rng(seed)
    n_rows, n_cols = matrix.shape
    row_groups = np.array_split(rng.permutation(n_rows), folds[0])
    col_groups = np.array_split(rng.permutation(n_cols), folds[1])
    limit = min(max_rank, min(n_rows - max(map(len, row_groups)), n_cols - max(map(len, col_groups))))
    total = np.zeros(limit + 1)
    for rows in row_groups:
        other_rows = np.setdiff1d(np.arange(n_rows), rows)
        for cols in col_groups:
            other_cols = np.setdiff1d(np.arange(n_cols), cols)
            a = matrix[np.ix_(rows, cols)]
            b = matrix[np.ix_(rows, other_cols)]
            c = matrix[np.ix_(other_rows, cols)]
            d = matrix[np.ix_(other_rows, other_cols)]
            eigvals, eigvecs = np.linalg.eigh(d.T @ d)
            order = np.argsort(eigvals)[::-1][:limit]
            eigvals, v = eigvals[order], eigvecs[:, order]
            usable = eigvals > eigvals[0] * 1e-12
            w = np.where(usable, 1.0 / np.where(usable, eigvals, 1.0), 0.0)
            p = b @ v
            q = v.T @ (d.T @ c)
            total += _cumulative_errors(a, p, q, w)
    return total


def bcv_rank(data: np.ndarray, max_rank: int = 60, max_pixels: int = 8192) -> int:
    """PCA rank of a ``(B, Y, X)`` cube by bi-cross-validation (at least 1).

    Uses at most ``max_pixels`` evenly spaced pixels; the mean spectrum is removed first, so the
    rank counts components beyond it, as :func:`~napari_deeper.denoise.classical.pca_steps` does.
    """
    spectra = sample_spectra(data, max_pixels).T
    spectra = spectra - spectra.mean(axis=0)
    errors = bcv_errors(spectra, max_rank)
    return int(max(1, np.argmin(errors)))


def sinkhorn_scaling(variance: np.ndarray, rounds: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Scalings ``u`` (rows) and ``v`` (columns) that make ``u_b var_bp v_p`` average 1 along
    every row and column (Sinkhorn; Landa, Zhang & Kluger, SIAM J. Math. Data Sci. 4, 2022)."""
    n_rows, n_cols = variance.shape
    u, v = np.ones(n_rows), np.ones(n_cols)
    for _ in range(rounds):
        u = n_cols / (variance @ v)
        v_new = n_rows / (variance.T @ u)
        if np.allclose(v_new, v, rtol=1e-4):
            v = v_new
            break
        v = v_new
    return u, v


def model_variance(block: np.ndarray, noise) -> np.ndarray:
    """The noise model's variance of every value of ``block`` (at least its lowest measured), float32."""
    a, b, floor = (np.float32(x) for x in (noise.gain, noise.read_variance, noise.min_variance))
    variance = a * np.asarray(block, dtype=np.float32)
    variance += b  # (in place: one float32 array, the same values)
    return np.maximum(variance, floor, out=variance)


def noise_scales_steps(flat: np.ndarray, slices, noise, message: str = "evening out the noise"):
    """One scale per band and one per pixel that even out the cube's noise: ``(band, pixel)``.

    ``sqrt(u_b)`` and ``sqrt(v_p)`` with ``u`` from Sinkhorn scaling of the noise model's variance
    on at most 4096 evenly spaced spectra and ``v`` from every pixel's spectrum in one pass over
    ``flat`` (``(B, N)``, read in ``slices``), so that ``y * band * pixel`` has noise variance 1 on
    average along every band and every pixel. A two-sided diagonal scaling keeps a low-rank cube
    low-rank, and the noise's singular values then follow the Marchenko-Pastur law, which is what
    rank rules for white noise assume.
    """
    from ..compute import Progress

    u, _ = sinkhorn_scaling(model_variance(sample_spectra(flat, 4096, np.float32), noise).astype(np.float64))
    pixel = np.empty(flat.shape[1])
    for i, sl in enumerate(slices):
        pixel[sl] = flat.shape[0] / (u.astype(np.float32) @ model_variance(flat[:, sl], noise))
        yield Progress(i + 1, len(slices), message)
    return np.sqrt(u), np.sqrt(pixel)


def evened_rank_steps(data: np.ndarray, rule: str = "gavish-donoho", noise=None, max_rank: int = 60):
    """PCA rank of a cube whose noise has been evened out first (:func:`noise_scales_steps`).

    ``rule`` is "gavish-donoho" (singular values of the evened cube above Gavish & Donoho's
    optimal hard threshold for an unknown noise level: the rank that is best for plain truncation
    when the noise is white) or "bcv" (bi-cross-validation on at most 8192 evenly spaced evened
    spectra). ``noise`` is the cube's noise model (estimated when None).
    """
    from ..compute import Progress
    from .classical import gavish_donoho_rank, pixel_blocks, principal_axes
    from .noise import estimate_noise

    yield Progress(0, 1, "estimating the noise")
    noise = estimate_noise(data, max_values=500_000, spikes=False) if noise is None else noise
    flat, slices = pixel_blocks(data)
    band, pixel = yield from noise_scales_steps(flat, slices, noise)
    n_bands, n = flat.shape
    if rule == "bcv":
        index = np.unique(np.linspace(0, n - 1, min(n, 8192)).round().astype(int))
        sample = (np.asarray(flat[:, index], dtype=np.float64) * band[:, None] * pixel[None, index]).T
        return int(max(1, np.argmin(bcv_errors(sample - sample.mean(axis=0), max_rank))))
    mean = np.zeros(n_bands)
    gram = np.zeros((n_bands, n_bands))
    for i, sl in enumerate(slices):
        z = np.multiply(flat[:, sl], band[:, None], dtype=np.float64)
        z *= pixel[None, sl]
        mean += z.sum(axis=1)
        gram += z @ z.T
        yield Progress(i + 1, len(slices), "rank on the evened cube")
    mean /= n
    gram -= n * np.outer(mean, mean)
    singular, _ = principal_axes(gram)
    return gavish_donoho_rank(singular[: min(n_bands, n) - 1], (n, n_bands))


def calibrated(name: str, data: np.ndarray, noise, params: dict) -> dict:
    """``params`` with the ones method ``name`` calibrates replaced by their values on ``data``."""
    if name == "savgol":
        return {**params, **calibrate_savgol(data, noise=noise)}
    if name == "whittaker":
        return {**params, "lam": calibrate_whittaker(data, noise=noise)}
    if name == "wavelet":
        found = calibrate_wavelet(data, params["wavelet"], params["mode"], params["threshold"], noise)
        return {**params, **found}
    raise ValueError(f"no automatic calibration for method {name!r}")


def classical_steps(name: str, fn):
    """The registry's steps function for classical method ``name`` (its ``*_steps`` is ``fn``).

    Adds the ``stabilise`` choice (:func:`~napari_deeper.denoise.vst.stabilised_steps`) and, for
    the methods that have one, ``auto`` (parameters calibrated on the cube, after stabilisation
    when that is on): the values ``auto`` found are reported in the progress message.
    """
    from .vst import stabilised_steps

    def steps(data, wavenumbers=None, device=None, stabilise="off", auto=False, **params):
        def inner(cube, noise):
            chosen = (yield from calibrated_steps(name, cube, noise, params)) if auto else params
            return (yield from fn(cube, **chosen))

        return (yield from stabilised_steps(inner, data, stabilise))

    return steps


def calibrated_steps(name: str, data, noise, params: dict):
    """Steps: :func:`calibrated`, with the values found reported in a progress message."""
    from ..compute import Progress

    yield Progress(0, 1, f"{name}: calibrating on the cube")
    chosen = calibrated(name, data, noise, params)
    yield Progress(0, 1, f"{name}: " + ", ".join(f"{k} {_short(v)}" for k, v in chosen.items()))
    return chosen


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
