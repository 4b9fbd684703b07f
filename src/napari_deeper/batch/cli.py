"""``napari-deeper batch RECIPE INPUT... --out DIR``: a recipe over many cubes, from a shell.

Also ``python -m napari_deeper batch``. Exit status: 0 when every input ended ``ok`` or
``skipped``, 1 when some failed (the summary says why), 2 for a problem found before anything
ran (the recipe, the inputs, the output folder, the scheduler), 130 after Ctrl-C (no partial
output is left; the summary marks the inputs not done as ``cancelled``).
"""

from __future__ import annotations

import argparse
import sys

from .engine import BLOCK_MB, INLINE, LOCAL


def build_parser(prog: str = "napari-deeper batch") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a recipe (saved from a layer with 'Save recipe...', or written by hand) on many cubes. "
                    "Each input's results go to OUT/<input name>/, with OUT/summary.csv listing every input.",
    )
    parser.add_argument("recipe", help="recipe file (.json)")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="cube files, folders or glob patterns")
    parser.add_argument("--out", "-o", required=True, help="output folder (made if missing)")
    parser.add_argument("--scheduler", default=LOCAL,
                        help=f"'{LOCAL}' (default: a Dask LocalCluster on this machine), '{INLINE}' (this process, "
                             "no Dask), or the address of a running Dask scheduler, e.g. tcp://head-node:8786")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes of the local cluster (default: one per CPU core)")
    parser.add_argument("--force", action="store_true", help="redo inputs whose results are already complete")
    parser.add_argument("--recursive", "-r", action="store_true", help="also read the sub-folders of INPUT folders")
    parser.add_argument("--noise", action="store_true",
                        help="also fit each input's noise model (gain, read noise) for the summary")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or mps, for steps that run networks")
    parser.add_argument("--gpu", choices=("auto", "yes", "no"), default="auto",
                        help="GPU workers on the local cluster (needs dask-cuda; auto: when the recipe uses a device "
                             "and a GPU is there)")
    parser.add_argument("--block-mb", type=float, default=BLOCK_MB,
                        help=f"split inputs larger than this (MB) into row blocks for per-pixel steps "
                             f"(default {BLOCK_MB:g})")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="BLAS threads per input (default: 1 on Dask workers, BLAS's own choice with "
                             "--scheduler inline)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to reach --scheduler (default 10)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar or report: for scripts")
    return parser


def main(argv: list[str] | None = None, prog: str = "napari-deeper batch") -> int:
    from ..compute import run
    from .engine import batch_steps

    args = build_parser(prog).parse_args(argv)
    gpu = {"auto": "auto", "yes": True, "no": False}[args.gpu]
    steps = batch_steps(
        args.recipe, args.inputs, args.out, scheduler=args.scheduler, workers=args.workers, force=args.force,
        recursive=args.recursive, noise=args.noise, device=args.device, block_mb=args.block_mb,
        threads=args.blas_threads, gpu=gpu, timeout=args.timeout,
    )
    bar = _Bar(quiet=args.quiet)
    try:
        with bar:
            report = run(steps, bar.update)
    except ValueError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if not args.quiet:
            print(f"\n{prog}: interrupted; finished inputs are kept, nothing half-written is left. "
                  "Run the same command again to do the rest.", file=sys.stderr)
        return 130
    finally:
        steps.close()  # stops the batch cleanly when the interrupt came between two of its steps
    failed = [row for row in report.rows if row["status"] == "failed"]
    if not args.quiet:
        counts = report.counts
        print(f"{len(report.rows)} inputs: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped "
              f"in {report.seconds:.1f} s on {report.where} -> {report.summary}")
        for row in failed:
            print(f"  failed: {row['input']}: {row['error']}", file=sys.stderr)
    return 1 if failed else 0


class _Bar:
    """A rich progress bar on stderr: inputs done / failed / remaining and the time left."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.progress = None
        self.task = None
        self.told = False

    def __enter__(self):
        if self.quiet:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(),
            TextColumn("ok {task.fields[ok]} · failed {task.fields[failed]} · skipped {task.fields[skipped]} · "
                       "remaining {task.fields[remaining]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False

    def update(self, progress) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.task = self.progress.add_task("batch", total=progress.total, ok=0, failed=0, skipped=0,
                                               remaining=progress.total)
        if not self.told:
            self.told = True
            self.progress.console.print(f"running on {progress.where}")
            if progress.dashboard:
                self.progress.console.print(f"Dask dashboard: {progress.dashboard}")
        self.progress.update(self.task, completed=progress.done, ok=progress.ok, failed=progress.failed,
                             skipped=progress.skipped, remaining=progress.remaining)
