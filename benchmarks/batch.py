"""Benchmark: a recipe over 32 cubes, on a LocalCluster, against one process in a plain loop.

    .venv/bin/python benchmarks/batch.py                 # 32 cubes of 64 x 64 x 500
    .venv/bin/python benchmarks/batch.py --cubes 8 --no-write

The recipe is the default denoising, the band map at 1450 cm-1 (area, 30 cm-1 wide) and NNLS
with fixed endmembers (the simulator's five), on simulated cells saved as .npz. Measured in the
same run, in interleaved rounds, the best of each:

- **plain loop**: one process, for each file ``load_cube``, ``recipe.run``, and the three results
  written (the denoised cube with ``save_cube``, the band map and the abundances as TIFF); with
  BLAS held to one thread, and (first round only, a reference) with the default BLAS threads;
- **the engine on a LocalCluster** of 1 and of 2 worker processes (one thread each, BLAS at one
  thread): wall time with the cluster's start and stop, and without them;
- **two plain loops at once**, in 2 processes started (and warmed up on one cube) before the clock
  starts, each on half the files: what this machine's cores give to independent work, the ceiling
  of any engine's speed-up here.

Then the engine's overhead, two ways that do not depend on the load drifting between runs:

- **per cube, in this process**: for ``--paired`` cubes, the plain loop's work on one cube and the
  engine's (:func:`napari_deeper.batch.job.run_job`: the same plus the Unmix dock's full export
  with labels and residual, the figures, provenance on every file, atomic writes, the marker)
  timed back to back, BLAS at one thread; the mean and spread of the differences, in wall time and
  in this process's CPU time (which other work on the machine moves less);
- **per cube, Dask's**: on the 1-worker cluster, the wall time (start excluded) minus the time
  (start and stop excluded) minus the time spent inside the tasks, per cube: scheduling, and
  handing results back.

Prints a table and replaces the ``batch`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_section  # noqa: E402


def make_cubes(folder: Path, n: int, shape, bands: int):
    import napari_deeper as nd

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sim = nd.simulate.simulate_cell(shape, n_bands=bands, seed=i)
        nd.save_cube(nd.Cube(sim.noisy.astype(np.float32), sim.wavenumbers, {}), folder / f"cell{i:02d}.npz")
    return sim.endmembers


def recipe_of(endmembers) -> dict:
    return {"format": "napari-deeper recipe", "version": 1, "steps": [
        {"operation": "denoise", "method": None, "params": {}},
        {"operation": "band_map", "method": "area", "params": {"center": 1450.0, "width": 30.0}, "input": 1},
        {"operation": "unmix", "method": "nnls", "params": {"endmembers": endmembers.tolist()}, "input": 1},
    ]}


def plain_one(replay, path: Path, out: Path) -> None:
    """The plain loop's work on one cube: read, replay, write the three results."""
    import tifffile

    import napari_deeper as nd

    denoised, band, abundances = replay.run(nd.load_cube(path)).outputs
    nd.save_cube(denoised, out / f"{path.stem}-denoised.npz")
    tifffile.imwrite(out / f"{path.stem}-band.tif", band)
    tifffile.imwrite(out / f"{path.stem}-abundance.tif", abundances)


def plain_loop(recipe: dict, files: list[Path], out: Path, blas_threads: int | None) -> float:
    """One process, one cube after the other, the three results written; returns seconds."""
    from threadpoolctl import threadpool_limits

    from napari_deeper.recipe import Recipe

    replay = Recipe.from_dict(recipe)
    out.mkdir(parents=True)
    started = time.perf_counter()
    with threadpool_limits(limits=blas_threads):
        for path in files:
            plain_one(replay, path, out)
    return time.perf_counter() - started


def _warm(recipe: dict, path: Path) -> int:
    """Imports and caches of a fresh process: one cube replayed, nothing written; returns its pid."""
    import napari_deeper as nd
    from napari_deeper.recipe import Recipe

    Recipe.from_dict(recipe).run(nd.load_cube(path))
    return os.getpid()


def parallel_loops(recipe: dict, files: list[Path], out: Path, processes: int = 2) -> float:
    """``processes`` plain loops at once (BLAS at one thread), each on its share of ``files``, in
    processes started and warmed up before the clock starts; returns seconds."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    shares = [files[i::processes] for i in range(processes)]
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        while len(set(pool.map(_warm, [recipe] * processes, [files[0]] * processes))) < processes:
            pass  # one process took two warm-ups: warm again until each has run one
        started = time.perf_counter()
        list(pool.map(plain_loop, [recipe] * processes, shares, [out / f"{i}" for i in range(processes)],
                      [1] * processes))
        return time.perf_counter() - started


def engine(recipe: dict, folder: Path, out: Path, **options) -> tuple[float, float, float]:
    """The engine on a cluster: (wall s, s without the cluster's start and stop, s inside the tasks)."""
    from napari_deeper.batch import run_batch

    started = time.perf_counter()
    report = run_batch(recipe, [folder], out, **options)
    wall = time.perf_counter() - started
    if report.counts["ok"] != len(report.rows):
        raise RuntimeError(f"the batch did not finish every cube: {report.counts}")
    work = wall - report.setup_seconds - report.teardown_seconds
    return wall, work, sum(row["seconds"] for row in report.rows)


def paired_overhead(recipe: dict, files: list[Path], scratch: Path) -> tuple[list[float], list[float]]:
    """Seconds the engine adds to each cube, (wall, CPU): its job and the plain work, back to back."""
    from threadpoolctl import threadpool_limits

    from napari_deeper.batch import plan
    from napari_deeper.batch.job import run_job
    from napari_deeper.recipe import Recipe

    replay = Recipe.from_dict(recipe)
    plain_out = scratch / "paired-plain"
    plain_out.mkdir()
    _, jobs, _ = plan(recipe, files, scratch / "paired-engine", threads=1)
    wall, cpu = [], []

    def timed(work) -> tuple[float, float]:
        started, used = time.perf_counter(), time.process_time()
        work()
        return time.perf_counter() - started, time.process_time() - used

    with threadpool_limits(limits=1):
        for index, (path, job) in enumerate(zip(files, jobs)):
            engine_work, plain_work = (lambda: run_job(job)), (lambda: plain_one(replay, path, plain_out))
            if index % 2:  # alternate which goes first
                engine_times, plain_times = timed(engine_work), timed(plain_work)
            else:
                plain_times = timed(plain_work)
                engine_times = timed(engine_work)
            wall.append(engine_times[0] - plain_times[0])
            cpu.append(engine_times[1] - plain_times[1])
    return wall, cpu


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cubes", type=int, default=32)
    parser.add_argument("--size", type=int, default=64, help="cubes are SIZE x SIZE pixels")
    parser.add_argument("--bands", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2, help="rounds of the measurements, interleaved")
    parser.add_argument("--paired", type=int, default=8, help="cubes timed back to back for the overhead")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    import napari_deeper as nd
    from napari_deeper.recipe import Recipe

    scratch = Path(tempfile.mkdtemp(prefix="napari-deeper-batch-bench-"))
    runs = {
        "loop": ("plain loop, one process, default BLAS threads", lambda out: plain_loop(recipe, files, out, None)),
        "loop1": ("plain loop, one process, BLAS 1 thread", lambda out: plain_loop(recipe, files, out, 1)),
        "one": ("engine, LocalCluster of 1 worker", lambda out: engine(recipe, folder, out, workers=1)),
        "two": ("engine, LocalCluster of 2 workers", lambda out: engine(recipe, folder, out, workers=2)),
        "pair": ("two plain loops at once, 2 processes, BLAS 1 thread", lambda out: parallel_loops(recipe, files, out)),
    }
    measured: dict[str, list] = {key: [] for key in runs}
    try:
        folder = scratch / "cubes"
        endmembers = make_cubes(folder, args.cubes, (args.size, args.size), args.bands)
        recipe = recipe_of(endmembers)
        files = sorted(folder.glob("*.npz"))
        Recipe.from_dict(recipe).run(nd.load_cube(files[0]))  # imports and caches, not timed
        loads = [os.getloadavg()[0]]
        for round_ in range(args.repeats):
            for key, (label, measure) in runs.items():
                if key == "loop" and round_:  # a reference only, and the slowest: once is enough
                    continue
                out = scratch / f"{key}-{round_}"
                result = measure(out)
                measured[key].append(result if isinstance(result, tuple) else (result, result, result))
                shutil.rmtree(out, ignore_errors=True)
                print(f"  round {round_ + 1}, {label}: {measured[key][-1][0]:.1f} s", flush=True)
        paired, paired_cpu = paired_overhead(recipe, files[: args.paired], scratch)
        loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    n = args.cubes
    best = {key: min(results) for key, results in measured.items()}
    base, reference = best["loop1"][0], best["loop"][0]
    header = ("| run | wall s | s without cluster start, stop | per cube s | speed-up vs loop (BLAS 1) | "
              "vs loop (default BLAS) |\n|---|---|---|---|---|---|")
    lines = [
        f"| {runs[key][0]} | {wall:.1f} | {work:.1f} | {work / n:.3f} | {base / wall:.2f}x | {reference / wall:.2f}x |"
        for key, (wall, work, _inside) in best.items()
    ]
    table = "\n".join([header, *lines])
    rounds = "; ".join(f"{runs[key][0]}: " + ", ".join(f"{r[0]:.1f}" for r in results)
                       for key, results in measured.items())
    two_wall, two_work, _ = best["two"]
    one_wall, one_work, one_inside = best["one"]
    text = f"""## Batch: a recipe over many cubes (`benchmarks/batch.py`)

{n} simulated cells of {args.size} x {args.size} x {args.bands} (.npz), recipe = default denoising + band map at
1450 cm⁻¹ + NNLS with the simulator's five endmembers; every result written. Measured in the same run, in
{args.repeats} interleaved rounds, the best of each (the default-threads loop in the first round only); the
cluster's start (worker processes and their imports) and stop are in the wall time and left out of the next
column.

{table}

- LocalCluster of 2 workers against one process in a plain loop: **{base / two_wall:.2f}x** against the loop
  with BLAS at one thread ({base / two_work:.2f}x without the cluster's start and stop), {reference / two_wall:.2f}x
  against the loop with the default BLAS threads.
- Two plain loops at once, in 2 processes started before the clock, each on half the cubes:
  **{base / best["pair"][0]:.2f}x** the one loop. That is what this machine's cores give to independent
  work, the ceiling of the engine's speed-up here.
- Engine overhead per cube, in this process: **{statistics.mean(paired) * 1000:.0f} ms** (standard deviation
  {statistics.stdev(paired) * 1000:.0f} ms over {len(paired)} cubes timed back to back with the plain loop's
  work, BLAS at one thread; it writes the Unmix dock's full export with labels and residual, the figures,
  provenance on every file, atomic writes and the marker); in CPU time {statistics.mean(paired_cpu) * 1000:.0f} ms
  (standard deviation {statistics.stdev(paired_cpu) * 1000:.0f} ms).
- Dask's own overhead per cube on the 1-worker cluster: **{(one_work - one_inside) / n * 1000:.0f} ms** (wall
  time without the start and stop, minus the time inside the tasks); cluster start and stop: {two_wall - two_work:.1f} s
  for 2 workers, {one_wall - one_work:.1f} s for 1.
- Every round (wall s): {rounds}.
- Load average (1 min) {loads[0]:.1f} before and {loads[1]:.1f} after, on 2 cores shared with other work: these
  figures move with what else runs.

Machine: {machine()}.
"""
    print(text)
    if not args.no_write:
        write_section("batch", text)


if __name__ == "__main__":
    main()
