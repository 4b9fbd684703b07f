"""The batch engine: a recipe over many inputs, in this process or on Dask, with a summary.

:func:`batch_steps` is a ``*_steps`` generator (progress at every input finished, cancel at any
yield), so the command line, the Batch dock and scripts run the same code::

    from napari_deeper.batch import run_batch
    report = run_batch("cell-recipe.json", ["week-12/"], "results/")   # LocalCluster
    report.counts                      # {"ok": 31, "failed": 1, "skipped": 0, "cancelled": 0}

Before anything runs: the recipe is validated (an unknown operation, method or parameter, or
another file version, raises a ``ValueError`` naming the step), the inputs are found, the
output folder must take files, and a scheduler given by address must answer. Then inputs whose
output is complete for this recipe are skipped (``force`` redoes them) and the others become
Dask tasks: one per input, or, for an input larger than ``block_mb`` with per-pixel steps, a few
per row block (:mod:`napari_deeper.batch.blocks`). Dask retries a task whose worker died on
another worker (up to ``distributed.scheduler.allowed-failures`` times, 3 by default); the
once-only commit (:mod:`napari_deeper.batch.store`) makes a retried input end exactly once.

A cancel (the generator closed, Ctrl-C, or ``stop`` saying so) sets the run's cancel event,
cancels the tasks not started, waits for the running ones to stop, removes every staging folder
of the run and writes the summary with the inputs not done as ``cancelled``; with ``stop`` the
generator then returns its report (``stopped`` set) instead of raising.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..compute import Progress, Steps, run
from . import store
from .blocks import per_pixel, submit_blocked
from .cluster import ctrl_c_ignored
from .inputs import find_inputs, output_names
from .job import Job, Row, blas_limit, done_already, job_steps, row_from_marker
from .summary import STATUSES, write_summary

#: Inputs larger than this (MB, on disk) with per-pixel steps are split into row blocks.
BLOCK_MB = 256.0
#: Seconds between two rewrites of summary.csv during a run.
SUMMARY_EVERY = 5.0
#: Seconds a cancel waits for running tasks to stop before removing what they left.
CANCEL_WAIT = 30.0
#: Where a batch can run: in this process, a LocalCluster, or a scheduler address (or a Client).
INLINE, LOCAL = "inline", "local"


@dataclass(frozen=True)
class BatchProgress(Progress):
    """Progress of a batch: inputs ``done`` of ``total``, and how they ended so far."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    where: str = ""
    dashboard: str | None = None
    #: How far the input now running in this process has come (0 to 1; 0 on Dask).
    within: float = 0.0

    @property
    def remaining(self) -> int:
        return self.total - self.ok - self.failed - self.skipped

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, (self.done + self.within) / self.total)


@dataclass
class BatchReport:
    """How a batch ended: one row per input (as in summary.csv), and where it all is."""

    out: Path
    rows: list[dict]
    summary: Path
    run_id: str
    seconds: float
    where: str
    dashboard: str | None = None
    recipe_hash: str = ""
    setup_seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    #: True when ``stop`` ended the batch before every input was done.
    stopped: bool = False
    #: Seconds spent stopping the cluster and cleaning up at the end (``setup_seconds``: starting).
    teardown_seconds: float = 0.0


def load_recipe(recipe):
    """A validated :class:`~napari_deeper.recipe.Recipe` from a path, a document or a Recipe."""
    from ..recipe import Recipe

    if isinstance(recipe, Recipe):
        recipe.validate()
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    return Recipe.load(recipe)


def plan(recipe, inputs, out, force=False, recursive=False, noise=False, device=None, threads=None,
         run_id=None) -> tuple:
    """(recipe, jobs, output folder) of a batch: everything checked that can be checked here."""
    recipe = load_recipe(recipe)
    out = Path(out).resolve()
    paths = find_inputs(inputs, recursive=recursive, exclude=out)
    out = store.check_writable(out)
    document = recipe.to_dict()
    digest = store.recipe_hash(document)
    run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    names = output_names(paths)
    jobs = [Job(str(p), names[p], str(out), document, digest, run_id, force, device, noise, threads) for p in paths]
    return recipe, jobs, out


def batch_steps(recipe, inputs, out, scheduler=LOCAL, workers: int | None = None, force: bool = False,
                recursive: bool = False, noise: bool = False, device=None, block_mb: float = BLOCK_MB,
                threads: int | None = None, gpu="auto", timeout: float | None = None, stop=None) -> Steps[BatchReport]:
    """Run ``recipe`` on every input; yields :class:`BatchProgress`, returns a :class:`BatchReport`.

    ``scheduler``: ``"local"`` (a LocalCluster of ``workers`` processes, default one per core),
    ``"inline"`` (this process, one input after the other, no Dask), a scheduler address
    (``tcp://host:8786``), or a ``distributed.Client``. ``threads``: BLAS threads per input
    (default: 1 in a Dask task, as many as BLAS likes in this process).
    ``gpu``: GPU workers for a local cluster (True, False, or "auto"). ``timeout``: seconds to
    reach a scheduler given by address. ``stop`` (a callable, e.g. ``threading.Event().is_set``)
    asked at every progress step: when it says True the batch is cancelled as on a close, and
    the report of what was done is returned (``stopped`` set), not an exception.
    """
    from .cluster import CONNECT_TIMEOUT, connect, dashboard_link, local_cluster, prepare, wants_gpu

    started = time.perf_counter()
    inline = scheduler in (None, INLINE)
    threads = threads if threads is not None else (None if inline else 1)
    recipe, jobs, out = plan(recipe, inputs, out, force, recursive, noise, device, threads)
    run_id = jobs[0].run_id
    rows: dict[int, dict] = {}
    pending = []
    for index, job in enumerate(jobs):
        known = done_already(job)
        if known is not None:
            rows[index] = known
        else:
            pending.append(index)
    client = cluster = None
    where, dashboard = "this process", None
    total = len(jobs)
    live: dict = {}  # future -> input index, while it runs
    begun = stopped = False
    try:
        if pending and not inline:
            if isinstance(scheduler, str) and scheduler != LOCAL:
                client = connect(scheduler, CONNECT_TIMEOUT if timeout is None else timeout)
                where = f"Dask scheduler {scheduler}"
            elif isinstance(scheduler, str):
                from distributed import Client

                cluster = local_cluster(workers, 1, wants_gpu(gpu, recipe))
                client = Client(cluster, set_as_default=False)
                where = f"local Dask cluster of {len(cluster.workers)} worker processes"
            else:
                client = scheduler
                where = f"Dask scheduler {client.scheduler.address}"
            dashboard = dashboard_link(client, local=cluster is not None)
            prepare(client, recipe)
        setup = time.perf_counter() - started
        begun = True

        def progress(message: str = "", within: float = 0.0) -> BatchProgress:
            counts = _counts(rows.values())
            done = counts["ok"] + counts["failed"] + counts["skipped"]
            return BatchProgress(done, total, message, None, counts["ok"], counts["failed"], counts["skipped"],
                                 where, dashboard, within)

        yield progress("starting")
        try:
            if client is None:
                for index in pending:
                    with blas_limit(threads):
                        rows[index] = yield from _inline(job_steps(jobs[index]), progress, stop)
                    yield progress(f"{jobs[index].name}: {rows[index]['status']}")
            else:
                yield from _on_dask(client, jobs, pending, rows, out, block_mb, progress, live, stop)
        except _Stop:
            stopped = True
            with ctrl_c_ignored():
                if client is not None:
                    _cancel(client, run_id, list(live))
        if not stopped:
            write_summary(out, _ordered(jobs, rows))
    except BaseException:
        with ctrl_c_ignored():
            if client is not None:
                _cancel(client, run_id, list(live))
        raise
    finally:
        closing = time.perf_counter()
        with ctrl_c_ignored():
            if client is not None and client is not scheduler:
                client.close()
            if cluster is not None:
                cluster.close()
            store.clean(out, run_id)
            if begun and len(rows) < total:  # cancelled or failed part-way: say so in the summary
                _committed_meanwhile(jobs, rows)
                write_summary(out, _ordered(jobs, rows))
        closing = time.perf_counter() - closing
    ordered = _ordered(jobs, rows)
    return BatchReport(out, ordered, out / "summary.csv", run_id, time.perf_counter() - started, where,
                       dashboard, jobs[0].recipe_hash, setup, _counts(ordered), stopped, closing)


def run_batch(recipe, inputs, out, callback=None, **options) -> BatchReport:
    """:func:`batch_steps` run to the end (``callback`` gets every :class:`BatchProgress`)."""
    return run(batch_steps(recipe, inputs, out, **options), callback)


class _Stop(Exception):
    """``stop`` said True."""


def _inline(steps, progress, stop):
    """One input in this process, its own progress passed on inside the batch's."""
    while True:
        try:
            inner = next(steps)
        except StopIteration as end:
            return end.value
        if stop is not None and stop():
            steps.close()  # removes this input's staging folder
            raise _Stop
        yield progress(inner.message, inner.fraction)


def _on_dask(client, jobs, pending, rows, out, block_mb, progress, futures: dict, stop):
    """Submit the pending inputs and collect their rows as they finish (``futures``: those running)."""
    from distributed import as_completed

    from .cluster import task

    limit = block_mb * 2**20
    for rank, index in enumerate(pending):
        job = jobs[index]
        priority = len(pending) - rank  # the inputs in their order, as far as workers allow
        size = Path(job.path).stat().st_size if Path(job.path).is_file() else 0
        if size > limit and any(per_pixel(step) for step in job.recipe["steps"]):
            job = replace(job, blocks=-(-size // int(limit)))
            future = submit_blocked(client, job, priority)
        else:
            future = client.submit(task, job, key=f"napari-deeper-{job.name}-{job.run_id}", pure=False,
                                   priority=priority)
        futures[future] = index
    finished = as_completed(list(futures), loop=client.loop)
    written = time.monotonic()
    remaining = len(futures)
    while remaining:
        if stop is not None and stop():
            raise _Stop
        batch = finished.next_batch(block=False)
        if not batch:
            time.sleep(0.05)
            yield progress()
            continue
        for future in batch:
            if future.status not in ("finished", "error", "cancelled"):
                finished.add(future)  # its result was lost with a worker: the scheduler computes it again
                continue
            index = futures.pop(future)
            rows[index] = _row_of(future, jobs[index])
            future.release()
            remaining -= 1
            if time.monotonic() - written > SUMMARY_EVERY:
                write_summary(out, _ordered(jobs, rows))
                written = time.monotonic()
            yield progress(f"{jobs[index].name}: {rows[index]['status']}")


def _committed_meanwhile(jobs, rows: dict) -> None:
    """Rows for the inputs that this run committed but whose result had not come back yet."""
    for index, job in enumerate(jobs):
        marker = None if index in rows else store.read_marker(job.final)
        if marker is not None and marker.get("run_id") == job.run_id:
            rows[index] = row_from_marker(job, marker, "ok")


def _row_of(future, job: Job) -> dict:
    """The summary row a finished future stands for (a failure of the task itself included)."""
    if future.status == "finished":
        return future.result()
    if future.status == "cancelled":
        return Row(job.path, job.name, "cancelled", error="cancelled").as_dict()
    error = future.exception()
    if type(error).__name__ == "KilledWorker":
        text = ("the workers running it died too often (out of memory, or killed): "
                f"{error}; it was not retried again")
    else:
        text = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
    return Row(job.path, job.name, "failed", error=text.replace("\n", " ")).as_dict()


def _cancel(client, run_id: str, futures: list) -> None:
    """Tell running tasks to stop, drop the queued ones, wait (bounded) for the running to end."""
    from distributed import Event

    from .cluster import cancel_event_name

    try:
        Event(cancel_event_name(run_id), client=client).set()
        client.cancel(futures, force=True)
        deadline = time.monotonic() + CANCEL_WAIT
        while time.monotonic() < deadline:
            busy = [k for keys in client.processing().values() for k in keys if run_id in str(k)]
            if not busy:
                break
            time.sleep(0.1)
    except (OSError, TimeoutError):  # the scheduler is gone: nothing more to tell it
        pass




def _counts(rows) -> dict:
    counts = dict.fromkeys(STATUSES, 0)
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def _ordered(jobs, rows: dict) -> list[dict]:
    """Every input's row in input order; inputs without one are ``cancelled``."""
    return [rows.get(i) or Row(job.path, job.name, "cancelled", error="the batch was stopped first").as_dict()
            for i, job in enumerate(jobs)]
