"""One input of a batch: read it, replay the recipe, write every step's result, report figures.

:func:`run_job` is the whole of one input as one function, which is what a Dask task runs (and the
in-process runner, through :func:`job_steps`). It never raises for a bad input: an unreadable
file or a step that fails gives a ``failed`` row with the error, and the other inputs go on.

What ``OUT/<name>/`` holds (``NN`` is the step's number, from 01):

- ``NN-<operation>-<method>.npz`` for a step that makes a cube: :func:`~napari_deeper.save_cube`'s
  format with the spectral axis and the step's provenance (``metadata["provenance"]``, the recipe
  up to that step), so :func:`~napari_deeper.load_cube` and the napari reader open it;
- ``NN-<operation>-<method>.tif`` for a map (band maps), with the provenance in the TIFF's JSON
  description, as the plugin's TIFF writer writes a layer;
- ``NN-unmix-<method>/`` for an unmixing step: the Unmix dock's export folder (abundance, labels
  and residual TIFFs, ``endmembers.csv``, ``unmixing.json``; :mod:`napari_deeper.io.unmixing`);
- ``NN-endmembers-<method>.csv`` for endmember extraction (the CSV the Unmix dock loads);
- ``provenance.json``: the recipe and its hash, the input file, the versions of the software and
  every step's figures;
- the completion marker (:data:`~napari_deeper.batch.store.MARKER`), written last.

Figures per step (summary columns ``stepN.<operation>.<figure>``): ``removed_rms`` (RMS of what
denoising took away) and, for the subspace denoisers (hybrid, pca), ``components`` kept; band
maps' ``mean``/``min``/``max``; unmixing's ``fraction_<i>`` (share of pixels whose dominant
component is ``i``), ``unassigned`` and ``residual_mean``; the number of endmembers found or
counted; the bands a preprocessing keeps; a super-resolved shape. With ``noise=True`` the input's
Poisson-Gaussian noise model is fitted too (``noise.gain``, ``noise.read_variance``,
``noise.regime``, ``noise.spikes``; about a second per 64 x 64 x 500 cube).
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..compute import Progress, Steps, run, stage
from . import store

#: Pixels of an output sampled to count a subspace denoiser's components (fixed stride, not random).
RANK_SAMPLE = 256
#: Methods whose output lies in a subspace whose dimension is worth reporting.
SUBSPACE_DENOISERS = ("hybrid", "pca")


class Cancelled(Exception):
    """The batch was cancelled while this input was being worked on (its staging is removed)."""


@dataclass(frozen=True)
class Job:
    """Everything a worker needs for one input (small and picklable)."""

    path: str
    name: str
    out: str
    recipe: dict
    recipe_hash: str
    run_id: str
    force: bool = False
    device: str | None = None
    noise: bool = False
    #: BLAS threads while it runs (None: no limit).
    threads: int | None = 1
    #: Row blocks the input is split into for its per-pixel steps (1: one task, whole).
    blocks: int = 1

    @property
    def final(self) -> Path:
        return Path(self.out) / self.name


@dataclass
class Row:
    """What the summary says about one input."""

    input: str
    output: str
    status: str
    seconds: float = 0.0
    files: list = field(default_factory=list)
    error: str = ""
    figures: dict = field(default_factory=dict)
    worker: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def worker_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def row_from_marker(job: Job, marker: dict, status: str) -> dict:
    """The row of an input whose complete result is already in place."""
    kept = marker.get("row", {})
    return Row(job.path, job.name, status, float(kept.get("seconds", 0.0)), list(kept.get("files", [])),
               "", dict(kept.get("figures", {})), kept.get("worker", "")).as_dict()


def done_already(job: Job) -> dict | None:
    """The row of ``job`` when its output needs no work: committed by this run (a retried task),
    or complete from an earlier run with the same recipe and input (unless ``force``)."""
    marker = store.read_marker(job.final)
    if marker is not None and marker.get("run_id") == job.run_id:
        return row_from_marker(job, marker, "ok")
    if job.force:
        return None
    marker = store.completed(job.final, job.recipe_hash, store.fingerprint(job.path))
    return None if marker is None else row_from_marker(job, marker, "skipped")


def job_steps(job: Job) -> Steps[dict]:
    """Steps generator of one input: yields progress, returns its summary row (as a dict).

    Closing it (a cancel) at a yield removes this attempt's staging folder.
    """
    from ..io import load_cube
    from ..recipe import Recipe

    started = time.perf_counter()
    known = done_already(job)
    if known is not None:
        return known
    staging = None
    try:
        staging = store.Staging(job.out, job.name, job.run_id)
        yield Progress(0, 1, f"{job.name}: reading")
        cube = load_cube(job.path)
        recipe = Recipe.from_dict(job.recipe)
        result = yield from stage(recipe.run_steps(cube, job.device), 0, 1, job.name)
        row = finish(job, staging, cube, result.outputs, started)
        staging = None
        return row
    except Exception as error:  # noqa: BLE001 - one bad input fails alone, with its reason
        return failed_row(job, error, started, staging)
    finally:
        if staging is not None:
            staging.discard()


def failed_row(job: Job, error: BaseException, started: float, staging=None) -> dict:
    """The row of an input whose work raised ``error``; its traceback goes to the journal."""
    text = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
    try:
        store.journal(job.out, "fail", job.name, job.run_id, getattr(staging, "attempt", ""), error=text,
                      traceback="".join(traceback.format_exception(error)))
    except OSError:  # the output folder went away: the summary still says why
        pass
    return Row(job.path, job.name, "failed", round(time.perf_counter() - started, 3),
               error=text.replace("\n", " "), worker=worker_label()).as_dict()


def blas_limit(threads: int | None):
    """A context holding BLAS (and OpenMP) to ``threads`` threads; None changes nothing."""
    if threads is None:
        from contextlib import nullcontext

        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def run_job(job: Job, cancelled=None) -> dict:
    """Run one input to its row, with BLAS held to ``job.threads`` threads (None: no limit).

    ``cancelled()`` (optional) is asked at every progress report; when it says True the work
    stops, the staging folder is removed and :class:`Cancelled` is raised.
    """
    steps = job_steps(job)

    def check(_progress: Progress) -> None:
        if cancelled is not None and cancelled():
            raise Cancelled(f"{job.name}: cancelled")

    with blas_limit(job.threads):
        try:
            return run(steps, check)
        finally:
            steps.close()


# ------------------------------------------------------------------------------ writing
def finish(job: Job, staging: store.Staging, cube, outputs: list, started: float) -> dict:
    """Write every step's result, ``provenance.json`` and the marker; commit; return the row."""
    from ..methods import family
    from ..provenance import record

    steps = job.recipe["steps"]
    figures: dict[str, object] = {}
    per_step = []
    files: list[str] = []
    if job.noise:
        figures.update(noise_figures(cube.data))
    for index, (entry, out) in enumerate(zip(steps, outputs)):
        chosen = family(entry["operation"])
        method = chosen.lookup(entry.get("method")).name
        base = f"{index + 1:02d}-{entry['operation']}-{store_safe(method)}"
        given = step_input(steps, index, cube, outputs)
        provenance = record(entry["operation"], job.path, {"method": method, **(entry.get("params") or {})},
                            replay=[dict(s) for s in steps[: index + 1]])
        provenance["batch"] = {"run": job.run_id, "recipe_hash": job.recipe_hash, "step": index + 1}
        written, found = write_step(staging, base, entry, chosen, method, out, given, cube, provenance, job)
        files.extend(written)
        prefix = f"step{index + 1}.{entry['operation']}"
        figures.update({f"{prefix}.{key}": value for key, value in found.items()})
        per_step.append({"step": index + 1, "operation": entry["operation"], "method": method,
                         "files": written, "figures": found})
    seconds = round(time.perf_counter() - started, 3)
    row = Row(job.path, job.name, "ok", seconds, files, "", figures, worker_label())
    store.write_json(staging.path("provenance.json"), {
        "recipe": job.recipe,
        "recipe_hash": job.recipe_hash,
        "input": store.fingerprint(job.path),
        "input_shape": list(cube.data.shape),
        "row_blocks": job.blocks,
        "spectral_unit": cube.spectral_unit,
        "output": str(job.final),
        "run": job.run_id,
        "worker": row.worker,
        "seconds": seconds,
        "versions": versions(),
        "noise_model": {k: v for k, v in figures.items() if k.startswith("noise.")} or None,
        "steps": per_step,
    })
    row.files = [f"{job.name}/provenance.json", *files]
    marker = staging.commit({"recipe_hash": job.recipe_hash, "input": store.fingerprint(job.path),
                             "row": row.as_dict()})
    if marker.get("attempt") != staging.attempt:  # an earlier attempt of this run got there first
        return row_from_marker(job, marker, "ok")
    return row.as_dict()


def step_input(steps: list, index: int, cube, outputs: list):
    """The cube step ``index`` (0-based) took: the source or an earlier step's output."""
    value = steps[index].get("input", index if index else "source")
    return cube if value == "source" else outputs[value - 1]


def store_safe(text: str) -> str:
    """A method name (a saved model's may hold anything) made safe as part of a file name."""
    return "".join(c if c.isalnum() or c in "._+-" else "_" for c in text) or "method"


def write_step(staging, base, entry, chosen, method, out, given, cube, provenance, job) -> tuple[list, dict]:
    """Write one step's result into the staging folder; returns (files written, figures)."""
    from ..io import save_cube
    from ..io.endmembers import save_endmembers_csv
    from ..io.layer_writers import write_tiff
    from ..provenance import KEY

    operation = entry["operation"]
    unit = cube.spectral_unit
    if chosen.output == "cube":
        path = staging.path(f"{base}.npz")
        with store.atomic_file(path) as temporary:
            save_cube(out.data, temporary, wavenumbers=out.wavenumbers,
                      metadata={"spectral_unit": unit, "provenance": provenance})
        return [f"{job.name}/{path.name}"], cube_figures(operation, method, given.data, out)
    if operation == "unmix":
        return unmix_step(staging, base, entry, method, out, given, provenance, job)
    if chosen.output == "map":
        path = staging.path(f"{base}.tif")
        array = np.asarray(out)
        attributes = {"name": f"{job.name} · {operation} {method}", "metadata": {KEY: provenance},
                      "axis_labels": ["y", "x"] if array.ndim == 2 else ["component", "y", "x"]}
        with store.atomic_file(path) as temporary:
            write_tiff(str(temporary), array, attributes)
        finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array
        figures = {"mean": float(finite.mean()), "min": float(finite.min()), "max": float(finite.max())} \
            if finite.size else {}
        return [f"{job.name}/{path.name}"], figures
    if chosen.output == "endmembers":
        endmembers, pixels = out
        path = staging.path(f"{base}.csv")
        with store.atomic_file(path) as temporary:
            save_endmembers_csv(temporary, endmembers, given.wavenumbers)
        ny, nx = given.data.shape[-2:]
        provenance["endmember_pixels"] = [list(map(int, np.unravel_index(int(i), (ny, nx)))) for i in pixels]
        return [f"{job.name}/{path.name}"], {"n": int(len(endmembers))}
    if chosen.output == "count":
        return [], {"count": int(out)}
    raise ValueError(f"step {entry['operation']!r} makes a {chosen.output!r}, which the batch cannot write")


def cube_figures(operation: str, method: str, before: np.ndarray, after) -> dict:
    """Figures of a step that made a cube from ``before``."""
    data = after.data
    if operation == "denoise":
        figures = {"removed_rms": float(np.sqrt(np.mean((np.asarray(before, np.float64) - data) ** 2)))}
        if method in SUBSPACE_DENOISERS:
            figures["components"] = subspace_rank(data)
        return figures
    if operation == "preprocess":
        return {"bands": int(data.shape[0])}
    if operation == "superres":
        return {"shape": "x".join(str(n) for n in data.shape[1:])}
    return {}


def subspace_rank(data: np.ndarray) -> int:
    """Dimension of the subspace a denoised cube lies in (its mean spectrum removed), from an
    evenly spaced sample of :data:`RANK_SAMPLE` pixels: the components a subspace denoiser kept.

    The SVD is small: BLAS is held to one thread for it (threads only slow a matrix this size).
    """
    from ..compute import one_blas_thread

    flat = data.reshape(data.shape[0], -1)
    step = max(1, flat.shape[1] // RANK_SAMPLE)
    sample = np.asarray(flat[:, ::step], dtype=np.float32)
    with one_blas_thread():
        return int(np.linalg.matrix_rank(sample - sample.mean(axis=1, keepdims=True)))


def unmix_step(staging, base, entry, method, out, given, provenance, job) -> tuple[list, dict]:
    """An unmixing step as the Unmix dock exports it: abundances, labels and residual of the input.

    The step's own map is the recipe's; the other maps come from the same unmixing family with
    the other ``map`` choices (labels from the abundances, as the family makes them).
    """
    from ..io.endmembers import default_names
    from ..io.unmixing import write_unmixing
    from ..methods import family
    from ..unmix import TargetResult, classify

    unmix = family("unmix")
    params = dict(entry.get("params") or {})
    _, checked = unmix.check(method, params)
    wanted = checked["map"]

    def solve(map_name: str):
        return run(unmix.steps(given.data, method, given.wavenumbers, job.device,
                               **{**params, "map": map_name, "component": None}))

    whole = wanted == "abundance" and checked["component"] is None
    abundances = np.asarray(out) if whole else solve("abundance")
    residual = np.asarray(out) if wanted == "residual" else solve("residual")
    labels = classify(abundances, checked["min_abundance"])
    endmembers = checked["endmembers"]
    names = default_names(len(endmembers))
    folder = staging.path(f"{base}/unmixing.json").parent
    maps = TargetResult(abundances, residual, labels)

    def record_of(target, kind):
        return {**provenance, "map": kind, "components": names}

    write_unmixing(folder, {job.name: maps}, endmembers, given.wavenumbers, names,
                   {"parameters": {"method": method, **{k: v for k, v in checked.items() if k != "endmembers"}},
                    "endmember_source": "recipe", "source": job.path},
                   provenance=record_of)
    written = sorted(f"{job.name}/{base}/{p.name}" for p in folder.iterdir())
    pixels = labels.size
    figures = {f"fraction_{i + 1}": round(float(np.count_nonzero(labels == i + 1)) / pixels, 6)
               for i in range(len(names))}
    figures["unassigned"] = round(float(np.count_nonzero(labels == 0)) / pixels, 6)
    figures["residual_mean"] = float(np.mean(residual))
    return written, figures


def noise_figures(data: np.ndarray) -> dict:
    """The input's Poisson-Gaussian noise model (see :mod:`napari_deeper.denoise.noise`)."""
    from ..denoise.noise import estimate_noise

    try:
        model = estimate_noise(data)
    except ValueError as error:
        return {"noise.error": str(error)}
    return {"noise.gain": model.gain, "noise.read_variance": model.read_variance,
            "noise.regime": model.regime, "noise.spikes": model.spikes}


def versions() -> dict:
    """Versions of the software that made a result."""
    found = {"napari_deeper": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for name in ("numpy", "scipy", "skimage", "pywt", "dask", "distributed", "torch"):
        module = sys.modules.get(name)
        if module is not None:
            found[name] = getattr(module, "__version__", "")
    return found
