"""Large cubes across several tasks: per-pixel steps run on blocks of image rows.

A step is *per-pixel* when every spectrum's result depends on that spectrum alone, so that a
block of rows gives exactly the rows of the whole result (bit for bit: the tests check it).
:func:`per_pixel` says which: Savitzky-Golay and wavelet denoising, band maps, NNLS/FCLS with
given endmembers, and preprocessing without spike removal (which compares neighbouring pixels)
or a per-cube normalisation. Everything that fits the whole cube (hybrid and PCA denoising, VCA,
endmember counting, super-resolution, the denoising networks, whose batches are not guaranteed to
give the same bits when cut elsewhere) runs on the whole cube, in one task.

:func:`submit_blocked` turns one input into a small graph of Dask futures: read the file; for
each step, either one task per row block (cutting its input into blocks when it is whole) or
one task on the whole input (joining blocks when its input is in blocks); then one task that
joins the outputs and writes them as :func:`~napari_deeper.batch.job.finish` does for a whole
cube. Dask places the tasks near their data and recomputes any lost with a worker.
"""

from __future__ import annotations

import numpy as np

from ..compute import run
from .job import Cancelled, Job, blas_limit, done_already, failed_row, finish

#: Denoisers that work spectrum by spectrum with no state across spectra.
PER_PIXEL_DENOISERS = ("savgol", "wavelet")


def per_pixel(step: dict) -> bool:
    """Whether a recipe step gives the same result on row blocks as on the whole cube."""
    operation = step["operation"]
    method = str(step.get("method") or "").lower()
    params = step.get("params") or {}
    if operation == "denoise":
        return method in PER_PIXEL_DENOISERS
    if operation in ("band_map", "unmix"):
        return True
    if operation == "preprocess":
        normalise = params.get("normalise")
        return params.get("despike") is None and not str(normalise or "").startswith("cube")
    return False


def load(job: Job):
    from ..io import load_cube

    return load_cube(job.path)


def take_rows(cube, block: int, n_blocks: int):
    """Row block ``block`` of ``n_blocks`` (as even as can be) of a cube, a contiguous cube of its
    own; None when the cube has fewer rows than blocks and this one is left empty."""
    from ..io import Cube

    rows = np.array_split(np.arange(cube.data.shape[1]), n_blocks)[block]
    if rows.size == 0:
        return None
    return Cube(np.ascontiguousarray(cube.data[:, rows[0] : rows[-1] + 1]), cube.wavenumbers, {})


def run_step(step: dict, cube, device, threads: int | None = 1):
    """One recipe step on ``cube`` (a whole cube or a block of rows), BLAS held to ``threads``;
    None for an empty block."""
    from ..recipe import FORMAT, VERSION, Recipe

    if cube is None:
        return None
    single = Recipe.from_dict({"format": FORMAT, "version": VERSION, "steps": [{**step, "input": "source"}]})
    with blas_limit(threads):
        return run(single.run_steps(cube, device)).outputs[0]


def join_rows(*blocks):
    """The whole output from its row blocks (cubes along their rows, maps along theirs)."""
    from ..io import Cube

    blocks = [b for b in blocks if b is not None]
    first = blocks[0]
    if isinstance(first, Cube):
        return Cube(np.concatenate([b.data for b in blocks], axis=-2), first.wavenumbers, {})
    return np.concatenate([np.asarray(b) for b in blocks], axis=-2)


def finish_blocked(job: Job, cube, *outputs):
    """Write the joined outputs of a blocked input, as a whole-cube task would."""
    import time

    from .store import Staging

    started = time.perf_counter()
    known = done_already(job)
    if known is not None:
        return known
    staging = Staging(job.out, job.name, job.run_id)
    try:
        with blas_limit(job.threads):
            return finish(job, staging, cube, list(outputs), started)
    except Cancelled:
        raise
    except Exception as error:  # noqa: BLE001 - fails alone, with its reason
        return failed_row(job, error, started, staging)
    finally:
        staging.discard()


def submit_blocked(client, job: Job, priority: int = 0):
    """The futures of one large input split into ``job.blocks`` row blocks; returns the future
    of its summary row. Every task's key names the input and the run."""
    steps = job.recipe["steps"]
    counter = iter(range(1 << 30))

    def submit(function, *args):
        key = f"napari-deeper-{function.__name__}-{next(counter)}-{job.name}-{job.run_id}"
        return client.submit(function, *args, key=key, pure=False, priority=priority)

    source = submit(load, job)
    outputs: list[tuple[str, object]] = []

    def whole(kind_and_value):
        kind, value = kind_and_value
        return value if kind == "whole" else submit(join_rows, *value)

    for index, step in enumerate(steps):
        value = step.get("input", index if index else "source")
        given = ("whole", source) if value == "source" else outputs[value - 1]
        if per_pixel(step):
            pieces = given[1] if given[0] == "rows" else [
                submit(take_rows, given[1], block, job.blocks) for block in range(job.blocks)
            ]
            outputs.append(("rows", [submit(run_step, step, piece, job.device, job.threads) for piece in pieces]))
        else:
            outputs.append(("whole", submit(run_step, step, whole(given), job.device, job.threads)))
    finals = [whole(output) for output in outputs]
    return submit(finish_blocked, job, source, *finals)
