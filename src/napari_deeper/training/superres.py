"""Training and fine-tuning of the super-resolution networks (``hyrisr``, ``srresnet``).

The networks work on principal-component images (see :mod:`napari_deeper.superres.deep`), so
training pairs live in that space too: for each high-resolution cube, a basis is fitted to its
skip-sampled low-resolution version (exactly as at inference), and the *whole* HR cube is
projected on it, once. Training samples are then cheap: crop the HR score images, rotate/flip
the crop (the dihedral group), skip-sample it to get the LR input (so every transform keeps the
sampling grid right, for even and odd scales alike), and the target is the HR crop minus the
bicubic upscale of that input. The loss (L1) is taken on the centre of each patch only, away from
the zero padding at its border, as inference discards tile borders too.

- ``python -m napari_deeper.training superres --arch hyrisr ...`` trains on simulated cells
  (:mod:`napari_deeper.simulate`), with checkpoints to resume, and saves the weights
  with JSON and Markdown cards.
- :func:`finetune_upscaler_steps` fine-tunes a trained model on the user's own HR cubes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import compute
from .._validation import as_cube
from ..simulate.textures import TEXTURES
from ..superres import SCALES, check_scale
from ..superres.adapt import dihedral
from ..superres.deep import fit_basis
from ..superres.interpolation import interpolate
from . import cards

#: low-resolution patch size per scale (input to the network), and the margin left out of the loss
PATCH = {2: 24, 3: 18, 4: 14}
MARGIN = 3
#: photon counts at the brightest value of the noisy simulated training cells (log-uniform)
PHOTONS = (300.0, 10000.0)
#: band counts of the simulated training images (the first shipped models' default)
BANDS = (150, 300)
DEFAULT_CONFIGS = {
    "hyrisr": {"n_components": 12, "features": 32, "groups": 3, "blocks": 4, "reduction": 8,
               "scales": list(SCALES)},
    "srresnet": {"n_components": 12, "features": 32, "blocks": 16, "scales": list(SCALES)},
}


@dataclass
class ScorePair:
    """Normalised component images of one HR cube: the network's source and its target.

    ``source`` comes from the cube the LR scan is skip-sampled from (noisy in simulation, the
    user's HR cube in fine-tuning); ``target`` from the HR reference. Both ``(K, Y, X)``.
    """

    source: np.ndarray
    target: np.ndarray


def score_pair(source_hr: np.ndarray, target_hr: np.ndarray, scale: int,
               n_components: int) -> ScorePair:
    """Fit the basis on ``source_hr`` skip-sampled by ``scale`` and project both HR cubes on it."""
    offset = scale // 2
    lr = np.ascontiguousarray(source_hr[:, offset::scale, offset::scale])
    basis = fit_basis(lr, n_components)
    if basis.scale <= 0:
        raise ValueError("a training cube is spectrally constant: there is nothing to learn from")
    return ScorePair(basis.scores(source_hr), basis.scores(target_hr))


def sample_batch(pairs: list[ScorePair], scale: int, batch: int, rng: np.random.Generator,
                 patch: int | None = None):
    """``(inputs (N, K, p, p), targets (N, K, f(p-2m), f(p-2m)))`` float32 training samples.

    Targets are corrections (HR minus the bicubic upscale of the LR input) on the patch centre.
    """
    p = PATCH[scale] if patch is None else patch
    f = scale
    side = f * p
    inputs, hr_crops = [], []
    for _ in range(batch):
        pair = pairs[rng.integers(len(pairs))]
        _, ny, nx = pair.source.shape
        y0 = int(rng.integers(0, ny - side + 1))
        x0 = int(rng.integers(0, nx - side + 1))
        k = int(rng.integers(8))
        source = dihedral(pair.source[:, y0:y0 + side, x0:x0 + side], k)
        target = dihedral(pair.target[:, y0:y0 + side, x0:x0 + side], k)
        inputs.append(source[:, f // 2::f, f // 2::f])
        hr_crops.append(target)
    inputs = np.ascontiguousarray(np.stack(inputs), dtype=np.float32)
    hr = np.stack(hr_crops)
    m = MARGIN if p > 2 * MARGIN + 2 else 0
    centre = slice(f * m, f * (p - m))
    correction = hr[..., centre, centre] - interpolate(inputs, f, "bicubic")[..., centre, centre]
    return inputs, np.ascontiguousarray(correction, dtype=np.float32)


def _loss_and_step(model, optimizer, inputs, targets, scale, device) -> float:
    import torch

    x = torch.from_numpy(inputs).to(device)
    y = torch.from_numpy(targets).to(device)
    out = model(x, scale)
    m = (out.shape[-1] - y.shape[-1]) // 2
    if m:
        out = out[..., m:out.shape[-2] - m, m:out.shape[-1] - m]
    loss = torch.nn.functional.l1_loss(out, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


# --------------------------------------------------------------------------------------------
# Fine-tuning on the user's own high-resolution cubes


def finetune_upscaler_steps(base_model: str, hr, scale: int = 2, steps: int = 300,
                            lr: float = 1e-4, device=None, seed: int = 0,
                            batch: int = 8) -> compute.Steps[tuple]:
    """Fine-tune the super-resolution model ``base_model`` on the user's HR cube(s).

    ``hr`` is one ``(B, Y, X)`` cube or a list of them (any band count); pairs are made by
    skip-sampling them by ``scale``, with random patches, rotations and flips. Yields
    ``Progress(step, steps, message, loss=...)``; returns ``(model, card)``. Save with
    ``save_model(model, name, card["arch"], card["config"], card)``; the card holds the task
    (``"superres"``), base model, scale, steps, learning rate, losses, and the bicubic and model
    PSNR on the given cubes before and after.
    """
    import torch

    from ..models import load_model
    from ..models.registry import parameter_count

    scale = check_scale(scale)
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    cubes = [as_cube(c, "high-resolution cube") for c in (hr if isinstance(hr, (list, tuple)) else [hr])]
    if not cubes:
        raise ValueError("no high-resolution cube given")
    smallest = min(min(c.shape[1:]) for c in cubes)
    patch = min(PATCH[scale], smallest // scale)
    if patch < 6:
        raise ValueError(
            f"a high-resolution cube of {smallest} pixels per side is too small to fine-tune at "
            f"{scale}x: it needs at least {6 * scale} pixels per side"
        )
    dev = compute.select_device(device)
    model, base_card = load_model(base_model, device="cpu")
    if scale not in model.scales:
        raise ValueError(f"model {base_model!r} has no {scale}x upsampler (it has {model.scales})")
    pairs = [score_pair(c, c, scale, model.n_components) for c in cubes]
    before = _evaluate_cubes(model, cubes, scale, dev)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr * 0.1)
    losses = []
    yield compute.Progress(0, steps, f"fine-tuning {base_model} at {scale}x")
    for step in range(1, steps + 1):
        inputs, targets = sample_batch(pairs, scale, batch, rng, patch)
        losses.append(_loss_and_step(model, optimizer, inputs, targets, scale, dev))
        schedule.step()
        yield compute.Progress(step, steps, f"step {step}/{steps}", loss=float(np.mean(losses[-10:])))
    model.eval()
    after = _evaluate_cubes(model, cubes, scale, dev)
    card = {
        "task": "superres",
        "base_model": base_model,
        "arch": base_card.get("arch"),
        "config": base_card.get("config"),
        "fine_tuned_scale": scale,
        "scales": list(model.scales),
        "parameters": parameter_count(model),
        "training": {
            "data": f"{len(cubes)} user high-resolution cube(s) {[list(c.shape) for c in cubes]}, "
                    f"skip-sampled {scale}x; random {patch}-pixel LR patches, rotations and flips",
            "steps": steps, "lr": lr, "batch": batch, "seed": seed, "loss": "L1",
            "first_loss": losses[0], "last_loss": float(np.mean(losses[-10:])),
        },
        "metrics": {"on_training_cubes": {"before": before, "after": after}},
    }
    return model.cpu(), card


def _evaluate_cubes(model, cubes, scale, device) -> dict:
    """Mean PSNR of bicubic and of ``model`` on HR ``cubes`` skip-sampled by ``scale``."""
    from .. import metrics
    from ..superres.deep import network_upscale_steps

    model.eval()
    rows = {"bicubic": [], "model": []}
    for cube in cubes:
        lr = cube[:, scale // 2::scale, scale // 2::scale]
        rows["bicubic"].append(metrics.psnr(interpolate(lr, scale, "bicubic"), cube, crop="overlap"))
        rows["model"].append(metrics.psnr(
            compute.run(network_upscale_steps(model, lr, scale, device)), cube, crop="overlap"))
    return {name: float(np.mean(values)) for name, values in rows.items()}


# --------------------------------------------------------------------------------------------
# Training on simulated cells (command line)


def simulated_pairs(n_cells: int, n_components: int, seed: int, scales=SCALES,
                    photons=PHOTONS, textures=("cell",), bands=BANDS,
                    vary_axis: bool = False) -> compute.Steps[dict[int, list[ScorePair]]]:
    """Score pairs of ``n_cells`` varied simulated images for each scale.

    Images vary in field size (64-112 pixels), texture (drawn from ``textures``, see
    :data:`napari_deeper.simulate.TEXTURES`), band count (drawn from ``bands``), spectral
    variation, background, and noise: a quarter are noise-free, the rest have a photon count at
    the brightest value drawn log-uniformly in ``photons`` (default 300-10 000: high SNR, as a
    scan to be super-resolved should be, or a denoised one). ``vary_axis``: the spectral range
    too (from 200-700 to 1600-3200 cm-1, parts of it without Raman bands) and the background's
    strength (0.2-4 times the default). The target is always the clean HR cube. The defaults draw
    what the first shipped models were trained on (cells only, 150 or 300 bands).
    """
    from .. import simulate

    low, high = photons
    rng = np.random.default_rng(seed)
    out: dict[int, list[ScorePair]] = {s: [] for s in scales}
    yield compute.Progress(0, n_cells, "simulating images")
    for i in range(n_cells):
        size = int(rng.choice([64, 80, 96, 112]))
        count = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        n_bands, background = int(rng.choice(list(bands))), bool(rng.random() < 0.7)
        variation, image_seed = float(rng.uniform(0.5, 1.5)), int(rng.integers(2**31))
        texture = textures[int(rng.integers(len(textures)))] if len(textures) > 1 else textures[0]
        axis = None
        if vary_axis:
            axis = simulate.wavenumber_axis(n_bands, rng.uniform(200, 700), rng.uniform(1600, 3200))
            background = background * simulate.DEFAULT_BACKGROUND * float(np.exp(rng.uniform(np.log(0.2), np.log(4))))
        cell = simulate.simulate_cell((size, size), axis, n_bands, photons=count, background=background,
                                      variation=variation, seed=image_seed, texture=texture)
        source = cell.clean if rng.random() < 0.25 else cell.noisy
        for s in scales:
            out[s].append(score_pair(source, cell.clean, s, n_components))
        yield compute.Progress(i + 1, n_cells, "simulating images")
    return out


def save_pairs(pairs: dict[int, list[ScorePair]], path: Path) -> None:
    """Store simulated score pairs so several trainings can share them."""
    arrays = {}
    for scale, items in pairs.items():
        for i, pair in enumerate(items):
            arrays[f"x{scale}_{i}_source"] = pair.source
            arrays[f"x{scale}_{i}_target"] = pair.target
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, **arrays)
    partial.replace(path)


def load_pairs(path: Path) -> dict[int, list[ScorePair]]:
    """Read pairs written by :func:`save_pairs`."""
    pairs: dict[int, list[ScorePair]] = {}
    with np.load(path) as stored:
        keys = sorted((k for k in stored.files if k.endswith("_source")),
                      key=lambda k: (int(k.split("_")[0][1:]), int(k.split("_")[1])))
        for key in keys:
            scale = int(key.split("_")[0][1:])
            pairs.setdefault(scale, []).append(
                ScorePair(stored[key], stored[key.replace("_source", "_target")]))
    return pairs


def validation_cells(n: int, seed: int, shape=(64, 64), photons: float = 2000.0):
    """Held-out simulated cells (clean HR reference, noisy source) for model selection."""
    from .. import simulate

    return [simulate.simulate_cell(shape, photons=photons, seed=seed + i) for i in range(n)]


def validation_psnr(model, cells, scales=SCALES, device="cpu") -> dict:
    """Mean PSNR of bicubic and of ``model`` per scale on simulated ``cells``, and the gain (dB).

    The LR input is the noisy cube skip-sampled; the reference is the clean HR cube.
    """
    from .. import metrics
    from ..superres.deep import network_upscale_steps

    model.eval()
    out = {"bicubic_psnr": {}, "model_psnr": {}, "gain_db": {}}
    for s in scales:
        cubic, net = [], []
        for cell in cells:
            lr = np.ascontiguousarray(cell.noisy[:, s // 2::s, s // 2::s])
            cubic.append(metrics.psnr(interpolate(lr, s, "bicubic"), cell.clean, crop="overlap"))
            net.append(metrics.psnr(compute.run(network_upscale_steps(model, lr, s, device)),
                                    cell.clean, crop="overlap"))
        out["bicubic_psnr"][str(s)] = float(np.mean(cubic))
        out["model_psnr"][str(s)] = float(np.mean(net))
        out["gain_db"][str(s)] = float(np.mean(net) - np.mean(cubic))
    return out


def validation_real(paths) -> list[tuple[str, np.ndarray]]:
    """Real measured cubes (any file :func:`napari_deeper.load_cube` reads), named by their file,
    for model selection."""
    from ..io import load_cube

    return [(Path(path).name, np.asarray(load_cube(path).data, dtype=np.float32)) for path in paths]


def real_gains(model, cubes, scales=SCALES, device="cpu") -> dict:
    """Gain (dB) of ``model`` over the better of bilinear and bicubic on real ``cubes``, per
    cube and scale: the LR is the measured cube skip-sampled, the reference the measured cube
    (PSNR with its data range, common region), the network as a user gets it without adaptation.
    A scale whose LR would be smaller than the scale is left out."""
    from .. import metrics
    from ..superres.deep import network_upscale_steps

    model.eval()
    gains: dict[str, dict[str, float]] = {}
    for name, cube in cubes:
        data_range = float(cube.max() - cube.min())
        for s in scales:
            lr = np.ascontiguousarray(cube[:, s // 2::s, s // 2::s])
            if min(lr.shape[1:]) < s:
                continue
            best = max(metrics.psnr(interpolate(lr, s, m), cube, data_range, crop="overlap")
                       for m in ("bilinear", "bicubic"))
            net = metrics.psnr(compute.run(network_upscale_steps(model, lr, s, device)), cube, data_range,
                               crop="overlap")
            gains.setdefault(name, {})[str(s)] = float(net - best)
    return gains


def _validate(model, val_cells, val_real, scales, device) -> tuple[dict, float]:
    """The validation record of ``model`` and the gain that selects checkpoints: the mean gain on
    the real cubes when there are any (the simulated cells' gains, a few dB, would drown their
    tenths of a dB), else the mean gain over the simulated cells' scales."""
    record = {}
    if val_cells:
        record["gain_db"] = validation_psnr(model, val_cells, scales, device)["gain_db"]
    if val_real:
        record["real_gain_db"] = real_gains(model, val_real, scales, device)
        return record, float(np.mean([g for per in record["real_gain_db"].values() for g in per.values()]))
    return record, float(np.mean(list(record["gain_db"].values())))


def _snapshot(model) -> dict:
    """A copy of ``model``'s weights on the CPU."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def train_steps(arch: str, config: dict, pairs: dict[int, list[ScorePair]], steps: int,
                lr: float, batch: int, seed: int, checkpoint: Path | None = None,
                val_cells=None, eval_every: int = 500, device="cpu",
                init: dict | None = None, val_real=None) -> compute.Steps[dict]:
    """Train ``arch`` on score ``pairs``: from scratch, from the weights ``init`` (a state
    dict), or from ``checkpoint`` if it exists.

    Each step draws one scale at random (weighted by its cost) and a batch of patches. Adam with
    a cosine learning-rate decay; the weights with the best validation gain (:func:`_validate`:
    on the simulated ``val_cells`` and the real cubes ``val_real``) are kept (the ``init``
    weights included, so continuing never makes a model worse on validation).
    Checkpoints (model, optimizer, step, best) are written every ``eval_every`` steps.
    """
    import torch

    from ..models import build

    dev = compute.select_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    model = build(arch, config).to(dev)
    if init is not None:
        model.load_state_dict(init)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
    )
    state = {"step": 0, "best_gain": -math.inf, "best": None, "best_step": None, "history": [],
             "seconds": 0.0}
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        state = saved["state"]
        rng = np.random.default_rng([seed + 1, state["step"]])
    elif init is not None and (val_cells or val_real):
        record, state["best_gain"] = _validate(model, val_cells, val_real, sorted(pairs), dev)
        state["history"].append({"step": 0, **record})
        state["best"] = _snapshot(model)
        state["best_step"] = 0
    scales = sorted(pairs)
    losses: list[float] = []
    started = time.perf_counter() - state["seconds"]
    while state["step"] < steps:
        model.train()
        scale = int(rng.choice(scales))
        inputs, targets = sample_batch(pairs[scale], scale, batch, rng)
        losses.append(_loss_and_step(model, optimizer, inputs, targets, scale, dev))
        schedule.step()
        state["step"] += 1
        step = state["step"]
        if step % eval_every == 0 or step == steps:
            record = {"step": step, "loss": float(np.mean(losses[-eval_every:])),
                      "seconds": time.perf_counter() - started}
            if val_cells or val_real:
                measured, mean_gain = _validate(model, val_cells, val_real, scales, dev)
                record.update(measured)
                if mean_gain > state["best_gain"]:
                    state["best_gain"] = mean_gain
                    state["best"] = _snapshot(model)
                    state["best_step"] = step
            state["history"].append(record)
            state["seconds"] = record["seconds"]
            if checkpoint is not None:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "schedule": schedule.state_dict(), "state": state}, checkpoint)
        yield compute.Progress(step, steps, f"{arch} step {step}", loss=float(np.mean(losses[-50:])))
    if state["best"] is not None:
        model.load_state_dict(state["best"])
    model.eval()
    return {"model": model.cpu(), "history": state["history"], "best_gain": state["best_gain"],
            "best_step": state["best_step"], "seconds": state["seconds"]}


def model_card_markdown(name: str, card: dict) -> str:
    """The human-readable model card written next to the weights (:func:`.cards.model_card_markdown`)."""
    training, validation = card["training"], card["validation"]
    rows = "\n".join(
        f"| {s}x | {validation['bicubic_psnr'][str(s)]:.2f} | "
        f"{validation['model_psnr'][str(s)]:.2f} | {validation['gain_db'][str(s)]:+.2f} |"
        for s in card["scales"]
    )
    kept = []
    if training.get("initialised_from"):
        kept = ["The starting weights were kept: no later checkpoint validated better."
                if training.get("best_step") == 0 else
                f"The weights of step {training.get('best_step')} were kept (best validation gain)."]
    about = f"""Super-resolution network `{card['arch']}` of napari-deeper ({card['parameters']:,} parameters,
{card['size_bytes'] / 1e6:.1f} MB), used by `nd.upscale(data, scale, method="{name}")` for scales
{', '.join(f'{s}x' for s in card['scales'])}.

**What it does.** The cube's bands are compressed into its own top {card['config']['n_components']}
principal components (fitted on the low-resolution input; any band count works). The network runs
on the normalised component images at low resolution and predicts a correction to their bicubic
upscale (one sub-pixel upsampler per scale on a shared body). The output is the bicubic upscale of
the cube plus the correction expanded back through the basis, in the input's units. Low resolution
means skip-sampling: LR pixel i is HR pixel f*i + f//2."""
    measured = f"""Validation on held-out simulated cells ({validation['cells']} cells {validation['shape']},
{validation['photons']:.0f} photons, LR skip-sampled from the noisy cube, PSNR against the clean HR
cube with its data range):

| scale | bicubic PSNR (dB) | model PSNR (dB) | gain (dB) |
|---|---|---|---|
{rows}

{_real_rows(card)}Test results on other simulated cells and on real cubes are in
`docs/benchmarks.md` (section super-resolution). Limits: trained on simulated images only; real
images with other structures may need fine-tuning (Fine-tune models widget or
`napari_deeper.training.finetune`)."""
    return cards.model_card_markdown(
        name, card, about,
        facts=[f"Architecture: `{json.dumps(card['config'])}`."],
        training=[
            f"Data: {training['data']}.",
            f"{training['steps']} steps, batch {training['batch']}, Adam (lr {training['lr']}, cosine decay), "
            "L1 loss on patch centres, dihedral augmentation (rotations and flips before skip-sampling). "
            f"Seed {training['seed']}.",
            f"Wall time {training['seconds'] / 60:.1f} min on {training['hardware']}.",
            f"Command: `{training['command']}`",
            *kept,
        ],
        measured=measured,
    )


def _real_rows(card: dict) -> str:
    """The card's table of gains on the real validation cubes, or nothing."""
    real = card["validation"].get("real_gain_db")
    if not real:
        return ""
    scales = card["scales"]
    rows = "\n".join(f"| {name} | " + " | ".join(f"{gains[str(s)]:+.2f}" if str(s) in gains else "-" for s in scales)
                     + " |" for name, gains in real.items())
    return f"""Validation on real measured cubes, which chose the checkpoint: LR skip-sampled from
the cube, PSNR against the cube itself, gain (dB) over the better of bilinear and bicubic, the
network as trained (no adaptation):

| cube | {' | '.join(f'{s}x' for s in scales)} |
|---|{'---|' * len(scales)}
{rows}

"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", choices=sorted(DEFAULT_CONFIGS), default="hyrisr")
    parser.add_argument("--name", help="model name (default: the architecture)")
    parser.add_argument("--out", type=Path, help="folder for the weights and cards "
                        "(default: the package's shipped weights folder)")
    parser.add_argument("--cells", type=int, default=120, help="simulated training cells")
    parser.add_argument("--val-cells", type=int, default=4, help="held-out validation cells")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--features", type=int, help="network width (default per architecture)")
    parser.add_argument("--components", type=int, default=12, help="principal components K")
    parser.add_argument("--scales", type=int, nargs="+", default=list(SCALES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--checkpoint", type=Path, help="checkpoint file (resumed if it exists)")
    parser.add_argument("--data-cache", type=Path,
                        help="npz file of simulated training pairs (written once, then reused: "
                        "--cells, --components and --photons apply only when it is written)")
    parser.add_argument("--photons", type=float, nargs=2, default=PHOTONS, metavar=("LOW", "HIGH"),
                        help="photon counts of the noisy training cells (log-uniform)")
    parser.add_argument("--textures", nargs="+", default=["cell"], choices=TEXTURES,
                        help="spatial textures of the simulated training images (drawn uniformly)")
    parser.add_argument("--bands", type=int, nargs="+", default=list(BANDS),
                        help="band counts of the simulated training images (drawn uniformly)")
    parser.add_argument("--vary-axis", action="store_true",
                        help="vary the spectral range (200-700 to 1600-3200 cm-1) and the background strength")
    parser.add_argument("--val-real", type=Path, nargs="+", default=[],
                        help="real measured cubes that select checkpoints too (skip-sampled, scored against "
                        "themselves; gain over the better of bilinear and bicubic)")
    parser.add_argument("--init", type=Path,
                        help="start from these weights (a .pt written by this command)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="auto")


def main(args: argparse.Namespace) -> None:
    import torch

    from ..models import load_model, save_model
    from ..models.registry import SHIPPED_DIR, parameter_count

    torch.set_num_threads(args.threads)
    scales = [check_scale(s) for s in args.scales]
    config = dict(DEFAULT_CONFIGS[args.arch], n_components=args.components, scales=scales)
    if args.features:
        config["features"] = args.features
    name = args.name or args.arch
    data_seed, val_seed = args.seed * 1000 + 1, 10**6 + args.seed
    init, earlier = None, None
    if args.init is not None:
        initial, earlier = load_model(args.init, device="cpu")
        if earlier.get("arch") != args.arch or earlier.get("config") != config:
            raise ValueError(f"--init {args.init} is a {earlier.get('arch')} {earlier.get('config')}, "
                             f"not a {args.arch} {config}")
        init = initial.state_dict()

    def report(progress: compute.Progress) -> None:
        if progress.done % 100 == 0 or progress.done == progress.total:
            loss = "" if progress.loss is None else f" loss {progress.loss:.4f}"
            print(f"{progress.message}: {progress.done}/{progress.total}{loss}", flush=True)

    started = time.perf_counter()
    if args.data_cache is not None and args.data_cache.exists():
        pairs = load_pairs(args.data_cache)
    else:
        pairs = compute.run(simulated_pairs(args.cells, args.components, data_seed, scales,
                                            tuple(args.photons), tuple(args.textures), tuple(args.bands),
                                            args.vary_axis), report)
        if args.data_cache is not None:
            save_pairs(pairs, args.data_cache)
    data_seconds = time.perf_counter() - started
    val = validation_cells(args.val_cells, val_seed)
    real = validation_real(args.val_real)
    result = compute.run(train_steps(args.arch, config, pairs, args.steps, args.lr, args.batch,
                                     args.seed, args.checkpoint, val, args.eval_every,
                                     args.device, init, real), report)
    for record in result["history"]:
        print(json.dumps(record), flush=True)
    model = result["model"]
    psnr = validation_psnr(model, val, scales)
    folder = args.out or SHIPPED_DIR
    card = {
        "task": "superres",
        "scales": scales,
        "parameters": parameter_count(model),
        "size_bytes": 4 * parameter_count(model),
        "training": {
            "data": f"{args.cells} simulated images (napari_deeper.simulate.simulate_cell, "
                    f"textures {', '.join(args.textures)}; 64-112 pixels square, "
                    f"{' or '.join(map(str, args.bands))} bands"
                    + (", spectral range from 200-700 to 1600-3200 cm-1, background 0.2-4 times the default"
                       if args.vary_axis else "")
                    + f", 25 % noise-free and 75 % at {args.photons[0]:g}-{args.photons[1]:g} photons, "
                    f"target the clean cube), seed {data_seed}; each used at every scale",
            "steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
            "loss": "L1", "seconds": result["seconds"], "data_seconds": data_seconds,
            "hardware": f"{platform.machine()} CPU ({os.cpu_count()} cores, shared with other "
                        f"jobs, nice 10), {args.threads} torch thread(s)",
            "command": _command_line(args),
            "history": result["history"],
            "best_step": result["best_step"],
        },
        "validation": {"cells": len(val), "shape": [64, 64], "photons": 2000.0,
                       "seed": val_seed, **psnr},
    }
    if real:
        card["validation"]["real_gain_db"] = real_gains(model, real, scales)
    if earlier is not None:
        before = earlier.get("training", {})
        card["training"]["initialised_from"] = {"weights": str(args.init), "training": before}
        card["training"]["total_seconds"] = result["seconds"] + before.get(
            "total_seconds", before.get("seconds", 0.0))
    path = save_model(model, name, args.arch, config, card, folder)
    card = json.loads(path.with_suffix(".json").read_text())
    card["size_bytes"] = path.stat().st_size
    path.with_suffix(".json").write_text(json.dumps(card, indent=2))
    path.with_suffix(".md").write_text(model_card_markdown(name, card))
    print(f"saved {path} ({card['size_bytes'] / 1e6:.2f} MB)")



def _command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this training run."""
    parts = ["python -m napari_deeper.training superres", f"--arch {args.arch}",
             f"--cells {args.cells}", f"--val-cells {args.val_cells}", f"--steps {args.steps}",
             f"--batch {args.batch}", f"--lr {args.lr}", f"--components {args.components}",
             "--scales " + " ".join(str(s) for s in args.scales), f"--seed {args.seed}",
             f"--eval-every {args.eval_every}", f"--threads {args.threads}"]
    if args.features:
        parts.append(f"--features {args.features}")
    if tuple(args.photons) != PHOTONS:
        parts.append(f"--photons {args.photons[0]:g} {args.photons[1]:g}")
    if args.textures != ["cell"]:
        parts.append("--textures " + " ".join(args.textures))
    if tuple(args.bands) != BANDS:
        parts.append("--bands " + " ".join(map(str, args.bands)))
    if args.vary_axis:
        parts.append("--vary-axis")
    if args.val_real:
        parts.append("--val-real " + " ".join(str(path) for path in args.val_real))
    if args.init is not None:
        parts.append(f"--init {args.init}")
    return " ".join(parts)
