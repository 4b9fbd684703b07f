"""Opening a large cube: a 1000 x 1000 x 500 float32 .npy (2 GB) through load_cube and napari.

Writes the file band chunk by band chunk into a temporary folder (deleted afterwards), then
times, in one run:

- the baseline, ``np.load`` reading the whole array into memory;
- ``load_cube(path)``: memory-mapped, with the default NaN / Inf scan over the whole file;
- ``load_cube(path, nonfinite="keep")``: memory-mapped, no scan (what the napari reader does);
- the napari reader function, and ``viewer.open`` in a real viewer (when a display is there);
- reading one pixel's spectrum from the memory map (500 values, one per 4 MB band).

The file was just written, so it is (at least partly) in the operating system's page cache:
the numbers are for a warm disk cache. Prints a table and writes the ``io`` section of
docs/benchmarks.md.

    python benchmarks/io.py [--size 1000] [--bands 500] [--no-viewer]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import machine, write_section

from napari_deeper.io import load_cube

ROOT = Path(__file__).resolve().parents[1]
SECTION = "io"


def timed(fn, repeat: int = 1):
    """(result of the last call, median seconds over ``repeat`` calls)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def write_cube(path: Path, bands: int, size: int) -> None:
    cube = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(bands, size, size))
    rng = np.random.default_rng(0)
    for start in range(0, bands, 25):
        stop = min(bands, start + 25)
        cube[start:stop] = rng.standard_normal((stop - start, size, size), dtype=np.float32)
    cube.flush()
    del cube


def viewer_open_seconds(path: Path) -> float | None:
    """Seconds for ``viewer.open(path, plugin="napari-deeper")``, or None without a display."""
    if not os.environ.get("DISPLAY"):
        return None
    import napari

    viewer = napari.Viewer(show=False)
    try:
        warm_up = path.with_name("warm_up.npy")  # the first open also loads the plugin
        np.save(warm_up, np.zeros((4, 3, 3), np.float32))
        viewer.open(str(warm_up), plugin="napari-deeper")
        layers, seconds = timed(lambda: viewer.open(str(path), plugin="napari-deeper"))
        assert isinstance(layers[0].data, np.memmap)
        return seconds
    finally:
        viewer.close()


def measure(size: int, bands: int, with_viewer: bool) -> list[tuple[str, float, str]]:
    folder = Path(tempfile.mkdtemp(prefix="napari-deeper-io-bench-"))
    path = folder / "cube.npy"
    try:
        _, write_s = timed(lambda: write_cube(path, bands, size))
        gib = path.stat().st_size / 2**30
        print(f"wrote {path} ({gib:.2f} GiB) in {write_s:.1f} s")
        _, baseline = timed(lambda: np.load(path).shape)
        rows = [(f"np.load: read all {gib:.2f} GiB into memory (baseline)", baseline)]

        cube, seconds = timed(lambda: load_cube(path))
        assert isinstance(cube.data, np.memmap) and cube.data.shape == (bands, size, size)
        rows.append(("load_cube(path): memory map + NaN/Inf scan of every value", seconds))
        cube, seconds = timed(lambda: load_cube(path, nonfinite="keep"), repeat=5)
        rows.append(('load_cube(path, nonfinite="keep"): memory map only', seconds))

        from napari_deeper._reader import get_reader

        layers, seconds = timed(lambda: get_reader(str(path))(str(path)), repeat=5)
        assert isinstance(layers[0][0], np.memmap)
        rows.append(("napari reader function (layer data tuples)", seconds))
        if with_viewer:
            seconds = viewer_open_seconds(path)
            if seconds is not None:
                rows.append(('viewer.open(path, plugin="napari-deeper") in a viewer', seconds))

        rng = np.random.default_rng(1)
        pixels = rng.integers(0, size, (20, 2))
        spectra = []
        for y, x in pixels:
            _, seconds = timed(lambda: np.array(cube.data[:, y, x]))
            spectra.append(seconds)
        rows.append(
            (f"one pixel spectrum from the memory map ({bands} values; median of 20 pixels)", statistics.median(spectra))
        )
        return [(name, seconds, ratio(seconds, baseline)) for name, seconds in rows], gib
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def ratio(seconds: float, baseline: float) -> str:
    if seconds == baseline:
        return "1x"
    if seconds < baseline:
        return f"{baseline / seconds:,.0f}x faster" if baseline / seconds >= 10 else f"{baseline / seconds:.1f}x faster"
    return f"{seconds / baseline:.1f}x slower"


def table(rows) -> str:
    lines = ["| operation | time | vs. np.load |", "|---|---:|---:|"]
    for name, seconds, ratio in rows:
        if seconds < 1e-3:
            text = f"{seconds * 1e6:.0f} µs"
        else:
            text = f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
        lines.append(f"| {name} | {text} | {ratio} |")
    return "\n".join(lines)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000, help="image side (pixels)")
    parser.add_argument("--bands", type=int, default=500)
    parser.add_argument("--no-viewer", action="store_true", help="skip the viewer.open timing")
    args = parser.parse_args()
    rows, gib = measure(args.size, args.bands, not args.no_viewer)
    body = table(rows)
    print(body)
    context = machine()
    section = (
        f"## Opening a large cube\n\n"
        f"`python benchmarks/io.py`: a {args.size} x {args.size} x {args.bands} float32 `.npy` "
        f"({gib:.2f} GiB, bands first) written to a temporary folder and opened at once, so the "
        f"file is in the page cache (a warm disk). Machine: {context}, shared with other "
        f"jobs while measuring, so expect some spread.\n\n{body}\n\n"
        "`load_cube` leaves a float32 `(B, Y, X)` `.npy` on disk as a read-only memory map: opening "
        "costs the header check, plus one pass over the file when NaN / Inf are checked (the "
        "default; the napari reader skips that pass and keeps NaN / Inf as they are). A spectrum "
        "then reads only the pages it touches."
    )
    write_section(SECTION, section)


if __name__ == "__main__":
    main()
