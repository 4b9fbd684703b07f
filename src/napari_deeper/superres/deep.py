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

from dataclasses import dataclass, field, replace

import numpy as np

from .. import compute
from .interpolation import interpolate, interpolate_steps

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


def band_noise(cube: np.ndarray) -> np.ndarray:
    """White-noise variance of each band ``(B,)`` float64, from second differences along the bands.

    For noise that is independent from band to band, ``y[b-1] - 2 y[b] + y[b+1]`` has six times the
    noise variance; its median absolute value over the pixels (at most :data:`BASIS_PIXELS`,
    evenly strided) is robust to Raman bands and cosmic-ray spikes, which are sparse. The end
    bands take their neighbour's value. Fewer than 3 bands: zeros (the noise cannot be measured
    along the spectra, so nothing is treated as noise).
    """
    b = cube.shape[0]
    if b < 3:
        return np.zeros(b)
    flat = cube.reshape(b, -1)
    sample = flat[:, :: max(1, flat.shape[1] // BASIS_PIXELS)].astype(np.float64)
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


def noise_shrink(cube: np.ndarray, basis: Basis, scores: np.ndarray, noise: np.ndarray) -> Shrink:
    """:class:`Shrink` of ``cube`` given its basis, its normalised ``scores`` and per-band ``noise``."""
    k = scores.shape[0]
    vectors = basis.vectors.astype(np.float64)
    scale2 = float(basis.scale) ** 2
    component_noise = (vectors**2).T @ noise  # noise variance in each component (data units)
    component_var = scores.reshape(k, -1).astype(np.float64).var(axis=1) * scale2
    with np.errstate(divide="ignore", invalid="ignore"):
        components = np.where(component_var > 0, np.clip(component_noise / component_var, 0.0, 1.0), 0.0)
    b = cube.shape[0]
    flat = cube.reshape(b, -1)
    sample = flat[:, :: max(1, flat.shape[1] // BASIS_PIXELS)].astype(np.float64)
    outside = float(sample.var(axis=1).sum() - component_var.sum())
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
    basis = fit_basis(cube, n_components)
    if basis.scale <= 0 or not np.isfinite(basis.scale):
        return None
    scores = basis.scores(cube)
    noise = band_noise(cube) if noise is None else noise
    return Prepared(basis, scores, noise_shrink(cube, basis, scores, noise))


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
                   bicubic: float | None = None) -> compute.Steps[np.ndarray]:
    """The ``(B, Y*f, X*f)`` cube from the parts of ``data``, a few bands at a time.

    Between the measured pixels: the component images are ``weight`` x the network's
    (:func:`network_scores`) plus ``1 - weight`` x their interpolation, each times one minus its
    noise share; what lies outside the basis is interpolated and times one minus its noise share.
    The measured pixels (output ``f*i + f//2``) are the values of ``measured`` (default: ``data``;
    the raw cube when ``data`` is its denoised version). With ``weight`` 1, a zero correction and
    a noise-free cube this is exactly bicubic. ``bicubic`` (0..1) sets the interpolation in place
    of the noise level's choice (:attr:`Shrink.bicubic`).
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
    out = np.empty((b, y * f, x * f), dtype=np.float32)
    per_band = 4.0 * (y * f) * (x * f + x) * 3
    size = compute.chunk_size(per_band, None, maximum=b)
    mean = prep.basis.mean
    yield compute.Progress(0, b, message)
    for part in compute.chunks(b, size):
        block = interpolated(data[part], f, bicubic)
        block *= np.float32(keep_outside)
        block += np.float32(shrink.residual) * mean[part, None, None]
        block += (prep.basis.vectors[part] @ delta).reshape(block.shape)
        block[:, f // 2::f, f // 2::f] = measured[part]
        out[part] = block
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


def network_upscale_steps(model, data: np.ndarray, scale: int, device, tile: int = TILE,
                          overlap: int = OVERLAP, message: str = "super-resolving", adapt: str = "off",
                          adapt_steps: int | None = None, adapt_seconds: float | None = None,
                          report: Report | None = None, noise: str = "auto") -> compute.Steps[np.ndarray]:
    """Super-resolve ``data`` ``(B, Y, X)`` with a component-space correction network.

    ``adapt``: "off" uses the network as trained (weight 1); "auto" and "on" adapt it to this
    cube (:mod:`napari_deeper.superres.adapt`): fine-tune on the cube's own pairs when it is at
    least :func:`~napari_deeper.superres.adapt.adapt_min` pixels per side (16 at 2x), then let
    the self-check (at least :data:`~napari_deeper.superres.adapt.CHECK_MIN` pixels per side)
    choose between the network on the cube as it is and on the cube through the default
    denoiser, with their weights, or (at 2x) plain interpolation. A cube too small to fine-tune
    gets the network as trained; one too small for the self-check, the noise-aware interpolation
    (weight 0). "auto" says so in the progress message, "on" also warns. ``report``, when given,
    is filled in (a :class:`Report`). ``noise`` (:data:`NOISE_CHOICES`): "none" takes ``data``
    as noise-free (:func:`assumed_noise`), here and in the self-check; "denoised" is "auto" when
    the self-check runs and "none" when it does not (too small, or no adaptation).
    """
    if noise not in NOISE_CHOICES:
        raise ValueError(f"noise must be one of {', '.join(NOISE_CHOICES)}, got {noise!r}")
    from . import adapt as zero_shot

    report = Report() if report is None else report
    device = compute.select_device(device)
    denoised = noise == "denoised"
    noise = "none" if denoised and adapt == "off" else "auto" if denoised else noise
    prep = prepare(data, model.n_components, assumed_noise(data, noise))
    if prep is None:  # a spectrally constant cube: nothing for the network to sharpen
        report.method, report.weight = "bicubic", 0.0
        return (yield from interpolate_steps(data, scale, "bicubic"))
    n = 5  # adapting, self-check, denoising, network, assembling (the first three when adapting)
    given = data
    if adapt != "off":
        tuned = yield from compute.stage(
            zero_shot.fine_tune_steps(model, data, scale, device, prep, adapt_steps, adapt_seconds, report,
                                      warn=adapt == "on"), 0, n, message)
        model = tuned if tuned is not None else model
        check = yield from compute.stage(
            zero_shot.self_check_steps(model, data, scale, device, tile, overlap, report,
                                        warn=adapt == "on", bicubic=prep.shrink.bicubic, noise=noise), 1, n,
            message)
        if check is None and denoised:  # nothing guards the shrink: the denoised cube is taken as noise-free
            noise = "none"
            prep = replace(prep, shrink=noise_shrink(data, prep.basis, prep.scores, assumed_noise(data, noise)))
        report.check = check
        if check is None:
            report.method, report.weight = "network", 0.0
        else:
            report.method, report.weight, report.bicubic = check.method, check.weight, check.bicubic
        if report.method == "denoised network":
            given = yield from compute.stage(zero_shot.denoised_steps(data), 2, n, f"{message}: denoising")
            prep = prepare(given, model.n_components, assumed_noise(given, noise)) if given is not None else None
            if prep is None:  # the check could denoise the coarser cube; this one failed
                given, prep = data, prepare(data, model.n_components, assumed_noise(data, noise))
                report.method = "network"
    if report.method in ("bilinear", "bicubic"):
        return (yield from compute.stage(interpolate_steps(data, scale, report.method), n - 1, n, message))
    correction = None
    if report.weight > 0:
        correction = yield from compute.stage(
            correction_steps(model, prep.scores, scale, device, tile, overlap, "network"), n - 2, n, message)
    out = yield from compute.stage(assemble_steps(given, scale, prep, correction, report.weight, measured=data,
                                                  bicubic=report.bicubic), n - 1, n, f"{message}: {report.summary()}")
    return out
