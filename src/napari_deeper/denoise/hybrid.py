"""The default denoiser: a spectral subspace from all pixels, denoised spatially, component by component.

A per-spectrum method sees one spectrum at a time; a Raman image holds thousands of spectra of
the same few chemical species. This method uses both kinds of redundancy. With ``auto=True``
(the default) every choice is made on the cube itself:

1. **Noise model** (:func:`~napari_deeper.denoise.noise.estimate_noise`): the Poisson-Gaussian
   variance ``a * E[y] + b`` of every value.
2. **Even noise** (``whiten="biwhite"``): one scale per band and one per pixel (Sinkhorn
   scaling of the model's variance matrix, Landa, Zhang & Kluger 2022,
   :func:`~napari_deeper.denoise.calibrate.noise_scales_steps`) make the noise variance
   average 1 along every band and every pixel. A two-sided diagonal scaling keeps a low-rank cube
   low-rank (a square-root transform would not), and the singular values of the noise then
   follow the Marchenko-Pastur law. ``"vst"`` uses the generalised Anscombe transform instead,
   ``"none"`` the data as they are.
3. **Spectral subspace**: principal components of the scaled cube (Gram matrix accumulated
   block by block, so memory stays bounded); kept are the components above the noise's largest
   singular value, ``sigma (sqrt(pixels) + sqrt(bands))``, ``sigma`` from the median singular
   value (``rank_rule="bcv"``: bi-cross-validation instead; ``n_components``: a fixed number).
4. **Spatial step**: each kept component's score image is denoised by total variation with the
   weight whose Stein unbiased risk estimate (Monte-Carlo SURE, with the noise each pixel's score
   carries under the model) is lowest, possibly none.
5. **Spectral step** (``smooth_spectra``): the mean spectrum and each component spectrum are
   smoothed by a Whittaker-type smoother in the DCT basis, its strength chosen by SURE with the
   noise that spectrum carries (``1 / pixels``, ``1 / singular value^2``), possibly none.
   Steps 4 and 5 weigh each error by what it costs in the data's own units, so a bright band
   is not sacrificed to the dark background.
6. Back-projection and unscaling, block by block.

With ``auto=False`` it is the earlier fixed recipe: up to ``max_components`` components, kept
when a score image's variance exceeds its wavelet noise level by ``significance`` standard
errors, and total variation (or non-local means, or cycle-spun wavelets) at ``strength`` times
that noise level; no noise model, no spectral step. It keeps noise components when the noise is
shot-noise dominated and the cube has a large dynamic range (measured: 0.09x to 0.77x the tuned
PCA baseline on the real-structure benchmark cases; see docs/denoise.md).

It uses no network: feeding it the networks' outputs, or averaging it with them, measured worse
(their errors are correlated across pixels, which the spatial step cannot remove).
"""

from __future__ import annotations

from contextlib import closing

import numpy as np

from ..compute import Progress, Steps

DESCRIPTION = (
    "spectral subspace of all pixels after evening out the cube's own noise model, each component's score "
    "image denoised spatially and its spectrum smoothed, every strength chosen on the cube (SURE); the default"
)


def params():
    """The parameter schema (see :class:`napari_deeper.methods.Param`)."""
    from ..methods import Param

    return (
        Param("max_components", int, 40, (1, 500), help="largest number of spectral components considered"),
        Param("significance", float, 10.0, (0.0, 1000.0),
              help="without auto: keep a component when its signal variance exceeds this many standard errors "
                   "of noise"),
        Param("spatial", str, "tv", choices=("tv", "nlmeans", "wavelet", "none"),
              help="spatial denoiser for the component images"),
        Param("strength", float, 0.9, (0.0, 10.0),
              help="without auto: spatial denoising strength, relative to the noise level"),
        Param("auto", bool, True, help="choose the components, each spatial strength and the spectral smoothing on "
                                        "the cube itself (noise model, noise edge, SURE); off: the fixed recipe"),
        Param("n_components", int, None, (1, 500), optional=True,
              help="with auto: components kept (auto: bi-cross-validation)"),
        Param("whiten", str, "biwhite", choices=WHITENINGS,
              help="with auto: make the noise even before PCA (row/column scaling, Anscombe transform, or none)"),
        Param("smooth_spectra", bool, True, help="with auto: smooth the mean and component spectra (SURE)"),
        Param("rank_rule", str, "edge", choices=RANK_RULES,
              help="with auto: components above the noise edge (Marchenko-Pastur), or bi-cross-validation"),
    )


def score_noise_level(image: np.ndarray) -> float:
    """Noise standard deviation of a 2-D image from its finest diagonal wavelet coefficients."""
    import pywt

    _, (_, _, diagonal) = pywt.dwt2(image, "db1")
    return float(np.median(np.abs(diagonal)) / 0.6745)


def tv_chambolle(image: np.ndarray, weight: float, eps: float = 2.0e-4, max_iter: int = 200) -> np.ndarray:
    """Total-variation denoising of a 2-D float64 image by Chambolle's projection algorithm.

    The iterations and the stopping rule of scikit-image's ``denoise_tv_chambolle``, with the same
    results, but with its buffers reused: 1.1-2x faster on images of 2 x 2 to 256 x 256 pixels, and
    without importing ``skimage.restoration``, which imports ``scipy.stats`` (about 1 s in a fresh
    process, such as each batch worker).
    """
    image = np.asarray(image, dtype=np.float64)
    p_rows, p_cols = np.zeros_like(image), np.zeros_like(image)  # the dual field
    g_rows, g_cols = np.zeros_like(image), np.zeros_like(image)  # forward differences (0 at the far edge)
    d, norm = np.zeros_like(image), np.empty_like(image)
    out, tau = image, 0.25
    for i in range(max_iter):
        if i > 0:  # out = image minus the divergence of p
            np.add(p_rows, p_cols, out=d)
            np.negative(d, out=d)
            d[1:, :] += p_rows[:-1, :]
            d[:, 1:] += p_cols[:, :-1]
            out = image + d
        energy = float(np.square(d, out=norm).sum())
        np.subtract(out[1:, :], out[:-1, :], out=g_rows[:-1, :])
        np.subtract(out[:, 1:], out[:, :-1], out=g_cols[:, :-1])
        np.square(g_rows, out=norm)
        norm += np.square(g_cols)
        np.sqrt(norm, out=norm)
        energy = (energy + weight * float(norm.sum())) / image.size
        norm *= tau / weight
        norm += 1.0
        for p, g in ((p_rows, g_rows), (p_cols, g_cols)):
            p -= tau * g
            p /= norm
        if i == 0:
            initial = previous = energy
        elif abs(previous - energy) < eps * initial:
            break
        else:
            previous = energy
    return out


def denoise_image(image: np.ndarray, sigma: float, spatial: str, strength: float) -> np.ndarray:
    """Spatially denoise one score image whose noise standard deviation is ``sigma``."""
    if spatial == "none" or strength == 0 or sigma <= 0:
        return image
    if spatial == "tv":
        return tv_chambolle(image, strength * sigma)
    if spatial == "nlmeans":
        from skimage.restoration import denoise_nl_means

        return denoise_nl_means(image, h=strength * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                fast_mode=True)
    from skimage.restoration import cycle_spin, denoise_wavelet

    def shrink(img):
        return denoise_wavelet(img, sigma=strength * sigma / 0.6, wavelet="db2", mode="soft",
                               method="BayesShrink", rescale_sigma=False)

    return cycle_spin(image, shrink, max_shifts=2, channel_axis=None)


def hybrid_steps(data: np.ndarray, wavenumbers=None, device=None, max_components: int = 40,
                 significance: float = 10.0, spatial: str = "tv", strength: float = 0.9, auto: bool = True,
                 n_components: int | None = None, whiten: str = "biwhite", smooth_spectra: bool = True,
                 rank_rule: str = "edge", target=None, spill=None):
    """Steps generator of the hybrid (subspace + spatial) denoiser on a ``(B, Y, X)`` cube.

    ``data`` may be lazy (a dask array: every pass reads it block by block, see
    :func:`~napari_deeper.denoise.classical.pixel_blocks`). ``target`` (optional) receives the
    result instead of a new cube: ``target[:, sl] = block`` for consecutive slices of the
    ``(B, Y * X)`` pixels; it is what the steps return then (the streamed run's zarr writer).
    ``spill`` (optional, with ``auto``): ``spill(shape, block)`` makes the float32 array that
    keeps the component images' noise variances from the score pass to the spatial step,
    written ``block`` pixels at a time (the streamed run's store on disk; default: memory).
    """
    from .classical import pixel_blocks, principal_axes, result_target, spectral_gram_steps

    n_bands, ny, nx = data.shape
    if min(ny, nx) < 4:
        raise ValueError(
            f"the hybrid method needs an image of at least 4 x 4 pixels (spatial context); got {ny} x {nx}. "
            "Use a per-spectrum method (whittaker, savgol, wavelet, resunet, aunet) for single spectra or lines"
        )
    if auto:
        return (yield from auto_hybrid_steps(data, max_components, n_components, spatial, whiten, smooth_spectra,
                                             rank_rule, target=target, spill=spill))
    flat, slices = pixel_blocks(data)
    n = flat.shape[1]
    rank = int(min(max_components, n_bands, n - 1))
    total = 2 * len(slices) + rank + len(slices)
    message = "hybrid: spectral subspace"
    mean, gram = yield from spectral_gram_steps(flat, slices, message)
    _, loadings = principal_axes(gram)
    basis = loadings[:, :rank].astype(np.float32)
    mean32 = mean.astype(np.float32)[:, None]
    scores = np.empty((rank, n), dtype=np.float32)
    done = len(slices)
    for sl in slices:
        scores[:, sl] = basis.T @ (np.asarray(flat[:, sl], dtype=np.float32) - mean32)
        done += 1
        yield Progress(done, total, message)
    threshold = float(significance) * np.sqrt(2.0 / n)
    kept = []
    message = "hybrid: denoising component images"
    for i in range(rank):
        image = scores[i].reshape(ny, nx).astype(np.float64)
        sigma = score_noise_level(image)
        excess = image.var() / sigma**2 - 1.0 if sigma > 0 else np.inf
        if excess > threshold:
            scores[i] = denoise_image(image, sigma, spatial, strength).ravel()
            kept.append(i)
        done += 1
        yield Progress(done, total, message)
    basis_kept = basis[:, kept]
    scores_kept = scores[kept]
    out, out_flat = result_target(target, data.shape)
    message = f"hybrid: reconstructing from {len(kept)} components"
    for sl in slices:
        out_flat[:, sl] = basis_kept @ scores_kept[:, sl] + mean32
        done += 1
        yield Progress(done, total, message)
    return out


# --- the self-calibrated pipeline (auto) --------------------------------------------------------

WHITENINGS = ("biwhite", "vst", "none")
RANK_RULES = ("edge", "bcv")
#: Values the noise model is fitted to (evenly spaced strips of rows on larger cubes).
NOISE_VALUES = 500_000
#: TV weights tried per component, in units of that component's mean noise standard deviation.
TV_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
#: Components' spatial steps run in threads at once from this many pixels (below it, the TV's
#: numpy calls are too short to leave the GIL free: 2 threads took 1.1-1.9x longer at 32 x 32 to
#: 128 x 128, and 0.8x at 192 x 192, 0.7x at 256 x 256), up to images whose working set
#: (:data:`SPATIAL_BYTES_PER_PIXEL`: float64 image, variances, SURE probe and weights, the TV's
#: buffers) is ``PARALLEL_SPATIAL_BYTES``.
PARALLEL_MIN_PIXELS = 32_768
SPATIAL_BYTES_PER_PIXEL = 8 * 16
PARALLEL_SPATIAL_BYTES = 64 << 20
_DCT_LAMBDAS = np.concatenate([[0.0], np.geomspace(1e-4, 1e10, 57)])


def dct_smooth(vector: np.ndarray, noise_variance: float, weights: np.ndarray | None = None) -> np.ndarray:
    """Whittaker-type smoothing of one spectrum, its strength chosen by SURE (no smoothing allowed).

    The penalised least-squares smoother with a second-difference penalty and reflecting ends is
    diagonal in the DCT-II basis (Garcia, CSDA 54, 1167, 2010), ``z = IDCT(g * DCT(y))`` with
    ``g = 1 / (1 + lam (2 - 2 cos(pi k / n))^2)``, so its trace is ``sum(g)`` and SURE,
    ``|z - y|^2 - n var + 2 var sum(g)``, costs one DCT per ``lam``. With ``weights`` (one per
    band) the risk is weighted, ``sum(w (z - y)^2) + var (2 sum(g) / n - 1) sum(w)``, taking each
    band's share of the trace as equal (the smoother's diagonal is nearly constant).
    """
    from scipy.fft import dct, idct

    n = vector.size
    coefficients = dct(vector, norm="ortho")
    penalty = (2.0 - 2.0 * np.cos(np.pi * np.arange(n) / n)) ** 2
    gains = 1.0 / (1.0 + _DCT_LAMBDAS[:, None] * penalty[None])
    trace = gains.sum(axis=1)
    if weights is None:
        risk = np.sum(((gains - 1.0) * coefficients[None]) ** 2, axis=1) + 2.0 * noise_variance * trace
    else:
        smoothed = idct(gains * coefficients[None], norm="ortho", axis=1)
        w = np.asarray(weights, dtype=np.float64) / np.mean(weights)
        risk = np.sum(w * (smoothed - vector[None]) ** 2, axis=1) + noise_variance * n * (2.0 * trace / n - 1.0)
    return idct(gains[int(np.argmin(risk))] * coefficients, norm="ortho")


def sure_spatial(image: np.ndarray, variance: np.ndarray, spatial: str, weights: np.ndarray | None = None,
                 seed: int = 0):
    """The spatial denoising of one score image with the lowest Monte-Carlo SURE: ``(image, weight)``.

    ``variance`` is the noise variance of each pixel, ``weights`` (optional) what an error at each
    pixel costs; the TV weights tried are :data:`TV_WEIGHTS` times the mean noise standard
    deviation (0: left as it is).
    """
    sigma = float(np.sqrt(np.mean(variance)))
    if not sigma > 0:
        return image, 0.0
    w = np.ones(image.shape) if weights is None else np.asarray(weights, dtype=np.float64) / np.mean(weights)
    rng = np.random.default_rng(seed)
    probe = np.sqrt(variance) * rng.standard_normal(image.shape)
    delta = 0.01
    best = (float(np.sum(w * variance)), image, 0.0)  # the risk of leaving the image as it is
    for weight in TV_WEIGHTS[1:]:
        out = denoise_image(image, sigma, spatial, weight)
        moved = denoise_image(image + delta * probe, sigma, spatial, weight)
        divergence = float(np.sum(w * probe * (moved - out))) / delta
        risk = float(np.sum(w * (out - image) ** 2) - np.sum(w * variance) + 2.0 * divergence)
        if risk < best[0]:
            best = (risk, out, weight)
    return best[1], best[2]


def spatial_steps(scores: np.ndarray, variances, shape: tuple[int, int], spatial: str,
                  weights: np.ndarray | None = None) -> Steps[list[float]]:
    """:func:`sure_spatial` of each component image (rows of ``scores``, replaced in place);
    returns the spatial weights chosen. ``variances``: each score's noise variance, per pixel.

    Components are independent: on images of :data:`PARALLEL_MIN_PIXELS` pixels or more whose
    working set is at most :data:`PARALLEL_SPATIAL_BYTES`, up to
    :func:`~napari_deeper.compute.thread_budget` of them run at once in threads (numpy releases
    the GIL); smaller and larger images go one at a time (larger ones so that the memory a large
    cube's run holds does not grow). Progress after every component.
    """
    from ..compute import ordered_map, thread_budget

    rank = len(scores)
    pixels = shape[0] * shape[1]
    parallel = PARALLEL_MIN_PIXELS <= pixels and SPATIAL_BYTES_PER_PIXEL * pixels <= PARALLEL_SPATIAL_BYTES
    workers = min(rank, thread_budget()) if parallel else 1

    def one(i: int):
        return sure_spatial(scores[i].reshape(shape).astype(np.float64),
                            np.asarray(variances[i], dtype=np.float64).reshape(shape), spatial, weights)

    chosen = []
    yield Progress(0, rank, "spatial strengths")
    with closing(ordered_map(one, range(rank), workers)) as results:
        for i, (image, weight) in enumerate(results):
            scores[i] = image.ravel()
            chosen.append(weight)
            yield Progress(i + 1, rank, f"spatial strength of component {i + 1} of {rank}")
    return chosen


def marchenko_pastur_median(beta: float) -> float:
    """Median of the Marchenko-Pastur law of aspect ratio ``beta`` (0 < beta <= 1), unit variance.

    With ``x = 1 + beta - 2 sqrt(beta) cos(theta)`` the law's distribution function has a closed
    form in ``theta``, which a bisection sets to one half (to 1e-15 in ``theta``).
    """
    import math

    root = math.sqrt(beta)

    def cdf(theta: float) -> float:
        turn = math.atan2((1 + root) * math.sin(theta / 2), (1 - root) * math.cos(theta / 2))
        return (2 / math.pi) * (math.sin(theta) / (2 * root) + (1 + beta) * theta / (4 * beta)
                                - (1 - beta) / (2 * beta) * turn)

    low, high = 0.0, math.pi
    while high - low > 1e-15:
        mid = 0.5 * (low + high)
        low, high = (mid, high) if cdf(mid) < 0.5 else (low, mid)
    return 1 + beta - 2 * root * math.cos(0.5 * (low + high))


def edge_rank(singular: np.ndarray, shape: tuple[int, int]) -> int:
    """Components above the noise's largest singular value: ``sigma (sqrt(n) + sqrt(m))``.

    ``sigma`` comes from the median singular value through the Marchenko-Pastur median (as
    Gavish & Donoho do for an unknown noise level), so the rule holds even where the noise
    model is somewhat off. Any component above that edge carries signal the noise cannot
    explain; the spatial and spectral steps then remove most of its noise, which is why this
    keeps more than a hard-thresholding rule would.
    """
    m, n = sorted(shape)
    values = np.sort(np.asarray(singular, dtype=np.float64))[::-1][: m - 1]
    sigma = np.sqrt(np.median(values**2) / (n * marchenko_pastur_median(m / n)))
    return int(max(1, np.count_nonzero(values > sigma * (np.sqrt(n) + np.sqrt(m)))))


def auto_hybrid_steps(data: np.ndarray, max_components: int = 40, n_components: int | None = None,
                      spatial: str = "tv", whiten: str = "biwhite", smooth_spectra: bool = True,
                      rank_rule: str = "edge", noise=None, target=None, spill=None):
    """The hybrid denoiser with every choice made on the cube itself (see the module notes).

    ``data``, ``target`` and ``spill`` as for :func:`hybrid_steps`.
    """
    from ..compute import share
    from .calibrate import bcv_errors, model_variance, noise_scales_steps
    from .classical import pixel_blocks, principal_axes, result_target
    from .noise import estimate_noise
    from .vst import Anscombe

    n_bands, ny, nx = data.shape
    flat, slices = pixel_blocks(data, bytes_per_band=48.0)  # a block, its scaled copy and variances (float64)
    n = flat.shape[1]
    total = 4 * len(slices) + 2
    done = 0
    yield Progress(done, total, "hybrid: estimating the noise")
    noise = estimate_noise(data, max_values=NOISE_VALUES, spikes=False) if noise is None else noise

    band_scale = np.ones(n_bands)
    pixel_scale = np.ones(n)
    transform = Anscombe.from_noise(noise) if whiten == "vst" else None
    if whiten == "biwhite":
        band_scale, pixel_scale = yield from share(
            noise_scales_steps(flat, slices, noise), done, len(slices), total, "hybrid: evening out the noise")
        done += len(slices)

    def to_z(block, sl):
        """The scaled (or transformed) values of the pixels ``sl``: one float64 array."""
        if transform is not None:
            return transform.forward(block).astype(np.float64)
        z = np.multiply(block, band_scale[:, None], dtype=np.float64)
        z *= pixel_scale[None, sl]
        return z

    def projected_variance(weights, variance, sl):
        """``weights @ var(z)`` per pixel, ``weights`` (k, bands), ``variance`` the model's of the
        values (None with a transform): the noise variance of weighted sums of a pixel's scaled
        values under the model (float32 products: no float64 copy)."""
        if transform is not None:
            return np.repeat(weights.sum(axis=1, keepdims=True), sl.stop - sl.start, axis=1)
        scaled = (weights * band_scale[None] ** 2).astype(np.float32)
        return (scaled @ variance) * pixel_scale[None, sl] ** 2

    def variance_of(block):
        return None if transform is not None else model_variance(block, noise)

    # Mean and centred Gram matrix of z, block by block.
    mean = np.zeros(n_bands)
    gram = np.zeros((n_bands, n_bands))
    noise_total = 0.0
    ones = np.ones((1, n_bands))
    for sl in slices:
        block = flat[:, sl]
        z, variance = to_z(block, sl), variance_of(block)
        mean += z.sum(axis=1)
        gram += z @ z.T
        noise_total += float(projected_variance(ones, variance, sl).sum())
        done += 1
        yield Progress(done, total, "hybrid: spectral subspace")
    kept = (z, variance) if len(slices) == 1 else None  # one block: its z and variances serve the second pass
    del z, variance
    mean /= n
    gram -= n * np.outer(mean, mean)
    mean_noise = noise_total / (n * n_bands)
    singular, loadings = principal_axes(gram)
    limit = int(min(max_components, n_bands, n - 1))
    if n_components is None and rank_rule == "edge":
        rank = min(edge_rank(singular, (n_bands, n)), limit)
    elif n_components is None:
        index = np.unique(np.linspace(0, n - 1, min(n, 8192)).round().astype(int))
        sample = to_z(np.asarray(flat[:, index]), index).T
        rank = int(max(1, np.argmin(bcv_errors(sample - sample.mean(axis=0), limit))))
    else:
        rank = int(min(n_components, limit))
    basis = loadings[:, :rank]
    scores = np.empty((rank, n), dtype=np.float32)
    if spill is None:
        score_variance = np.empty((rank, n), dtype=np.float32)
    else:
        score_variance = spill((rank, n), slices[0].stop - slices[0].start)
    for sl in slices:
        block = flat[:, sl]
        z, variance = kept if kept is not None else (to_z(block, sl), variance_of(block))
        kept = None
        z -= mean[:, None]
        scores[:, sl] = basis.T @ z
        score_variance[:, sl] = projected_variance((basis**2).T, variance, sl)
        del z, variance
        done += 1
        yield Progress(done, total, f"hybrid: {rank} components")
    # What an error costs in data units: 1 / scale^2 per band and per pixel (separable).
    band_cost, pixel_cost = band_scale**-2.0, pixel_scale**-2.0
    weights = yield from share(spatial_steps(scores, score_variance, (ny, nx), spatial, pixel_cost.reshape(ny, nx)),
                               done, 1, total, "hybrid")
    done += 1
    yield Progress(done, total, "hybrid: spatial strengths " + ", ".join(f"{w:g}" for w in weights))
    if smooth_spectra:
        mean = dct_smooth(mean, mean_noise / n, band_cost)
        for i in range(rank):
            basis[:, i] = dct_smooth(basis[:, i], mean_noise / max(singular[i] ** 2, 1e-300), band_cost)
    done += 1
    del score_variance  # (rank x pixels in memory: room for the reconstruction's blocks)
    out, out_flat = result_target(target, data.shape)
    for sl in slices:
        z = basis @ scores[:, sl]
        z += mean[:, None]  # (in place: one float64 block, the same values)
        if transform is not None:
            out_flat[:, sl] = transform.inverse(z)
        else:
            z /= band_scale[:, None]
            z /= pixel_scale[None, sl]
            out_flat[:, sl] = z
        done += 1
        yield Progress(done, total, "hybrid: reconstructing")
    return out
