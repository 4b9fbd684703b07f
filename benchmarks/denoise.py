"""Denoising quality and speed: the default, the auto settings and the networks against tuned baselines.

Cases (:mod:`denoise_cases`): three real cubes (THP-1 from WITec, a Renishaw and a Trivista
map) made clean by a low-rank fit with smooth per-pixel band shifts, each at 20, 60 and 200
photons at its 99th percentile, and four simulated cells of 300 to 1000 bands.

Baselines are **tuned on each case with knowledge of the clean answer** (grid search, lowest
MSE): Savitzky-Golay (window, order), wavelet shrinkage (family, level, soft/hard, threshold
scale), PCA rank, Whittaker lambda and a Gaussian filter in (y, x, band). The default and the
``auto`` settings see only the noisy cube. Metrics: NMSE (MSE / mean square of the clean cube),
PSNR (data range: the clean cube's max - min), SSIM (scikit-image, per band with that data range,
averaged), SAM (degrees).

Speed: spectra per second on a 64 x 64 x 500 cube on the CPU, best of 3, with torch and BLAS
threads as given, and the default once on the same cell tiled to 256 x 256 pixels.

    python benchmarks/denoise.py [--threads 2] [--no-write] [--cache FILE] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path

import numpy as np
from _report import machine, write_section
from denoise_cases import Case, all_cases

from napari_deeper.denoise import DEFAULT, denoise

ROOT = Path(__file__).resolve().parents[1]
SECTION = "denoise"
CACHE = ROOT / "runs" / "denoise-benchmark-tuned.json"
ROWS = ROOT / "runs" / "denoise-benchmark-rows.json"
BASELINES = ("savgol", "wavelet", "pca", "whittaker", "gaussian")
#: Methods run with no clean answer: label -> (method, parameters).
BLIND = {
    "hybrid fixed recipe": ("hybrid", {"auto": False}),
    "savgol auto": ("savgol", {"auto": True}),
    "wavelet auto": ("wavelet", {"auto": True}),
    "whittaker auto": ("whittaker", {"auto": True}),
    "pca auto": ("pca", {}),
    "resunet": ("resunet", {}),
    "aunet": ("aunet", {}),
    "resunet as trained": ("resunet", {"adapt": "off"}),
    "aunet as trained": ("aunet", {"adapt": "off"}),
}
#: Main bands scored per case: the strongest peaks of the clean mean spectrum, fitted per pixel.
N_BANDS, BAND_WINDOW = 2, 8
#: Species for the pixel-class accuracy (VCA endmembers + NNLS, each pixel's largest abundance).
N_CLASSES = 4


METRICS = [("nmse", "NMSE", "{:.2e}"), ("psnr", "PSNR dB", "{:.1f}"), ("ssim", "SSIM", "{:.3f}"),
           ("sam", "SAM °", "{:.2f}"),
           ("band_center", "Main bands: centre error (bands; median over pixels of |fit - clean cube's fit|)", "{:.3f}"),
           ("band_fwhm", "Main bands: FWHM error (bands; median over pixels)", "{:.3f}"),
           ("class_accuracy", f"Pixel classes: share of pixels in the clean cube's class (NNLS on the clean cube's {N_CLASSES} VCA "
            "endmembers, largest abundance)",
            "{:.3f}")]
LOWER_IS_BETTER = {"nmse", "sam", "band_center", "band_fwhm"}


# --- baselines tuned with the clean answer --------------------------------------------------


def _mse(estimate, clean) -> float:
    return float(np.mean((np.asarray(estimate, np.float64) - clean) ** 2))


def _search(case: Case, candidates, make):
    """The candidate with the lowest MSE against the clean cube: ``(params, output)``."""
    best = None
    for params in candidates:
        out = make(case.noisy, params)
        err = _mse(out, case.clean)
        if best is None or err < best[0]:
            best = (err, params, out)
    return best[1], best[2]


def tune_savgol(case):
    n = case.noisy.shape[0]
    grid = [{"window": w, "order": o} for o in (2, 3, 4) for w in range(5, 102, 4) if o < w <= n]
    return _search(case, grid, lambda y, p: denoise(y, "savgol", **p))


def tune_wavelet(case):
    import pywt

    grid = []
    for family in ("sym8", "db4"):
        top = pywt.dwt_max_level(case.noisy.shape[0], pywt.Wavelet(family).dec_len)
        grid += [{"wavelet": family, "level": lv, "mode": m, "threshold_scale": s}
                 for lv in range(max(1, top - 3), top + 1) for m in ("soft", "hard") for s in (0.5, 1.0, 2.0, 4.0)]
    return _search(case, grid, lambda y, p: denoise(y, "wavelet", **p))


def tune_pca(case):
    """The best rank, adding components one at a time to the SVD reconstruction."""
    n_bands = case.noisy.shape[0]
    m = case.noisy.reshape(n_bands, -1).astype(np.float64)
    c = case.clean.reshape(n_bands, -1).astype(np.float64)
    mean = m.mean(axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(m - mean, full_matrices=False)
    recon = np.repeat(mean, m.shape[1], axis=1)
    best = (np.mean((recon - c) ** 2), 0)
    for rank in range(1, min(60, len(s)) + 1):
        recon += np.outer(u[:, rank - 1] * s[rank - 1], vt[rank - 1])
        err = float(np.mean((recon - c) ** 2))
        if err < best[0]:
            best = (err, rank)
    rank = best[1]
    out = mean + (u[:, :rank] * s[:rank]) @ vt[:rank]
    return {"n_components": rank}, out.reshape(case.noisy.shape).astype(np.float32)


def tune_whittaker(case):
    coarse = [{"lam": float(v)} for v in np.geomspace(1e-2, 1e8, 41)]
    params, _ = _search(case, coarse, lambda y, p: denoise(y, "whittaker", **p))
    fine = [{"lam": float(v)} for v in np.geomspace(params["lam"] / 1.8, params["lam"] * 1.8, 9)]
    return _search(case, fine, lambda y, p: denoise(y, "whittaker", **p))


def gaussian(y, params):
    """A Gaussian filter over (band, y, x), widths in bands and in pixels."""
    from scipy.ndimage import gaussian_filter

    sigma = (params["sigma_band"], params["sigma_xy"], params["sigma_xy"])
    return gaussian_filter(y.astype(np.float64), sigma, mode="nearest")


def tune_gaussian(case):
    grid = [{"sigma_band": b, "sigma_xy": s} for b in (0, 0.5, 1, 1.5, 2, 3, 4, 6) for s in (0, 0.5, 0.75, 1, 1.5, 2, 3)
            if b or s]
    return _search(case, grid, gaussian)


def apply_tuned(name: str, case: Case, params: dict) -> np.ndarray:
    """The output of baseline ``name`` with the ``params`` its tuning chose (the cache keeps
    parameters and scores, not outputs)."""
    if name == "pca":
        if params["n_components"]:
            return denoise(case.noisy, "pca", n_components=int(params["n_components"]))
        return np.broadcast_to(case.noisy.mean(axis=(1, 2), keepdims=True), case.noisy.shape).copy()
    if name == "gaussian":
        return gaussian(case.noisy, params)
    return denoise(case.noisy, name, **params)


TUNERS = {"savgol": tune_savgol, "wavelet": tune_wavelet, "pca": tune_pca, "whittaker": tune_whittaker,
          "gaussian": tune_gaussian}


def scores(estimate, case: Case) -> dict:
    from napari_deeper.metrics import nmse, psnr, sam, ssim

    data_range = float(case.clean.max() - case.clean.min())
    return {"nmse": nmse(estimate, case.clean), "psnr": psnr(estimate, case.clean, data_range),
            "ssim": ssim(estimate, case.clean, data_range), "sam": sam(estimate, case.clean)}


class Reference:
    """What the clean cube of a case says: its main bands fitted per pixel, and its pixel classes."""

    def __init__(self, case: Case):
        from scipy.signal import find_peaks

        from napari_deeper.analysis.peaks import fit_peaks
        from napari_deeper.unmix import nnls, vca

        mean = case.clean.mean(axis=(1, 2))
        found, props = find_peaks(mean, prominence=0, distance=2 * BAND_WINDOW)
        inner = (found >= BAND_WINDOW) & (found < len(mean) - BAND_WINDOW)
        order = np.argsort(props["prominences"][inner])[::-1]
        self.bands = tuple((float(b), float(BAND_WINDOW)) for b in np.sort(found[inner][order[:N_BANDS]]))
        self.fit = fit_peaks(case.clean, None, self.bands, min_snr=0)
        self.endmembers, _ = vca(case.clean, N_CLASSES, seed=0)
        self.labels = np.argmax(nnls(case.clean, self.endmembers, device="cpu"), axis=0)

    def scores(self, estimate: np.ndarray) -> dict:
        """Median |error| of the main bands' centre and FWHM (bands) against the clean cube's fit,
        over the pixels where both fits hold, and the share of pixels whose class (largest NNLS
        abundance on the clean cube's VCA endmembers) is the clean cube's. The endmembers stay the
        clean cube's: VCA rerun on each estimate picks other pixels from one run to the next, which
        would measure VCA's choice more than the denoising."""
        from napari_deeper.analysis.peaks import fit_peaks
        from napari_deeper.unmix import nnls

        fit = fit_peaks(estimate, None, self.bands, min_snr=0)
        errors = {}
        for key in ("center", "fwhm"):
            diff = np.abs(fit[key] - self.fit[key])
            errors[f"band_{key}"] = float(np.nanmedian(diff)) if np.isfinite(diff).any() else float("nan")
        labels = np.argmax(nnls(estimate, self.endmembers, device="cpu"), axis=0)
        return {**errors, "class_accuracy": float(np.mean(labels == self.labels))}


def fingerprint(case: Case) -> str:
    return f"{case.name}|{zlib.crc32(case.noisy.tobytes()):08x}|{zlib.crc32(case.clean.tobytes()):08x}"


def tuned_rows(case: Case, cache: Path | None) -> list[dict]:
    """The tuned-baseline rows of ``case``, from the JSON ``cache`` when it holds them (the grid
    searches are deterministic, so a cached row is the same result)."""
    stored = json.loads(cache.read_text()) if cache is not None and cache.exists() else {}
    rows = []
    for name in BASELINES:
        key = f"{fingerprint(case)}|{name}"
        if key not in stored:
            started = time.perf_counter()
            params, out = TUNERS[name](case)
            stored[key] = {"case": case.name, "method": f"{name} (tuned)", "params": params, **scores(out, case),
                           "seconds": time.perf_counter() - started}
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_text(json.dumps(stored, indent=1))
        rows.append(stored[key])
    return rows


# --- the run ----------------------------------------------------------------------------------


SKIP: set[str] = set()


def blind_methods() -> dict:
    """The default, then every method run without the clean answer (the self-supervised network
    too, when it is registered), less those named in ``--skip``."""
    from napari_deeper.denoise import METHODS

    extra = {name: (name, {}) for name in ("n2s",) if name in METHODS}
    found = {f"{DEFAULT} (default)": (DEFAULT, {}), **BLIND, **extra}
    return {label: job for label, job in found.items() if label not in SKIP}


def quality(cases, cache, log=print) -> list[dict]:
    rows = []
    for case in cases:
        reference = Reference(case)
        rows.append({"case": case.name, "method": "noisy input", "params": {}, **scores(case.noisy, case),
                     **reference.scores(case.noisy)})
        for row in tuned_rows(case, cache):
            out = apply_tuned(row["method"].removesuffix(" (tuned)"), case, row["params"])
            rows.append({**row, **reference.scores(out)})
        for label, (method, params) in blind_methods().items():
            started = time.perf_counter()
            out = denoise(case.noisy, method, device="cpu", **params)
            seconds = time.perf_counter() - started
            rows.append({"case": case.name, "method": label, "params": params, **scores(out, case),
                         **reference.scores(out), "seconds": seconds})
        best = min((r for r in rows if r["case"] == case.name and r["method"].endswith("(tuned)")),
                   key=lambda r: r["nmse"])
        default = next(r for r in rows if r["case"] == case.name and r["method"].endswith("(default)"))
        log(f"{case.name}: best tuned {best['method']} {best['nmse']:.3e}; default {default['nmse']:.3e} "
            f"({best['nmse'] / default['nmse']:.2f}x)")
    return rows


def columns() -> list[str]:
    return ["noisy input", *(f"{b} (tuned)" for b in BASELINES), *blind_methods()]


def quality_tables(rows: list[dict]) -> str:
    order = columns()
    cases = list(dict.fromkeys(r["case"] for r in rows))
    lookup = {(r["case"], r["method"]): r for r in rows}
    parts = []
    for key, title, fmt in METRICS:
        lines = [f"**{title}**", "", "| case | " + " | ".join(order) + " |", "|---|" + "---|" * len(order)]
        for case in cases:
            values = [lookup[(case, m)][key] for m in order]
            best = min(values[1:]) if key in LOWER_IS_BETTER else max(values[1:])
            cells = [("**" + fmt.format(v) + "**") if v == best else fmt.format(v) for v in values]
            lines.append(f"| {case} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def ratio_table(rows: list[dict]) -> tuple[str, dict]:
    """NMSE of the best tuned baseline divided by each blind method's (higher is better)."""
    lookup = {(r["case"], r["method"]): r["nmse"] for r in rows}
    cases = list(dict.fromkeys(r["case"] for r in rows))
    blind = list(blind_methods())
    lines = ["| case | best tuned baseline | " + " | ".join(blind) + " |", "|---|---|" + "---|" * len(blind)]
    ratios = {m: [] for m in blind}
    for case in cases:
        name, best = min(((b, lookup[(case, f"{b} (tuned)")]) for b in BASELINES), key=lambda t: t[1])
        cells = []
        for m in blind:
            ratios[m].append(best / lookup[(case, m)])
            cells.append(f"{ratios[m][-1]:.2f}x")
        lines.append(f"| {case} | {name} {best:.2e} | " + " | ".join(cells) + " |")
    summary = {m: (float(np.exp(np.mean(np.log(v)))), float(min(v))) for m, v in ratios.items()}
    lines.append("| **geometric mean** | | " + " | ".join(f"**{summary[m][0]:.2f}x**" for m in blind) + " |")
    lines.append("| **worst case** | | " + " | ".join(f"{summary[m][1]:.2f}x" for m in blind) + " |")
    return "\n".join(lines), summary


#: Each auto setting beside the same method tuned with the clean answer.
CALIBRATED = (("savgol auto", "savgol"), ("whittaker auto", "whittaker"), ("wavelet auto", "wavelet"),
              ("pca auto", "pca"))


def calibration_table(rows: list[dict]) -> str:
    """NMSE of each auto setting divided by that of the same method tuned on the clean answer."""
    lookup = {(r["case"], r["method"]): r["nmse"] for r in rows}
    pairs = [(auto, base) for auto, base in CALIBRATED if any(r["method"] == auto for r in rows)]
    lines = ["| case | " + " | ".join(f"{a} ÷ {b} (tuned)" for a, b in pairs) + " |", "|---|" + "---|" * len(pairs)]
    ratios = {a: [] for a, _ in pairs}
    for case in dict.fromkeys(r["case"] for r in rows):
        cells = []
        for auto, base in pairs:
            ratios[auto].append(lookup[(case, auto)] / lookup[(case, f"{base} (tuned)")])
            cells.append(f"{ratios[auto][-1]:.2f}")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    lines.append("| **geometric mean** | " + " | ".join(f"**{np.exp(np.mean(np.log(v))):.2f}**" for v in ratios.values())
                 + " |")
    return "\n".join(lines)


def tuned_params(rows: list[dict]) -> str:
    lines = ["| case | " + " | ".join(BASELINES) + " |", "|---|" + "---|" * len(BASELINES)]
    for case in dict.fromkeys(r["case"] for r in rows):
        cells = []
        for name in BASELINES:
            params = next(r["params"] for r in rows if r["case"] == case and r["method"] == f"{name} (tuned)")
            cells.append(", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items()))
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def case_table(cases) -> str:
    lines = ["| case | source | shape (B, Y, X) | rank of the clean fit |", "|---|---|---|---|"]
    for c in cases:
        lines.append(f"| {c.name} | {c.source} | {c.clean.shape} | {c.rank if c.rank is not None else 'n/a'} |")
    return "\n".join(lines)


def budgeted(job) -> bool:
    """Whether a run trains on the cube and so takes its time budget (timed in the quality rows)."""
    method, params = job
    return method == "n2s" or (method in ("resunet", "aunet") and params.get("adapt", "auto") != "off")


def speed(threads: int) -> list[tuple[str, float]]:
    import torch
    from threadpoolctl import threadpool_limits

    import napari_deeper as nd

    torch.set_num_threads(threads)
    cube = nd.simulate.simulate_cell((64, 64), n_bands=500, photons=30, seed=5).noisy
    n = cube.shape[1] * cube.shape[2]
    timed = {label: job for label, job in blind_methods().items() if not budgeted(job)}
    methods = {"savgol": ("savgol", {}), "whittaker": ("whittaker", {}), **timed}
    results = []
    with threadpool_limits(threads):
        for label, (method, params) in methods.items():
            denoise(cube[:, :16, :16], method, device="cpu", **params)  # warm up (imports, model load)
            best = np.inf
            for _ in range(3):
                started = time.perf_counter()
                denoise(cube, method, device="cpu", **params)
                best = min(best, time.perf_counter() - started)
            results.append((label, n / best))
            print(f"{label}: {n / best:,.0f} spectra/s ({1e6 * best / n:.0f} µs per spectrum)", flush=True)
        # The default's fixed costs (noise model, calibration on samples) spread over more pixels:
        large = np.tile(cube, (1, 4, 4))
        started = time.perf_counter()
        denoise(large, DEFAULT, device="cpu")
        seconds = time.perf_counter() - started
        results.append((f"{DEFAULT} (default), 256 x 256 x 500, one run", large.shape[1] * large.shape[2] / seconds))
        print(f"{results[-1][0]}: {results[-1][1]:,.0f} spectra/s", flush=True)
    return results


def budget_table(rows: list[dict]) -> str:
    """Seconds of the runs that train on the cube, per case (their default budget is 60 s)."""
    labels = [label for label, job in blind_methods().items() if budgeted(job)]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    seconds = {(r["case"], r["method"]): r["seconds"] for r in rows if "seconds" in r}
    lines = ["| case | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    lines += [f"| {case} | " + " | ".join(f"{seconds[case, label]:.1f}" for label in labels) + " |"
              for case in cases]
    return "\n".join(lines)


def projection_table(cases, rows: list[dict]) -> str:
    """What the per-spectrum networks add to the projection they adapt on: each case's ratio to the
    best tuned baseline of the spectra projected on the cube's whitened subspace alone
    (:func:`napari_deeper.denoise.deep.projection_steps`), and of the adapted networks."""
    from napari_deeper.compute import run
    from napari_deeper.denoise import deep

    lines = ["| case | components | projection alone | resunet | aunet |", "|---|---:|---:|---:|---:|"]
    for case in cases:
        nmse = {r["method"]: r["nmse"] for r in rows if r["case"] == case.name}
        best = min(value for method, value in nmse.items() if method.endswith("(tuned)"))
        projection, _, _ = run(deep.projection_steps(case.noisy))
        flat = case.noisy.reshape(case.noisy.shape[0], -1)
        alone = projection(flat.T, slice(None)).T.reshape(case.noisy.shape)
        ratios = [best / scores(alone, case)["nmse"], best / nmse["resunet"], best / nmse["aunet"]]
        lines.append(f"| {case.name} | {projection.components} | " + " | ".join(f"{r:.2f}x" for r in ratios) + " |")
    return "\n".join(lines)


def speed_table(results) -> str:
    lines = ["| method | spectra/s | µs per 500-band spectrum |", "|---|---|---|"]
    lines += [f"| {m} | {s:,.0f} | {1e6 / s:.0f} |" for m, s in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads for the speed test")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--cache", type=Path, default=CACHE,
                        help="JSON file of tuned-baseline rows to reuse (keyed by the case data); '' recomputes them")
    parser.add_argument("--quick", action="store_true", help="the first semi-real and simulated case only, no speed")
    parser.add_argument("--skip", nargs="*", default=[], help="methods (column labels) to leave out")
    parser.add_argument("--projection-only", action="store_true",
                        help="print only the networks' projection table, against the rows of the last run")
    args = parser.parse_args()
    SKIP.update(args.skip)

    cases = all_cases()
    if args.projection_only:
        print(projection_table(cases, json.loads(ROWS.read_text())["rows"]))
        return
    if args.quick:
        cases = [cases[0], cases[-1]]
    cache = args.cache if str(args.cache) else None
    started = time.perf_counter()
    rows = quality(cases, cache)
    minutes = (time.perf_counter() - started) / 60
    ratios, summary = ratio_table(rows)
    speeds = [] if args.quick else speed(args.threads)
    default = f"{DEFAULT} (default)"
    text = "\n\n".join([
        "## Denoising (`benchmarks/denoise.py`)",
        f"Machine: {machine()}; quality pass {minutes:.1f} min. "
        f"{sum(c.kind == 'semi-real' for c in cases)} of the {len(cases)} cases are real cubes made clean "
        "(low-rank fit of the real cube with smooth per-pixel band shifts, then Poisson-Gaussian noise at 20, "
        "60 and 200 photons at the 99th percentile); the rest are simulated cells. Baselines are tuned on "
        "each case **with knowledge of the clean answer** (grid search, lowest MSE); the default and the "
        "`auto` settings see only the noisy cube. Bold: best of the denoisers in that row.",
        case_table(cases),
        quality_tables(rows),
        "**NMSE of the best tuned baseline ÷ NMSE of each method** (higher is better; target for the "
        "default: 1.5x geometric mean, never below 1.0x):",
        ratios,
        f"The default (`{DEFAULT}`): {summary[default][0]:.2f}x the best tuned baseline on geometric mean, "
        f"{summary[default][1]:.2f}x in its worst case.",
        "**Self-calibration against the oracle**: NMSE of each `auto` setting (no clean answer) divided by "
        "that of the same method tuned with the clean answer (1.00: as good as the oracle; the wavelet oracle "
        "also searches db4 and hard thresholding, which `auto` does not):",
        calibration_table(rows),
        "**Seconds per run of the methods that train on the cube** (default time budget 60 s; cubes of "
        "fewer spectra than a method learns from fall back and take less):",
        budget_table(rows),
        "**The per-spectrum networks against the projection they adapt on** (ratio to the best tuned "
        "baseline; where the network's held-out loss was not below the projection's, the projection "
        "alone is kept and the columns are equal):",
        projection_table(cases, rows),
        "**Parameters the tuning chose**:",
        tuned_params(rows),
        *([f"**Speed**, 64 x 64 x 500 cube, best of 3 ({args.threads} torch and BLAS threads; the machine "
            "is shared, so compare methods within this table):", speed_table(speeds)] if speeds else []),
    ])
    print(text)
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    ROWS.write_text(json.dumps({"rows": rows, "speed": speeds}, indent=1))
    if not args.no_write and not args.quick:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
