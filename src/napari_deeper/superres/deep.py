"""Band-agnostic network super-resolution: compress the bands, super-resolve, expand.

The networks never see bands. A basis is computed from the input cube itself: the mean spectrum
and the top ``K`` principal components of the ``(pixels, B)`` matrix (cubes with fewer than ``K``
bands or pixels get zero components, which carry nothing). The ``K`` component images, divided by
one global scale (the spread of the first component, so their relative sizes are kept), go
through the network at low resolution; it predicts a correction to their bicubic upscale. The
output is the bicubic upscale of the whole cube plus that correction expanded back through the
basis. Hence: any band count; the cube's own units come back; what lies outside the basis
(minor components, noise) is interpolated bicubically, never lost; an untrained network gives
exactly bicubic.

Large images are cut into tiles with an overlap (the whole image mirrored at its border first, so
tiled and untiled runs see the same context) and run in batches through
:func:`napari_deeper.compute.map_batches`, which halves the batch on GPU out-of-memory errors and
falls back to the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import compute
from .interpolation import interpolate_steps

#: at most this many pixels (evenly strided) are used to fit the basis of a large image
BASIS_PIXELS = 16384
TILE = 96
OVERLAP = 12


@dataclass(frozen=True)
class Basis:
    """Mean spectrum ``(B,)``, orthonormal components ``(B, K)`` and the score scale."""

    mean: np.ndarray
    vectors: np.ndarray
    scale: float

    def scores(self, cube: np.ndarray) -> np.ndarray:
        """Normalised component images ``(K, Y, X)`` of ``cube`` ``(B, Y, X)``."""
        b, y, x = cube.shape
        flat = cube.reshape(b, -1) - self.mean[:, None]
        return (self.vectors.T @ flat / self.scale).reshape(-1, y, x).astype(np.float32)

    def add_expanded(self, cube: np.ndarray, scores: np.ndarray, bands_per_chunk: int = 64) -> None:
        """Add the cube-space form of normalised ``scores`` ``(K, Y, X)`` to ``cube`` in place.

        Done a few bands at a time, so no second full-size cube is made.
        """
        k = scores.shape[0]
        flat = scores.reshape(k, -1) * np.float32(self.scale)
        for part in compute.chunks(cube.shape[0], bands_per_chunk):
            cube[part] += (self.vectors[part] @ flat).reshape(cube[part].shape)


def fit_basis(cube: np.ndarray, n_components: int) -> Basis:
    """PCA basis of ``cube`` ``(B, Y, X)`` with exactly ``n_components`` columns (zero-padded).

    Each component's sign is chosen so its score image is positively skewed (bright features on
    a dark background), which makes the basis deterministic for the network.
    """
    b = cube.shape[0]
    flat = cube.reshape(b, -1)
    step = max(1, flat.shape[1] // BASIS_PIXELS)
    sample = flat[:, ::step]
    mean = flat.mean(axis=1, dtype=np.float64)
    centred = sample - mean[:, None].astype(np.float32)
    covariance = (centred @ centred.T).astype(np.float64) / max(1, sample.shape[1])
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    keep = min(n_components, b, max(1, sample.shape[1] - 1))
    vectors = vectors[:, order[:keep]]
    values = np.clip(values[order[:keep]], 0.0, None)
    scores = vectors.T @ centred.astype(np.float64)
    signs = np.sign(np.sum(scores**3, axis=1))
    signs[signs == 0] = 1.0
    vectors = vectors * signs
    padded = np.zeros((b, n_components), dtype=np.float64)
    padded[:, :keep] = vectors
    scale = float(np.sqrt(values[0])) if keep else 0.0
    return Basis(mean.astype(np.float32), padded.astype(np.float32), scale)


def tile_origins(size: int, core: int) -> list[int]:
    """Start positions of cores of length ``core`` covering ``size`` (the last one flush)."""
    if size <= core:
        return [0]
    starts = list(range(0, size - core, core))
    return starts + [size - core]


def correction_steps(model, scores: np.ndarray, scale: int, device, tile: int = TILE,
                     overlap: int = OVERLAP, message: str = "") -> compute.Steps[np.ndarray]:
    """Run ``model`` on normalised component images ``(K, h, w)`` tile by tile.

    Returns the ``(K, h*scale, w*scale)`` correction. Each tile is ``tile`` + 2 ``overlap`` LR
    pixels; only its central ``tile`` pixels (times the scale) are kept.
    """
    import torch

    k, h, w = scores.shape
    core_y, core_x = min(tile, h), min(tile, w)
    padded = np.pad(scores, ((0, 0), (overlap, overlap), (overlap, overlap)), mode="symmetric")
    origins = [(y0, x0) for y0 in tile_origins(h, core_y) for x0 in tile_origins(w, core_x)]
    span_y, span_x = core_y + 2 * overlap, core_x + 2 * overlap
    f = scale
    out = np.empty((k, h * f, w * f), dtype=np.float32)

    def run(batch: np.ndarray, dev) -> np.ndarray:
        model.to(dev)
        with torch.no_grad():
            result = model(torch.from_numpy(batch).to(dev), f)
        return result.float().cpu().numpy()

    per_tile = 4.0 * k * span_y * span_x * (1 + f * f) * 24  # features ~ 24x the channels
    group = compute.chunk_size(per_tile, device, minimum=1, maximum=256)
    batch_size = max(1, min(group, 16))
    done = 0
    for part in compute.chunks(len(origins), group):
        chosen = origins[part]
        tiles = np.stack([padded[:, y0:y0 + span_y, x0:x0 + span_x] for y0, x0 in chosen])
        result = yield from compute.share(compute.map_batches(run, tiles, device, batch_size, message),
                                          done, len(chosen), len(origins))
        margin = overlap * f
        for (y0, x0), piece in zip(chosen, result):
            out[:, y0 * f:(y0 + core_y) * f, x0 * f:(x0 + core_x) * f] = piece[
                :, margin:margin + core_y * f, margin:margin + core_x * f
            ]
        done += len(chosen)
    return out


def network_upscale_steps(model, data: np.ndarray, scale: int, device, tile: int = TILE,
                          overlap: int = OVERLAP, message: str = "super-resolving") -> compute.Steps[np.ndarray]:
    """Super-resolve ``data`` ``(B, Y, X)`` with a component-space correction network.

    Progress comes in two stages under ``message``: the bicubic base, then the network.
    """
    device = compute.select_device(device)
    base = yield from compute.stage(interpolate_steps(data, scale, "bicubic"), 0, 2, message)
    basis = fit_basis(data, model.n_components)
    if basis.scale <= 0 or not np.isfinite(basis.scale):
        return base  # a spectrally constant cube: nothing for the network to sharpen
    scores = basis.scores(data)
    correction = yield from compute.stage(
        correction_steps(model, scores, scale, device, tile, overlap, "network"), 1, 2, message)
    basis.add_expanded(base, correction)
    return base
