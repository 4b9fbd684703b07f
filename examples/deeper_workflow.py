"""The DeepeR workflow on a simulated cell, end to end, headless; prints the comparison table.

1. Simulate a high-resolution (HR), high-SNR scan of a cell: the reference.
2. Simulate the fast scan of the same cell: low SNR (fewer photons, i.e. a shorter dwell time) and
   skip-sampled (every ``factor``-th pixel along y and x, as a raster microscope takes fewer points).
3. Denoise the fast scan: the package's default denoiser, DeepeR's 1-D ResUNet (trained here on
   the simulator) and the classical baselines Savitzky-Golay and PCA.
4. Super-resolve every version back to the HR grid: HyRISR and bicubic interpolation.
5. VCA on the reference: its endmembers.
6. NNLS of the reference and of every version with those endmembers; each pixel's dominant
   endmember is its class.
7. Table: PSNR, SSIM, SAM and SNR against the reference, and the classification accuracy (the
   fraction of pixels whose class matches the reference's).

Run ``python examples/deeper_workflow.py --help`` for the options. It writes ``table.csv`` and
``table.md`` to ``--out`` (and, with ``--maps``, the class maps as ``labels.png`` and
``maps.npz``). ``--napari`` opens napari with both scans and the workflow's docks instead, to
click the same steps. Import-safe: ``main(argv)`` runs it; ``run_workflow(...)`` returns the rows.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import napari_deeper as nd
from napari_deeper.compute import run
from napari_deeper.denoise import DEFAULT as DEFAULT_DENOISER
from napari_deeper.simulate import simulate_cell, skip_sample

RAW = "raw"
DEFAULT = "default"
TABLE_COLUMNS = ("version", "denoise", "upscale", "psnr", "ssim", "sam", "snr", "accuracy")


@dataclass
class WorkflowResult:
    """Rows of the table (one dict per version), the class maps and what was simulated."""

    rows: list[dict]
    reference_labels: np.ndarray
    labels: dict[str, np.ndarray]
    abundances: dict[str, np.ndarray]
    settings: dict = field(default_factory=dict)


def dominant_labels(abundances: np.ndarray) -> np.ndarray:
    """Each pixel's class: the index (from 1) of its largest abundance."""
    return nd.unmix.classify(abundances)


def simulate_scans(shape, n_bands: int, factor: int, photons_high: float, photons_low: float, seed: int):
    """The HR high-SNR reference and the LR low-SNR fast scan of the same cell, and the axis."""
    high = simulate_cell(shape, n_bands=n_bands, photons=photons_high, seed=seed)
    low = simulate_cell(shape, n_bands=n_bands, photons=photons_low, seed=seed)  # same clean cube
    return high.noisy, skip_sample(low.noisy, factor), high.wavenumbers, len(high.names)


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def run_workflow(
    shape=(64, 64),
    n_bands: int = 500,
    factor: int = 2,
    photons_high: float = 1000.0,
    photons_low: float = 100.0,
    seed: int = 0,
    denoisers=(DEFAULT, "resunet", "savgol", "pca"),
    upscalers=("hyrisr", "bicubic"),
    n_endmembers: int | None = None,
    quiet: bool = False,
) -> WorkflowResult:
    """Simulate, denoise, super-resolve, unmix and score every denoiser x upscaler combination.

    ``denoisers`` are ``nd.denoise`` method names, ``"default"`` (its default) or ``"raw"`` (no
    denoising); the raw fast scan is always included. ``n_endmembers`` defaults to the number of
    simulated components.
    """
    reference, fast_scan, wavenumbers, n_components = simulate_scans(
        shape, n_bands, factor, photons_high, photons_low, seed
    )
    k = n_components if n_endmembers is None else int(n_endmembers)
    _log(
        f"reference {reference.shape}, fast scan {fast_scan.shape} "
        f"({photons_high / photons_low:g}x shorter dwell, {factor}x coarser step: "
        f"{factor * factor * photons_high / photons_low:g}x less imaging time)",
        quiet,
    )

    names = [RAW] + [DEFAULT_DENOISER if d == DEFAULT else d for d in denoisers if d != RAW]
    names = list(dict.fromkeys(names))
    denoised = {}
    for name in names:
        start = time.perf_counter()
        denoised[name] = fast_scan if name == RAW else nd.denoise(
            fast_scan, method=name, wavenumbers=wavenumbers
        )
        _log(f"denoise {name}: {time.perf_counter() - start:.2f} s", quiet)

    versions, meta = {}, {}
    for name in names:
        for method in upscalers:
            start = time.perf_counter()
            up = nd.upscale(denoised[name], scale=factor, method=method, wavenumbers=wavenumbers)
            elapsed = time.perf_counter() - start
            version = f"{name} + {method}"
            # the HR grid may be a pixel larger than f times the LR one: compare on the overlap
            versions[version] = up[:, : reference.shape[1], : reference.shape[2]]
            meta[version] = {"denoise": name, "upscale": method}
            _log(f"upscale {version}: {elapsed:.2f} s", quiet)

    endmembers, _pixels = nd.vca(reference, k, seed=seed)
    reference_abundances = nd.nnls(reference, endmembers)
    reference_labels = dominant_labels(reference_abundances)
    abundances = {version: nd.nnls(cube, endmembers) for version, cube in versions.items()}
    labels = {version: dominant_labels(a) for version, a in abundances.items()}
    _log(f"VCA ({k} endmembers) on the reference, NNLS of {len(versions)} versions", quiet)

    rows = run(
        nd.metrics.compare_steps(
            reference, versions, crop="overlap", labels=labels, reference_labels=reference_labels
        )
    )
    table = []
    for row in rows:
        info = meta[row["name"]]
        table.append(
            {
                "version": row["name"],
                "denoise": info["denoise"],
                "upscale": info["upscale"],
                **{key: row[key] for key in ("psnr", "ssim", "sam", "snr", "accuracy")},
            }
        )
    settings = {
        "shape": tuple(shape),
        "n_bands": n_bands,
        "factor": factor,
        "photons_high": photons_high,
        "photons_low": photons_low,
        "seed": seed,
        "n_endmembers": k,
    }
    return WorkflowResult(table, reference_labels, labels, abundances, settings)


def markdown_table(rows: list[dict]) -> str:
    """The rows as a Markdown table, best PSNR first."""
    lines = [
        "| Version | PSNR (dB) | SSIM | SAM (°) | SNR (dB) | Accuracy |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in sorted(rows, key=lambda r: -r["psnr"]):
        lines.append(
            f"| {row['version']} | {row['psnr']:.2f} | {row['ssim']:.3f} | {row['sam']:.2f} "
            f"| {row['snr']:.2f} | {row['accuracy']:.1%} |"
        )
    return "\n".join(lines)


def write_outputs(result: WorkflowResult, out: Path, maps: bool) -> list[Path]:
    """``table.csv`` and ``table.md`` (and the class maps when ``maps``) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "table.csv", out / "table.md"]
    with written[0].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(result.rows)
    settings = ", ".join(f"{key} {value}" for key, value in result.settings.items())
    written[1].write_text(f"Simulated cell: {settings}\n\n{markdown_table(result.rows)}\n", encoding="utf-8")
    if maps:
        written += [_save_maps(result, out / "maps.npz"), _plot_labels(result, out / "labels.png")]
    return written


DOC_START, DOC_END = "<!-- example:table -->", "<!-- /example:table -->"


def update_doc(result: WorkflowResult, path: Path, command: str) -> Path:
    """Replace the table between the ``example:table`` markers of a Markdown page."""
    text = path.read_text(encoding="utf-8")
    if DOC_START not in text or DOC_END not in text:
        raise ValueError(f"{path} has no {DOC_START} ... {DOC_END} markers")
    before, rest = text.split(DOC_START, 1)
    _old, after = rest.split(DOC_END, 1)
    section = (
        f"{DOC_START}\n`{command}` ({time.strftime('%Y-%m-%d')}), best PSNR first:\n\n"
        f"{markdown_table(result.rows)}\n{DOC_END}"
    )
    path.write_text(before + section + after, encoding="utf-8")
    return path


def _save_maps(result: WorkflowResult, path: Path) -> Path:
    arrays = {"reference_labels": result.reference_labels}
    for version, labels in result.labels.items():
        key = version.replace(" + ", "__")
        arrays[f"labels_{key}"] = labels
        arrays[f"abundances_{key}"] = result.abundances[version]
    np.savez_compressed(path, **arrays)
    return path


def _plot_labels(result: WorkflowResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("reference", result.reference_labels)] + [
        (f"{row['version']}\n{row['accuracy']:.1%}", result.labels[row["version"]])
        for row in result.rows
    ]
    columns = min(5, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.6 * rows), squeeze=False)
    top = int(max(labels.max() for _, labels in panels))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, labels) in zip(axes.ravel(), panels):
        ax.imshow(labels, cmap="tab10", vmin=0, vmax=max(top, 9), interpolation="nearest")
        ax.set_title(title, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def add_scans_to_viewer(viewer, shape, n_bands, factor, photons_high, photons_low, seed) -> list:
    """The reference and the fast scan as napari layers, overlaid in world coordinates.

    The fast scan's pixel ``i`` is the reference's pixel ``factor * i + factor // 2``: its layer
    gets ``scale = factor`` and ``translate = factor // 2``, as the plugin's samples do.
    """
    reference, fast_scan, wavenumbers, _k = simulate_scans(
        shape, n_bands, factor, photons_high, photons_low, seed
    )
    common = {
        "metadata": {"wavenumbers": wavenumbers},
        "axis_labels": ("wavenumber", "y", "x"),
        "units": ("1/cm", "pixel", "pixel"),
        "colormap": "magma",
    }
    offset = float(factor // 2)
    return [
        viewer.add_image(reference, name=f"reference (HR, {photons_high:g} photons)", **common),
        viewer.add_image(
            fast_scan,
            name=f"fast scan (1/{factor}, {photons_low:g} photons)",
            scale=(1.0, float(factor), float(factor)),
            translate=(0.0, offset, offset),
            **common,
        ),
    ]


def open_in_napari(args: argparse.Namespace) -> None:
    """Open napari with both scans and the docks of the workflow, for clicking the same steps."""
    import napari

    viewer = napari.Viewer(title="DeepeR workflow")
    add_scans_to_viewer(
        viewer, args.size, args.bands, args.factor, args.photons_high, args.photons_low, args.seed
    )
    for dock in ("Denoise", "Super-resolve", "Unmix (VCA + NNLS)", "Compare"):
        viewer.window.add_plugin_dock_widget("napari-deeper", dock, tabify=True)
    napari.run()


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", " ").split()
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"size must be N or YxX, got {text!r}")
    values = [int(p) for p in parts]
    return (values[0], values[-1])


def _names(text: str) -> list[str]:
    return [name.strip().lower() for name in text.split(",") if name.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Reproduce the DeepeR workflow (denoise, super-resolve, VCA + NNLS, compare) "
        "on a simulated cell and print the table."
    )
    parser.add_argument("--size", type=_size, default=(64, 64), help="HR image size, N or YxX (64)")
    parser.add_argument("--bands", type=int, default=500, help="number of bands (500)")
    parser.add_argument("--factor", type=int, default=2, choices=(2, 3, 4), help="skip-sampling factor (2)")
    parser.add_argument("--photons-high", type=float, default=1000.0, help="reference photons (1000)")
    parser.add_argument("--photons-low", type=float, default=100.0, help="fast-scan photons (100)")
    parser.add_argument("--seed", type=int, default=0, help="simulation and VCA seed (0)")
    parser.add_argument(
        "--denoisers", type=_names, default=[DEFAULT, "resunet", "savgol", "pca"],
        help="comma-separated nd.denoise methods; 'default' is its default "
        "(default,resunet,savgol,pca)",
    )
    parser.add_argument(
        "--upscalers", type=_names, default=["hyrisr", "bicubic"],
        help="comma-separated nd.upscale methods (hyrisr,bicubic)",
    )
    parser.add_argument("--endmembers", type=int, default=None, help="VCA endmembers (the simulated count)")
    parser.add_argument("--out", type=Path, default=Path("deeper-workflow"), help="output folder")
    parser.add_argument("--maps", action="store_true", help="also write labels.png and maps.npz")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    parser.add_argument(
        "--doc", type=Path, default=None,
        help="also write the table into this Markdown page, between its example:table markers",
    )
    parser.add_argument(
        "--napari", action="store_true",
        help="instead of computing, open napari with both scans and the workflow's docks",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.napari:
        open_in_napari(args)
        return 0
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = run_workflow(
        shape=args.size,
        n_bands=args.bands,
        factor=args.factor,
        photons_high=args.photons_high,
        photons_low=args.photons_low,
        seed=args.seed,
        denoisers=args.denoisers,
        upscalers=args.upscalers,
        n_endmembers=args.endmembers,
        quiet=args.quiet,
    )
    print(markdown_table(result.rows))
    written = write_outputs(result, args.out, args.maps)
    if args.doc is not None:
        command = " ".join(["python examples/deeper_workflow.py", *(argv if argv is not None else sys.argv[1:])])
        written.append(update_doc(result, args.doc, command))
    for path in written:
        _log(f"wrote {path}", args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
