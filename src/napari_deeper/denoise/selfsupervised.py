"""Self-supervised deep denoising (method ``n2s``): a U-net trained on the user's own noisy cube.

Nobody has the clean answer of a biologist's cube, so the network learns from the noisy cube
itself, in its spectral subspace, where that is cheap:

1. **Noise model and whitening.** The cube's Poisson-Gaussian noise model
   (:func:`~napari_deeper.denoise.noise.estimate_noise`) gives every value's noise variance; a
   scale per pixel and per band (:class:`Whitening`, biwhitening) make it 1 on average over every
   pixel and every band. The transform is linear, so a low-rank cube stays low-rank. Cubes with
   no positive value, or ``noise="gaussian"``, are left as they are.
2. **Spectral subspace.** The whitened cube's eigenvalues give the noise level (the median of
   the Marchenko-Pastur law is matched) and the rank: every component whose eigenvalue stands
   above the law's upper edge ``sigma^2 (sqrt(M) + sqrt(m))^2`` by :data:`RANK_MARGIN`, which
   pure noise cannot produce. The components themselves are fitted on the cube weighted less
   (:data:`FIT_POWER`), closer to the error a user sees. Each component image is divided by its
   noise level (from the noise model).
3. **The network** (:class:`~napari_deeper.models.subspace_unet.SubspaceUNet`, shipped
   pretrained on simulated cells, see ``docs/models.md``) denoises the component images jointly.
   On the user's cube it is trained further with **J-invariant masking of pixels** (Noise2Self,
   Batson & Royer 2019): one pixel in every 4 x 4 is replaced by the mean of its 8 neighbours
   (in every component) and the loss is the squared error at those pixels against their noisy
   values. The output at a masked pixel does not see that pixel's noise, and the noise of
   different pixels is independent, so the loss is the error against the clean cube plus a
   constant (the noise variance, 1 in the units shown). Training stops when the time budget
   says so.
4. **Which weights, and how much of them.** Every :data:`VALIDATE_EVERY` steps Stein's unbiased
   risk estimate of the unmasked output (:func:`sure_blend`, with the noise model's own
   covariance) measures the error against the clean cube, per component, of the noisy image
   moved part of the way to the network's output, with the best part; the weights with the
   lowest estimate (the pretrained ones included) are kept. The estimate of plain PCA (part 0)
   is 1, so the network is used only as far as it is estimated to help.
5. **Back** through the basis and the inverse scales, block by block (memory stays bounded).

Cubes under :data:`MIN_PIXELS` x :data:`MIN_PIXELS` pixels are too small to learn from: they
fall back, with a warning, to the default closed-form method. A constant cube comes back
unchanged (nothing to denoise), with a warning.
"""

from __future__ import annotations

import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..compute import Progress
from .hybrid import marchenko_pastur_median

#: Name of the shipped pretrained weights (``models/weights/n2s.pt``) and of the method.
MODEL = "n2s"
#: Smallest image (pixels along y and along x) the network trains on.
MIN_PIXELS = 16
#: Masked pixels: one in every ``GRID`` x ``GRID`` block (the phase changes every step).
GRID = 4
#: A component is kept when its eigenvalue exceeds the noise's upper edge by this fraction.
RANK_MARGIN = 0.05
#: Default time budget, seconds: a 64 x 64 x 500 cube on 2 CPU cores.
DEFAULT_BUDGET = 60.0
#: Side of the square crops trained on (the whole image when smaller).
CROP = 48
#: Pixels per training batch (crops are drawn until this many).
BATCH_PIXELS = 4 * CROP * CROP
#: Fine-tuning learning rate (Adam).
LEARNING_RATE = 2e-4
#: Training steps between two risk estimates (:func:`sure_blend`).
VALIDATE_EVERY = 10
#: Tile side for inference on large images, and the margin of context around each tile.
TILE, TILE_MARGIN = 256, 24

DESCRIPTION = (
    "self-supervised U-net on the cube's spectral components, pretrained on simulated cells and trained on "
    "this cube (Noise2Self pixel masking) within a time budget"
)


def params():
    """The parameter schema (see :class:`napari_deeper.methods.Param`)."""
    from ..methods import Param

    return (
        Param("time_budget", float, DEFAULT_BUDGET, (1.0, 86400.0),
              help="seconds for the whole run; training stops early enough to finish within it"),
        Param("components", int, None, (1, 32), optional=True,
              help="spectral components denoised (auto: those above the noise's Marchenko-Pastur edge)"),
        Param("steps", int, None, (0, 1_000_000), optional=True,
              help="training steps on the cube (auto: as many as the time budget allows; 0: pretrained only); "
                   "set it to get the same result on every run"),
        Param("noise", str, "auto", choices=NOISE_CHOICES,
              help="auto: Poisson-Gaussian noise model estimated on the cube, each value weighted by it; "
                   "gaussian: the noise taken as the same everywhere"),
    )


# ------------------------------------------------------------------------------------------
# Whitening and spectral subspace


#: Pixels the band scales of the whitening are fitted on at most (evenly spaced over the image).
WHITEN_PIXELS = 16384
NOISE_CHOICES = ("auto", "gaussian")


class Whitening:
    """Scales of pixels and bands that make the noise's variance 1 on average (biwhitening).

    With the noise model ``var(y) = gain * E[y] + read_variance`` each value's variance is
    estimated from the value itself, ``V = max(gain * y + read_variance, lowest variance)``. The
    whitened cube is ``sqrt(u_p) * y * sqrt(v_b)`` with ``u`` (per pixel) and ``v`` (per band)
    chosen, by Sinkhorn's iteration, so that ``u_p V v_b`` averages 1 over the bands of every
    pixel and over the pixels of every band (Landa, Zhang & Kluger, SIAM J. Math. Data Sci. 4,
    2022): its eigenvalues then follow the Marchenko-Pastur law where there is only noise, and
    the transform is linear, so a low-rank cube stays low-rank (a variance-stabilising square
    root would bend it). Without a noise model every scale is 1.
    """

    def __init__(self, noise=None, band_scale: np.ndarray | None = None):
        self.noise = noise
        self.band_scale = band_scale

    def variance(self, block: np.ndarray) -> np.ndarray:
        """The noise variance of each value of a ``(B, n)`` block (data units), from the model."""
        block = np.asarray(block, dtype=np.float32)
        if self.noise is None:
            return np.ones_like(block)
        m = self.noise
        return np.maximum(np.float32(m.gain) * block + np.float32(m.read_variance), np.float32(m.min_variance))

    def pixel_scale(self, block: np.ndarray) -> np.ndarray:
        """``u`` of the pixels of a ``(B, n)`` block."""
        if self.noise is None:
            return np.ones(block.shape[1], dtype=np.float32)
        return (block.shape[0] / (self.band_scale @ self.variance(block))).astype(np.float32)

    def scales(self, u: np.ndarray, power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """``(per pixel, per band)`` factors ``u^(power/2)`` and ``v^(power/2)``."""
        half = np.float32(power / 2)
        return u**half, self.band_scale**half

    def forward(self, block: np.ndarray, power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """``(whitened block, u of its pixels)``; ``power`` < 1 weights by ``(u_p v_b)^(power/2)``."""
        block = np.asarray(block, dtype=np.float32)
        u = self.pixel_scale(block)
        if self.noise is None:
            return block, u
        pixel, band = self.scales(u, power)
        return block * pixel[None, :] * band[:, None], u

    def whitened_variance(self, block: np.ndarray, u: np.ndarray, power: float = 1.0) -> np.ndarray:
        """The noise variance of each value of a ``(B, n)`` block after :meth:`forward` with ``power``
        (``u_p V v_b``, about 1 on average, at power 1)."""
        if self.noise is None:
            return np.ones(block.shape, dtype=np.float32)
        pixel, band = self.scales(u, power)
        return self.variance(block) * (pixel**2)[None, :] * (band**2)[:, None]

    def inverse(self, block: np.ndarray, u: np.ndarray, power: float = 1.0) -> np.ndarray:
        """Back to data units from :meth:`forward` with ``power``."""
        if self.noise is None:
            return np.asarray(block, dtype=np.float32)
        pixel, band = self.scales(u, power)
        return (block / pixel[None, :] / band[:, None]).astype(np.float32)


def whitening(data: np.ndarray, noise: str = "auto", largest: float | None = None):
    """``(Whitening, NoiseModel or None, words)`` for ``data``: see :class:`Whitening`.

    ``noise`` "auto" estimates the Poisson-Gaussian model (:func:`~napari_deeper.denoise.noise.
    estimate_noise`); "gaussian" takes the noise as white (every scale 1). A cube with no
    positive value is taken as Gaussian too (``largest``: its largest value, when known). A lazy
    ``data`` is read only where the model and the scales' sample look.
    """
    from ..io._lazy import FlatPixels, is_lazy
    from .noise import estimate_noise

    choice = str(noise).lower()
    if choice not in NOISE_CHOICES:
        raise ValueError(f"noise must be one of {', '.join(NOISE_CHOICES)}; got {noise!r}")
    if choice == "gaussian":
        return Whitening(), None, "noise taken as white Gaussian"
    if not (float(np.max(data)) if largest is None else float(largest)) > 0:
        return Whitening(), None, "no positive value: noise taken as white Gaussian"
    model = estimate_noise(data, spikes=False)
    if not model.gain > 0:
        return Whitening(), model, "noise the same at every intensity"
    n_bands = data.shape[0]
    flat = FlatPixels(data) if is_lazy(data) else data.reshape(n_bands, -1)
    index = np.unique(np.linspace(0, flat.shape[1] - 1, min(WHITEN_PIXELS, flat.shape[1])).round().astype(int))
    variance = Whitening(model).variance(flat[:, index]).astype(np.float64)
    n = variance.shape[1]
    v = np.ones(n_bands)
    for _ in range(100):
        u = n_bands / (v @ variance)
        v_new = n / (variance @ u)
        done = np.max(np.abs(v_new / v - 1.0)) < 1e-6
        v = v_new
        if done:
            break
    return Whitening(model, v.astype(np.float32)), model, "noise whitened by its Poisson-Gaussian model"


def noise_rank(eigenvalues: np.ndarray, n_pixels: int, n_bands: int, limit: int,
               margin: float = RANK_MARGIN) -> tuple[int, float]:
    """``(rank, sigma^2)``: components above the noise's upper edge, and the noise variance.

    ``eigenvalues`` (descending) are those of the centred ``(pixels, bands)`` Gram matrix. For
    white noise of variance ``sigma^2`` the ``m = min(pixels - 1, bands)`` non-zero ones follow
    ``sigma^2 M`` times the Marchenko-Pastur law of ratio ``m / M`` (``M`` the larger size), so
    ``sigma^2`` is their median over ``M`` times the law's median, and nothing but signal stands
    above ``sigma^2 (sqrt(M) + sqrt(m))^2``. The rank is at least 1 and at most ``limit``.
    """
    rows = max(1, n_pixels - 1)
    m, big = min(rows, n_bands), max(rows, n_bands)
    values = np.asarray(eigenvalues[:m], dtype=np.float64)
    sigma2 = float(np.median(values)) / (big * marchenko_pastur_median(m / big))
    edge = sigma2 * (np.sqrt(big) + np.sqrt(m)) ** 2
    rank = int(np.count_nonzero(values > (1.0 + margin) * edge))
    return int(np.clip(rank, 1, max(1, min(limit, m - 1)))), sigma2


#: The components are fitted on the cube weighted by ``(u_p v_b)^(power / 2)``: 1 would be the
#: whitened cube, best for finding the rank and the signal under Poisson noise, 0 the cube as it
#: is, whose error is what a user sees (bright bands count most). 3/4 measured best over the
#: semi-real and simulated cases of ``benchmarks/selfsupervised.py`` (docs/denoise.md).
FIT_POWER = 0.75


@dataclass
class Subspace:
    """The cube's component images and what maps them back:
    ``cube ~ whitening.inverse(mean + basis @ (noise_scale * scores), pixel_scale, FIT_POWER)``."""

    mean: np.ndarray  # (B,) weighted cube's mean spectrum
    basis: np.ndarray  # (B, K)
    noise_scale: np.ndarray  # (K,) noise standard deviation of each component image
    noise_factor: float  # variance of the whitened noise relative to the model's (from the eigenvalues)
    scores: np.ndarray  # (K, Y, X) component images in units of their noise
    pixel_scale: np.ndarray  # (Y * X,) the whitening's u
    edge_rank: int  # components above the noise edge (before any cap)


def subspace_steps(data: np.ndarray, white: Whitening, components: int | None, limit: int,
                   message: str = "n2s: spectral components"):
    """Steps generator: the :class:`Subspace` of ``data`` (``components`` None: the noise rank).

    One pass accumulates the Gram matrices of the whitened cube (its eigenvalues give the noise
    level and the rank, :func:`noise_rank`) and of the cube weighted by :data:`FIT_POWER` (its
    eigenvectors are the basis); a second pass projects the pixels and measures each
    component's noise from the noise model.
    """
    from .classical import pixel_blocks, principal_axes

    n_bands, ny, nx = data.shape
    flat, slices = pixel_blocks(data)
    n = flat.shape[1]
    sums = {1.0: np.zeros(n_bands), FIT_POWER: np.zeros(n_bands)}
    grams = {1.0: np.zeros((n_bands, n_bands)), FIT_POWER: np.zeros((n_bands, n_bands))}
    pixel_scale = np.empty(n, dtype=np.float32)
    total = 2 * len(slices)
    for i, sl in enumerate(slices):
        block = np.asarray(flat[:, sl], dtype=np.float32)
        for power in sums:
            weighted, pixel_scale[sl] = white.forward(block, power)
            weighted = weighted.astype(np.float64)
            sums[power] += weighted.sum(axis=1)
            grams[power] += weighted @ weighted.T
        yield Progress(i + 1, total, message)
    means = {power: sums[power] / n for power in sums}
    for power in grams:
        grams[power] -= n * np.outer(means[power], means[power])
    singular, _ = principal_axes(grams[1.0])
    edge_rank, sigma2 = noise_rank(singular**2, n, n_bands, limit=min(n_bands, n))
    if not sigma2 > 0:
        raise ValueError("the cube has no noise left to estimate in its spectral components (is it low-rank already?)")
    rank = min(edge_rank, limit) if components is None else min(int(components), limit, n_bands, n - 1)
    rank = max(1, rank)
    _, loadings = principal_axes(grams[FIT_POWER])
    basis = loadings[:, :rank].astype(np.float32)
    mean32 = means[FIT_POWER].astype(np.float32)
    scores = np.empty((rank, n), dtype=np.float32)
    noise = np.zeros(rank)
    for i, sl in enumerate(slices):
        block = np.asarray(flat[:, sl], dtype=np.float32)
        weighted, u = white.forward(block, FIT_POWER)
        scores[:, sl] = basis.T @ (weighted - mean32[:, None])
        noise += (basis.T**2 @ white.whitened_variance(block, u, FIT_POWER)).sum(axis=1)
        yield Progress(len(slices) + i + 1, total, message)
    noise_scale = np.sqrt(sigma2 * noise / n).astype(np.float32)
    scores /= noise_scale[:, None]
    return Subspace(mean32, basis, noise_scale, float(sigma2), scores.reshape(rank, ny, nx), pixel_scale,
                    edge_rank)


def score_noise(data: np.ndarray, white: Whitening, subspace: Subspace, region, n_probes: int, seed: int = 0):
    """Noise of the component images in ``region`` (rows, cols), in units of their noise.

    Returns ``(variance (K, h, w), probes (n_probes, K, h, w))``: each component's noise variance
    at each pixel, ``sum_b basis_bk^2 w_pb`` with ``w`` the variance of the weighted values, and
    random draws of that noise, ``basis' (sqrt(w_p) z_p)`` with ``z`` standard normal, which also
    have its correlations between components at a pixel.
    """
    rows, cols = region
    ny, nx = data.shape[1:]
    block = np.ascontiguousarray(data[:, rows, cols], dtype=np.float32).reshape(data.shape[0], -1)  # (lazy: read)
    index = (np.arange(ny)[rows, None] * nx + np.arange(nx)[None, cols]).ravel()
    w = white.whitened_variance(block, subspace.pixel_scale[index], FIT_POWER) * np.float32(subspace.noise_factor)
    k = subspace.basis.shape[1]
    shape = (k, rows.stop - rows.start, cols.stop - cols.start)
    inverse = (1.0 / subspace.noise_scale)[:, None]
    variance = ((subspace.basis.T**2 @ w) * inverse**2).reshape(shape)
    rng = np.random.default_rng(seed)
    root = np.sqrt(w)
    probes = np.stack([((subspace.basis.T @ (root * rng.standard_normal(w.shape, dtype=np.float32))) * inverse)
                       .reshape(shape) for _ in range(n_probes)])
    return variance.astype(np.float32), probes.astype(np.float32)


def back_project_steps(data: np.ndarray, subspace: Subspace, scores: np.ndarray, white: Whitening, target=None):
    """Steps generator: the cube from denoised component images (noise units), block by block
    (into ``target`` when given, see :func:`~napari_deeper.denoise.classical.result_target`)."""
    from .classical import pixel_blocks, result_target

    flat, slices = pixel_blocks(data)
    out, out_flat = result_target(target, data.shape)
    weights = (subspace.basis * subspace.noise_scale[None, :]).astype(np.float32)
    scores = scores.reshape(scores.shape[0], -1)
    for i, sl in enumerate(slices):
        out_flat[:, sl] = white.inverse(weights @ scores[:, sl] + subspace.mean[:, None], subspace.pixel_scale[sl],
                                        FIT_POWER)
        yield Progress(i + 1, len(slices), "n2s: back to the cube")
    return out


# ------------------------------------------------------------------------------------------
# Network input and masking


def channel_scales(scores: np.ndarray) -> np.ndarray:
    """Per component, its standard deviation in noise units, at least 1 (the network's input scale)."""
    flat = scores.reshape(scores.shape[0], -1).astype(np.float64)
    return np.sqrt(np.maximum(flat.var(axis=1), 1.0)).astype(np.float32)


#: Soft limit (noise units) of the detail channels: ``c * tanh(d / c)``.
DETAIL_CLIP = 3.0


def network_input(values, scales, channels: int):
    """``(N, 3 * channels, h, w)`` network input from ``(N, K, h, w)`` scaled component images.

    Three groups of ``channels`` (zero beyond ``K``): the images themselves (unit variance); a
    constant image of each one's noise level on that scale, ``1 / scale``; and each image's
    detail in noise units (minus its 3 x 3 mean, softly limited to :data:`DETAIL_CLIP`), where a
    bright component's noise is as large as a faint one's. The detail at a pixel is computed
    from the (possibly masked) input, so masking keeps the input free of a masked pixel's noise.
    """
    from torch.nn import functional as F

    n, k, h, w = values.shape
    stack = values.new_zeros((n, 3 * channels, h, w))
    stack[:, :k] = values
    stack[:, channels:channels + k] = (1.0 / scales).view(1, k, 1, 1)
    mean = F.avg_pool2d(F.pad(values, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    detail = (values - mean) * scales.view(1, k, 1, 1)
    stack[:, 2 * channels:2 * channels + k] = DETAIL_CLIP * (detail / DETAIL_CLIP).tanh()
    return stack


def masked(values, phase_y, phase_x, origin_y=0, origin_x=0):
    """``(values with masked pixels replaced, mask)``: J-invariant masking of one pixel phase.

    ``values`` is ``(N, K, h, w)``; masked pixels are those whose image coordinates (crop origin
    added) are ``(phase_y, phase_x)`` modulo :data:`GRID` (per crop: tensors of shape ``(N,)``).
    Each is replaced, in every component, by the mean of its 8 neighbours (mirrored at the crop's
    edges), none of which is masked: the replaced value holds nothing of the pixel's own noise.
    """
    import torch
    from torch.nn import functional as F

    n, _, h, w = values.shape
    device = values.device
    padded = F.pad(values, (1, 1, 1, 1), mode="reflect")
    ring = torch.ones(1, 1, 3, 3, device=device, dtype=values.dtype) / 8.0
    ring[0, 0, 1, 1] = 0.0
    k = values.shape[1]
    neighbours = F.conv2d(padded, ring.expand(k, 1, 3, 3), groups=k)
    ys = torch.arange(h, device=device).view(1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, w)
    oy = torch.as_tensor(origin_y, device=device).view(-1, 1, 1)
    ox = torch.as_tensor(origin_x, device=device).view(-1, 1, 1)
    py = torch.as_tensor(phase_y, device=device).view(-1, 1, 1)
    px = torch.as_tensor(phase_x, device=device).view(-1, 1, 1)
    mask = (((ys + oy) % GRID) == py) & (((xs + ox) % GRID) == px)
    mask = mask.view(-1, 1, h, w).expand(n, 1, h, w)
    return torch.where(mask, neighbours, values), mask


def _dihedral(t, k: int):
    """One of the 8 flips/rotations of the last two axes."""
    import torch

    if k & 4:
        t = t.transpose(-1, -2)
    return torch.rot90(t, k & 3, dims=(-2, -1))


# ------------------------------------------------------------------------------------------
# Training and inference on one cube


class _Trainer:
    """The network, its optimiser and the cube's scaled component images on one device."""

    def __init__(self, model, values: np.ndarray, scales: np.ndarray, device, seed: int = 0, noise=None):
        import torch

        self.torch = torch
        self.model = model
        self.values_np = values
        self.scales_np = scales
        self.noise = noise  # (region, variance, probes) for the risk estimate
        self.rng = np.random.default_rng(seed)
        self.batch_pixels = BATCH_PIXELS
        self.to(device)

    def to(self, device) -> None:
        torch = self.torch
        self.device = device
        self.model.to(device)
        self.values = torch.as_tensor(self.values_np, device=device)
        self.scales = torch.as_tensor(self.scales_np, device=device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)

    @property
    def channels(self) -> int:
        return self.model.channels

    def _crops(self, n: int, size_y: int, size_x: int):
        k, ny, nx = self.values_np.shape
        oy = self.rng.integers(0, ny - size_y + 1, n)
        ox = self.rng.integers(0, nx - size_x + 1, n)
        crops = self.torch.stack([self.values[:, y:y + size_y, x:x + size_x] for y, x in zip(oy, ox)])
        return crops, oy, ox

    def _loss(self, out, target, mask):
        """Mean squared error at the masked pixels in noise units (the scales undone)."""
        k = target.shape[1]
        err = (out[:, :k] - target) * self.scales.view(1, k, 1, 1)
        weight = mask.to(err.dtype)
        return (err.pow(2) * weight).sum() / (weight.sum() * k)

    def step(self) -> float:
        """One Noise2Self step on random crops (training phases only); returns the loss."""
        torch = self.torch
        k, ny, nx = self.values_np.shape
        size_y, size_x = min(CROP, ny), min(CROP, nx)
        n = max(1, self.batch_pixels // (size_y * size_x))
        crops, oy, ox = self._crops(n, size_y, size_x)
        phases = self.rng.integers(0, GRID * GRID, n)
        inputs, mask = masked(crops, phases // GRID, phases % GRID, oy, ox)
        turns = int(self.rng.integers(0, 8))
        if size_y == size_x:  # a transpose keeps the crop's shape only when it is square
            inputs, mask, crops = (_dihedral(t, turns) for t in (inputs, mask, crops))
        flips = torch.as_tensor(self.rng.choice([-1.0, 1.0], k).astype(np.float32), device=self.device)
        sign = flips.view(1, k, 1, 1)  # a component's sign is arbitrary
        self.model.train()
        out = self.model(network_input(inputs * sign, self.scales, self.channels))
        loss = self._loss(out[:, :k] * sign, crops, mask)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def risk(self) -> tuple[float, np.ndarray]:
        """``(estimated error, blend weights)`` of the current weights: see :func:`sure_blend`."""
        (rows, cols), variance, probes = self.noise
        region = np.ascontiguousarray(self.values_np[:, rows, cols])
        return sure_blend(self.model, region, self.scales_np, self.device, variance, probes)

    def predict(self, alpha: np.ndarray) -> np.ndarray:
        """The denoised ``(K, Y, X)`` component images (noise units): each noisy image moved by
        ``alpha`` of the way to the network's output."""
        noisy = self.values_np * self.scales_np[:, None, None]
        out = predict(self.model, self.values_np, self.scales_np, self.device)
        return noisy + alpha[:, None, None].astype(np.float32) * (out - noisy)


def _tiles(shape):
    """``(tile index, (rows, cols) with margin, (rows, cols) kept inside it)`` covering an image."""
    ny, nx = shape
    for y0 in range(0, ny, TILE):
        for x0 in range(0, nx, TILE):
            y1, x1 = min(ny, y0 + TILE), min(nx, x0 + TILE)
            ys = slice(max(0, y0 - TILE_MARGIN), min(ny, y1 + TILE_MARGIN))
            xs = slice(max(0, x0 - TILE_MARGIN), min(nx, x1 + TILE_MARGIN))
            inner = (slice(y0 - ys.start, y1 - ys.start), slice(x0 - xs.start, x1 - xs.start))
            yield (y0, x0), (ys, xs), inner


def predict(model, values: np.ndarray, scales: np.ndarray, device) -> np.ndarray:
    """Denoised ``(K, Y, X)`` component images (noise units) from scaled ones, tile by tile."""
    import torch

    k, ny, nx = values.shape
    out = np.empty_like(values)
    scale_t = torch.as_tensor(scales, device=device)
    model.eval()
    with torch.inference_mode():
        for (y0, x0), (ys, xs), (iy, ix) in _tiles((ny, nx)):
            crop = torch.as_tensor(np.ascontiguousarray(values[:, ys, xs]), device=device)[None]
            result = model(network_input(crop, scale_t, model.channels))[0, :k, iy, ix]
            out[:, y0:y0 + result.shape[1], x0:x0 + result.shape[2]] = result.cpu().numpy()
    return out * scales[:, None, None]


@contextmanager
def torch_threads(n: int | None = None):
    """Run with ``n`` torch CPU threads (None: as they are), restoring the number after."""
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_threads() -> int:
    """Torch CPU threads to train with: all of torch's on a quiet machine, one on a busy one.

    On a machine shared with other work, threads that wait for each other can be many times
    slower than one (measured: 13x for a training step at a load of 16 on 2 cores), so when the
    1-minute load average is above half the cores one thread is used.
    """
    import torch

    most = max(1, min(torch.get_num_threads(), os.cpu_count() or 1))
    try:
        busy = os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1)
    except (AttributeError, OSError):  # no load average on this system
        busy = False
    return 1 if busy else most


#: Random probes of the Monte-Carlo divergence in :func:`sure_blend`, and their size (noise units).
SURE_PROBES, SURE_EPSILON = 2, 0.01
#: Side of the central region :func:`sure_blend` measures on (larger images: their centre).
SURE_REGION = 128


def sure_region(shape) -> tuple[slice, slice]:
    """The central square of at most :data:`SURE_REGION` pixels a side of an image."""
    ny, nx = shape
    y0, x0 = max(0, (ny - SURE_REGION) // 2), max(0, (nx - SURE_REGION) // 2)
    return slice(y0, min(ny, y0 + SURE_REGION)), slice(x0, min(nx, x0 + SURE_REGION))


def sure_blend(model, values: np.ndarray, scales: np.ndarray, device, variance: np.ndarray,
               probes: np.ndarray) -> tuple[float, np.ndarray]:
    """``(risk, alpha)``: per component the blend ``y + alpha (f(y) - y)`` of the noisy image ``y``
    and the network's output ``f(y)`` with the lowest Stein unbiased risk estimate, and that
    estimate (summed over components and pixels, divided by the noise's own: 1 is the noise).

    ``values`` are the scaled component images of the region measured, ``variance`` and
    ``probes`` their noise (see :func:`score_noise`; noise units). For Gaussian noise of
    covariance ``S`` (Stein 1981), ``E|g(y) - x|^2 = E[|g(y) - y|^2 - tr S + 2 tr(S J_g)]``; for
    the blend of component ``k`` that is ``alpha^2 |f_k - y_k|^2 - t_k + 2 ((1 - alpha) t_k +
    alpha d_k)`` with ``t_k`` the sum of its noise variance and ``d_k`` the noise-weighted
    divergence of ``f_k``, lowest at ``alpha = (t_k - d_k) / |f_k - y_k|^2`` (clipped to
    [0, 1]). ``alpha = 0`` is the noisy image (plain PCA), so the estimate never prefers a
    network that does worse than that. ``d_k`` is Monte-Carlo (Ramani et al. 2008): for a draw
    ``p`` of the noise, ``sum p_k (f(y + e p) - f(y))_k / e``, averaged over the probes given.
    """
    noisy = values * scales[:, None, None]
    out = predict(model, values, scales, device)
    divergence = np.zeros(values.shape[0])
    for probe in probes:
        moved = predict(model, values + SURE_EPSILON * probe / scales[:, None, None], scales, device)
        divergence += np.sum(probe * (moved - out), axis=(1, 2), dtype=np.float64) / SURE_EPSILON
    divergence /= len(probes)
    trace = np.sum(variance, axis=(1, 2), dtype=np.float64)
    distance = np.sum((out - noisy).astype(np.float64) ** 2, axis=(1, 2))
    alpha = np.clip((trace - divergence) / np.maximum(distance, 1e-12), 0.0, 1.0)
    risk = alpha**2 * distance - trace + 2.0 * ((1.0 - alpha) * trace + alpha * divergence)
    return float(risk.sum() / trace.sum()), alpha


class Clock:
    """A run's time budget: seconds since it started (``time.perf_counter()``), and progress as
    the share of the budget used."""

    def __init__(self, budget: float, started: float):
        self.budget, self.started = float(budget), started

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def tick(self, message: str, loss=None) -> Progress:
        return Progress(int(1000 * min(self.elapsed(), self.budget)), int(1000 * self.budget), message, loss)


def weights_copy(model) -> dict:
    """A copy of ``model``'s weights (to keep the best seen while it trains on)."""
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def load_pretrained(device):
    """A fresh copy of the shipped (or the user's) ``n2s`` weights on ``device``, and its card."""
    from ..models.registry import find_model, load_model

    info = find_model(MODEL)
    return load_model(info.path, device)


def value_range(data) -> tuple[float, float]:
    """The smallest and largest value of a cube, in memory or lazy (one pass, chunk by chunk)."""
    from ..io._lazy import SCHEDULER, is_lazy

    if is_lazy(data):
        import dask

        low, high = dask.compute(data.min(), data.max(), scheduler=SCHEDULER)
        return float(low), float(high)
    return float(np.min(data)), float(np.max(data))


def _into(target, cube: np.ndarray):
    """``cube``, or ``target`` filled with it (a streamed run's writer; a small cube only)."""
    if target is None:
        return cube
    target[:, :] = np.asarray(cube, dtype=np.float32).reshape(cube.shape[0], -1)
    return target


def _fallback(data, wavenumbers, reason: str):
    """Steps of the default closed-form method, after saying why the network does not run."""
    from . import DEFAULT, METHODS

    name = DEFAULT if not METHODS[DEFAULT].uses_device else "pca"
    warnings.warn(f"n2s: {reason}; using the closed-form method {name!r} instead", RuntimeWarning, stacklevel=3)
    yield Progress(0, 1, f"n2s: {reason}; using {name} instead")
    return (yield from METHODS[name].steps(data, wavenumbers=wavenumbers, device=None))


def with_oom_fallback(action, trainer, shrink, name: str = "n2s"):
    """Run ``action()``; on a GPU out-of-memory error ``shrink()`` and retry, then go on on the CPU.

    ``trainer`` has a ``device`` and a ``to(device)`` (a :class:`_Trainer`, or the per-spectrum
    networks' adaptation); ``name`` begins the warning."""
    import torch

    from ..compute import is_out_of_memory

    while True:
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - narrowed just below
            if trainer.device.type == "cpu" or not is_out_of_memory(error):
                raise
            if trainer.device.type == "cuda":
                torch.cuda.empty_cache()
            if not shrink():
                warnings.warn(f"{name}: {trainer.device} ran out of memory; continuing on the CPU", RuntimeWarning,
                              stacklevel=3)
                trainer.to(torch.device("cpu"))


def n2s_steps(data: np.ndarray, wavenumbers=None, device=None, time_budget: float = DEFAULT_BUDGET,
              components: int | None = None, steps: int | None = None, noise: str = "auto", seed: int = 0,
              target=None):
    """Steps generator of the self-supervised denoiser on a ``(B, Y, X)`` cube (see the module notes).

    Yields ``Progress`` with the current self-supervised loss while training (cancel at any
    yield); returns the denoised float32 cube in the data's units. A lazy ``data`` is read block
    by block (its passes, the noise model's strips, the SURE region); what the run holds is its
    component images. ``target`` (optional) receives the result instead of a new cube (see
    :func:`~napari_deeper.denoise.classical.result_target`).
    """
    started = time.perf_counter()  # the budget counts everything, imports included
    from ..compute import one_blas_thread, select_device

    budget = float(time_budget)
    if not budget > 0:
        raise ValueError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
    n_bands, ny, nx = data.shape
    if min(ny, nx) < MIN_PIXELS:
        return _into(target, (yield from _fallback(
            data, wavenumbers,
            f"the image is {ny} x {nx} pixels, too small to learn from (it needs at least {MIN_PIXELS} x {MIN_PIXELS})")))
    low, high = value_range(data)
    if not (np.isfinite(low) and np.isfinite(high)):  # (a cube in memory was checked before: a lazy one)
        raise ValueError("data contains NaN or Inf values; replace them first (Preprocess spectra: fill)")
    if not high > low:
        warnings.warn("n2s: the cube is constant; there is nothing to denoise, it comes back unchanged",
                      RuntimeWarning, stacklevel=2)
        return _into(target, np.array(data, dtype=np.float32, copy=True))
    if n_bands < 9:
        raise ValueError(f"the n2s method needs at least 9 bands to model the noise; this cube has {n_bands}")

    clock = Clock(budget, started)
    elapsed, tick = clock.elapsed, clock.tick
    yield tick("n2s: estimating the noise")
    white, _model, words = whitening(data, noise, largest=high)
    device = select_device(device)
    model, _card = load_pretrained(device)
    before = elapsed()
    with one_blas_thread():  # thin products on a shared machine: BLAS threads only add contention
        subspace = yield from subspace_steps(data, white, components, model.channels)
        region = sure_region((ny, nx))
        variance, probes = score_noise(data, white, subspace, region, SURE_PROBES, seed)
    # The reading and writing passes cost about the same; the network pass is timed below.
    pass_seconds = elapsed() - before
    k = subspace.scores.shape[0]
    capped = f" (of {subspace.edge_rank} above the noise, the network takes {model.channels})" \
        if components is None and subspace.edge_rank > model.channels else ""
    yield tick(f"n2s: {words}; {k} spectral components{capped}")
    scales = channel_scales(subspace.scores)
    values = np.ascontiguousarray(subspace.scores / scales[:, None, None])
    trainer = _Trainer(model, values, scales, device, seed, (region, variance, probes))

    def shrink_batch() -> bool:
        if trainer.batch_pixels <= CROP * CROP:
            return False
        trainer.batch_pixels //= 2
        return True

    # On the CPU the thread count depends on how busy the machine is (threads decide the speed
    # only); a fixed number of steps keeps torch's, so that every run gives the same result.
    threads = cpu_threads() if trainer.device.type == "cpu" and steps is None else None
    with torch_threads(threads):
        timed = time.perf_counter()
        best_risk, best_alpha = with_oom_fallback(trainer.risk, trainer, lambda: False)
        risk_seconds = time.perf_counter() - timed
        # one pass of the network over the whole image, from the passes over the region measured
        region_pixels = (region[0].stop - region[0].start) * (region[1].stop - region[1].start)
        network_seconds = risk_seconds / (1 + SURE_PROBES) * ny * nx / region_pixels
        best_state = weights_copy(model)
        best_step = 0
        # Stop training early enough for one more network pass, the writing pass and a margin.
        deadline = budget - 1.5 * (network_seconds + pass_seconds) - 0.05 * budget
        limit = steps if steps is not None else np.inf
        step, loss = 0, None
        message = "n2s: training on the cube"
        yield tick(f"{message} (pretrained: estimated error {best_risk:.3f} of the noise)", best_risk)
        last = 0.0  # seconds the last step took: the next one must fit before the deadline too
        while step < limit and (steps is not None or elapsed() + last + (
                risk_seconds if (step + 1) % VALIDATE_EVERY == 0 else 0.0) < deadline):
            timed = time.perf_counter()
            loss = with_oom_fallback(trainer.step, trainer, shrink_batch)
            last = time.perf_counter() - timed
            step += 1
            if step % VALIDATE_EVERY == 0 or step == limit:
                risk, alpha = with_oom_fallback(trainer.risk, trainer, lambda: False)
                if risk < best_risk:
                    best_risk, best_alpha, best_step = risk, alpha, step
                    best_state = weights_copy(model)
            yield tick(f"{message}: step {step}, self-supervised loss {loss:.4f} "
                       f"(best estimated error {best_risk:.3f} of the noise)", loss)
        model.load_state_dict(best_state)
        yield tick(f"n2s: denoising {k} components (weights of step {best_step} of {step})", best_risk)
        denoised = with_oom_fallback(lambda: trainer.predict(best_alpha), trainer, lambda: False)
    with one_blas_thread():
        out = yield from back_project_steps(data, subspace, denoised, white, target)
    threads_used = f", {threads} CPU thread{'s' if threads != 1 else ''}" if threads else ""
    yield tick(f"n2s: done in {elapsed():.1f} s ({step} training steps, {k} components{threads_used}; "
               f"estimated error {best_risk:.3f} of the noise)", best_risk)
    return out
