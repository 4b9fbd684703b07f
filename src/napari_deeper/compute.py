"""The one way to run long work: generators that yield progress, devices, memory-aware batches.

Every heavy core operation is written as a generator function (``*_steps``) that yields
:class:`Progress` between chunks and *returns* its result. Plain calls drive it with :func:`run`;
napari widgets wrap the same generator in ``napari.qt.threading.thread_worker``, whose ``quit()``
stops it at the next ``yield`` (that is the cancellation point), and whose ``returned`` signal
delivers the result on the main thread. An operation made of others relays their progress with
:func:`share` (a weighted part of its bar), :func:`stage` (equal parts) or :func:`many` (a list
of jobs), never with a loop of its own.
"""

from __future__ import annotations

import glob
import logging
import os
import platform
import shutil
import sys
import threading
import warnings
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

log = logging.getLogger(__name__)
T = TypeVar("T")
Steps = Generator["Progress", None, T]


@dataclass(frozen=True)
class Progress:
    """How far a long operation has come: ``done`` of ``total`` units, and what it is doing.

    Training loops also report the current ``loss`` so a widget can show it live.
    """

    done: int
    total: int
    message: str = ""
    loss: float | None = None

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


def run(steps: Steps[T], callback: Callable[[Progress], None] | None = None) -> T:
    """Drive a ``*_steps`` generator to the end and return its result."""
    while True:
        try:
            progress = next(steps)
        except StopIteration as stop:
            return stop.value
        if callback is not None:
            callback(progress)


def share(steps: Steps[T], start: int, weight: int, total: int, label: str = "") -> Steps[T]:
    """Re-yield a sub-operation's progress as units ``start`` to ``start + weight`` of ``total``;
    return its result.

    The one relay of a nested ``*_steps`` generator: ``label`` goes in front of its messages, a
    training loop's ``loss`` is passed on, and the end of the share is reported once the
    sub-operation finished (when its last report fell short of it). Every yield of the
    sub-operation stays a yield, so cancelling stops it at the same points, and closing this
    generator closes the sub-operation's (its clean-up runs at once).
    """
    end = start + weight
    done, message = start, label
    try:
        while True:
            try:
                progress = next(steps)
            except StopIteration as stop:
                if done < end:
                    yield Progress(end, total, label or message)
                return stop.value
            done = start + int(round(progress.fraction * weight))
            message = f"{label}: {progress.message}" if label and progress.message else label or progress.message
            yield Progress(done, total, message, progress.loss)
    finally:
        steps.close()


def stage(steps: Steps[T], index: int, n_stages: int, label: str, resolution: int = 1000) -> Steps[T]:
    """:func:`share` for stage ``index`` of ``n_stages`` equal stages.

    Lets one long operation chain several ``*_steps`` generators (one per cube, per candidate,
    per processing step) under a single progress bar.
    """
    return share(steps, index * resolution, resolution, n_stages * resolution, label)


def many(jobs) -> Steps[list]:
    """Run ``(label, steps)`` jobs one after the other, each an equal :func:`stage` of one
    progress bar; return their results in order (a failure or a cancel leaves no partial result)."""
    jobs = list(jobs)
    results = []
    for index, (label, steps) in enumerate(jobs):
        results.append((yield from stage(steps, index, len(jobs), label)))
    return results


def select_device(device=None):
    """Return a ``torch.device``: the one asked for, else CUDA, then Apple MPS, then the CPU.

    ``device`` may be None or "auto" (choose), "cpu", "cuda", "cuda:1", "gpu" (first GPU) or a
    ``torch.device``. Asking for a GPU that is not there raises a ``ValueError``.
    """
    import torch

    if isinstance(device, torch.device):
        return device
    name = "auto" if device is None else str(device).lower()
    cuda, mps = torch.cuda.is_available(), _mps_available(torch)
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "gpu":
        if cuda:
            return torch.device("cuda")
        if mps:
            return torch.device("mps")
        raise ValueError("a GPU was asked for but none is available; use device='cpu' or 'auto'")
    if name.startswith("cuda") and not cuda:
        raise ValueError(f"device {device!r} asked for, but CUDA is not available")
    if name == "mps" and not mps:
        raise ValueError("device 'mps' asked for, but Apple MPS is not available")
    if name not in {"cpu", "mps"} and not name.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'mps'")
    return torch.device(name)


def devices() -> list[str]:
    """The devices a run may be asked to use here: "auto", "cpu", then "cuda" and "mps" when torch
    can use them. The one list every dock offers; :func:`select_device` takes each name.

    Without a sign of a GPU (:func:`gpu_visible`) and with torch not imported yet, the answer is
    known without importing torch.
    """
    names = ["auto", "cpu"]
    if "torch" not in sys.modules and not gpu_visible():
        return names
    import torch

    if torch.cuda.is_available():
        names.append("cuda")
    if _mps_available(torch):
        names.append("mps")
    return names


def _mps_available(torch) -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


#: Files that a GPU driver creates: NVIDIA (device nodes, /proc entries), AMD ROCm, WSL2's GPU.
GPU_DRIVER_FILES = ("/dev/nvidia[0-9]*", "/proc/driver/nvidia/gpus/*", "/dev/kfd", "/dev/dxg")


def gpu_visible() -> bool:
    """Whether this machine may have a GPU that torch could use, found without importing torch.

    Signs looked for: a GPU driver's files (:data:`GPU_DRIVER_FILES`), ``nvidia-smi`` on the
    PATH, or macOS on Apple silicon (MPS). A sign is not proof (``select_device`` decides then);
    no sign means torch could not use a GPU either, and then the 1-5 s import of torch that
    ``select_device`` needs to ask is not worth paying.
    """
    if any(glob.glob(pattern) for pattern in GPU_DRIVER_FILES) or shutil.which("nvidia-smi"):
        return True
    return sys.platform == "darwin" and platform.machine() == "arm64"


def resolves_to_cpu(device=None) -> bool:
    """Whether :func:`select_device` would choose the CPU for ``device``, importing torch only
    when that is the only way to know.

    ``"cpu"`` is the CPU. ``None``/``"auto"`` is the CPU without importing torch when torch is not
    imported yet and :func:`gpu_visible` finds no sign of a GPU; once torch is imported, or when
    a sign is there, torch's own answer counts. Anything else asks :func:`select_device` (which
    raises the ``ValueError`` for a GPU that is not there).
    """
    name = None if device is None else str(device).lower()
    if name == "cpu":
        return True
    if name in (None, "auto") and "torch" not in sys.modules and not gpu_visible():
        return True
    return select_device(device).type == "cpu"


def available_memory(device) -> int:
    """Bytes that one operation may reasonably use on ``device`` (a share of what is free)."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        pages = 4 << 30
    return int(min(pages * 0.25, 4 << 30))


def chunk_size(bytes_per_item: float, device=None, minimum: int = 1, maximum: int = 1 << 20) -> int:
    """How many items fit in memory at once when each needs ``bytes_per_item`` bytes."""
    budget = available_memory(device if device is not None else "cpu")
    return int(np.clip(budget // max(1.0, bytes_per_item), minimum, maximum))


def chunks(n: int, size: int) -> Iterator[slice]:
    """Slices that cover ``range(n)`` in pieces of at most ``size``."""
    size = max(1, int(size))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def is_out_of_memory(error: BaseException) -> bool:
    """True for the errors torch raises when a device runs out of memory."""
    import torch

    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def map_batches(
    fn: Callable[[np.ndarray, object], np.ndarray],
    items: np.ndarray,
    device,
    batch_size: int,
    message: str = "",
) -> Steps[np.ndarray]:
    """Apply ``fn(batch, device)`` to ``items`` along axis 0 in batches, yielding progress.

    On a GPU out-of-memory error the batch size is halved and the batch retried; when even one
    item does not fit, the rest runs on the CPU, with a warning saying so. Returns the
    concatenated outputs.
    """
    import torch

    n = len(items)
    out: list[np.ndarray] = []
    start = 0
    yield Progress(0, n, message)
    while start < n:
        stop = min(n, start + batch_size)
        try:
            out.append(fn(items[start:stop], device))
        except Exception as error:  # noqa: BLE001 - narrowed just below
            if device.type == "cpu" or not is_out_of_memory(error):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if batch_size > 1:
                batch_size = max(1, batch_size // 2)
                log.info("out of memory on %s: batch size down to %d", device, batch_size)
            else:
                warnings.warn(
                    f"{device} ran out of memory even for one item; continuing on the CPU",
                    RuntimeWarning,
                    stacklevel=2,
                )
                device = torch.device("cpu")
            continue
        start = stop
        yield Progress(start, n, message)
    return np.concatenate(out, axis=0) if out else np.empty((0,), dtype=np.float32)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the platform tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on macOS / Windows
        return max(1, os.cpu_count() or 1)


def thread_budget() -> int:
    """Threads our own parallel loops may use: the usable cores, or fewer when BLAS is held to
    fewer threads now (a batch worker's one thread, a caller's ``threadpool_limits``)."""
    from threadpoolctl import threadpool_info

    limits = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(1, min([usable_cores(), *limits]))


def ordered_map(fn: Callable, items, workers: int) -> Iterator:
    """``fn(item)`` for each of ``items`` in up to ``workers`` threads, the results in order.

    For work that releases the GIL (numpy, BLAS). A result is yielded as soon as it and those
    before it are done; at most ``workers`` calls wait beyond the first unfinished one (bounded
    memory). Closing the iterator (an error, a cancel at a yield) drops the queued calls and waits
    for the running ones. With one worker it is a plain loop in this thread.
    """
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers)
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            while len(pending) > workers or (pending and pending[0].done()):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None


@contextmanager
def one_blas_thread():
    """Hold BLAS to one thread while our own chunk threads run (they are the parallelism).

    threadpoolctl's limit is process-wide, so solves running at once share it: the first one in
    sets it, the last one out restores the limits that were there before.
    """
    global _blas_users, _blas_limiter
    from threadpoolctl import ThreadpoolController

    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = ThreadpoolController().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None
