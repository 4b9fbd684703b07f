"""Benchmark: exact NNLS and FCLS abundances and VCA on 500-band cubes, against the per-pixel loops.

    nice -n 10 .venv/bin/python benchmarks/unmix.py            # 1e5 and 1e6 pixels
    nice -n 10 .venv/bin/python benchmarks/unmix.py --sizes 100000 --no-write

Everything runs with the machine's default threads: no BLAS, OpenMP or torch thread setting is
changed (the report states the BLAS library, kernel and thread count that threadpoolctl sees).

For each cube size (500 bands, 5 endmembers: a linear mixture with Dirichlet abundances, many
pixels with a zero abundance, Gaussian noise at 30 dB, clipped at zero so that scikit-learn's
NMF accepts it) it measures, in one run:

- NNLS baseline: ``scipy.optimize.nnls(E.T, y)`` in a Python loop over a random subset of pixels,
  the time scaled to the whole cube (it is also the exact answer the differences refer to);
- FCLS baseline: ``scipy.optimize.minimize(method="SLSQP")`` per pixel (bounds x >= 0, the
  sum-to-one equality, the analytic gradient, ``ftol`` 1e-12) on a smaller subset, scaled; the
  exact FCLS answer the differences refer to comes from trying every passive set (vectorised,
  not timed);
- ours: ``napari_deeper.nnls`` (``sum_to_one`` for FCLS) with numpy on the CPU, and with torch on
  a GPU when there is one;
- RamanSPy's NNLS and FCLS when it is installed (``ramanspy.analysis.unmix.abundance_methods``,
  which are pysptools' ``abundance_maps.NNLS`` — scipy's NNLS on the normal equations — and
  ``FCLS`` — a cvxopt QP per pixel), on the same subsets, scaled;
- scikit-learn: ``non_negative_factorization(X, H=E, update_H=False)`` (coordinate descent on the
  NNLS problem, to its default tolerance);
- for every method, the largest per-pixel difference from the exact answer (relative to the
  pixel's largest abundance) and how its residual norm compares with the exact one;
- VCA on the cube.

Prints a table and replaces the ``unmix`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import numpy as np
from _report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "unmix"
N_BANDS = 500
K = 5
#: Pixels the per-pixel NNLS loops (scipy, RamanSPy) run on; their time is scaled to the cube.
LOOP_PIXELS = 2000
#: Pixels the per-pixel QP solvers (SLSQP, RamanSPy's cvxopt FCLS) run on, scaled likewise.
QP_PIXELS = 300


def make_cube(n_pixels: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """A (500, n) float32 mixture of 5 Raman-like spectra at 30 dB, clipped at zero."""
    w = np.linspace(0.0, 1.0, N_BANDS)
    endmembers = np.full((K, N_BANDS), 0.05)
    for row in endmembers:
        for center in rng.uniform(0.05, 0.95, 6):
            row += rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((w - center) / rng.uniform(0.005, 0.03)) ** 2)
    cube = np.empty((N_BANDS, n_pixels), dtype=np.float32)
    sigma = None
    for start in range(0, n_pixels, 1 << 16):
        stop = min(n_pixels, start + (1 << 16))
        abundances = rng.dirichlet(np.full(K, 0.3), stop - start).T
        abundances[abundances < 0.05] = 0.0  # many exact zeros: active constraints
        clean = endmembers.T @ abundances
        if sigma is None:
            sigma = np.sqrt(np.mean(clean**2) / 10**3)
        block = clean + rng.normal(0.0, sigma, clean.shape)
        cube[:, start:stop] = np.maximum(block, 0.0)
    return cube, endmembers.astype(np.float32)


def timed(function, repeats: int = 1):
    """(best wall time, CPU time of that call (all threads), last result) over ``repeats`` calls.

    The best of several calls filters out the moments when other jobs on the machine took the
    cores; the CPU time says how much work the call did, whatever the load.
    """
    best, cpu, result = np.inf, np.inf, None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function()
        wall = time.perf_counter() - start
        if wall < best:
            best, cpu = wall, time.process_time() - start_cpu
    return best, cpu, result


def compare(abundances_subset: np.ndarray, reference: np.ndarray, pixels: np.ndarray, em: np.ndarray):
    """(max relative difference, max relative residual excess) against the exact answers."""
    abundances_subset = np.asarray(abundances_subset, dtype=np.float64)
    scale = np.maximum(np.abs(reference).max(axis=0), 1e-12)
    difference = float((np.abs(abundances_subset - reference).max(axis=0) / scale).max())
    matrix = em.astype(np.float64).T
    ours = np.linalg.norm(pixels - matrix @ abundances_subset, axis=0)
    theirs = np.linalg.norm(pixels - matrix @ reference, axis=0)
    excess = float(((ours - theirs) / np.maximum(theirs, 1e-300)).max())
    return difference, excess


def exact_fcls(em: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Exact FCLS by trying every passive set: the feasible stationary point of least error.

    The minimum lies inside some face of the simplex, where it is the equality-constrained
    minimum on that face's variables; every other feasible candidate has a larger error.
    """
    em = em.astype(np.float64)
    gram, b = em @ em.T, em @ pixels
    n = pixels.shape[1]
    best, best_error = np.zeros((K, n)), np.full(n, np.inf)
    for size in range(1, K + 1):
        for subset in itertools.combinations(range(K), size):
            s = list(subset)
            system = np.zeros((size + 1, size + 1))
            system[:size, :size] = gram[np.ix_(s, s)]
            system[:size, size] = system[size, :size] = 1.0
            solution = np.linalg.solve(system, np.vstack([b[s], np.ones((1, n))]))[:size]
            x = np.zeros((K, n))
            x[s] = solution
            error = np.einsum("ij,ij->j", x, gram @ x) - 2 * np.einsum("ij,ij->j", b, x)
            better = (solution.min(axis=0) >= -1e-12) & (error < best_error)
            best[:, better], best_error[better] = np.maximum(x[:, better], 0), error[better]
    return best


def slsqp_fcls(em: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """FCLS per pixel with SLSQP (the Gram form, analytic gradient, ftol 1e-12): the QP baseline."""
    from scipy.optimize import minimize

    em = em.astype(np.float64)
    gram = em @ em.T
    start = np.full(K, 1.0 / K)
    bounds = [(0.0, None)] * K
    constraint = [{"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones(K)}]
    out = np.empty((K, pixels.shape[1]))
    for j, b in enumerate((em @ pixels).T):
        out[:, j] = minimize(
            lambda x: x @ gram @ x - 2 * b @ x,
            start,
            jac=lambda x: 2 * (gram @ x - b),
            method="SLSQP",
            bounds=bounds,
            constraints=constraint,
            options={"ftol": 1e-12, "maxiter": 200},
        ).x
    return out


def ramanspy_methods() -> tuple[dict, str] | tuple[None, str]:
    """RamanSPy's abundance functions (pysptools'), or None and why not."""
    from importlib.metadata import version

    try:
        from ramanspy.analysis.unmix import abundance_methods
    except ImportError as error:
        return None, f"not installed ({error})"
    return abundance_methods, f"RamanSPy {version('ramanspy')}, pysptools {version('pysptools')}"


def blas_description() -> str:
    """The BLAS / OpenMP libraries that threadpoolctl sees, their kernel and threads, and the
    OpenBLAS environment variables that change them."""
    from threadpoolctl import threadpool_info

    libraries = []
    for info in threadpool_info():
        path = Path(info["filepath"])
        kernel = f"{info['architecture']} kernel, " if info.get("architecture") else ""
        libraries.append(
            f"{info['internal_api']} {info.get('version') or ''}".rstrip()
            + f" ({kernel}{info['num_threads']} threads, {path.parent.name}/{path.name})"
        )
    variables = ", ".join(f"{name}={os.environ[name]}" for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if name in os.environ)
    return "; ".join(libraries) + f"; {variables or 'OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE not set'}"


def bench_size(n_pixels: int, rng) -> tuple[list[dict], tuple[float, float]]:
    import torch
    from scipy.optimize import nnls as scipy_nnls
    from sklearn.decomposition import non_negative_factorization

    import napari_deeper as nd

    side = int(np.sqrt(n_pixels))
    flat, em = make_cube(side * side, rng)
    n = flat.shape[1]
    cube = flat.reshape(N_BANDS, side, side)
    subset = np.sort(rng.choice(n, LOOP_PIXELS, replace=False))
    pixels = flat[:, subset].astype(np.float64)
    qp = np.arange(QP_PIXELS)  # positions in ``subset`` that the QP solvers run on
    matrix = em.astype(np.float64).T
    repeats = 3 if n <= 200_000 else 2
    rows = []

    def add(problem, method, seconds, cpu, result, reference, on, baseline=False):
        difference, excess = compare(result, reference, pixels[:, on], em)
        rows.append({
            "problem": problem, "method": method, "time": seconds, "cpu": cpu,
            "difference": difference, "excess": excess, "baseline": baseline,
        })  # fmt: skip

    everything = slice(None)
    # -- NNLS
    seconds, cpu, reference = timed(
        lambda: np.stack([scipy_nnls(matrix, pixels[:, j])[0] for j in range(LOOP_PIXELS)], axis=1), 3
    )
    scale = n / LOOP_PIXELS
    add("NNLS", f"scipy.optimize.nnls loop ({LOOP_PIXELS:,} pixels, scaled)", seconds * scale, cpu * scale,
        reference, reference, everything, baseline=True)  # fmt: skip
    active = float(np.mean(reference == 0))

    seconds, cpu, ours = timed(lambda: nd.nnls(cube, em, device="cpu"), repeats)
    add("NNLS", "napari-deeper nnls, CPU (numpy)", seconds, cpu, ours.reshape(K, n)[:, subset], reference, everything)
    del ours
    gpu_rows = [("NNLS", False)]

    methods, ramanspy_name = ramanspy_methods()
    if methods is not None:
        seconds, cpu, theirs = timed(lambda: methods["nnls"](pixels.T, em), 3)
        add("NNLS", f"{ramanspy_name} NNLS loop ({LOOP_PIXELS:,} pixels, scaled)", seconds * scale, cpu * scale,
            theirs.T, reference, everything)  # fmt: skip

    seconds, cpu, (weights, _, n_iter) = timed(
        lambda: non_negative_factorization(flat.T, H=em, n_components=K, update_H=False, solver="cd")
    )
    add("NNLS", f"scikit-learn non_negative_factorization (cd, tol 1e-4, {n_iter} iterations)", seconds, cpu,
        weights[subset].T, reference, everything)  # fmt: skip
    del weights

    # -- FCLS
    exact = exact_fcls(em, pixels[:, qp])
    scale = n / QP_PIXELS
    seconds, cpu, theirs = timed(lambda: slsqp_fcls(em, pixels[:, qp]), 3)
    add("FCLS", f"scipy.optimize.minimize SLSQP loop ({QP_PIXELS} pixels, scaled)", seconds * scale, cpu * scale,
        theirs, exact, qp, baseline=True)  # fmt: skip
    seconds, cpu, ours = timed(lambda: nd.nnls(cube, em, sum_to_one=True, device="cpu"), repeats)
    add("FCLS", "napari-deeper nnls(sum_to_one=True), CPU (numpy)", seconds, cpu,
        ours.reshape(K, n)[:, subset[qp]], exact, qp)  # fmt: skip
    del ours
    gpu_rows.append(("FCLS", True))
    if methods is not None:
        seconds, cpu, theirs = timed(lambda: methods["fcls"](pixels[:, qp].T, em), 3)
        add("FCLS", f"{ramanspy_name} FCLS (cvxopt QP) loop ({QP_PIXELS} pixels, scaled)", seconds * scale,
            cpu * scale, theirs.T, exact, qp)  # fmt: skip

    for problem, sum_to_one in gpu_rows:
        if not torch.cuda.is_available():
            rows.append({"problem": problem, "method": "napari-deeper, GPU", "time": None,
                         "note": "no CUDA GPU on this machine"})  # fmt: skip
            continue
        nd.nnls(cube[:, :64, :64], em, sum_to_one=sum_to_one, device="cuda")  # warm-up: context, kernels
        seconds, cpu, gpu = timed(lambda: nd.nnls(cube, em, sum_to_one=sum_to_one, device="cuda"), repeats)
        on = qp if sum_to_one else everything
        add(problem, f"napari-deeper, GPU ({torch.cuda.get_device_name()})", seconds, cpu,
            gpu.reshape(K, n)[:, subset[on]], exact if sum_to_one else reference, on)  # fmt: skip

    vca_time, vca_cpu, _ = timed(lambda: nd.vca(cube, K, seed=0), 2)
    return [dict(row, pixels=n, active=active) for row in rows], (vca_time, vca_cpu), ramanspy_name


def table(rows: list[dict], vca_times: dict[int, tuple[float, float]]) -> str:
    lines = [
        "| pixels | problem | method | time | vs. the per-pixel baseline | CPU time "
        "| max rel. difference from exact | residual vs. exact (max rel. excess) |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    baseline = {(row["pixels"], row["problem"]): row["time"] for row in rows if row.get("baseline")}
    for row in rows:
        start = f"| {row['pixels']:,} | {row['problem']} | {row['method']} |"
        if row.get("time") is None:
            lines.append(f"{start} — | — | — | — | {row['note']} |")
            continue
        speed = baseline[row["pixels"], row["problem"]] / row["time"]
        ratio = (
            "1x (baseline)" if row["baseline"]
            else f"{speed:,.1f}x faster" if speed >= 1 else f"{1 / speed:,.1f}x slower"
        )  # fmt: skip
        difference = "reference" if row["baseline"] and row["problem"] == "NNLS" else f"{row['difference']:.1e}"
        excess = "reference" if row["baseline"] and row["problem"] == "NNLS" else f"{row['excess']:+.1e}"
        lines.append(
            f"{start} {row['time']:.2f} s | {ratio} | {row['cpu']:.2f} s | {difference} | {excess} |"
        )
    lines += ["", "| pixels | VCA (5 endmembers, 500 bands) | CPU time |", "|---:|---:|---:|"]
    for n, (seconds, cpu) in vca_times.items():
        lines.append(f"| {n:,} | {seconds:.2f} s | {cpu:.2f} s |")
    return "\n".join(lines)


#: Speed-ups over the per-pixel baseline that ours should reach at 1e6 pixels (default threads).
TARGETS = {"NNLS": 30, "FCLS": 200}


def summary(rows: list[dict]) -> str:
    """Our CPU speed-ups over the per-pixel baselines on the largest cube, against the targets."""
    n = max(row["pixels"] for row in rows)
    parts = []
    for problem, target in TARGETS.items():
        here = [row for row in rows if row["pixels"] == n and row["problem"] == problem and row.get("time")]
        base = next(row["time"] for row in here if row["baseline"])
        ours = next(row["time"] for row in here if row["method"].startswith("napari-deeper") and "CPU" in row["method"])
        speed = base / ours
        parts.append(f"{problem} {speed:,.1f}x faster (target {target}x at 1e6 pixels: {'met' if speed >= target else 'not met'})")
    return f"At {n:,} pixels, in this run, ours on the CPU against the per-pixel baseline: " + "; ".join(parts) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows, vca_times = [], {}
    for n in args.sizes:
        size_rows, vca_times[int(np.sqrt(n)) ** 2], ramanspy_name = bench_size(n, rng)
        rows += size_rows
        print(table(rows, vca_times), "\n", flush=True)
    active = " and ".join(
        f"{row['active']:.0%} ({row['pixels']:,} pixels)"
        for row in rows if row.get("baseline") and row["problem"] == "NNLS"
    )  # fmt: skip
    ramanspy_note = (
        f"RamanSPy's rows ({ramanspy_name}) call `ramanspy.analysis.unmix.abundance_methods`, "
        "which are pysptools' `NNLS` (scipy's NNLS on the normal equations `E E^T x = E y`, a "
        "different problem whose answer is not the NNLS one where a constraint is active) and "
        "`FCLS` (a cvxopt interior-point QP per pixel, to its default tolerance)."
        if not ramanspy_name.startswith("not installed")
        else f"RamanSPy / pysptools: {ramanspy_name}, so their rows are missing."
    )
    text = f"""## Unmixing: exact NNLS and FCLS abundances and VCA

`python benchmarks/unmix.py`: 500-band cubes, 5 endmembers (Raman-like spectra, Dirichlet
abundances with small ones set to zero, so that many constraints are active: of the scipy
abundances, {active} are exactly 0), Gaussian noise at 30 dB clipped at zero. **Default
threads**: the script sets no thread count (BLAS, OpenMP or torch). Times are wall-clock, the
best of 3 calls (2 for VCA and for ours at 1e6 pixels, 1 for scikit-learn); "CPU time" is the CPU
time of that call summed over its threads. The per-pixel loops run on random subsets of the cube
({LOOP_PIXELS:,} pixels for NNLS, {QP_PIXELS} of them for the FCLS QPs) and are scaled to the
cube; the differences and residuals compare each method with the exact answer on those pixels
(NNLS: `scipy.optimize.nnls`; FCLS: every passive set tried, the feasible one of least error).
Machine: {machine()}. BLAS (threadpoolctl): {blas_description()}.

{table(rows, vca_times)}

{summary(rows)}

"Max rel. difference" is the largest per-pixel difference from the exact answer, divided by that
pixel's largest abundance; ours writes float32 abundances, so ~6e-8 is the rounding floor.
"Residual vs. exact" is the largest relative excess of the residual norm over the exact one; for
ours it is the float32 rounding of the abundances: second order for NNLS (~1e-12, the same
residual), first order for FCLS (~1e-7: rounded abundances sum to 1 only to float32 precision).
SLSQP, cvxopt and scikit-learn's coordinate descent stop at their tolerances, hence their larger
differences. {ramanspy_note}
"""
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
        print(f"wrote the '{SECTION}' section of {DOCS}")


if __name__ == "__main__":
    main()
