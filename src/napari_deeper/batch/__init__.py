"""Batch: one recipe over many cubes, on this machine or a Dask cluster, with nothing lost.

    napari-deeper batch cell-recipe.json week-12/ --out results/
    python -m napari_deeper batch cell-recipe.json "scans/*.mat" --out results/ --scheduler tcp://head:8786

or from Python::

    from napari_deeper.batch import run_batch
    report = run_batch("cell-recipe.json", ["week-12/"], "results/")

The pieces, each with its rules in its docstring: :mod:`.inputs` (which files, which output
names), :mod:`.job` (one input: read, replay, write, figures), :mod:`.store` (atomic writes,
completion markers, once-only commits, the journal), :mod:`.blocks` (per-pixel steps across row
blocks of a large cube), :mod:`.cluster` (LocalCluster, a scheduler address, cancelling),
:mod:`.engine` (the run), :mod:`.summary` (summary.csv) and :mod:`.cli`. No Qt: the Batch dock
(``_widgets/batch.py``) runs :func:`batch_steps` through its Runner. Guide: docs/batch.md.
"""

from .blocks import per_pixel
from .engine import BatchProgress, BatchReport, batch_steps, plan, run_batch
from .inputs import find_inputs, output_names
from .summary import read_summary

__all__ = [
    "BatchProgress",
    "BatchReport",
    "batch_steps",
    "find_inputs",
    "output_names",
    "per_pixel",
    "plan",
    "read_summary",
    "run_batch",
]
