"""The default denoiser: a spectral subspace from all pixels, denoised spatially, component by component.

A per-spectrum method sees one spectrum at a time; a Raman image holds thousands of spectra of
the same few chemical species. This method uses both kinds of redundancy:

1. **Spectral subspace.** The centred ``(pixels, bands)`` matrix is reduced to its first
   ``max_components`` principal components (Gram matrix accumulated blockwise, so memory stays
   bounded on large cubes).
2. **Which components carry signal.** Each component's score image has a noise level, estimated
   from its finest wavelet coefficients (median absolute deviation). A component is kept when its
   variance exceeds that noise level by more than ``significance`` standard errors of a
   pure-noise variance estimate (``sqrt(2 / pixels)``); the others are noise and are dropped.
   Unlike PCA's hard rank cut, a weak component whose signal is spatially coherent is kept.
3. **Spatial denoising of each kept score image** (total variation, Chambolle, with a weight
   proportional to that image's noise level; or non-local means, or cycle-spun wavelets).
4. Back-projection onto the spectral axis, block by block.

It uses no network: feeding it the networks' outputs, or averaging it with them, measured worse
(their errors are correlated across pixels, which the spatial step cannot remove).
"""

from __future__ import annotations

import numpy as np

from ..compute import Progress

DESCRIPTION = (
    "spectral subspace of all pixels, each component's score image denoised spatially "
    "(PCA + total variation); the default"
)


def params():
    """The parameter schema (see :class:`napari_deeper.methods.Param`)."""
    from ..methods import Param

    return (
        Param("max_components", int, 40, (1, 500), help="largest number of spectral components considered"),
        Param("significance", float, 10.0, (0.0, 1000.0),
              help="keep a component when its signal variance exceeds this many standard errors of noise"),
        Param("spatial", str, "tv", choices=("tv", "nlmeans", "wavelet", "none"),
              help="spatial denoiser for the component images"),
        Param("strength", float, 0.9, (0.0, 10.0), help="spatial denoising strength, relative to the noise level"),
    )


def score_noise_level(image: np.ndarray) -> float:
    """Noise standard deviation of a 2-D image from its finest diagonal wavelet coefficients."""
    import pywt

    _, (_, _, diagonal) = pywt.dwt2(image, "db1")
    return float(np.median(np.abs(diagonal)) / 0.6745)


def denoise_image(image: np.ndarray, sigma: float, spatial: str, strength: float) -> np.ndarray:
    """Spatially denoise one score image whose noise standard deviation is ``sigma``."""
    if spatial == "none" or strength == 0 or sigma <= 0:
        return image
    if spatial == "tv":
        from skimage.restoration import denoise_tv_chambolle

        return denoise_tv_chambolle(image, weight=strength * sigma)
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
                 significance: float = 10.0, spatial: str = "tv", strength: float = 0.9):
    """Steps generator of the hybrid (subspace + spatial) denoiser on a ``(B, Y, X)`` cube."""
    from .classical import pixel_blocks, principal_axes, spectral_gram_steps

    n_bands, ny, nx = data.shape
    if min(ny, nx) < 4:
        raise ValueError(
            f"the hybrid method needs an image of at least 4 x 4 pixels (spatial context); got {ny} x {nx}. "
            "Use a per-spectrum method (resunet, aunet, savgol, wavelet) for single spectra or lines"
        )
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
    out = np.empty(data.shape, dtype=np.float32)
    out_flat = out.reshape(flat.shape)
    message = f"hybrid: reconstructing from {len(kept)} components"
    for sl in slices:
        out_flat[:, sl] = basis_kept @ scores_kept[:, sl] + mean32
        done += 1
        yield Progress(done, total, message)
    return out
