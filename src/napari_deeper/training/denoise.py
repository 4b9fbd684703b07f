"""Training of the per-spectrum denoising networks, fine-tuning, noise learning and evaluation.

``python -m napari_deeper.training denoise --arch resunet --name resunet --steps 4000`` trains
on simulated spectra pairs (:func:`napari_deeper.simulate.spectra_batch`) drawn fresh at
every step with a random band count, wavenumber range and photon count, so the network sees a
new batch each time and generalises across instruments. L1 loss on the normalised spectra, Adam,
a one-cycle learning-rate schedule, seeded (batch ``i`` depends only on ``(seed, i)``), resumable
from its checkpoint, and it writes the weights with a JSON and a Markdown model card holding the
metrics measured against classical baselines tuned with knowledge of the clean answer.

Two more entry points serve the GUI (each a ``*_steps`` generator yielding
``Progress(done, total, message, loss)`` and returning ``(model, card)``; the caller saves them
with :func:`napari_deeper.models.registry.save_model`):

* :func:`finetune_denoiser_steps`: fine-tune a saved model on the user's own low/high-SNR pair.
* :func:`learn_noise_steps`: the noise-learning recipe: measure an instrument's noise from a scan
  of a featureless sample (SVD background removal) and fine-tune on simulated clean spectra plus
  that noise.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

from ..compute import Progress, run
from . import cards

log = logging.getLogger(__name__)

#: Architectures and widths of the shipped models (chosen for >= 2,000 spectra/s on 2 CPU cores).
DEFAULT_CONFIGS = {
    "resunet": {"width": 12, "levels": 3, "n_convs": 2, "max_width": 64, "global_context": True,
                "attention_blocks": 1},
    "aunet": {"width": 12, "levels": 4, "max_width": 64},
}
BAND_RANGE = (128, 1024)
START_RANGE = (300.0, 800.0)
STOP_RANGE = (1500.0, 2000.0)
PHOTON_RANGE = (5.0, 2000.0)


# ------------------------------------------------------------------------------------------
# Data


def random_axis(rng, bands=BAND_RANGE, start=START_RANGE, stop=STOP_RANGE) -> np.ndarray:
    """A random spectral axis: band count and range drawn uniformly (the instrument varies)."""
    from ..simulate import wavenumber_axis

    n_bands = int(rng.integers(bands[0], bands[1] + 1))
    return wavenumber_axis(n_bands, float(rng.uniform(*start)), float(rng.uniform(*stop)))


def augment(noisy: np.ndarray, clean: np.ndarray, rng, mixup: float = 0.5, shift: float = 0.0):
    """DeepeR's augmentations on ``(n, B)`` pairs: mixup and a random spectral shift.

    ``mixup`` is the probability that a pair is blended with another, with weight
    Beta(0.2, 0.2); ``shift`` the largest shift as a fraction of the length (the same shift for
    input and target, edges filled by the end value).
    """
    n, n_bands = noisy.shape
    if mixup > 0:
        mixed = rng.random(n) < mixup
        partner = rng.permutation(n)
        lam = rng.beta(0.2, 0.2, n).astype(np.float32)
        lam = np.where(mixed, lam, 1.0).astype(np.float32)[:, None]
        noisy = lam * noisy + (1 - lam) * noisy[partner]
        clean = lam * clean + (1 - lam) * clean[partner]
    if shift > 0:
        limit = max(1, int(shift * n_bands))
        offsets = rng.integers(-limit, limit + 1, n)
        index = np.clip(np.arange(n_bands)[None, :] - offsets[:, None], 0, n_bands - 1)
        noisy = np.take_along_axis(noisy, index, axis=1)
        clean = np.take_along_axis(clean, index, axis=1)
    return noisy.astype(np.float32), clean.astype(np.float32)


def simulated_batch(step: int, seed: int, batch: int, photons=PHOTON_RANGE, bands=BAND_RANGE,
                    spikes: float = 0.01, mixup: float = 0.5, shift: float = 0.0):
    """Training batch number ``step``: fully determined by ``(seed, step)`` (exact resume)."""
    from ..simulate import spectra_batch

    rng = np.random.default_rng([seed, step])
    w = random_axis(rng, bands)
    noisy, clean = spectra_batch(batch, w, rng, photons=photons, spikes=spikes)
    return augment(noisy, clean, rng, mixup=mixup, shift=shift)


# ------------------------------------------------------------------------------------------
# The training loop


def fit_steps(model, make_batch, steps: int, lr: float, device=None, seed: int = 0,
              checkpoint: Path | None = None, checkpoint_every: int = 200, message: str = "training",
              pct_start: float = 0.15):
    """Train ``model`` for ``steps`` batches from ``make_batch(step) -> (noisy, clean)``.

    L1 loss on spectra normalised by each noisy spectrum's largest |value|, Adam, one-cycle
    schedule. Yields ``Progress(step, steps, message, loss)`` after every step. With
    ``checkpoint`` set, the model, optimiser, schedule and loss history are saved there every
    ``checkpoint_every`` steps and at the end, and a run finding that file resumes from it.
    Returns the loss history (one float per step).
    """
    import torch

    from ..compute import select_device

    device = select_device(device)
    torch.manual_seed(seed)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(2, steps),
                                                   pct_start=pct_start)
    losses: list[float] = []
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        losses = list(state["losses"])
        start = int(state["step"])
        log.info("resumed from %s at step %d", checkpoint, start)

    def save(step):
        if checkpoint is not None:
            Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(str(checkpoint) + ".tmp")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "losses": losses, "step": step}, tmp)
            tmp.replace(checkpoint)

    yield Progress(start, steps, message, losses[-1] if losses else None)
    for step in range(start, steps):
        noisy, clean = make_batch(step)
        x = torch.as_tensor(noisy, device=device)
        y = torch.as_tensor(clean, device=device)
        scale = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
        loss = torch.nn.functional.l1_loss(model(x / scale), y / scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if checkpoint is not None and ((step + 1) % checkpoint_every == 0):
            save(step + 1)
        yield Progress(step + 1, steps, message, losses[-1])
    save(steps)
    model.eval()
    return losses


def _smoothed(losses, window: int = 50) -> float | None:
    return float(np.mean(losses[-window:])) if losses else None


# ------------------------------------------------------------------------------------------
# Fine-tuning on the user's data


def _pairs_matrix(noisy, clean=None):
    from .._validation import as_cube

    noisy = as_cube(noisy, "noisy")
    n_bands = noisy.shape[0]
    noisy_m = noisy.reshape(n_bands, -1).T
    if clean is None:
        return noisy_m, None
    clean = as_cube(clean, "clean")
    if clean.shape != noisy.shape:
        raise ValueError(f"noisy {noisy.shape} and clean {clean.shape} must have the same shape")
    return noisy_m, clean.reshape(n_bands, -1).T


def _nmse_rows(model, noisy, clean, device) -> float:
    from ..denoise.deep import normalised_apply

    model.eval()
    out = normalised_apply(model, noisy, device)
    model.train()
    return float(np.mean((out - clean) ** 2) / max(np.mean(clean**2), 1e-30))


def finetune_denoiser_steps(base_model: str, noisy, clean, steps: int = 300, lr: float = 3e-4,
                            device=None, seed: int = 0, batch_size: int = 128):
    """Fine-tune the saved denoiser ``base_model`` on a low/high-SNR pair of ``(B, Y, X)`` cubes.

    A tenth of the pixels (at least one) is held out to measure the normalised MSE before and
    after. Yields ``Progress(done, total, message, loss)``; returns ``(model, card)`` where
    ``card`` has ``arch``, ``config``, ``task="denoise"`` and the measurements, ready for
    ``save_model(model, name, card["arch"], card["config"], card)``.
    """
    from ..compute import select_device
    from ..denoise.deep import MIN_BANDS
    from ..models.registry import find_model, load_model

    noisy_m, clean_m = _pairs_matrix(noisy, clean)
    if noisy_m.shape[1] < MIN_BANDS:
        raise ValueError(f"fine-tuning needs at least {MIN_BANDS} bands; the pair has {noisy_m.shape[1]}")
    if len(noisy_m) < 2:
        raise ValueError("fine-tuning needs at least 2 pixels")
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    device = select_device(device)
    info = find_model(base_model)
    model, base_card = load_model(info.path, device)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(noisy_m))
    n_val = max(1, len(order) // 10)
    val, train = order[:n_val], order[n_val:] if len(order) > n_val else order
    before = _nmse_rows(model, noisy_m[val], clean_m[val], device)

    def make_batch(step):
        r = np.random.default_rng([seed, step])
        rows = train[r.integers(0, len(train), min(batch_size, max(8, len(train))))]
        return augment(noisy_m[rows], clean_m[rows], r, mixup=0.3)

    started = time.perf_counter()
    losses = yield from fit_steps(model, make_batch, steps, lr, device, seed,
                                  message=f"fine-tuning {base_model}", pct_start=0.3)
    after = _nmse_rows(model, noisy_m[val], clean_m[val], device)
    model.eval()
    card = {
        "task": "denoise",
        "arch": info.arch,
        "config": base_card.get("config", {}),
        "version": f"{base_card.get('version', '1')}+ft",
        "base_model": base_model,
        "description": f"{base_model} fine-tuned on a user-supplied low/high-SNR pair",
        "training": {
            "kind": "finetune", "pixels": int(len(noisy_m)), "bands": int(noisy_m.shape[1]),
            "steps": steps, "lr": lr, "batch_size": batch_size, "seed": seed,
            "device": str(device), "wall_time_s": round(time.perf_counter() - started, 1),
            "final_loss": _smoothed(losses),
        },
        "metrics": {"heldout_pixels": int(n_val), "nmse_before": before, "nmse_after": after},
    }
    return model, card


# ------------------------------------------------------------------------------------------
# Noise learning


def measured_noise(blank, n_background_components: int = 3) -> np.ndarray:
    """Noise spectra ``(N, B)`` of a featureless scan: the data minus its first SVD components.

    The first singular components of a scan of a featureless sample (gold film, empty slide)
    hold its smooth background (photoluminescence, reflection); what remains is the
    instrument's noise (He et al. 2024).
    """
    matrix, _ = _pairs_matrix(blank)
    k = int(n_background_components)
    if not 0 <= k < min(matrix.shape):
        raise ValueError(
            f"n_background_components must be between 0 and {min(matrix.shape) - 1}, got {k}"
        )
    m = matrix.astype(np.float64)
    if k == 0:
        return m.astype(np.float32)
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    background = (u[:, :k] * s[:k]) @ vt[:k]
    return (m - background).astype(np.float32)


def learn_noise_steps(base_model: str = "aunet", blank=None, wavenumbers=None,
                      n_background_components: int = 3, steps: int = 300, lr: float = 3e-4,
                      device=None, seed: int = 0, batch_size: int = 128,
                      snr_range: tuple[float, float] = (3.0, 300.0)):
    """Fine-tune ``base_model`` to remove one instrument's noise, measured on a blank scan.

    ``blank`` is a ``(B, Y, X)`` scan of a featureless sample; :func:`measured_noise` turns it
    into noise spectra. Training pairs are simulated clean spectra on the blank's spectral axis
    (``wavenumbers``, default 500-1800 cm-1), scaled so that their peak is ``snr_range`` times the
    noise's standard deviation (log-uniform), plus randomly chosen measured noise spectra.
    Yields ``Progress(done, total, message, loss)``; returns ``(model, card)``.
    """
    from .._validation import as_wavenumbers
    from ..compute import select_device
    from ..denoise.deep import MIN_BANDS
    from ..models.registry import find_model, load_model
    from ..simulate import spectra_batch, wavenumber_axis

    if blank is None:
        raise ValueError("learn_noise_steps needs a blank (B, Y, X) scan of a featureless sample")
    noise = measured_noise(blank, n_background_components)
    n_bands = noise.shape[1]
    if n_bands < MIN_BANDS:
        raise ValueError(f"noise learning needs at least {MIN_BANDS} bands; the scan has {n_bands}")
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    w = as_wavenumbers(wavenumbers, n_bands)
    if w is None:
        w = wavenumber_axis(n_bands)
    sigma = float(np.std(noise))
    if not sigma > 0:
        raise ValueError("the blank scan has no noise left after background removal")
    device = select_device(device)
    info = find_model(base_model)
    model, base_card = load_model(info.path, device)

    def make_batch(step):
        r = np.random.default_rng([seed, step])
        _, clean = spectra_batch(batch_size, w, r, photons=1000.0)
        peak = sigma * np.exp(r.uniform(np.log(snr_range[0]), np.log(snr_range[1]), batch_size))
        clean = clean * peak[:, None].astype(np.float32)
        rows = r.integers(0, len(noise), batch_size)
        return clean + noise[rows], clean

    started = time.perf_counter()
    losses = yield from fit_steps(model, make_batch, steps, lr, device, seed,
                                  message=f"learning the instrument's noise ({base_model})",
                                  pct_start=0.3)
    held = make_batch(steps + 1)
    card = {
        "task": "denoise",
        "arch": info.arch,
        "config": base_card.get("config", {}),
        "version": f"{base_card.get('version', '1')}+nl",
        "base_model": base_model,
        "description": f"{base_model} fine-tuned on simulated spectra plus an instrument's measured noise",
        "training": {
            "kind": "noise-learning", "noise_spectra": int(len(noise)), "bands": n_bands,
            "background_components_removed": int(n_background_components),
            "noise_std": sigma, "snr_range": list(snr_range), "steps": steps, "lr": lr,
            "batch_size": batch_size, "seed": seed, "device": str(device),
            "wall_time_s": round(time.perf_counter() - started, 1), "final_loss": _smoothed(losses),
        },
        "metrics": {"simulated_nmse_after": _nmse_rows(model, held[0], held[1], device)},
    }
    model.eval()
    return model, card


# ------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser) -> None:
    """Options of ``python -m napari_deeper.training denoise``."""
    from ..models.registry import SHIPPED_DIR

    parser.add_argument("--arch", choices=sorted(DEFAULT_CONFIGS), default="resunet")
    parser.add_argument("--name", help="model name (file stem); defaults to the architecture")
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR, help="folder for the weights and cards")
    parser.add_argument("--config", type=json.loads, default=None,
                        help='constructor options as JSON, e.g. \'{"width": 16}\' (default: the shipped ones)')
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photons", type=float, nargs=2, default=PHOTON_RANGE, metavar=("LOW", "HIGH"))
    parser.add_argument("--bands", type=int, nargs=2, default=BAND_RANGE, metavar=("LOW", "HIGH"))
    parser.add_argument("--spikes", type=float, default=0.01, help="fraction of spectra with a cosmic ray")
    parser.add_argument("--mixup", type=float, default=0.5, help="mixup probability (DeepeR: 0.5)")
    parser.add_argument("--shift", type=float, default=0.0, help="largest spectral shift, fraction of the length")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint file (default runs/denoise-<name>/checkpoint.pt); resumes when present")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--init", type=Path, default=None,
                        help="start from these weights (a .pt of the same architecture and config)")
    parser.add_argument("--version", default="1")
    parser.add_argument("--skip-eval", action="store_true", help="write the card without measured metrics")


def main(args) -> None:
    """Train (or resume), then save weights + cards with measured metrics."""
    import torch

    from ..compute import select_device
    from ..models.registry import build, parameter_count, save_model

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(max(1, args.threads))
    name = args.name or args.arch
    config = args.config or DEFAULT_CONFIGS[args.arch]
    checkpoint = args.checkpoint or Path("runs") / f"denoise-{name}" / "checkpoint.pt"
    torch.manual_seed(args.seed)  # the initial weights follow the seed too
    model = build(args.arch, config)
    earlier = None
    if args.init is not None:
        from ..models.registry import load_model

        initial, earlier = load_model(args.init)
        if earlier.get("arch") != args.arch or earlier.get("config") != config:
            raise ValueError(f"--init {args.init} is a {earlier.get('arch')} {earlier.get('config')}, "
                             f"not a {args.arch} {config}")
        model.load_state_dict(initial.state_dict())
    log_path = checkpoint.with_name("log.csv")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)

    def make_batch(step):
        return simulated_batch(step, args.seed, args.batch, tuple(args.photons), tuple(args.bands),
                               args.spikes, args.mixup, args.shift)

    started = time.perf_counter()
    steps = fit_steps(model, make_batch, args.steps, args.lr, args.device, args.seed,
                      checkpoint=checkpoint, message=f"training {name}")
    window: list[float] = []

    def report(progress: Progress) -> None:
        """Log the mean loss of every ``log_every`` steps (to log.csv and the console)."""
        if progress.loss is not None:
            window.append(progress.loss)
        if progress.done and progress.done % args.log_every == 0:
            mean = float(np.mean(window)) if window else float("nan")
            with log_path.open("a") as fh:
                fh.write(f"{progress.done},{mean:.6f},{time.perf_counter() - started:.1f}\n")
            log.info("step %d/%d  L1 %.5f", progress.done, progress.total, mean)
            window.clear()

    losses = run(steps, report)
    wall = time.perf_counter() - started
    previous = checkpoint.with_name("wall_time.json")
    total_wall = wall + (json.loads(previous.read_text())["seconds"] if previous.exists() else 0.0)
    previous.write_text(json.dumps({"seconds": total_wall}))

    command = training_command(args, name)
    card = {
        "task": "denoise",
        "version": args.version,
        "parameters": parameter_count(model),
        "description": _DESCRIPTIONS[args.arch],
        "training": {
            "command": command,
            "seed": args.seed, "steps": args.steps, "batch_size": args.batch, "lr": args.lr,
            "optimizer": "Adam, one-cycle schedule", "loss": "L1 on max-normalised spectra",
            "data": {
                "generator": "napari_deeper.simulate.spectra_batch (fresh batch every step)",
                "photons": list(args.photons), "bands": list(args.bands),
                "wavenumber_start": list(START_RANGE), "wavenumber_stop": list(STOP_RANGE),
                "spikes": args.spikes, "mixup": args.mixup, "shift": args.shift,
            },
            "final_loss": _smoothed(losses),
            "wall_time_s": round(total_wall, 1),
            "hardware": f"{platform.machine()} CPU ({os.cpu_count()} cores, shared with other jobs), "
                        f"{torch.get_num_threads()} torch thread(s), device {select_device(args.device).type}",
            "torch": torch.__version__,
        },
    }
    if earlier is not None:
        card["training"]["initialised_from"] = {"weights": str(args.init), "training": earlier.get("training")}
        card["training"]["total_wall_time_s"] = round(
            total_wall + _total_wall(earlier.get("training") or {}), 1)
    save_model(model, name, args.arch, config, card, args.out)
    if not args.skip_eval:
        from .evaluate import model_card_metrics

        metrics, markdown = model_card_metrics(name, args.out)
        card["metrics"] = metrics
        save_model(model, name, args.arch, config, card, args.out,
                   card_markdown=model_card_markdown(name, args.arch, config, card, markdown))
    log.info("saved %s to %s (%.0f s)", name, args.out, total_wall)


def _total_wall(training: dict) -> float:
    """Wall time of a run including the runs it was initialised from."""
    if "total_wall_time_s" in training:
        return float(training["total_wall_time_s"])
    return float(training.get("wall_time_s", 0.0))


def training_command(args, name: str) -> str:
    """The command line that reproduces this run (every option spelled out)."""
    parts = ["python -m napari_deeper.training denoise", f"--arch {args.arch}", f"--name {name}",
             f"--steps {args.steps}", f"--batch {args.batch}", f"--lr {args.lr:g}", f"--seed {args.seed}",
             f"--photons {args.photons[0]:g} {args.photons[1]:g}", f"--bands {args.bands[0]} {args.bands[1]}",
             f"--spikes {args.spikes:g}", f"--mixup {args.mixup:g}", f"--shift {args.shift:g}",
             f"--threads {args.threads}"]
    if args.config is not None:
        parts.append(f"--config '{json.dumps(args.config)}'")
    if args.init is not None:
        parts.append(f"--init {args.init}")
    return " ".join(parts)


_DESCRIPTIONS = {
    "resunet": "DeepeR's 1D residual U-net (Horgan et al. 2021), fully convolutional, compact widths",
    "aunet": "noise-learning attention U-net (He et al. 2024) predicting the noise in the DCT-II domain",
}


def model_card_markdown(name: str, arch: str, config: dict, card: dict, metrics_markdown: str) -> str:
    """The human-readable model card, laid out by :func:`.cards.model_card_markdown`."""
    t = card["training"]
    data = t["data"]
    return cards.model_card_markdown(
        name, card, f"{card['description']}.",
        facts=[
            f"Architecture: `{arch}`, config `{json.dumps(config)}`, {card['parameters']:,} parameters.",
            "Task: per-spectrum denoising; any band count >= 32 (padded and cropped inside); each spectrum "
            "is divided by its largest |value| before the network and multiplied back after it.",
            f"Version: {card['version']}.",
        ],
        training=[
            f"Command: `{t['command']}`",
            f"Seed {t['seed']}, {t['steps']} steps of {t['batch_size']} spectra, {t['optimizer']}, peak "
            f"learning rate {t['lr']}, {t['loss']}; final training L1 {t['final_loss']:.4f}.",
            f"Data: {data['generator']}; photons at the strongest band {data['photons'][0]:g}-"
            f"{data['photons'][1]:g} (log-uniform), {data['bands'][0]}-{data['bands'][1]} bands, range "
            f"starting at {data['wavenumber_start'][0]:g}-{data['wavenumber_start'][1]:g} and ending at "
            f"{data['wavenumber_stop'][0]:g}-{data['wavenumber_stop'][1]:g} cm-1; cosmic rays in "
            f"{data['spikes']:.0%} of spectra; mixup p = {data['mixup']}; spectral shift {data['shift']}.",
            f"Wall time {t['wall_time_s'] / 60:.1f} min on {t['hardware']} (torch {t['torch']}).",
        ],
        measured=metrics_markdown,
    )
