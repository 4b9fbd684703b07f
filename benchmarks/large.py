"""Cubes larger than memory: streamed denoising, upscaling and unmixing of an on-disk zarr cube.

A simulated cell (128 x 128 pixels, 500 bands, 100 photons) is tiled into a float32 zarr store
of ``--size`` x ``--size`` pixels (1024: 2 GiB) written block by block, so it is never in memory
whole. Every case runs in its own process under a memory limit (``RLIMIT_DATA``, which bounds
the heap and every private writable mapping, so an operation that tried to hold the cube would
fail with MemoryError), opens the store lazily with ``load_cube`` and streams the result into a
new zarr store through :mod:`napari_deeper.stream`: the default denoiser (``hybrid``: noise
model, noise scaling, subspace and component scores gathered block by block, component images
denoised whole, reconstruction written by rows of tiles), Savitzky-Golay denoising (per spectrum),
PCA denoising (automatic rank: passes for the noise scaling, the rank, the Gram matrix, then the
reconstruction), bicubic upscaling 2x and the default super-resolution network 2x (of the
store's top-left ``--upscale-size`` pixels a side, a lazy slice, to keep the run short on a
2-core machine; the network's basis and component images from passes over pixel blocks, its
fine-tuning on those images, its self-check on the central 256 x 256 pixels), NNLS unmixing (5 VCA endmembers), and the
Unmix dock's default run (spikes removed into a scratch store, VCA on it, NNLS with the residual
into maps in memory). Peak resident memory is ``VmHWM``;
a zarr store is read with ``read()`` calls, so the page cache never counts in it.

The baseline, measured in the same run, is the plain in-memory call of the same method on a
cube that fits (``--small`` pixels a side), in a process of its own too.

    python benchmarks/large.py [--size 1024] [--upscale-size 512] [--small 256] [--limit-gib 2.5] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import machine, write_section

SECTION = "large"
BANDS, TILE, N_ENDMEMBERS = 500, 128, 5
GIB = 2.0**30
#: (task, method, label)
CASES = [("hybrid", "hybrid", "default denoiser (hybrid)"), ("denoise", "savgol", "Savitzky-Golay (window 11)"),
         ("pca", "pca", "PCA (automatic rank)"), ("upscale", "bicubic", "bicubic 2x"),
         ("network", "hyrisr", "hyrisr 2x, the default (adapted to the cube, self-checked)"),
         ("nnls", "nnls", f"NNLS, {N_ENDMEMBERS} endmembers"),
         ("unmix", "unmix", f"Unmix dock's run: spikes removed, VCA, NNLS ({N_ENDMEMBERS} endmembers)")]


def _runs() -> dict:
    """``task: steps(data, wavenumbers, endmembers, out, streamed)``: the stream module's calls,
    which are the plain in-memory ones when ``streamed`` is False."""
    from napari_deeper import stream

    return {
        "hybrid": lambda data, wn, em, out, streamed: stream.denoise_steps(data, None, wn, out=out, stream=streamed),
        "denoise": lambda data, wn, em, out, streamed: stream.denoise_steps(data, "savgol", wn, out=out,
                                                                             stream=streamed, window=11),
        "pca": lambda data, wn, em, out, streamed: stream.denoise_steps(data, "pca", wn, out=out, stream=streamed),
        "upscale": lambda data, wn, em, out, streamed: stream.upscale_steps(data, 2, "bicubic", out=out,
                                                                             stream=streamed),
        "network": lambda data, wn, em, out, streamed: stream.upscale_steps(data, 2, "hyrisr", "cpu", out=out,
                                                                             stream=streamed),
        "nnls": lambda data, wn, em, out, streamed: stream.nnls_steps(data, em, out=out, stream=streamed),
        "unmix": lambda data, wn, em, out, streamed: stream.unmix_steps(data, {"cube": data}, N_ENDMEMBERS,
                                                                         despike=8.0, device="cpu"),
    }


def _output_bytes(result) -> int:
    """Bytes of a case's result: a cube or map (float32), or an unmixing run's maps."""
    if hasattr(result, "targets"):
        return sum(t.abundances.nbytes + t.residual.nbytes + t.labels.nbytes for t in result.targets.values())
    return int(np.prod(result.shape)) * 4


def cell() -> tuple[np.ndarray, np.ndarray]:
    from napari_deeper import simulate

    sim = simulate.simulate_cell((TILE, TILE), n_bands=BANDS, photons=100.0, seed=7)
    return np.asarray(sim.noisy, dtype=np.float32), np.asarray(sim.wavenumbers)


def write_store(path: Path, size: int) -> None:
    """The tiled cell as a zarr store, one row of tiles at a time."""
    from napari_deeper.io._zarr import StoreWriter

    tile, wn = cell()
    with StoreWriter(path, (BANDS, size, size), wavenumbers=wn, record={"spectral_unit": "1/cm"}) as writer:
        row = np.tile(tile, (1, 1, -(-size // TILE)))[:, :, :size]
        for y in range(0, size, TILE):
            writer.write((slice(None), slice(y, min(size, y + TILE)), slice(None)), row[:, : min(TILE, size - y)])
        writer.commit()


def _peak() -> int:
    """This process's peak resident memory in bytes (Linux ``VmHWM``, not ``ru_maxrss``)."""
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) * 1024


def _noting(steps):
    """Run ``steps`` to the end: ``(result, how many components it kept)`` (from its messages).

    A MemoryError says which step it came after."""
    kept, message = "", ""
    while True:
        try:
            progress = next(steps)
        except StopIteration as stop:
            return stop.value, kept
        except MemoryError as error:
            raise MemoryError(f"{error} (after {message!r})") from None
        message = progress.message
        found = re.search(r"(\d+ components)\)?$", message)  # hybrid's "...from 12 components", PCA's "(6 components)"
        kept = found.group(1) if found else kept


def child(task: str, mode: str, source: str, out: str, endmembers: str, limit: float, crop: int) -> None:
    """One case in this process: streamed on the store, or in memory on a small cube."""
    import napari_deeper as nd
    from napari_deeper import denoise, stream, superres, unmix  # noqa: F401  (imports are not the run's memory)
    from napari_deeper.io import load_cube

    em = np.load(endmembers)
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (int(limit * GIB), int(limit * GIB)))
    if mode == "streamed":
        data = load_cube(source).data
        if task in ("upscale", "network"):
            data = data[:, :crop, :crop]
    else:
        data = np.load(source)
    wn = np.linspace(500.0, 1800.0, BANDS)
    warm = np.asarray(data[:, :16, :16])  # first calls import their libraries: not the run's time
    nd.denoise(warm, "savgol", wn, window=11), nd.upscale(warm, 2, "bicubic"), nd.nnls(warm, em)
    if task == "hybrid":
        nd.denoise(warm, wavenumbers=wn)
    if task == "network":
        nd.upscale(warm, 2, "hyrisr", device="cpu", adapt="off")  # torch and the weights
    before = _peak()
    start = time.perf_counter()
    result, note = _noting(_runs()[task](data, wn, em, out, mode == "streamed"))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak": _peak(), "before": before,
                      "pixels": int(data.shape[1] * data.shape[2]), "input": int(np.prod(data.shape)) * 4,
                      "output": _output_bytes(result), "note": note}))


def run_case(task: str, mode: str, source: Path, out: Path, endmembers: Path, limit: float, crop: int) -> dict:
    command = [sys.executable, __file__, "--child", task, mode, str(source), str(out), str(endmembers), str(limit),
               str(crop)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return {"failed": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def table(rows) -> str:
    lines = ["| operation | run | input | result | time | throughput | peak memory | beyond start |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for label, mode, r in rows:
        if "failed" in r:
            lines.append(f"| {label} | {mode} | | | failed: {r['failed']} | | | |")
            continue
        lines.append(
            f"| {label} | {mode} | {r['input'] / GIB:.2f} GiB | {r['output'] / GIB:.2f} GiB | {r['seconds']:.1f} s | "
            f"{r['pixels'] / r['seconds'] / 1e3:.1f} kpixel/s ({r['input'] / r['seconds'] / 2**20:.0f} MiB/s) | "
            f"{r['peak'] / GIB:.2f} GiB | {(r['peak'] - r['before']) / GIB:+.2f} GiB |")
        if r.get("note"):
            lines[-1] = lines[-1].replace(f"| {label} |", f"| {label}, {r['note']} |", 1)
    return "\n".join(lines)


def _minutes(rows, size: int) -> float:
    """Minutes the streamed upscaling of ``rows`` would take on a ``size`` x ``size`` cube."""
    for label, mode, r in rows:
        if label.startswith("bicubic") and mode.startswith("streamed") and "failed" not in r:
            return size**2 / (r["pixels"] / r["seconds"]) / 60
    return float("nan")


def _images(size: int, components: int = 40) -> float:
    """GiB of the hybrid's component images (its scores, float32) at ``size``."""
    return components * size**2 * 4 / GIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="pixels a side of the on-disk cube")
    parser.add_argument("--upscale-size", type=int, default=512, help="pixels a side of the store's part upscaled")
    parser.add_argument("--small", type=int, default=256, help="pixels a side of the in-memory baseline cube")
    parser.add_argument("--limit-gib", type=float, default=2.5, help="RLIMIT_DATA of the streamed runs (0: none)")
    parser.add_argument("--folder", default=None, help="where the stores go (default: a temporary folder)")
    parser.add_argument("--cases", default=",".join(task for task, _, _ in CASES),
                        help="comma-separated cases to run (default: all of them)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, mode, source, out, endmembers, limit, crop = args.child
        child(task, mode, source, out, endmembers, float(limit), int(crop))
        return
    import napari_deeper as nd

    with tempfile.TemporaryDirectory(dir=args.folder) as name:
        folder = Path(name)
        store = folder / "cube.zarr"
        start = time.perf_counter()
        write_store(store, args.size)
        written = time.perf_counter() - start
        tile, _ = cell()
        small = np.tile(tile, (1, -(-args.small // TILE), -(-args.small // TILE)))[:, : args.small, : args.small]
        np.save(folder / "small.npy", np.ascontiguousarray(small))
        endmembers, _ = nd.vca(tile, N_ENDMEMBERS, seed=0)
        np.save(folder / "endmembers.npy", endmembers)
        rows = []
        for task, _method, label in [case for case in CASES if case[0] in args.cases.split(",")]:
            for mode, source, limit in (("in memory", folder / "small.npy", 0.0),
                                        ("streamed", store, args.limit_gib)):
                out = folder / f"{task}.zarr"
                result = run_case(task, "streamed" if mode == "streamed" else "memory", source, out,
                                  folder / "endmembers.npy", limit, args.upscale_size)
                shutil.rmtree(out, ignore_errors=True)
                rows.append((label, mode + (f" (limit {limit:g} GiB)" if limit else ""), result))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = table(rows)
    section = f"""## Cubes larger than memory

`python benchmarks/large.py --size {args.size} --upscale-size {args.upscale_size} --small {args.small} --limit-gib {args.limit_gib:g}`:
a simulated cell tiled into a {args.size} x {args.size} x {BANDS} float32 zarr store ({args.size**2 * BANDS * 4 / GIB:.1f} GiB,
written in {written:.0f} s), opened lazily with `load_cube` (the upscaling on its top-left
{args.upscale_size} x {args.upscale_size} pixels, a lazy slice) and streamed into a new zarr store by
`napari_deeper.stream` in a fresh process per case, under `RLIMIT_DATA` = {args.limit_gib:g} GiB (heap and every
private writable mapping: an operation holding the cube would fail). Baseline, same run: the plain in-memory
call of the same method on a {args.small} x {args.small} x {BANDS} cube, in its own process. Peak memory is
`VmHWM` (zarr is read with `read()`, so no page cache counts in it); "beyond start" is the peak minus the
resident size after the imports and the lazy open. Machine: {machine()}.

{text}

The upscaling runs on a {args.upscale_size} x {args.upscale_size} part of the store (a lazy slice): the whole store
upscaled 2x would be a {4 * args.size**2 * BANDS * 4 / GIB:.0f} GiB result and, at the streamed throughput measured
here, take {_minutes(rows, args.size):.0f} minutes on this shared 2-core machine.
A per-pixel streamed run holds one block (every band of one row of 64 x 64 tiles, at most 96 MiB
of input; 128 x 128 input tiles with a 12-pixel margin when upscaling) and its result block,
whatever the size of the cube. The default denoiser, `hybrid`, reads the store about four times
(the noise model's strips, the 4096 evenly spaced spectra of its noise scaling, which touch every
shard, then one pass each for the pixel scales, the subspace and the component scores, in blocks
of at most 32 MiB of input) and writes the result once, by rows of tiles. It holds, besides one
block and one row of tiles, its component images: components x pixels float32, which is what
grows with the cube ({_images(args.size):.2f} GiB here at the default `max_components` of 40,
the number this tiled cell keeps); their noise variances, as large again, wait on disk beside
the store from the score pass to the spatial step. The load average (other work on the machine) changes the times by
up to 2-3x from minute to minute: compare rows measured together.
"""
    print(section)
    if not args.no_write:
        write_section(SECTION, section)


if __name__ == "__main__":
    main()
