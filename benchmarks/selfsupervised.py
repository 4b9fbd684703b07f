"""The self-supervised denoiser ``n2s`` on cubes of real structure, against tuned baselines.

Cases (:func:`napari_deeper.training.selfsupervised.semi_real_cases`): the THP-1 (WITec),
Renishaw map2 and Trivista maps fitted by a low rank chosen by eye, made non-negative, at 20, 60
and 200 photons at the 99th percentile with Poisson and Gaussian (1 count) noise; and held-out
simulated cells. PCA at its best rank and Savitzky-Golay are tuned on each case with the clean
answer; the default and ``n2s`` (pretrained only, and with its 60 s budget) run as a user would
run them. Also: the time the default budget takes on a 64 x 64 x 500 cube, and how many
training steps fit in it, measured here (a shared machine: the load average is reported).

    python benchmarks/selfsupervised.py [--threads 2] [--no-write] [--cache FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _report import machine, write_section

import napari_deeper as nd
from napari_deeper.compute import run
from napari_deeper.denoise import DEFAULT, denoise_steps
from napari_deeper.training import selfsupervised as ss

SECTION = "selfsupervised"
METHODS = {
    DEFAULT: (DEFAULT, {}),
    "n2s pretrained only": ("n2s", {"steps": 0}),
    "n2s (60 s budget)": ("n2s", {}),
}


def timing(budgets=(20.0, 60.0)) -> list[dict]:
    """Wall time and training steps of ``n2s`` on a 64 x 64 x 500 simulated cell, per budget."""
    cube = nd.simulate.simulate_cell((64, 64), n_bands=500, photons=60, seed=9201)
    out = []
    for budget in budgets:
        messages = []
        started = time.perf_counter()
        result = run(denoise_steps(cube.noisy, "n2s", device="cpu", time_budget=budget),
                     lambda p: messages.append(p.message))
        seconds = time.perf_counter() - started
        done = next(m for m in reversed(messages) if m.startswith("n2s: done"))
        steps = int(done.split("(")[1].split()[0])
        nmse = float(np.mean((result - cube.clean) ** 2) / np.mean(cube.clean**2))
        out.append({"budget": budget, "seconds": seconds, "steps": steps, "nmse": nmse})
        print(f"budget {budget:g} s: {seconds:.1f} s, {steps} steps, NMSE {nmse:.2e}", flush=True)
    return out


def report(rows, times) -> str:
    methods = ["noisy input", "pca (tuned)", "savgol (tuned)", *METHODS]
    ratios = ss.ratio_rows(rows, "n2s (60 s budget)")
    pretrained = ss.ratio_rows(rows, "n2s pretrained only")
    lines = [
        "## Self-supervised denoising (`benchmarks/selfsupervised.py`)", "",
        "NMSE (lower is better) of `n2s`, trained on each noisy cube itself, against PCA at its best rank and "
        "Savitzky-Golay, both tuned on each case **with the clean answer**, and the default. Semi-real cases: a real "
        "cube fitted by a low rank chosen by eye (THP-1: mean + components 1, 2, 5, 6, 7, leaving out two "
        "cosmic-ray components; Renishaw map2: mean + 4; Trivista: mean + 2), made non-negative, scaled to the "
        "photons given at its 99th percentile, with Poisson and 1 count of Gaussian noise. The Trivista map is "
        "9 x 9 pixels: `n2s` falls back to the closed-form default there (below 16 x 16 pixels).", "",
        ss.nmse_markdown(rows, methods), "",
        "How many times lower the NMSE of `n2s` is than the best tuned baseline (PCA or Savitzky-Golay):", "",
        "| case | n2s (60 s) | n2s pretrained only |", "|---|---:|---:|",
        *[f"| {case} | {ratios[case]:.2f}x | {pretrained[case]:.2f}x |" for case in ratios], "",
        "Time on a 64 x 64 x 500 simulated cell (60 photons), CPU, with the training steps that fit:", "",
        "| time budget | wall time | training steps | NMSE |", "|---:|---:|---:|---:|",
        *[f"| {t['budget']:g} s | {t['seconds']:.1f} s | {t['steps']} | {t['nmse']:.2e} |" for t in times], "",
        f"Machine: {machine()}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--cache", type=Path, default=Path("runs") / "n2s-tuned-baselines.json",
                        help="JSON file of tuned-baseline rows to reuse (keyed by the case data)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    cases = ss.semi_real_cases() + ss.simulated_cases()
    rows = run(ss.evaluate_steps(cases, METHODS, cache=args.cache, device="cpu"),
               lambda p: print(p.message, flush=True) if p.done == p.total or "n2s (60" in p.message else None)
    times = timing()
    text = report(rows, times)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
