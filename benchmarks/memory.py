"""Memory on large cubes: peak resident memory of denoising and super-resolution runs.

A simulated cell (100 x 100 pixels, 500 bands, 100 photons) is tiled into float32 ``.npy``
cubes in a temporary folder: 1000 x 1000 x 500 (1.86 GiB) for the classical and hybrid
denoisers, 1000 x 250 x 500 for the per-spectrum network (250,000 spectra, to keep the run
short) and 500 x 500 x 500 for super-resolution 2x to 1000 x 1000. Every case runs in its own
process, which imports everything, opens its cube memory-mapped with ``load_cube`` (as the
napari reader does), runs one method through the public API and reports its wall time and
peak resident set size (``VmHWM``; memory-mapped input counts once its pages are read).

Working memory = peak - resident size before the run - input - output: what a method holds
beyond its input and its result. The baseline, measured in the same run, reads the input with
``np.load`` (into memory) and fills an output array of the result's size: the least any method
returning a new cube needs (working memory about zero).

    python benchmarks/memory.py [--threads 2] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import machine, write_section

SECTION = "memory"
SIZE, BANDS, TILE = 1000, 500, 100
GIB = 2.0**30

#: (task, method, input image size (rows, cols), scale)
CASES = [
    ("baseline", "read + output", (SIZE, SIZE), 1),
    ("denoise", "savgol", (SIZE, SIZE), 1),
    ("denoise", "pca", (SIZE, SIZE), 1),
    ("denoise", "hybrid", (SIZE, SIZE), 1),
    ("baseline", "read + output", (SIZE, 250), 1),
    ("denoise", "resunet", (SIZE, 250), 1),
    ("baseline", "read + output", (500, 500), 2),
    ("superres", "bicubic", (500, 500), 2),
    ("superres", "hyrisr", (500, 500), 2),
]


def write_cubes(folder: Path) -> dict[tuple[int, int], Path]:
    """One tiled simulated cell per input size of :data:`CASES`, written band block by block."""
    from napari_deeper import simulate

    cell = simulate.simulate_cell((TILE, TILE), n_bands=BANDS, photons=100.0, seed=7).noisy
    paths = {}
    for rows, cols in sorted({case[2] for case in CASES}):
        path = paths[rows, cols] = folder / f"cube-{rows}x{cols}.npy"
        cube = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(BANDS, rows, cols))
        for start in range(0, BANDS, 50):
            tiled = np.tile(cell[start:start + 50], (1, -(-rows // TILE), -(-cols // TILE)))
            cube[start:start + 50] = tiled[:, :rows, :cols]
        cube.flush()
        del cube
    return paths


def _peak() -> int:
    """This process's peak resident memory in bytes (Linux ``VmHWM``).

    Not ``ru_maxrss``: that survives ``exec`` and would start at the parent's peak.
    """
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def child(task: str, method: str, scale: int, path: str, threads: int) -> None:
    """Run one case in this process and print its time and memory as JSON."""
    import torch

    torch.set_num_threads(threads)
    import napari_deeper as nd
    from napari_deeper import denoise, superres  # noqa: F401  (imports are not the method's memory)
    from napari_deeper.io import load_cube

    data = None
    if task != "baseline":
        data = load_cube(path, layout="byx", nonfinite="keep").data
        assert isinstance(data, np.memmap), "the input should stay a memory map"
    before = _peak()
    start = time.perf_counter()
    if task == "baseline":
        data = np.load(path)
        out = np.empty((BANDS, data.shape[1] * scale, data.shape[2] * scale), dtype=np.float32)
        out[:, scale // 2::scale, scale // 2::scale] = data
    elif task == "denoise":
        out = nd.denoise(data, method=method, device="cpu")
    else:
        out = nd.upscale(data, scale=scale, method=method, device="cpu")
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak": _peak(), "before": before, "input": data.nbytes,
                      "output": out.nbytes}))


def run_case(case, path: Path, threads: int) -> dict:
    task, method, _, scale = case
    command = [sys.executable, __file__, "--child", task, method, str(scale), str(path), str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def table(rows) -> str:
    lines = ["| task | method | input | output | time | peak memory | working memory |",
             "|---|---|---|---|---:|---:|---:|"]
    for (task, method, (ny, nx), scale), r in rows:
        work = r["peak"] - r["before"] - r["input"] - r["output"]
        shape_in = f"{ny} x {nx} x {BANDS}"
        shape_out = f"{ny * scale} x {nx * scale} x {BANDS}"
        lines.append(
            f"| {task} | {method} | {shape_in} ({r['input'] / GIB:.2f} GiB) | {shape_out} "
            f"({r['output'] / GIB:.2f} GiB) | {r['seconds']:.1f} s | {r['peak'] / GIB:.2f} GiB | "
            f"{work / GIB:+.2f} GiB |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, method, scale, path, threads = args.child
        child(task, method, int(scale), path, int(threads))
        return
    with tempfile.TemporaryDirectory() as folder:
        paths = write_cubes(Path(folder))
        rows = []
        for case in CASES:
            rows.append((case, run_case(case, paths[case[2]], args.threads)))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = table(rows)
    section = f"""## Memory on large cubes

`python benchmarks/memory.py`: a simulated cell tiled into float32 `.npy` cubes (the sizes in
the table), each opened memory-mapped with `load_cube` in a fresh process per case; peak
resident memory from `VmHWM` (memory-mapped input counts once read). Working memory = peak -
resident size before the run - input - output. Baseline, same run: `np.load` of the input plus
an output array of the result's size, the least a method returning a new cube needs.
Machine: {machine()}, {args.threads} torch thread(s).

{text}

What bounds the working memory: the classical and hybrid denoisers walk the pixels in blocks
and keep only the `(bands x bands)` statistics and, for `hybrid`, up to 40 component images; the
networks denoise at most 65,536 spectra per block; interpolation (also the base of the
super-resolution networks) goes a few bands at a time, in chunks sized from the memory available
(more memory, larger chunks, so these figures grow with the machine, not with the cube); the
super-resolution networks run tiles of at most 96 x 96 low-resolution pixels.
"""
    print(text)
    if not args.no_write:
        write_section(SECTION, section)


if __name__ == "__main__":
    main()
