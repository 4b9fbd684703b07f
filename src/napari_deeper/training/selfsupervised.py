"""Pretraining of the self-supervised denoiser's network (method ``n2s``) and its measurement.

``python -m napari_deeper.training n2s --cubes 160 --steps 4000`` simulates varied cells
(:func:`napari_deeper.simulate.simulate_cell`: field size, band count and range, photons, read
noise, background, spectral variation and number of species all drawn at random), takes each
through exactly the steps the method takes on a user's cube (noise model, whitening,
spectral subspace with the noise-aware rank, sometimes a few components more, the
network's input scaling) and trains :class:`~napari_deeper.models.subspace_unet.SubspaceUNet`
to return the clean cube's component images (the clean cube whitened by the same scales and
projected on the same basis). Half of the crops have one pixel phase masked as in the method's self-supervised
training, so the pretrained network also knows what a masked pixel is. Loss: squared error in
noise units; Adam with a one-cycle schedule; the weights with the lowest loss on held-out
simulated cells are kept. The weights go to ``models/weights/n2s.pt`` with a JSON and a Markdown
card whose metrics come from :func:`evaluate_steps`.

:func:`semi_real_cases` makes the test cubes of real structure: a real cube (THP-1 WITec, the
Renishaw and Trivista maps of ``../shared/data/``) fitted by a low rank, chosen by eye (the
components kept are listed in :data:`SEMI_REAL`), shifted to be non-negative, scaled so that its
99th percentile is 20, 60 or 200 photons, and given Poisson noise plus Gaussian read noise of one
count.
"""

from __future__ import annotations

import json
import os
import platform
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..compute import Progress, run

DEFAULT_CONFIG = {"channels": 32, "width": 24, "levels": 2}
PHOTONS = (5.0, 2000.0)
BANDS = (100, 1000)
SIZES = (32, 72)
PRETRAIN_CROP = 32
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
#: name -> (file under the shared data folder, principal components kept in the clean fit, 0-based).
#: THP-1: components 3 and 4 are single-pixel cosmic-ray spikes and are left out; from the 8th
#: on the images and loadings look like noise. Renishaw map2: four components with structure in
#: image and loading (the 5th on has noise-like images). Trivista: two (scan stripes).
SEMI_REAL = {
    "THP-1": ("thp1_witec_40x40x500.mat", (0, 1, 4, 5, 6)),
    "Renishaw map2": ("vendor/renishaw_test_map2.wdf", (0, 1, 2, 3)),
    "Trivista map": ("vendor/trivista_test_map.tvf", (0, 1)),
}
SEMI_REAL_PHOTONS = (20, 60, 200)


# ------------------------------------------------------------------------------------------
# Training examples


@dataclass
class Example:
    """One simulated cube as the network sees it: scaled component images and their clean target."""

    values: np.ndarray  # (K, Y, X) noisy component images / scales
    scales: np.ndarray  # (K,)
    target: np.ndarray  # (K, Y, X) clean component images / scales


def make_example(noisy: np.ndarray, clean: np.ndarray, channels: int, extra: int = 0) -> Example:
    """The :class:`Example` of a simulated pair, through the method's own steps."""
    from ..denoise.selfsupervised import FIT_POWER, channel_scales, subspace_steps, whitening

    white, _, _ = whitening(noisy, "auto")
    first = run(subspace_steps(noisy, white, None, channels))
    subspace = first if extra == 0 else run(subspace_steps(noisy, white, first.edge_rank + extra, channels))
    n_bands = noisy.shape[0]
    flat = clean.reshape(n_bands, -1).astype(np.float32)
    if white.noise is not None:  # the clean cube weighted by the noisy cube's scales (linear)
        pixel, band = white.scales(subspace.pixel_scale, FIT_POWER)
        flat = flat * pixel[None, :] * band[:, None]
    k = subspace.basis.shape[1]
    target = (subspace.basis.T @ (flat - subspace.mean[:, None]) / subspace.noise_scale[:, None])
    target = target.reshape(k, *noisy.shape[1:])
    scales = channel_scales(subspace.scores)
    return Example(np.ascontiguousarray(subspace.scores / scales[:, None, None]), scales,
                   np.ascontiguousarray((target / scales[:, None, None]).astype(np.float32)))


def simulated_pair(rng) -> tuple[np.ndarray, np.ndarray, dict]:
    """A varied simulated cell ``(noisy, clean, what was drawn)``."""
    import napari_deeper as nd

    ny, nx = (int(v) for v in rng.integers(SIZES[0], SIZES[1] + 1, 2))
    n_bands = int(rng.integers(BANDS[0], BANDS[1] + 1))
    start, stop = float(rng.uniform(300, 800)), float(rng.uniform(1500, 3200))
    drawn = {
        "shape": [ny, nx], "n_bands": n_bands, "range": [round(start), round(stop)],
        "photons": float(np.exp(rng.uniform(*np.log(PHOTONS)))),
        "read_noise": float(rng.uniform(0.0, 3.0)),
        "background": float(rng.choice([0.0, 0.25, 0.5, 1.0, 2.0])),
        "variation": float(rng.uniform(0.0, 1.5)),
        "n_components": int(rng.integers(2, len(nd.simulate.COMPONENTS) + 1)),
    }
    cell = nd.simulate.simulate_cell(
        (ny, nx), wavenumbers=nd.simulate.wavenumber_axis(n_bands, start, stop), photons=drawn["photons"],
        read_noise=drawn["read_noise"], background=drawn["background"], variation=drawn["variation"],
        n_components=drawn["n_components"], seed=int(rng.integers(2**31)))
    return cell.noisy, cell.clean, drawn


def examples_steps(n: int, seed: int, channels: int):
    """Steps generator: ``n`` simulated :class:`Example` s (a quarter with 1-3 components extra)."""
    rng = np.random.default_rng(seed)
    out = []
    yield Progress(0, n, "simulating cells")
    for i in range(n):
        noisy, clean, _ = simulated_pair(rng)
        extra = int(rng.integers(1, 4)) if rng.random() < 0.25 else 0
        out.append(make_example(noisy, clean, channels, extra))
        yield Progress(i + 1, n, "simulating cells")
    return out


def save_examples(examples: list[Example], path: Path) -> None:
    arrays = {}
    for i, e in enumerate(examples):
        arrays[f"{i}_values"], arrays[f"{i}_scales"], arrays[f"{i}_target"] = e.values, e.scales, e.target
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, **arrays)
    partial.replace(path)


def load_examples(path: Path) -> list[Example]:
    with np.load(path) as stored:
        n = len(stored.files) // 3
        return [Example(stored[f"{i}_values"], stored[f"{i}_scales"], stored[f"{i}_target"]) for i in range(n)]


# ------------------------------------------------------------------------------------------
# Supervised pretraining


def _batch(examples: list[Example], rng, n: int, channels: int, device):
    """Network input, target and per-channel weights of ``n`` random crops (augmented, half masked)."""
    import torch

    from ..denoise.selfsupervised import GRID, _dihedral, masked, network_input

    inputs, targets, weights = [], [], []
    size = PRETRAIN_CROP
    for index in rng.integers(0, len(examples), n):
        e = examples[index]
        k, ny, nx = e.values.shape
        y0, x0 = int(rng.integers(0, ny - size + 1)), int(rng.integers(0, nx - size + 1))
        sign = torch.as_tensor(rng.choice([-1.0, 1.0], k).astype(np.float32)).view(1, k, 1, 1)
        values = torch.as_tensor(e.values[None, :, y0:y0 + size, x0:x0 + size]) * sign
        target = torch.as_tensor(e.target[None, :, y0:y0 + size, x0:x0 + size]) * sign
        if rng.random() < 0.5:
            phase = int(rng.integers(0, GRID * GRID))
            values, _ = masked(values, phase // GRID, phase % GRID)
        turns = int(rng.integers(0, 8))
        values, target = _dihedral(values, turns), _dihedral(target, turns)
        scales = torch.as_tensor(e.scales)
        inputs.append(network_input(values, scales, channels))
        padded = torch.zeros(1, channels, size, size)
        padded[:, :k] = target
        targets.append(padded)
        w = torch.zeros(channels)
        w[:k] = scales**2
        weights.append(w)
    return (torch.cat(inputs).to(device), torch.cat(targets).to(device), torch.stack(weights).to(device))


def _loss(out, target, weights):
    """Squared error in noise units, averaged over pixels and the used components."""
    err = (out - target).pow(2).mean(dim=(-2, -1)) * weights
    return err.sum() / (weights > 0).sum()


def validation_loss(model, examples: list[Example], device) -> float:
    """Mean squared error (noise units) of ``model`` on whole unmasked examples, against their targets."""
    from ..denoise.selfsupervised import predict

    total, count = 0.0, 0
    for e in examples:
        out = predict(model, e.values, e.scales, device)
        total += float(np.sum((out - e.target * e.scales[:, None, None]) ** 2))
        count += e.values.size
    return total / count


def pretrain_steps(model, examples: list[Example], held_out: list[Example], steps: int, lr: float, batch: int,
                   seed: int, device, eval_every: int = 250):
    """Steps generator: supervised training on ``examples``; returns ``(history, best step)``.

    Keeps (loads into ``model`` at the end) the weights with the lowest loss on ``held_out``,
    the starting ones included.
    """
    import torch

    rng = np.random.default_rng(seed)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(2, steps), pct_start=0.1)
    best = (validation_loss(model, held_out, device), 0, {k: v.clone() for k, v in model.state_dict().items()})
    history = [{"step": 0, "validation": best[0]}]
    window = []
    for step in range(1, steps + 1):
        model.train()
        x, y, w = _batch(examples, rng, batch, model.channels, device)
        loss = _loss(model(x), y, w)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        window.append(float(loss.detach()))
        if step % eval_every == 0 or step == steps:
            current = validation_loss(model, held_out, device)
            history.append({"step": step, "train": float(np.mean(window)), "validation": current})
            window = []
            if current < best[0]:
                best = (current, step, {k: v.clone() for k, v in model.state_dict().items()})
        yield Progress(step, steps, "pretraining n2s", history[-1].get("train", window[-1] if window else None))
    model.load_state_dict(best[2])
    model.eval()
    return history, best[1]


# ------------------------------------------------------------------------------------------
# Test cubes of real structure, and the measurements for the card and the benchmark


def low_rank_clean(path: Path, keep) -> tuple[np.ndarray, np.ndarray | None]:
    """The real cube at ``path`` fitted by its mean and principal components ``keep``, made non-negative."""
    from ..io import load_cube

    cube = load_cube(path)
    data = cube.data.astype(np.float64)
    flat = data.reshape(data.shape[0], -1)
    mean = flat.mean(axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    keep = list(keep)
    fit = mean + (u[:, keep] * s[keep]) @ vt[keep]
    return (fit - fit.min()).reshape(data.shape), cube.wavenumbers


def semi_real_cases(folder: Path = SHARED_DATA, photons=SEMI_REAL_PHOTONS, names=None) -> list:
    """Cases (:class:`~napari_deeper.training.evaluate.Case`) of the real files that are present."""
    from .evaluate import Case

    cases = []
    for name, (relative, keep) in SEMI_REAL.items():
        path = Path(folder) / relative
        if (names is not None and name not in names) or not path.exists():
            continue
        clean, w = low_rank_clean(path, keep)
        for i, p in enumerate(photons):
            scaled = clean * (p / np.percentile(clean, 99))
            rng = np.random.default_rng([zlib.crc32(name.encode()), i])
            noisy = rng.poisson(scaled) + rng.standard_normal(scaled.shape)
            cases.append(Case(f"{name}, {p} photons", noisy.astype(np.float32), scaled.astype(np.float32), w,
                              "semi-real"))
    return cases


def simulated_cases(specs=((64, 500, 20, 9101), (64, 500, 200, 9102), (48, 1000, 60, 9103))) -> list:
    """Held-out simulated cells (seeds never drawn in training): ``(size, bands, photons, seed)``."""
    import napari_deeper as nd

    from .evaluate import Case

    cases = []
    for size, bands, p, seed in specs:
        cell = nd.simulate.simulate_cell((size, size), n_bands=bands, photons=p, seed=seed)
        cases.append(Case(f"cell {size} x {size} x {bands}, {p} photons", cell.noisy, cell.clean, cell.wavenumbers,
                          "simulated"))
    return cases


def evaluate_steps(cases, methods: dict, tuned=("pca", "savgol"), cache: Path | None = None, device="cpu"):
    """Steps generator: rows ``{case, method, params, nmse, psnr, ssim, sam, seconds}`` per case and method.

    ``methods`` maps a row label to ``(denoise method, parameters)``; the baselines in ``tuned``
    are tuned on each case with the clean answer (see :mod:`napari_deeper.training.evaluate`).
    """
    from ..denoise import denoise_steps
    from .evaluate import scores, tuned_row

    rows = []
    total = len(cases) * (len(tuned) + len(methods))
    done = 0
    for case in cases:
        rows.append({"case": case.name, "method": "noisy input", "params": {}, **scores(case.noisy, case),
                     "seconds": 0.0})
        for name in tuned:
            rows.append(tuned_row(case, name, cache))
            done += 1
            yield Progress(done, total, f"{case.name}: {name} tuned")
        for label, (name, params) in methods.items():
            started = time.perf_counter()
            out = yield from denoise_steps(case.noisy, name, case.wavenumbers, device, **params)
            rows.append({"case": case.name, "method": label, "params": params, **scores(out, case),
                         "seconds": time.perf_counter() - started})
            done += 1
            yield Progress(done, total, f"{case.name}: {label}")
    return rows


def ratio_rows(rows: list[dict], method: str, baselines=("pca (tuned)", "savgol (tuned)")) -> dict:
    """Per case: how many times lower ``method``'s NMSE is than the best of ``baselines``."""
    lookup = {(r["case"], r["method"]): r["nmse"] for r in rows}
    out = {}
    for case in dict.fromkeys(r["case"] for r in rows):
        best = min(lookup[(case, b)] for b in baselines if (case, b) in lookup)
        out[case] = best / lookup[(case, method)]
    return out


def nmse_markdown(rows: list[dict], methods: list[str]) -> str:
    """Markdown table of NMSE per case and method, the lowest in bold."""
    lookup = {(r["case"], r["method"]): r["nmse"] for r in rows}
    lines = ["| case | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
    for case in dict.fromkeys(r["case"] for r in rows):
        values = [lookup.get((case, m)) for m in methods]
        best = min(v for v in values[1:] if v is not None)
        cells = ["" if v is None else (f"**{v:.2e}**" if v == best else f"{v:.2e}") for v in values]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser) -> None:
    """Options of ``python -m napari_deeper.training n2s``."""
    parser.add_argument("--name", default="n2s", help="model name (file stem)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the weights and cards (default: shipped)")
    parser.add_argument("--cubes", type=int, default=160, help="simulated training cells")
    parser.add_argument("--held-out", type=int, default=8, help="simulated validation cells")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=16, help=f"crops of {PRETRAIN_CROP} x {PRETRAIN_CROP} per step")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=DEFAULT_CONFIG["width"])
    parser.add_argument("--channels", type=int, default=DEFAULT_CONFIG["channels"])
    parser.add_argument("--levels", type=int, default=DEFAULT_CONFIG["levels"])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-cache", type=Path, default=None,
                        help="npz of the simulated examples (written once, then reused)")
    parser.add_argument("--baseline-cache", type=Path, default=Path("runs") / "n2s-tuned-baselines.json")
    parser.add_argument("--skip-eval", action="store_true", help="write the card without measured metrics")
    parser.add_argument("--eval-only", action="store_true",
                        help="only measure the saved model NAME in --out and rewrite its cards' metrics")


def command_line(args) -> str:
    parts = ["python -m napari_deeper.training n2s", f"--name {args.name}", f"--cubes {args.cubes}",
             f"--held-out {args.held_out}", f"--steps {args.steps}", f"--batch {args.batch}", f"--lr {args.lr:g}",
             f"--seed {args.seed}", f"--width {args.width}", f"--channels {args.channels}",
             f"--levels {args.levels}", f"--threads {args.threads}"]
    return " ".join(parts)


def card_metrics(cache: Path | None = None, device="cpu"):
    """``(rows, ratios)`` measured on the semi-real and held-out simulated cases."""
    from ..denoise import DEFAULT

    methods = {
        DEFAULT: (DEFAULT, {}),
        "n2s pretrained only": ("n2s", {"steps": 0}),
        "n2s (60 s budget)": ("n2s", {}),
    }
    cases = semi_real_cases() + simulated_cases()
    rows = run(evaluate_steps(cases, methods, cache=cache, device=device))
    return rows, ratio_rows(rows, "n2s (60 s budget)")


def model_card_markdown(name: str, card: dict) -> str:
    t = card["training"]
    lines = [
        f"# Model card: {name}", "",
        card["description"] + ".", "",
        f"- Architecture: `subspace_unet`, config `{json.dumps(card['config'])}`, {card['parameters']:,} parameters "
        f"({card['size_bytes'] / 1e6:.2f} MB).",
        "- Task: the network of the self-supervised denoiser `n2s` (`nd.denoise(cube, method=\"n2s\")`): "
        "it denoises a cube's principal-component images jointly; the method trains it further on each "
        "user's cube (Noise2Self pixel masking) within a time budget.",
        f"- Version: {card['version']}.", "",
        "## Pretraining", "",
        f"- Command: `{t['command']}`",
        f"- Data: {t['data']}",
        f"- {t['steps']} steps of {t['batch']} crops of {PRETRAIN_CROP} x {PRETRAIN_CROP} pixels, Adam "
        f"(one-cycle, peak learning rate {t['lr']:g}), {t['loss']}; seed {t['seed']}; best held-out loss "
        f"{t['best_validation']:.4f} (noise units; plain PCA is {t['validation_at_start']:.4f}) at step {t['best_step']}.",
        f"- Wall time: {t['data_seconds'] / 60:.1f} min simulating, {t['seconds'] / 60:.1f} min training on "
        f"{t['hardware']} (torch {t['torch']}).", "",
    ]
    metrics = card.get("metrics")
    if metrics:
        methods = ["noisy input", "pca (tuned)", "savgol (tuned)", metrics["default"], "n2s pretrained only",
                   "n2s (60 s budget)"]
        lines += [
            "## Measured quality", "",
            "NMSE (lower is better). Semi-real cases: a real cube fitted by a low rank chosen by eye, shifted to be "
            "non-negative, scaled to the photons given at its 99th percentile, plus Poisson and one count of "
            "Gaussian read noise (`napari_deeper.training.selfsupervised.semi_real_cases`). PCA (at its best rank) "
            "and Savitzky-Golay are tuned on each case with the clean answer; the others run with their defaults "
            "(n2s: 60 s budget, CPU).", "",
            nmse_markdown(metrics["rows"], methods), "",
            "How many times lower the NMSE of `n2s` (60 s) is than the best tuned baseline:", "",
            "| case | ratio |", "|---|---:|",
            *[f"| {case} | {ratio:.2f}x |" for case, ratio in metrics["ratios"].items()], "",
            f"Measured on {metrics['hardware']}.", "",
        ]
    return "\n".join(lines)


def main(args) -> None:
    """Simulate, pretrain, save the weights and cards, measure and write the metrics in."""
    import torch

    from ..compute import select_device
    from ..models.registry import SHIPPED_DIR, build, parameter_count, save_model

    torch.set_num_threads(max(1, args.threads))
    folder = Path(args.out) if args.out is not None else SHIPPED_DIR
    if args.eval_only:
        measure(folder / f"{args.name}.pt", args.baseline_cache)
        return
    torch.manual_seed(args.seed)
    config = {"channels": args.channels, "width": args.width, "levels": args.levels}
    model = build("subspace_unet", config)
    device = select_device(args.device)

    def report(progress: Progress) -> None:
        if progress.done % 50 == 0 or progress.done == progress.total:
            loss = "" if progress.loss is None else f" loss {progress.loss:.4f}"
            print(f"{progress.message}: {progress.done}/{progress.total}{loss}", flush=True)

    started = time.perf_counter()
    if args.data_cache is not None and Path(args.data_cache).exists():
        examples = load_examples(args.data_cache)
    else:
        examples = run(examples_steps(args.cubes, args.seed * 1000 + 1, args.channels), report)
        if args.data_cache is not None:
            Path(args.data_cache).parent.mkdir(parents=True, exist_ok=True)
            save_examples(examples, args.data_cache)
    held_out = run(examples_steps(args.held_out, 10**6 + args.seed, args.channels))
    data_seconds = time.perf_counter() - started
    started = time.perf_counter()
    history, best_step = run(pretrain_steps(model, examples, held_out, args.steps, args.lr, args.batch, args.seed,
                                            device), report)
    seconds = time.perf_counter() - started
    for record in history:
        print(json.dumps(record), flush=True)
    card = {
        "task": "denoise-subspace",
        "version": "1",
        "parameters": parameter_count(model),
        "description": "U-net over a cube's spectral component images, the network of the self-supervised "
                       "denoiser n2s, pretrained on simulated cells",
        "training": {
            "command": command_line(args),
            "data": f"{args.cubes} simulated cells (napari_deeper.simulate.simulate_cell; {SIZES[0]}-{SIZES[1]} "
                    f"pixels a side, {BANDS[0]}-{BANDS[1]} bands over random ranges, {PHOTONS[0]:g}-{PHOTONS[1]:g} "
                    "photons at the brightest value (log-uniform), read noise 0-3 counts, random background, "
                    "spectral variation and number of species), seed "
                    f"{args.seed * 1000 + 1}; held out: {args.held_out} cells, seed {10**6 + args.seed}",
            "loss": "squared error in noise units against the clean component images (half the crops masked)",
            "steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
            "history": history, "best_step": best_step,
            "best_validation": min(h["validation"] for h in history),
            "validation_at_start": history[0]["validation"],
            "seconds": round(seconds, 1), "data_seconds": round(data_seconds, 1),
            "hardware": f"{platform.machine()} CPU ({os.cpu_count()} cores, shared with other jobs), "
                        f"{torch.get_num_threads()} torch thread(s), device {device.type}",
            "torch": torch.__version__,
        },
    }
    path = save_model(model, args.name, "subspace_unet", config, card, folder)
    card = json.loads(path.with_suffix(".json").read_text())
    card["size_bytes"] = path.stat().st_size
    path.with_suffix(".json").write_text(json.dumps(card, indent=2))
    if not args.skip_eval:
        measure(path, args.baseline_cache)
    else:
        path.with_suffix(".md").write_text(model_card_markdown(args.name, card))
    print(f"saved {path} ({card['size_bytes'] / 1e6:.2f} MB)")


def measure(path: Path, baseline_cache: Path | None = None) -> None:
    """Measure the saved model at ``path`` (:func:`card_metrics`) and write the metrics into its cards.

    The method loads its weights by the name ``n2s``; the folder of ``path`` is searched first
    while measuring, so the model measured is the one at ``path``.
    """
    from ..denoise import DEFAULT
    from ..denoise.selfsupervised import MODEL

    path = Path(path)
    if path.stem != MODEL:
        raise ValueError(f"the n2s method loads the model named {MODEL!r}; cannot measure {path.stem!r}")
    card = json.loads(path.with_suffix(".json").read_text())
    previous = os.environ.get("NAPARI_DEEPER_MODELS")
    os.environ["NAPARI_DEEPER_MODELS"] = str(path.parent)
    try:
        rows, ratios = card_metrics(baseline_cache)
    finally:
        if previous is None:
            del os.environ["NAPARI_DEEPER_MODELS"]
        else:
            os.environ["NAPARI_DEEPER_MODELS"] = previous
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    card["metrics"] = {"rows": rows, "ratios": ratios, "default": DEFAULT,
                       "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores shared with other jobs "
                                   f"(load average {load} at the end)"}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2, default=float))
    path.with_suffix(".md").write_text(model_card_markdown(path.stem, card))
