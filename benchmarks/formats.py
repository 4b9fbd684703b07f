"""Opening instrument files and text exports: load_cube against the readers underneath it.

Times, in one run and on the same files:

- every file of ``shared/data/vendor/`` (RosettaSciIO's test data): RosettaSciIO's own
  ``file_reader`` (the baseline: decoding only) and ``load_cube(path, nonfinite="keep")``
  (decoding, placing the spectra on the grid, the white light, the axis, the metadata);
- a simulated cell written as a long table (``x y wavenumber intensity``, one value per line) and
  as a wide table (one spectrum per row): ``np.loadtxt`` of the same file (the baseline: parsing
  only), ``pandas.read_csv`` (a faster C parser, when pandas is installed) and ``load_cube``.

Medians of ``--repeat`` calls after one warm-up call (files in the page cache). Prints a table
and writes the ``formats`` section of docs/benchmarks.md.

    python benchmarks/formats.py [--repeat 5] [--size 64] [--bands 500]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import machine, write_section

import napari_deeper as nd
from napari_deeper.io._vendor import _rsciio_log

VENDOR = Path(__file__).resolve().parents[2] / "shared" / "data" / "vendor"
MODULES = {".wdf": "renishaw", ".xml": "jobinyvon", ".tvf": "trivista"}


def median_seconds(*functions, repeat: int) -> list[float]:
    """Median seconds of each function, called in turn ``repeat`` times after one warm-up each.

    Interleaving the calls spreads a changing machine load evenly over the contenders.
    """
    times = [[] for _ in functions]
    for fn in functions:
        fn()
    for _ in range(repeat):
        for fn, spent in zip(functions, times):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def vendor_rows(repeat: int) -> list[str]:
    rows = []
    for path in sorted(p for p in VENDOR.iterdir() if p.suffix in MODULES):
        reader = importlib.import_module(f"rsciio.{MODULES[path.suffix]}").file_reader
        with _rsciio_log():  # its warnings collected, as load_cube does, not printed
            baseline, ours = median_seconds(
                lambda: reader(str(path)), lambda: nd.load_cube(path, nonfinite="keep"), repeat=repeat
            )
        cube = nd.load_cube(path, nonfinite="keep")
        shape = " x ".join(str(n) for n in cube.shape)
        rows.append(
            f"| {path.name} | {path.stat().st_size / 1024:.0f} KiB | {shape} | "
            f"{1000 * baseline:.1f} ms | {1000 * ours:.1f} ms | {ours / baseline:.2f} |"
        )
    return rows


def write_tables(folder: Path, size: int, bands: int):
    sim = nd.simulate.simulate_cell(shape=(size, size), n_bands=bands, seed=0)
    cube, axis = sim.noisy, sim.wavenumbers
    ys, xs = np.meshgrid(0.5 * np.arange(size), 0.5 * np.arange(size), indexing="ij")
    n = size * size
    long = np.empty((n * bands, 4))
    long[:, 0] = np.repeat(xs.ravel(), bands)
    long[:, 1] = np.repeat(ys.ravel(), bands)
    long[:, 2] = np.tile(axis, n)
    long[:, 3] = cube.reshape(bands, -1).T.ravel()
    long_path = folder / "map_long.txt"
    np.savetxt(long_path, long, fmt="%.6f", delimiter="\t", header="X\tY\tWave\tIntensity")
    wide = np.column_stack([xs.ravel(), ys.ravel(), cube.reshape(bands, -1).T])
    wide_path = folder / "map_wide.csv"
    header = "x,y," + ",".join(f"{w:.6f}" for w in axis)
    np.savetxt(wide_path, wide, fmt="%.6f", delimiter=",", header=header, comments="")
    return cube, long_path, wide_path


def text_rows(repeat: int, size: int, bands: int) -> list[str]:
    try:
        import pandas
    except ImportError:
        pandas = None
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        cube, long_path, wide_path = write_tables(Path(folder), size, bands)
        for path, delimiter, kind in ((long_path, "\t", "long"), (wide_path, ",", "wide")):
            read = nd.load_cube(path)
            assert np.allclose(read.data, cube, atol=5e-7, rtol=1e-6), f"{kind} table read back wrong"
            contenders = [
                lambda: np.loadtxt(path, delimiter=delimiter, skiprows=1, comments="#", ndmin=2, encoding="utf-8-sig"),
                lambda: nd.load_cube(path),
            ]
            if pandas is not None:
                contenders.append(lambda: pandas.read_csv(path, sep=delimiter, skiprows=1, header=None).to_numpy())
            parse, ours, *fast = median_seconds(*contenders, repeat=repeat)
            fast = fast[0] if fast else float("nan")
            rows.append(
                f"| {kind} table, {size} x {size} x {bands} | {path.stat().st_size / 2**20:.0f} MiB | "
                f"{parse:.2f} s | {fast:.2f} s | {ours:.2f} s | {ours / parse:.2f} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=64, help="side of the simulated map written as text")
    parser.add_argument("--bands", type=int, default=500)
    args = parser.parse_args()
    lines = ["## Opening instrument files and text exports", ""]
    have_rsciio = importlib.util.find_spec("rsciio") is not None
    if VENDOR.is_dir() and have_rsciio:
        lines += [
            f"`benchmarks/formats.py`: every file of `shared/data/vendor/`, median of {args.repeat} "
            "interleaved calls after a warm-up (files in the page cache). The baseline is RosettaSciIO's "
            "`file_reader` alone; `load_cube` adds placing the spectra on the map grid, the "
            "white-light image, the spectral axis and the metadata.",
            "",
            "| file | size | cube (B x Y x X) | RosettaSciIO `file_reader` | `load_cube` | ratio |",
            "|---|---|---|---|---|---|",
            *vendor_rows(args.repeat),
            "",
        ]
    lines += [
        f"Text exports of a simulated {args.size} x {args.size} map of {args.bands} bands (6 "
        f"decimals), median of {args.repeat} interleaved calls: `np.loadtxt` of the same file is the baseline "
        "(parsing only; `load_cube` parses with it, then rebuilds the grid from the x, y "
        "columns); `pandas.read_csv` for comparison.",
        "",
        "| table | size | `np.loadtxt` | `pandas.read_csv` | `load_cube` | ratio to `np.loadtxt` |",
        "|---|---|---|---|---|---|",
        *text_rows(args.repeat, args.size, args.bands),
        "",
        f"Machine: {machine()}"
        + (f", RosettaSciIO {importlib.import_module('rsciio').__version__}." if have_rsciio else "."),
    ]
    text = "\n".join(lines)
    print(text)
    write_section("formats", text)


if __name__ == "__main__":
    main()
