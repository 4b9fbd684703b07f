"""Zero-shot adaptation of a super-resolution network to the one cube it is given.

The low-resolution cube gives its own training and test pairs: skip-sampled again by a factor
``f`` (LR/f), it is the input whose answer (LR) is known (ZSSR, Shocher et al., CVPR 2018).

- :func:`fine_tune_steps` fine-tunes a private copy of the network on those pairs, in the cube's
  own principal-component space, from the shipped weights: random crops, rotated and flipped
  before skip-sampling, L1 loss on the correction to their bicubic upscale, a small learning rate
  (:data:`ADAPT_LR`) for at most :data:`ADAPT_STEPS` steps and :data:`ADAPT_SECONDS` seconds.
  The pairs' pixels are ``f`` times coarser than the real problem, and cells do not look the same
  at every scale: longer or faster fine-tuning learned the coarse scale and made the real one
  worse (measured in ``docs/superres.md``), hence the gentle schedule.
- :func:`self_check_steps` scores the pipeline on the pairs of the cube skip-sampled by 2, where
  the answer is known, against the cube's own pixels between the measured ones. Their noise is
  independent of the input's, so the error there measures the error against the clean signal
  plus a constant (the Noise2Noise argument): the check chooses the network's weight (closed form,
  clipped to 0..1) and, at 2x, falls back to plain bilinear or bicubic interpolation when either
  does better on it, so the result is never worse than the best interpolation *on the check*.

Both run through ``*_steps`` generators: progress (with the fine-tuning loss) at every step, a
cancel stops at the next yield. On a GPU an out-of-memory error halves the batch and, at one
crop, moves the fine-tuning to the CPU with a warning.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .. import compute
from .deep import Prepared, assemble_steps, correction_steps, interpolated, network_scores, prepare
from .interpolation import interpolate

#: fine-tuning needs pairs whose input is at least this many pixels per side (LR >= f x this)
ADAPT_INPUT = 8
#: the self-check needs the cube skip-sampled by 2 to be at least this many pixels per side
CHECK_INPUT = 3
ADAPT_STEPS = 60
ADAPT_SECONDS = 15.0
ADAPT_LR = 2e-5
#: crop size of the fine-tuning pairs' input (pixels), crops per step, mirrored context (pixels)
PATCH = 12
BATCH = 8
PAD = 4


def adapt_min(scale: int) -> int:
    """Fewest LR pixels per side for fine-tuning at ``scale`` (16 at 2x)."""
    return ADAPT_INPUT * scale


#: fewest LR pixels per side for the self-check
CHECK_MIN = 2 * CHECK_INPUT
#: a cube is self-checked on its central part, at most this many pixels a side
CHECK_SIDE = 256


def check_region(data) -> np.ndarray:
    """The cube the self-check runs on: the central :data:`CHECK_SIDE` pixels a side of ``data``
    (all of it when smaller), in memory or read from a lazy (dask) cube as float32; so the check's
    cost is bounded, and a streamed cube is checked as the same cube in memory is."""
    from ..io._lazy import is_lazy

    window = [slice(max(0, (n - CHECK_SIDE) // 2), max(0, (n - CHECK_SIDE) // 2) + CHECK_SIDE) for n in data.shape[1:]]
    if not is_lazy(data):
        return data[:, window[0], window[1]]
    return np.ascontiguousarray(data[:, window[0], window[1]], dtype=np.float32)


@dataclass(frozen=True)
class Check:
    """The self-check's outcome: the method chosen ("network", "denoised network", "bilinear" or
    "bicubic"), the network's weight in it (0 for an interpolation), and the mean squared errors
    (data units squared) it compared on the check pairs, one per candidate, plus
    ``"interpolation"``: the pipeline on the raw cube with weight 0; ``bicubic``: the share of
    bicubic in the pipeline's interpolation (None: its cube's noise level's; for the denoised
    cube, the raw cube's: the interpolation follows the scan's noise, not the denoiser's output)."""

    method: str
    weight: float
    errors: dict
    bicubic: float | None = None


def _note(report, text: str, warn: bool) -> str:
    report.notes.append(text)
    if warn:
        warnings.warn(text, RuntimeWarning, stacklevel=4)
    return text


def dihedral(patch: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 rotations/flips of a square ``(..., S, S)`` patch."""
    out = np.rot90(patch, k % 4, axes=(-2, -1))
    return out[..., ::-1] if k >= 4 else out


def pairs(scores: np.ndarray, scale: int, patch: int, batch: int, rng: np.random.Generator):
    """Fine-tuning pairs from the cube's own component images ``(K, h, w)``.

    Returns ``(inputs (N, K, p + 2 PAD, p + 2 PAD), targets (N, K, f p, f p))``: a random crop of
    ``f p`` pixels, rotated or flipped, skip-sampled by ``f`` (so the grid stays right for every
    transform), its border mirrored by :data:`PAD` pixels as tiles are at inference; the target
    is the crop minus the bicubic upscale of its skip-sampled input.
    """
    f = scale
    side = f * patch
    _, h, w = scores.shape
    inputs, targets = [], []
    for _ in range(batch):
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = dihedral(scores[:, y0:y0 + side, x0:x0 + side], int(rng.integers(8)))
        small = np.ascontiguousarray(crop[:, f // 2::f, f // 2::f])
        inputs.append(np.pad(small, ((0, 0), (PAD, PAD), (PAD, PAD)), mode="symmetric"))
        targets.append(crop - interpolate(small, f, "bicubic"))
    return np.stack(inputs).astype(np.float32), np.stack(targets).astype(np.float32)


def _train_step(model, optimizer, inputs: np.ndarray, targets: np.ndarray, scale: int, device) -> float:
    """One Adam step on a batch; returns the L1 loss."""
    import torch

    model.to(device)
    out = model(torch.from_numpy(inputs).to(device), scale)
    f, p = scale, targets.shape[-1] // scale
    out = out[..., f * PAD:f * (PAD + p), f * PAD:f * (PAD + p)]
    loss = torch.nn.functional.l1_loss(out, torch.from_numpy(targets).to(device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def fine_tune_steps(model, data: np.ndarray, scale: int, device, prep: Prepared, steps: int | None,
                    seconds: float | None, report, warn: bool = False) -> compute.Steps:
    """Fine-tune a copy of ``model`` on ``data``'s own LR/f -> LR pairs; return it (None: too small).

    ``prep`` holds the cube's basis and scores; ``steps`` and ``seconds`` bound the work (the
    steps run are recorded in ``report``, with the losses). ``warn``: say with a warning (not only
    in ``report`` and the progress message) when the cube is too small to fine-tune.
    """
    import torch

    steps = ADAPT_STEPS if steps is None else int(steps)
    seconds = ADAPT_SECONDS if seconds is None else float(seconds)
    h, w = data.shape[1:]
    least = adapt_min(scale)
    if min(h, w) < least:
        text = _note(report, f"{h} x {w} pixels is too small to fine-tune at {scale}x (it needs {least} x {least})",
                     warn)
        yield compute.Progress(1, 1, text)
        return None
    if steps < 1:
        yield compute.Progress(1, 1, "no fine-tuning steps asked for")
        return None
    patch = min(PATCH, h // scale, w // scale)
    tuned = copy.deepcopy(model).train()  # moved to the device by each step
    optimizer = torch.optim.Adam(tuned.parameters(), lr=ADAPT_LR)
    rng = np.random.default_rng(0)
    batch = BATCH
    losses: list[float] = []
    started = time.perf_counter()
    yield compute.Progress(0, steps, "adapting to the cube")
    try:
        while len(losses) < steps:
            inputs, targets = pairs(prep.scores, scale, patch, batch, rng)
            try:
                losses.append(_train_step(tuned, optimizer, inputs, targets, scale, device))
            except Exception as error:  # noqa: BLE001 - narrowed just below
                if device.type == "cpu" or not compute.is_out_of_memory(error):
                    raise
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                if batch > 1:
                    batch = max(1, batch // 2)
                    continue
                warnings.warn(f"{device} ran out of memory fine-tuning on one crop; continuing on the CPU",
                              RuntimeWarning, stacklevel=2)
                device = torch.device("cpu")
                tuned.to(device)
                optimizer = torch.optim.Adam(tuned.parameters(), lr=ADAPT_LR)
                continue
            done = len(losses)
            yield compute.Progress(done, steps, f"adapting: step {done}/{steps}, loss {losses[-1]:.4g}",
                                   loss=float(np.mean(losses[-10:])))
            if time.perf_counter() - started > seconds and done < steps:
                _note(report, f"fine-tuning stopped after {done} of {steps} steps: the {seconds:g} s budget "
                      "was spent (a rerun may stop at another step; for a reproducible result raise "
                      "adapt_seconds or set adapt_steps)", True)
                break
    finally:
        tuned.eval()
    report.adapted = len(losses)
    report.losses = (float(np.mean(losses[:5])), float(np.mean(losses[-5:])))
    report.seconds = time.perf_counter() - started
    return tuned


def _pixel_errors(estimate: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Squared error of each pixel in ``mask`` (mean over the bands)."""
    return np.mean((estimate[:, mask].astype(np.float64) - target[:, mask]) ** 2, axis=0)


def denoised_steps(data: np.ndarray, method: str | None = None) -> compute.Steps:
    """``data`` through the denoiser ``method`` (None: the default), or None when it cannot take
    it (a ``ValueError``)."""
    from ..denoise import denoise_steps

    try:
        out = yield from denoise_steps(data, method)
    except ValueError:
        return None
    return np.asarray(out, dtype=np.float32)


def _variant_steps(model, given: np.ndarray, measured: np.ndarray, target: np.ndarray, mask: np.ndarray,
                   noise: np.ndarray, bicubic: float | None, device, tile: int, overlap: int,
                   window=(slice(None), slice(None))) -> compute.Steps:
    """The pipeline run 2x on ``given`` (a coarser cube, raw or denoised) with the ``measured``
    pixels kept and ``bicubic`` the share of bicubic in its interpolation (None: the noise
    level's), its ``window`` scored against ``target`` at the pixels of ``mask``: with ``e`` the
    target minus the pipeline at network weight 0 and ``p`` what weight 1 adds (so the error at
    weight w is ``e - w p``), returns the per-pixel means over the bands of ``e**2``, ``e p`` and
    ``p**2`` (:func:`_fit` weighs them; three numbers a pixel, whatever the band count)."""
    prep = prepare(given, model.n_components, noise)
    if prep is None:
        error = (target - interpolate(measured, 2, "bicubic")[:, window[0], window[1]])[:, mask].astype(np.float64)
        zero = np.zeros(error.shape[1])
        return np.mean(error**2, axis=0), zero, zero
    bicubic = prep.shrink.bicubic if bicubic is None else bicubic
    correction = yield from compute.share(
        correction_steps(model, prep.scores, 2, device, tile, overlap, "self-check"), 0, 1, 2)
    base = yield from compute.share(
        assemble_steps(given, 2, prep, correction, 0.0, measured=measured, bicubic=bicubic), 1, 1, 2)
    error = (target - base[:, window[0], window[1]])[:, mask].astype(np.float64)
    del base
    # the network's part, added with weight w: V (1 - shares) (network - interpolation) x scale
    between = interpolated(prep.scores, 2, bicubic)
    part = (1.0 - prep.shrink.components)[:, None, None] * (network_scores(prep, correction, 2) - between)
    part = prep.basis.vectors.astype(np.float64) @ (part[:, window[0], window[1]][:, mask].astype(np.float64)
                                                    * prep.basis.scale)
    return np.mean(error**2, axis=0), np.mean(error * part, axis=0), np.mean(part**2, axis=0)


def _fit(pieces: list) -> tuple[float, np.ndarray, np.ndarray]:
    """The network's weight (closed form, clipped to 0..1) that minimises the squared error over
    ``pieces`` (:func:`_variant_steps` of each coarser cube), and the per-pixel squared errors
    (mean over the bands) at that weight and at weight 0."""
    squares, inner, power = (np.concatenate(column) for column in zip(*pieces))
    total = float(np.sum(power))
    weight = float(np.clip(np.sum(inner) / total, 0.0, 1.0)) if total > 0 else 0.0
    return weight, squares - 2 * weight * inner + weight**2 * power, squares


#: where the self-check's four coarser cubes start (y, x): each skip-samples the cube by 2, and
#: together they give four times the pixels to judge by that one would
OFFSETS = ((1, 1), (0, 0), (0, 1), (1, 0))


def _check_pairs(data: np.ndarray, offset=(1, 1)):
    """The self-check's input (``data`` skip-sampled by 2 from ``offset``), its target (``data``
    where the input's 2x upscale lands), the upscale's ``window`` (slices) that lands there, and
    the mask of the target's pixels the input does not hold. Output pixel ``2i + 1`` lies on input
    pixel ``i``, i.e. on ``data`` pixel ``2i + offset``."""
    small = np.ascontiguousarray(data[:, offset[0]::2, offset[1]::2])
    window, rows, measured = [], [], []
    for o, n, size in zip(offset, small.shape[1:], data.shape[1:]):
        start, stop = 1 - o, min(2 * n, size + 1 - o)
        window.append(slice(start, stop))
        rows.append(slice(start - 1 + o, stop - 1 + o))
        measured.append(np.arange(start, stop) % 2 == 1)
    mask = ~np.outer(*measured)
    return small, data[:, rows[0], rows[1]], mask, tuple(window)


def self_check_steps(model, data: np.ndarray, scale: int, device, tile: int, overlap: int, report,
                     warn: bool = False, bicubic: float = 1.0, noise: str = "auto") -> compute.Steps:
    """Choose how to fill in ``data``'s new pixels, on ``data`` skip-sampled by 2 -> ``data``
    (from each of the four :data:`OFFSETS`, all scored together).

    Candidates: the pipeline on the cube as it is ("network", the network's weight chosen in
    closed form), the same on the cube through the default denoiser ("denoised network": the
    measured pixels still keep their own values), and, at 2x, plain bilinear and bicubic.
    Returns a :class:`Check`, or None (recorded in ``report``) when ``data`` is smaller than
    :data:`CHECK_MIN` pixels per side. Each candidate is the one used on the cube (its noise
    level, its basis refitted on the coarser cube); errors are counted at the cube's pixels that
    the coarser cube does not hold. The check runs at 2x whatever the ``scale`` asked for (at 3x
    and 4x the coarser cube would be too small to say anything); its choice and weight are used
    at every scale, but only at 2x may plain interpolation replace the pipeline (which of bilinear
    and bicubic is best depends on the scale). ``bicubic``: the share of bicubic that the cube's
    noise level chose (:attr:`~napari_deeper.superres.deep.Shrink.bicubic`); the denoised cube is
    interpolated with it too, as the interpolation follows the scan's noise, not the denoiser's.
    ``noise``: "none" takes the cube (and its denoised version) as noise-free
    (:func:`~napari_deeper.superres.deep.assumed_noise`).
    """
    h, w = data.shape[1:]
    if min(h, w) < CHECK_MIN:
        text = _note(report, f"{h} x {w} pixels is too small for the self-check (it needs {CHECK_MIN} x "
                     f"{CHECK_MIN}): the network is not used, only the interpolation", warn)
        yield compute.Progress(1, 1, text)
        return None
    from .deep import assumed_noise

    raw_noise = assumed_noise(data, noise)
    interpolations = {"bilinear": [], "bicubic": []}
    pieces = {"network": [], "denoised network": []}
    n = len(OFFSETS)
    for index, offset in enumerate(OFFSETS):
        small, target, mask, window = _check_pairs(data, offset)
        for name, found in interpolations.items():
            found.append(_pixel_errors(interpolate(small, 2, name)[:, window[0], window[1]], target, mask))
        pieces["network"].append((yield from compute.share(
            _variant_steps(model, small, small, target, mask, raw_noise, None, device, tile, overlap, window),
            3 * index, 1, 3 * n, "self-check")))
        if "denoised network" not in pieces:
            continue
        clean = yield from compute.share(denoised_steps(small), 3 * index + 1, 1, 3 * n, "self-check: denoising")
        if clean is None:  # the default denoiser cannot take the coarser cube
            del pieces["denoised network"]
            continue
        pieces["denoised network"].append((yield from compute.share(
            _variant_steps(model, clean, small, target, mask, assumed_noise(clean, noise), bicubic, device, tile,
                           overlap, window), 3 * index + 2, 1, 3 * n, "self-check")))
    errors = {name: float(np.concatenate(found).mean()) for name, found in interpolations.items()}
    weights = {}
    for name, found in pieces.items():
        weights[name], at_weight, at_zero = _fit(found)
        errors[name] = float(at_weight.mean())
        if name == "network":
            errors["interpolation"] = float(at_zero.mean())
    candidates = [*weights, *(("bilinear", "bicubic") if scale == 2 else ())]
    best = min(candidates, key=errors.get)
    weight = weights.get(best, 0.0)
    yield compute.Progress(1, 1, f"self-check: {best}" + (f", network weight {weight:.2f}" if best in weights else ""))
    bicubic = bicubic if best == "denoised network" else None
    return Check(best, weight, errors, bicubic)


#: a candidate other than plain bilinear must lower the scan check's error by this many standard
#: errors (paired over the check's pixels) to be chosen (docs/superres.md: decided on test cases)
SIGNIFICANCE = 2.0


def scan_check_steps(model, scan: np.ndarray, device, tile: int, overlap: int,
                     denoiser: str | None) -> compute.Steps:
    """How to upscale 2x a cube denoised from the raw ``scan``, judged on the scan itself.

    The scan skip-sampled by 2, from each of the four :data:`OFFSETS` (four times the pixels to
    judge by than one), goes through ``denoiser`` (a denoising method's name); the candidates
    upscale that: plain bilinear and bicubic, and the network's pipeline (the cube taken as
    noise-free, its measured pixels the denoised values, the network's weight in closed form)
    with a bilinear or a bicubic base. Each is scored against the scan's own pixels between the
    measured ones, whose noise is independent of the candidates' input. (A denoised cube's
    residual error is shared between neighbours, so the upscaler's own check, scored on it,
    favoured bicubic and the network where bilinear was better; measured in docs/superres.md.)
    Plain bilinear, the smoothest, is kept unless a candidate lowers the error by
    :data:`SIGNIFICANCE` standard errors (paired over every offset's pixels). Returns a
    :class:`Check` ("bilinear", "bicubic" or "network"; ``bicubic``: the chosen pipeline's
    interpolation share), or None when the denoiser cannot take the scan's coarser versions. The
    scan has at least :data:`CHECK_MIN` pixels a side (the caller's condition).
    """
    scan = np.asarray(scan, dtype=np.float32)
    shares = {"bilinear": 0.0, "bicubic": 1.0, "network": 0.0, "network, bicubic base": 1.0}
    found = {name: [] for name in shares}
    n = len(OFFSETS)
    for index, offset in enumerate(OFFSETS):
        small, target, mask, window = _check_pairs(scan, offset)
        clean = yield from compute.share(denoised_steps(small, denoiser), 3 * index, 1, 3 * n,
                                         "self-check on the scan: denoising")
        if clean is None:
            return None
        for name in ("bilinear", "bicubic"):
            found[name].append(_pixel_errors(interpolate(clean, 2, name)[:, window[0], window[1]], target, mask))
        for part, name in enumerate(("network", "network, bicubic base")):
            found[name].append((yield from compute.share(
                _variant_steps(model, clean, clean, target, mask, np.zeros(len(clean)), shares[name], device, tile,
                               overlap, window), 3 * index + 1 + part, 1, 3 * n, "self-check on the scan")))
    pixels = {name: np.concatenate(found[name]) for name in ("bilinear", "bicubic")}
    weights = {"bilinear": 0.0, "bicubic": 0.0}
    for name in ("network", "network, bicubic base"):
        weights[name], pixels[name], _ = _fit(found[name])
    errors = {name: float(values.mean()) for name, values in pixels.items()}

    def gain(name: str) -> float:  # how many standard errors below bilinear
        difference = pixels["bilinear"] - pixels[name]
        spread = difference.std(ddof=1) / np.sqrt(difference.size) if difference.size > 1 else 0.0
        return float(difference.mean() / spread) if spread > 0 else 0.0

    significant = [name for name in pixels if name != "bilinear" and gain(name) >= SIGNIFICANCE]
    best = min(significant, key=errors.get) if significant else "bilinear"
    method = "network" if best.startswith("network") else best
    yield compute.Progress(1, 1, f"self-check on the scan: {best}"
                           + (f", network weight {weights[best]:.2f}" if method == "network" else ""))
    return Check(method, weights[best], errors, shares[best])
