"""Where a batch runs: a Dask ``LocalCluster`` sized to this machine, or a scheduler given by address.

- **Local** (the default): one worker process per usable CPU core, one thread each, BLAS held to
  one thread in each (``OMP_NUM_THREADS`` and friends are 1 in the workers' environment, and
  every task also runs under ``threadpoolctl``), memory split evenly, Dask's statistical profiler
  off and its event-loop tick slower (:data:`WORKER_CONFIG`). With ``gpu=True`` (or
  ``"auto"`` when the recipe has a step that runs on a device and a GPU driver shows),
  ``dask_cuda.LocalCUDACluster`` gives one worker per GPU instead, when dask-cuda is installed.
  The workers ignore Ctrl-C: the batch stops them itself, after its cleanup.
- **An existing scheduler** (``tcp://host:port``: started by hand, by dask-jobqueue on SLURM/PBS,
  or by dask-cuda): reached within ``timeout`` seconds or a ``ValueError`` says it could not be.
  Workers must see the input files and the output folder under the same paths.

Cancelling reaches tasks already running through a Dask ``Event`` named after the run, which
each task looks at (at most twice a second) between progress steps.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager

from ..compute import usable_cores

#: Seconds to wait for a scheduler given by address.
CONNECT_TIMEOUT = 10.0
#: Least seconds between two looks at the cancel event from a task.
CANCEL_POLL = 0.5


def cancel_event_name(run_id: str) -> str:
    return f"napari-deeper-cancel-{run_id}"


@contextmanager
def ctrl_c_ignored():
    """Ignore SIGINT while the block runs, in the main thread (elsewhere signals cannot be set).

    Worker processes started meanwhile inherit it (through exec), so a Ctrl-C reaches only this
    process, which cancels the batch; a cancel's clean-up uses it so a second Ctrl-C cannot cut it short.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


#: The environment of a local cluster's worker processes. Dask's default also sets
#: ``MALLOC_TRIM_THRESHOLD_`` (memory goes back to the system sooner); with it, a cube's large
#: temporaries page-faulted about 4 times as often and hybrid denoising ran up to 2x slower in a
#: worker than in a plain process (measured), so our workers keep glibc's own setting.
WORKER_ENVIRON = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Dask configuration of a local cluster (its scheduler, nannies and workers). Dask's statistical
#: profiler samples the stack of the running task every 10 ms on the worker's event loop, holding
#: the GIL: on a 64 x 64 x 500 cube (default denoising, band map, NNLS) it took about 70 ms of CPU
#: per cube in the event loop and slowed the task itself by as much again (measured: 8 cubes in
#: 9.3 s with it, 8.3 s without, on one worker); the dashboard's Profile page stays empty. The
#: event loops' tick, which only measures how responsive they are, runs every 500 ms instead of
#: every 20 ms (as in Dask's own tests): an idle cluster of 2 workers then used about 0.05 s of CPU
#: a second instead of 0.1 s, CPU the workers' tasks have on a machine with few cores.
WORKER_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "500ms"}


def local_cluster(workers: int | None = None, threads: int = 1, gpu=False):
    """A LocalCluster of ``workers`` processes (default: one per usable core), or a
    LocalCUDACluster with ``gpu``; raises a ``ValueError`` when dask-cuda is asked for and missing."""
    import dask
    from distributed import LocalCluster

    dashboard = ":0"  # any free port: another cluster may hold Dask's usual 8787
    environ = dict.fromkeys(WORKER_ENVIRON, str(threads))
    with ctrl_c_ignored(), dask.config.set({"distributed.nanny.pre-spawn-environ": environ, **WORKER_CONFIG}):
        if gpu:
            try:
                from dask_cuda import LocalCUDACluster
            except ImportError:
                raise ValueError("GPU workers need dask-cuda: pip install dask-cuda (see docs/batch.md)") from None
            return LocalCUDACluster(threads_per_worker=threads, dashboard_address=dashboard)
        return LocalCluster(
            n_workers=workers or usable_cores(), threads_per_worker=threads, processes=True,
            dashboard_address=dashboard, host="127.0.0.1",
        )


def wants_gpu(gpu, recipe) -> bool:
    """``gpu`` True/False as given; "auto": a step that may use a device, and a GPU driver shows,
    and dask-cuda is installed."""
    if gpu != "auto":
        return bool(gpu)
    from importlib.util import find_spec

    from ..compute import gpu_visible
    from ..methods import family

    uses_device = any(
        family(step["operation"]).lookup(step.get("method")).uses_device for step in recipe.steps
    )
    return uses_device and gpu_visible() and find_spec("dask_cuda") is not None


def connect(address: str, timeout: float = CONNECT_TIMEOUT):
    """A Client of the scheduler at ``address``, or a ``ValueError`` saying why there is none."""
    from distributed import Client

    if "://" not in address:
        raise ValueError(f"--scheduler must be an address such as tcp://host:8786, got {address!r}")
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise ValueError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s: {error}") from None


def dashboard_link(client, local: bool = False) -> str | None:
    """The Dask dashboard's address, when the scheduler serves one. Its plots need bokeh where
    the scheduler runs; for a ``local`` cluster the link says so when bokeh is missing here."""
    from importlib.util import find_spec

    try:
        if "dashboard" not in client.scheduler_info().get("services", {}):
            return None
        link = client.dashboard_link
    except (KeyError, OSError):
        return None
    if local and find_spec("bokeh") is None:
        return f"{link} (install bokeh>=3.1 to see its plots)"
    return link


def prepare(client, recipe) -> None:
    """Import, on every worker, the modules the recipe's steps run (so that a module that is
    missing there fails now, and the first inputs do not wait for imports)."""
    from ..methods import FAMILIES

    modules = ["napari_deeper.batch.job", *{FAMILIES[step["operation"]].split(":")[0] for step in recipe.steps}]
    client.run(_import_all, modules)


def _import_all(modules) -> None:
    from importlib import import_module

    for module in modules:
        import_module(module)


def task(job):
    """The Dask task of one whole input: :func:`~napari_deeper.batch.job.run_job`, cancellable."""
    from distributed import Event, get_client

    from .job import run_job

    event = Event(cancel_event_name(job.run_id), client=get_client())
    last = [time.monotonic()]

    def cancelled() -> bool:
        now = time.monotonic()
        if now - last[0] < CANCEL_POLL:
            return False
        last[0] = now
        return event.is_set()

    return run_job(job, cancelled)
