"""Classical spectral denoisers: Savitzky-Golay, Whittaker, wavelet shrinkage and PCA (low-rank).

Each is a ``*_steps`` generator over a ``(B, Y, X)`` float32 cube that processes blocks of
pixels (memory stays bounded on large cubes), yields progress between blocks and returns the
denoised cube. All of them are scale-equivariant: multiplying the input by ``c`` multiplies the
output by ``c``.
"""

from __future__ import annotations

import numpy as np

from ..compute import Progress, chunk_size, chunks, share

# Gavish & Donoho (2014): optimal hard threshold for singular values with unknown noise level is
# omega(beta) * median singular value; this cubic is their published approximation of omega.
_GD_COEFFS = (0.56, -0.95, 1.82, 1.43)


def pixel_blocks(data: np.ndarray, bytes_per_band: float = 16.0, device=None):
    """``(flat (B, N) view, list of slices)`` that split the pixels into memory-sized blocks.

    A lazy (dask) cube gives a :class:`~napari_deeper.io._lazy.FlatPixels` reader instead of a
    view: each ``flat[:, sl]`` reads that block as float32 and nothing more; its blocks hold at
    most :data:`~napari_deeper.io._lazy.LAZY_BLOCK_BYTES` of input.
    """
    from ..io._lazy import FlatPixels, is_lazy, lazy_block_pixels

    n_bands = data.shape[0]
    lazy = is_lazy(data)
    flat = FlatPixels(data) if lazy else data.reshape(n_bands, -1)
    size = chunk_size(bytes_per_band * n_bands, device, minimum=256, maximum=1 << 16)
    if lazy:
        size = min(size, lazy_block_pixels(n_bands))
    return flat, list(chunks(flat.shape[1], size))


def result_target(target, shape):
    """``(result, its (B, N) pixels)``: a new float32 cube, or ``target`` as it is (a streamed
    run's writer, which takes ``target[:, sl] = block`` for consecutive slices of pixels)."""
    if target is not None:
        return target, target
    out = np.empty(shape, dtype=np.float32)
    return out, out.reshape(shape[0], -1)


def _blockwise(data: np.ndarray, fn, message: str, bytes_per_band: float = 16.0):
    """Apply ``fn((B, n) block) -> (B, n)`` to pixel blocks, yielding progress; returns the cube."""
    flat, slices = pixel_blocks(data, bytes_per_band)
    out = np.empty(data.shape, dtype=np.float32)
    out_flat = out.reshape(flat.shape)
    n = flat.shape[1]
    yield Progress(0, n, message)
    for sl in slices:
        out_flat[:, sl] = fn(np.asarray(flat[:, sl], dtype=np.float32))
        yield Progress(sl.stop, n, message)
    return out


def check_window(window: int, order: int, n_bands: int) -> int:
    """The Savitzky-Golay window as an odd integer that fits the spectrum, or a ``ValueError``."""
    window = int(window)
    if window % 2 == 0:
        window += 1
    if window > n_bands:
        window = n_bands if n_bands % 2 else n_bands - 1
    if window <= order:
        raise ValueError(
            f"Savitzky-Golay window {window} must be larger than the polynomial order {order} "
            f"(the data has {n_bands} bands)"
        )
    return window


def savgol_steps(data: np.ndarray, window: int = 15, order: int = 2):
    """Savitzky-Golay smoothing of every spectrum (``scipy.signal.savgol_filter`` along bands)."""
    from scipy.signal import savgol_filter

    order = int(order)
    window = check_window(window, order, data.shape[0])
    return (
        yield from _blockwise(
            data,
            lambda block: savgol_filter(block, window, order, axis=0, mode="interp"),
            f"Savitzky-Golay (window {window}, order {order})",
        )
    )


def whittaker_factor(n_bands: int, lam: float) -> np.ndarray:
    """Banded (upper) Cholesky factor of ``I + lam * D'D``, ``D`` the second-difference matrix.

    The same factor serves every spectrum of a cube (uniform weights), so smoothing ``n``
    spectra is one factorisation and one banded solve with ``n`` right-hand sides.
    """
    from scipy.linalg import cholesky_banded

    if n_bands < 3:
        raise ValueError(f"the Whittaker smoother needs at least 3 bands, got {n_bands}")
    lam = float(lam)
    if not (np.isfinite(lam) and lam >= 0):
        raise ValueError(f"Whittaker lam must be a finite number >= 0, got {lam!r}")
    # D'D from the rows (1, -2, 1) of D: its diagonal, first and second off-diagonals.
    main = np.zeros(n_bands)
    main[:-2] += 1.0
    main[1:-1] += 4.0
    main[2:] += 1.0
    first = np.zeros(n_bands - 1)
    first[:-1] -= 2.0
    first[1:] -= 2.0
    banded = np.zeros((3, n_bands))
    banded[2] = 1.0 + lam * main
    banded[1, 1:] = lam * first
    banded[0, 2:] = lam
    return cholesky_banded(banded)


def whittaker_hat_diagonal(n_bands: int, lam: float, factor: np.ndarray | None = None) -> np.ndarray:
    """Diagonal of the smoother matrix ``(I + lam D'D)^-1``: how much each band keeps of itself."""
    from scipy.linalg import cho_solve_banded

    factor = whittaker_factor(n_bands, lam) if factor is None else factor
    diagonal = np.empty(n_bands)
    for sl in chunks(n_bands, 512):
        unit = np.zeros((n_bands, sl.stop - sl.start))
        unit[np.arange(sl.start, sl.stop), np.arange(sl.stop - sl.start)] = 1.0
        diagonal[sl] = cho_solve_banded((factor, False), unit)[np.arange(sl.start, sl.stop),
                                                                 np.arange(sl.stop - sl.start)]
    return diagonal


def whittaker_steps(data: np.ndarray, lam: float = 1000.0):
    """Whittaker smoothing of every spectrum: ``argmin_z |y - z|^2 + lam |D z|^2`` (Eilers 2003).

    ``D`` takes second differences along the bands (band index as the axis), so ``lam`` is in
    band units: larger is smoother. All spectra share one banded Cholesky factorisation.
    """
    from scipy.linalg import cho_solve_banded

    factor = whittaker_factor(data.shape[0], lam)
    return (
        yield from _blockwise(
            data,
            lambda block: cho_solve_banded((factor, False), block.astype(np.float64)).astype(np.float32),
            f"Whittaker smoothing (lambda {float(lam):.3g})",
            bytes_per_band=32.0,
        )
    )


def wavelet_levels(n_bands: int, wavelet: str, level: int | None) -> int:
    """The decomposition depth: ``level`` when given (capped at the maximum), else max - 2."""
    import pywt

    max_level = pywt.dwt_max_level(n_bands, pywt.Wavelet(wavelet).dec_len)
    if max_level < 1:
        raise ValueError(f"{n_bands} bands are too few for a wavelet decomposition with {wavelet!r}")
    if level is None or int(level) <= 0:
        return max(1, max_level - 2)
    return min(int(level), max_level)


def _wavelet_block(block, wavelet, level, mode, threshold, scale=1.0):
    import pywt

    coeffs = pywt.wavedec(block, wavelet, level=level, axis=0, mode="symmetric")
    # Noise per spectrum from the finest details (median absolute deviation / 0.6745).
    sigma = np.median(np.abs(coeffs[-1]), axis=0) / 0.6745
    n = block.shape[0]
    out = [coeffs[0]]
    for detail in coeffs[1:]:
        if threshold == "visushrink":
            thr = sigma * np.sqrt(2.0 * np.log(n))
        else:
            signal_var = np.maximum(np.mean(detail**2, axis=0) - sigma**2, 0.0)
            with np.errstate(divide="ignore"):
                thr = np.where(signal_var > 0, sigma**2 / np.sqrt(signal_var), np.abs(detail).max(axis=0))
        out.append(_shrink(detail, scale * thr, mode))
    return pywt.waverec(out, wavelet, axis=0, mode="symmetric")[:n].astype(np.float32)


def _shrink(detail: np.ndarray, thr: np.ndarray, mode: str) -> np.ndarray:
    """Soft or hard thresholding with one threshold per column (spectrum)."""
    thr = thr[None, :]
    if mode == "hard":
        return np.where(np.abs(detail) > thr, detail, 0.0)
    return np.sign(detail) * np.maximum(np.abs(detail) - thr, 0.0)


WAVELET_THRESHOLDS = ("bayesshrink", "visushrink")


def wavelet_steps(data: np.ndarray, wavelet: str = "sym8", level: int | None = None,
                  mode: str = "soft", threshold: str = "bayesshrink", threshold_scale: float = 1.0):
    """Wavelet shrinkage of every spectrum (PyWavelets), vectorised over pixels.

    Noise is estimated per spectrum from the finest detail coefficients; ``threshold`` is
    BayesShrink (per level and spectrum) or VisuShrink (the universal threshold), multiplied by
    ``threshold_scale``.
    """
    import pywt

    if wavelet not in pywt.wavelist(kind="discrete"):
        raise ValueError(f"unknown wavelet {wavelet!r}; use a discrete PyWavelets name such as 'sym8' or 'db4'")
    mode = str(mode).lower()
    if mode not in ("soft", "hard"):
        raise ValueError(f"wavelet mode must be 'soft' or 'hard', got {mode!r}")
    threshold = str(threshold).lower()
    if threshold not in WAVELET_THRESHOLDS:
        raise ValueError(f"wavelet threshold must be one of {WAVELET_THRESHOLDS}, got {threshold!r}")
    levels = wavelet_levels(data.shape[0], wavelet, level)
    scale = float(threshold_scale)
    if not scale >= 0:
        raise ValueError(f"wavelet threshold_scale must be >= 0, got {threshold_scale!r}")
    return (
        yield from _blockwise(
            data,
            lambda block: _wavelet_block(block.astype(np.float64), wavelet, levels, mode, threshold, scale),
            f"wavelet {wavelet} ({levels} levels, {mode} {threshold} x {scale:.3g})",
            bytes_per_band=64.0,
        )
    )


def gavish_donoho_rank(singular_values: np.ndarray, shape: tuple[int, int]) -> int:
    """Number of singular values above Gavish & Donoho's optimal hard threshold (unknown noise)."""
    beta = min(shape) / max(shape)
    omega = np.polyval(_GD_COEFFS, beta)
    threshold = omega * np.median(singular_values)
    return int(max(1, np.count_nonzero(singular_values > threshold)))


def spectral_gram_steps(flat: np.ndarray, slices, message: str):
    """Mean spectrum and centred Gram matrix of the ``(B, N)`` pixels, accumulated blockwise."""
    n_bands, n = flat.shape
    total = np.zeros(n_bands)
    gram = np.zeros((n_bands, n_bands))
    for i, sl in enumerate(slices):
        block = np.asarray(flat[:, sl], dtype=np.float64)
        total += block.sum(axis=1)
        gram += block @ block.T
        yield Progress(i + 1, 2 * len(slices), message)
    mean = total / n
    gram -= n * np.outer(mean, mean)
    return mean, gram


def principal_axes(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values (descending) and loadings ``(B, B)`` from a centred Gram matrix."""
    eigvals, eigvecs = np.linalg.eigh(gram)
    order = np.argsort(eigvals)[::-1]
    return np.sqrt(np.maximum(eigvals[order], 0.0)), eigvecs[:, order]


RANK_RULES = ("gavish-donoho", "bcv")


def pca_steps(data: np.ndarray, n_components: int | None = None, rank_rule: str = "gavish-donoho", target=None):
    """Low-rank (PCA) denoising: keep the first ``n_components`` principal components.

    With ``n_components`` None (or 0) the rank is chosen on the data, after evening out its noise
    with the cube's own noise model (one scale per band and per pixel,
    :func:`~napari_deeper.denoise.calibrate.evened_rank_steps`): ``rank_rule`` "gavish-donoho",
    the singular values above Gavish & Donoho's optimal hard threshold for an unknown noise
    level, ``omega(beta) * median(singular values)``, or "bcv", bi-cross-validation over pixels
    and bands. The reconstruction itself is plain PCA of the data as they are.

    A lazy ``data`` is read block by block in every pass (:func:`pixel_blocks`); ``target``
    (optional) receives the result instead of a new cube (see :func:`result_target`).
    """
    rule = str(rank_rule).lower()
    if rule not in RANK_RULES:
        raise ValueError(f"PCA rank_rule must be one of {', '.join(RANK_RULES)}; got {rank_rule!r}")
    n_bands = data.shape[0]
    flat, slices = pixel_blocks(data)
    n_pixels = flat.shape[1]
    if n_pixels < 2:
        raise ValueError("PCA denoising needs at least 2 pixels")
    automatic = n_components is None or int(n_components) <= 0
    parts = 3 if automatic else 2  # (rank,) Gram matrix, reconstruction
    if automatic:
        from .calibrate import evened_rank_steps

        rank = yield from share(evened_rank_steps(data, rule), 0, 1, parts, "PCA rank")
    else:
        rank = int(n_components)
    mean, gram = yield from share(spectral_gram_steps(flat, slices, "PCA denoising"), parts - 2, 1, parts)
    _, loadings = principal_axes(gram)
    rank = min(rank, n_bands, n_pixels)
    basis = loadings[:, :rank].astype(np.float32)
    mean32 = mean.astype(np.float32)[:, None]
    out, out_flat = result_target(target, data.shape)
    message = f"PCA denoising ({rank} components)"
    for i, sl in enumerate(slices):
        block = np.asarray(flat[:, sl], dtype=np.float32) - mean32
        out_flat[:, sl] = basis @ (basis.T @ block) + mean32
        yield Progress((parts - 1) * len(slices) + i + 1, parts * len(slices), message)
    return out
