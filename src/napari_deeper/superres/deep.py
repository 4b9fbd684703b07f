"""Band-agnostic network super-resolution: compress the bands, super-resolve, expand.

The networks never see bands. A basis is computed from the input cube itself: the mean spectrum
and the top ``K`` principal components of the ``(pixels, B)`` matrix (cubes with fewer than ``K``
bands or pixels get zero components, which carry nothing). The ``K`` component images, divided by
one global scale (the spread of the first component, so their relative sizes are kept), go
through the network at low resolution; it predicts a correction to their bicubic upscale.

The output is put together by :func:`assemble_steps`, knowing that a real scan is noisy:

- the **measured pixels** (output ``f*i + f//2``) keep the input's values, as every interpolation
  does: super-resolution adds pixels, it does not change the ones measured (denoise first, e.g.
  with *Fast scan restore*, for a clean image);
- **between them**, the best estimate of a pixel that was not measured is its clean signal (its
  noise cannot be predicted). The noise of each band is measured along the spectra
  (:func:`band_noise`); each component image and the rest outside the basis are interpolated
  and multiplied by one minus their noise share (:class:`Shrink`), and the interpolation is
  bicubic for a noise-free cube and bilinear (which averages more neighbours, the better
  interpolation of noisy real scans) for a noisy one. On a cube that is already denoised
  (``noise="denoised"``, as *Fast scan restore* runs it) what its spectra call noise may be
  signal the denoiser kept, which the shrink would remove: where no self-check guards the
  result (a cube too small for it, or ``adapt="off"``) such a cube is taken as noise-free;
- the network's component images enter with a weight: 1 as trained, or the one the cube's own
  self-check chooses (:mod:`napari_deeper.superres.adapt`, which also fine-tunes the network on
  the cube).

Hence: any band count; the cube's own units come back; on a noise-free cube, a network whose
correction is zero gives exactly bicubic.

Large images are cut into tiles with an overlap (the whole image mirrored at its border first, so
tiled and untiled runs see the same context) and run in batches through
:func:`napari_deeper.compute.map_batches`, which halves the batch on GPU out-of-memory errors and
falls back to the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from .. import compute
from ..io._lazy import FlatPixels, is_lazy, lazy_block_pixels
from .interpolation import MARGIN, interpolate, interpolate_steps

#: at most this many pixels (evenly strided) are used to fit the basis of a large image
BASIS_PIXELS = 16384
#: what the pipeline takes as the cube's noise: its own level (:func:`band_noise`), none, or (for
#: a denoised cube) its own level when the self-check guards the result and none when not
NOISE_CHOICES = ("auto", "none", "denoised")
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

    @property
    def usable(self) -> bool:
        """False for a spectrally constant cube (no spread to scale the scores by)."""
        return bool(self.scale > 0 and np.isfinite(self.scale))


def basis_sample(flat) -> np.ndarray:
    """The at most :data:`BASIS_PIXELS` evenly strided spectra ``(B, n)`` of ``flat`` ``(B, N)``
    that the basis and the noise level are measured on."""
    return flat[:, :: max(1, flat.shape[1] // BASIS_PIXELS)]


def fit_basis(cube: np.ndarray, n_components: int) -> Basis:
    """PCA basis of ``cube`` ``(B, Y, X)`` with exactly ``n_components`` columns (zero-padded)."""
    flat = cube.reshape(cube.shape[0], -1)
    return basis_of(basis_sample(flat), flat.mean(axis=1, dtype=np.float64), n_components)


def basis_of(sample: np.ndarray, mean: np.ndarray, n_components: int) -> Basis:
    """The basis of :func:`fit_basis` from a cube's :func:`basis_sample` and its mean spectrum.

    Each component's sign is chosen so its score image is positively skewed (bright features on
    a dark background), which makes the basis deterministic for the network.
    """
    b = sample.shape[0]
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
    return Basis(np.asarray(mean, dtype=np.float32), padded.astype(np.float32), scale)


def tile_cells(size: int, core: int) -> list[tuple[slice, int]]:
    """The cells of an axis of ``size`` pixels, ``core`` long (the last one may be shorter), each
    with the start of its network tile: its own, or for the last ``size - core`` (the tile flush
    with the end, ``core`` long like every other)."""
    return [(part, min(part.start, size - core)) for part in compute.chunks(size, core)]


def mirrored(start: int, stop: int, size: int) -> np.ndarray:
    """Indices ``start..stop`` of an axis of ``size`` pixels, mirrored beyond its ends as NumPy's
    ``np.pad(..., mode="symmetric")`` does."""
    index = np.arange(start, stop) % (2 * size)
    return np.where(index < size, index, 2 * size - 1 - index)


def _cells_in(span: slice, size: int, core: int) -> list[tuple[slice, int]]:
    """The :func:`tile_cells` that make up ``span``, or a ValueError when it is not whole cells."""
    cells = [(part, start) for part, start in tile_cells(size, core) if span.start <= part.start and part.stop <= span.stop]
    if sum(part.stop - part.start for part, _ in cells) != span.stop - span.start:
        raise ValueError(f"pixels {span.start}-{span.stop - 1} are not whole tiles of {core} pixels")
    return cells


def correction_steps(model, scores: np.ndarray, scale: int, device, tile: int = TILE,
                     overlap: int = OVERLAP, message: str = "", rows: slice | None = None,
                     cols: slice | None = None) -> compute.Steps[np.ndarray]:
    """Run ``model`` on normalised component images ``(K, h, w)`` tile by tile.

    Returns the ``(K, h*scale, w*scale)`` correction, or that of the pixels ``rows`` x ``cols``
    only (each a run of whole cells, see below), which equals that part of the whole one. The
    image is cut into cells of ``tile`` LR pixels (:func:`tile_cells`); each cell's network tile
    is ``tile`` pixels plus ``overlap`` of context on each side (the image mirrored at its
    border), and only the cell is kept.
    """
    import torch

    k, h, w = scores.shape
    rows, cols = slice(0, h) if rows is None else rows, slice(0, w) if cols is None else cols
    core_y, core_x = min(tile, h), min(tile, w)
    cells = [(ys, y0, xs, x0) for ys, y0 in _cells_in(rows, h, core_y) for xs, x0 in _cells_in(cols, w, core_x)]
    span_y, span_x = core_y + 2 * overlap, core_x + 2 * overlap
    f = scale
    out = np.empty((k, (rows.stop - rows.start) * f, (cols.stop - cols.start) * f), dtype=np.float32)

    def run(batch: np.ndarray, dev) -> np.ndarray:
        model.to(dev)
        with torch.no_grad():
            result = model(torch.from_numpy(batch).to(dev), f)
        return result.float().cpu().numpy()

    per_tile = 4.0 * k * span_y * span_x * (1 + f * f) * 24  # features ~ 24x the channels
    group = compute.chunk_size(per_tile, device, minimum=1, maximum=256)
    batch_size = max(1, min(group, 16))
    done = 0
    for part in compute.chunks(len(cells), group):
        chosen = cells[part]
        tiles = np.stack([scores[:, mirrored(y0 - overlap, y0 + span_y - overlap, h)][
            :, :, mirrored(x0 - overlap, x0 + span_x - overlap, w)] for _, y0, _, x0 in chosen])
        result = yield from compute.share(compute.map_batches(run, tiles, device, batch_size, message),
                                          done, len(chosen), len(cells))
        for (ys, y0, xs, x0), piece in zip(chosen, result):
            top, left = (overlap + ys.start - y0) * f, (overlap + xs.start - x0) * f
            out[:, (ys.start - rows.start) * f:(ys.stop - rows.start) * f,
                (xs.start - cols.start) * f:(xs.stop - cols.start) * f] = piece[
                :, top:top + (ys.stop - ys.start) * f, left:left + (xs.stop - xs.start) * f]
        done += len(chosen)
    return out


def band_noise(cube: np.ndarray) -> np.ndarray:
    """White-noise variance of each band ``(B,)`` float64, from second differences along the bands.

    For noise that is independent from band to band, ``y[b-1] - 2 y[b] + y[b+1]`` has six times the
    noise variance; its median absolute value over the pixels (at most :data:`BASIS_PIXELS`,
    evenly strided) is robust to Raman bands and cosmic-ray spikes, which are sparse. The end
    bands take their neighbour's value. Fewer than 3 bands: zeros (the noise cannot be measured
    along the spectra, so nothing is treated as noise).
    """
    return sample_noise(basis_sample(cube.reshape(cube.shape[0], -1)))


def sample_noise(sample: np.ndarray) -> np.ndarray:
    """:func:`band_noise` from a cube's :func:`basis_sample` ``(B, n)``."""
    b = sample.shape[0]
    if b < 3:
        return np.zeros(b)
    sample = sample.astype(np.float64)
    second = sample[:-2] - 2.0 * sample[1:-1] + sample[2:]
    sigma = np.median(np.abs(second), axis=1) / 0.6745 / np.sqrt(6.0)
    return np.concatenate([sigma[:1], sigma, sigma[-1:]]) ** 2


def assumed_noise(cube: np.ndarray, noise: str) -> np.ndarray:
    """Per-band noise variance the pipeline works with: the cube's own (``"auto"``) or zeros
    (``"none"``)."""
    return band_noise(cube) if noise == "auto" else np.zeros(cube.shape[0])


@dataclass(frozen=True)
class Shrink:
    """How much of each part of a cube is noise, from its own noise level (Wiener-like factors).

    ``components`` ``(K,)``: the noise share of each component image's variance; ``residual``:
    the noise share of what lies outside the basis. Between the measured pixels, each part is
    interpolated and multiplied by one minus its share, so a part that is all noise contributes
    its mean (zero) instead of interpolated noise. ``residual`` also sets the interpolation:
    bicubic for a noise-free cube, bilinear (which averages more neighbours) for a noisy one.
    """

    components: np.ndarray
    residual: float

    @property
    def bicubic(self) -> float:
        """Weight of bicubic (against bilinear) in the interpolation between measured pixels."""
        return 1.0 - self.residual


def noise_shrink(sample: np.ndarray, basis: Basis, scores: np.ndarray, noise: np.ndarray) -> Shrink:
    """:class:`Shrink` of a cube given its :func:`basis_sample`, basis, normalised ``scores`` and
    per-band ``noise``."""
    k = scores.shape[0]
    vectors = basis.vectors.astype(np.float64)
    scale2 = float(basis.scale) ** 2
    component_noise = (vectors**2).T @ noise  # noise variance in each component (data units)
    component_var = scores.reshape(k, -1).astype(np.float64).var(axis=1) * scale2
    with np.errstate(divide="ignore", invalid="ignore"):
        components = np.where(component_var > 0, np.clip(component_noise / component_var, 0.0, 1.0), 0.0)
    outside = float(sample.astype(np.float64).var(axis=1).sum() - component_var.sum())
    outside_noise = float(noise.sum() - component_noise.sum())
    residual = float(np.clip(outside_noise / outside, 0.0, 1.0)) if outside > 0 else 0.0
    return Shrink(components, residual)


@dataclass(frozen=True)
class Prepared:
    """What the network pipeline needs of one low-resolution cube: basis, scores, noise shares."""

    basis: Basis
    scores: np.ndarray
    shrink: Shrink


def prepare(cube: np.ndarray, n_components: int, noise: np.ndarray | None = None) -> Prepared | None:
    """Basis, normalised scores and :class:`Shrink` of ``cube``; None for a spectrally constant cube.

    ``noise`` (per band, from :func:`band_noise`) defaults to the cube's own.
    """
    flat = cube.reshape(cube.shape[0], -1)
    sample = basis_sample(flat)
    basis = basis_of(sample, flat.mean(axis=1, dtype=np.float64), n_components)
    if not basis.usable:
        return None
    return _prepared(basis, basis.scores(cube), sample, noise)


def _prepared(basis: Basis, scores: np.ndarray, sample: np.ndarray, noise: np.ndarray | None) -> Prepared:
    noise = sample_noise(sample) if noise is None else noise
    return Prepared(basis, scores, noise_shrink(sample, basis, scores, noise))


def prepare_steps(cube, n_components: int, noise: str = "auto") -> compute.Steps[Prepared | None]:
    """:func:`prepare` with the noise that :func:`assumed_noise` names, for a cube in memory or lazy.

    A lazy cube (a dask array) is read in two passes over pixel blocks: its mean and
    :func:`basis_sample`, then its scores. It is never in memory whole: what is held is the
    scores (``K x pixels`` float32, 0.19 GiB for 2048 x 2048 pixels and 12 components) and one
    block. Each block is checked for NaN and Inf as it is read.
    """
    if not is_lazy(cube):
        return prepare(cube, n_components, assumed_noise(cube, noise))
    flat = FlatPixels(cube)
    b, n = flat.shape
    step = max(1, n // BASIS_PIXELS)
    blocks = list(compute.chunks(n, lazy_block_pixels(b)))
    total, picked = np.zeros(b), []
    yield compute.Progress(0, 2 * len(blocks), "reading the cube")
    for index, part in enumerate(blocks):
        values = flat[:, part]
        total += values.sum(axis=1, dtype=np.float64)
        picked.append(values[:, -part.start % step :: step].copy())  # (a view would hold the block)
        yield compute.Progress(index + 1, 2 * len(blocks), "reading the cube: its mean and sample")
    sample = np.concatenate(picked, axis=1)
    basis = basis_of(sample, total / n, n_components)
    if not basis.usable:
        return None
    scores = np.empty((n_components, n), dtype=np.float32)
    for index, part in enumerate(blocks):
        scores[:, part] = basis.scores(flat[:, part][:, None, :])[:, 0]
        yield compute.Progress(len(blocks) + index + 1, 2 * len(blocks), "reading the cube: its component images")
    scores = scores.reshape(n_components, *cube.shape[1:])
    return _prepared(basis, scores, sample, None if noise == "auto" else np.zeros(b))


def interpolated(data: np.ndarray, scale: int, bicubic: float) -> np.ndarray:
    """``bicubic`` x bicubic + (1 - ``bicubic``) x bilinear upscale of ``data`` (..., Y, X)."""
    out = interpolate(data, scale, "bilinear")
    if bicubic > 0:
        out *= np.float32(1.0 - bicubic)
        out += np.float32(bicubic) * interpolate(data, scale, "bicubic")
    return out


def network_scores(prep: Prepared, correction: np.ndarray, scale: int) -> np.ndarray:
    """The network's high-resolution component images: bicubic upscale plus its ``correction``."""
    return interpolate(prep.scores, scale, "bicubic") + correction


def assemble_steps(data: np.ndarray, scale: int, prep: Prepared, correction: np.ndarray | None,
                   weight: float, message: str = "", measured: np.ndarray | None = None,
                   bicubic: float | None = None, region: tuple[slice, slice] | None = None,
                   memory: int | None = None) -> compute.Steps[np.ndarray]:
    """The ``(B, Y*f, X*f)`` cube from the parts of ``data``, a few bands at a time.

    Between the measured pixels: the component images are ``weight`` x the network's
    (:func:`network_scores`) plus ``1 - weight`` x their interpolation, each times one minus its
    noise share; what lies outside the basis is interpolated and times one minus its noise share.
    The measured pixels (output ``f*i + f//2``) are the values of ``measured`` (default: ``data``;
    the raw cube when ``data`` is its denoised version). With ``weight`` 1, a zero correction and
    a noise-free cube this is exactly bicubic. ``bicubic`` (0..1) sets the interpolation in place
    of the noise level's choice (:attr:`Shrink.bicubic`). ``region`` (output slices): only that
    part of the cube is returned, e.g. a tile without the margin it was upscaled with. The bands
    are taken as many at a time as ``memory`` bytes hold (default: a share of the free memory).
    """
    measured = data if measured is None else measured
    f = scale
    shrink = prep.shrink
    bicubic = shrink.bicubic if bicubic is None else float(bicubic)
    keep_outside = 1.0 - shrink.residual
    between = interpolated(prep.scores, f, bicubic)
    chosen = between if correction is None or weight == 0 else (
        (1.0 - weight) * between + weight * network_scores(prep, correction, f))
    chosen = (1.0 - shrink.components)[:, None, None].astype(np.float32) * chosen
    # component images to add to keep_outside x the interpolated cube (whose components are
    # keep_outside x between), in data units
    delta = ((chosen - np.float32(keep_outside) * between) * np.float32(prep.basis.scale)).reshape(len(chosen), -1)
    b, y, x = data.shape
    region = (slice(0, y * f), slice(0, x * f)) if region is None else region
    out = np.empty((b, *(part.stop - part.start for part in region)), dtype=np.float32)
    per_band = 4.0 * (y * f) * (x * f + x) * 3
    size = compute.chunk_size(per_band, None, maximum=b) if memory is None else max(1, int(memory // per_band))
    mean = prep.basis.mean
    yield compute.Progress(0, b, message)
    for part in compute.chunks(b, size):
        block = interpolated(data[part], f, bicubic)
        block *= np.float32(keep_outside)
        block += np.float32(shrink.residual) * mean[part, None, None]
        block += (prep.basis.vectors[part] @ delta).reshape(block.shape)
        block[:, f // 2::f, f // 2::f] = measured[part]
        out[part] = block[:, region[0], region[1]]
        yield compute.Progress(part.stop, b, message)
    return out


@dataclass
class Report:
    """What :func:`network_upscale_steps` did on one cube: for the caller, a benchmark or a record.

    ``adapted``: fine-tuning steps run on the cube's own pairs (0: none); ``losses``: their first
    and last loss; ``check``: the self-check's choice (see :class:`napari_deeper.superres.adapt.Check`),
    None when there was none; ``weight``: the network's share used; ``bicubic``: the share of
    bicubic in the interpolation (None: the noise level's choice); ``method``: "network", or the
    interpolation the self-check chose instead, or "denoised network" (the network on the cube
    through the default denoiser, the measured pixels kept); ``notes``: what was skipped and why.
    """

    adapted: int = 0
    losses: tuple = ()
    seconds: float = 0.0
    check: object = None
    weight: float = 1.0
    method: str = "network"
    bicubic: float | None = None
    notes: list = field(default_factory=list)

    def summary(self) -> str:
        """One line for a status bar."""
        parts = []
        if self.adapted:
            parts.append(f"adapted {self.adapted} steps in {self.seconds:.1f} s (loss {self.losses[0]:.4g} -> "
                         f"{self.losses[-1]:.4g})")
        if self.method in ("bilinear", "bicubic"):
            parts.append(f"{self.method} chosen by the self-check")
        else:
            interpolation = "" if self.bicubic is None else f", bicubic share {self.bicubic:.0f}"
            parts.append(f"{'on the denoised cube, ' if self.method == 'denoised network' else ''}"
                         f"network weight {self.weight:.2f}{interpolation}")
        return "; ".join(parts + self.notes)


@dataclass(frozen=True)
class Streamed:
    """How :func:`network_upscale_steps` runs on a lazy cube, given by :mod:`napari_deeper.stream`
    (the layer above): ``denoise(cube)`` runs the default denoiser into a store (returning None
    when it cannot take the cube), ``interpolate(cube, scale, method)`` upscales into a store,
    ``fill(shape, block_steps, side)`` fills the result's store from ``block_steps(rows, cols)``
    for blocks of ``side`` LR pixels a side."""

    denoise: Callable
    interpolate: Callable
    fill: Callable


#: bytes of output in one streamed block: its side is the largest number of whole network tiles
#: that keeps its result (every band, float32) within this (one tile when a tile's is larger)
STREAM_BLOCK_BYTES = 512 << 20
#: bytes of the temporary arrays of one group of bands while a streamed block is put together
STREAM_BANDS_BYTES = 64 << 20


def network_upscale_steps(model, data, scale: int, device, tile: int = TILE,
                          overlap: int = OVERLAP, message: str = "super-resolving", adapt: str = "off",
                          adapt_steps: int | None = None, adapt_seconds: float | None = None,
                          report: Report | None = None, noise: str = "auto",
                          streamed: Streamed | None = None) -> compute.Steps[np.ndarray]:
    """Super-resolve ``data`` ``(B, Y, X)`` with a component-space correction network.

    ``adapt``: "off" uses the network as trained (weight 1); "auto" and "on" adapt it to this
    cube (:mod:`napari_deeper.superres.adapt`): fine-tune on the cube's own pairs when it is at
    least :func:`~napari_deeper.superres.adapt.adapt_min` pixels per side (16 at 2x), then let
    the self-check (at least :data:`~napari_deeper.superres.adapt.CHECK_MIN` pixels per side)
    choose between the network on the cube as it is and on the cube through the default
    denoiser, with their weights, or (at 2x) plain interpolation. A cube too small to fine-tune
    gets the network as trained; one too small for the self-check, the interpolation (weight 0);
    "auto" says so in the progress message, "on" also warns. A raw cube (``noise="auto"``)
    whose check could not weigh its denoised version (no check, or a coarser cube too small for
    the default denoiser) takes its values between the measured pixels from the interpolation of
    the denoised cube (weight 0), when the denoiser takes the cube. ``report``, when given, is
    filled in (a :class:`Report`). ``noise`` (:data:`NOISE_CHOICES`): "none" takes ``data``
    as noise-free (:func:`assumed_noise`), here and in the self-check; "denoised" is "auto" when
    the self-check runs and "none" when it does not (too small, or no adaptation).

    ``streamed`` (with ``data`` a dask array): the same pipeline on a cube larger than memory.
    Its basis and component images come from two passes over pixel blocks
    (:func:`prepare_steps`), the self-check runs on its central
    :data:`~napari_deeper.superres.adapt.CHECK_SIDE` pixels a side (as in memory), and the result goes into a
    store block by block of whole network tiles (:func:`correction_steps` of the block, then
    :func:`assemble_steps` of it with a :data:`~napari_deeper.superres.interpolation.MARGIN`),
    each block's result at most :data:`STREAM_BLOCK_BYTES` (or one tile's, when larger), put
    together a few bands at a time. It equals the in-memory result to float32 rounding on a cube of
    at most that side (tested).
    """
    if noise not in NOISE_CHOICES:
        raise ValueError(f"noise must be one of {', '.join(NOISE_CHOICES)}, got {noise!r}")
    from . import adapt as zero_shot

    report = Report() if report is None else report
    device = compute.select_device(device)
    upscaled = interpolate_steps if streamed is None else streamed.interpolate
    denoised = noise == "denoised"
    noise = "none" if denoised and adapt == "off" else "auto" if denoised else noise
    # stages: reading (a lazy cube), adapting, self-check, denoising (these three when adapting),
    # network, assembling
    first = 0 if streamed is None else 1
    n = 5 + first
    if streamed is None:
        prep = prepare(data, model.n_components, assumed_noise(data, noise))
    else:
        prep = yield from compute.stage(prepare_steps(data, model.n_components, noise), 0, n, f"{message}: reading")
    if prep is None:  # a spectrally constant cube: nothing for the network to sharpen
        report.method, report.weight = "bicubic", 0.0
        return (yield from upscaled(data, scale, "bicubic"))
    given = data
    if adapt != "off":
        tuned = yield from compute.stage(
            zero_shot.fine_tune_steps(model, data, scale, device, prep, adapt_steps, adapt_seconds, report,
                                      warn=adapt == "on"), first, n, message)
        model = tuned if tuned is not None else model
        check = yield from compute.stage(
            zero_shot.self_check_steps(model, zero_shot.check_region(data), scale, device, tile, overlap, report,
                                        warn=adapt == "on", bicubic=prep.shrink.bicubic, noise=noise), first + 1, n,
            message)
        if check is None and denoised:  # nothing guards the shrink: the denoised cube is taken as noise-free
            noise = "none"
            prep = replace(prep, shrink=Shrink(np.zeros(len(prep.scores)), 0.0))
        report.check = check
        if check is None:
            report.method, report.weight = "network", 0.0
        else:
            report.method, report.weight, report.bicubic = check.method, check.weight, check.bicubic
        weighed = check is not None and "denoised network" in check.errors
        if noise == "auto" and not denoised and report.method == "network" and not weighed:
            # the check could not weigh the cube through the default denoiser (too small for it): the
            # denoised cube's interpolation between the measured pixels (the check's weight was the raw cube's)
            report.method, report.weight, report.bicubic = "denoised network", 0.0, prep.shrink.bicubic
        if report.method == "denoised network":
            raw = prep
            given = yield from compute.stage(zero_shot.denoised_steps(data) if streamed is None else
                                             streamed.denoise(data), first + 2, n, f"{message}: denoising")
            prep = None if given is None else (yield from prepare_steps(given, model.n_components, noise))
            if prep is None:  # the check could denoise the coarser cube; this one failed
                given, prep = data, raw
                report.method = "network"
    if report.method in ("bilinear", "bicubic"):
        return (yield from compute.stage(upscaled(data, scale, report.method), n - 1, n, message))
    if streamed is not None:
        label = f"{message}: {report.summary()}"
        return (yield from compute.share(
            _streamed_assembly_steps(model, given, data, scale, prep, report, device, tile, overlap, streamed),
            (n - 2) * 1000, 2000, n * 1000, label))
    correction = None
    if report.weight > 0:
        correction = yield from compute.stage(
            correction_steps(model, prep.scores, scale, device, tile, overlap, "network"), n - 2, n, message)
    out = yield from compute.stage(assemble_steps(given, scale, prep, correction, report.weight, measured=data,
                                                  bicubic=report.bicubic), n - 1, n, f"{message}: {report.summary()}")
    return out


def _streamed_assembly_steps(model, given, measured, scale: int, prep: Prepared, report: Report, device,
                             tile: int, overlap: int, streamed: Streamed) -> compute.Steps:
    """The network's result of the lazy cube ``given`` (``measured``: the pixels kept) into a
    store, one block of whole network tiles at a time (see :func:`network_upscale_steps`)."""
    b, h, w = (int(n) for n in given.shape)
    f = scale
    widest = int(np.sqrt(STREAM_BLOCK_BYTES / (4 * b))) // f  # LR pixels a side within the budget
    side = tile * max(1, widest // tile)

    def block(rows, cols):
        near = tuple(slice(max(0, part.start - MARGIN), min(n, part.stop + MARGIN))
                     for part, n in ((rows, h), (cols, w)))
        region = tuple(slice((part.start - wide.start) * f, (part.stop - wide.start) * f)
                       for part, wide in zip((rows, cols), near))
        values = np.ascontiguousarray(given[:, near[0], near[1]], dtype=np.float32)
        kept = values if measured is given else np.ascontiguousarray(measured[:, near[0], near[1]], dtype=np.float32)
        correction = None
        if report.weight > 0:
            correction = np.zeros((len(prep.scores), *(f * (wide.stop - wide.start) for wide in near)), np.float32)
            correction[:, region[0], region[1]] = yield from compute.share(
                correction_steps(model, prep.scores, f, device, tile, overlap, rows=rows, cols=cols), 0, 1, 2)
        part = replace(prep, scores=prep.scores[:, near[0], near[1]])
        return (yield from compute.share(assemble_steps(values, f, part, correction, report.weight, measured=kept,
                                                        bicubic=report.bicubic, region=region,
                                                        memory=STREAM_BANDS_BYTES), 1, 1, 2))

    return (yield from streamed.fill((b, h * f, w * f), block, side))
