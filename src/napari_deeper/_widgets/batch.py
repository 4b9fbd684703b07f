"""Batch dock: run one recipe over a folder of cubes, in the background, and open any result.

Pick a recipe file (saved with *Layers > Save recipe...* or written by hand), or take the recipe
of the selected layer; an input folder and an output folder; and where to run: in this process
(one cube after the other) or on a local Dask cluster (one worker process per core). *Run batch*
runs :func:`napari_deeper.batch.batch_steps`, the engine of ``napari-deeper batch``, through a
:class:`~napari_deeper._widgets._runner.Runner`, with progress and a Cancel that stops the
engine itself (finished inputs are kept, nothing half-written is left, the table shows what was
done), and the table of inputs with their status, time and error.
*Open result* (or a double click) adds the selected input's results as layers, with their
provenance, so each one's recipe can be saved or run again.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton
from qtpy.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from .. import provenance
from ..batch import batch_steps
from ..batch.engine import INLINE, LOCAL
from ..compute import usable_cores
from ._runner import Runner

IN_PROCESS = "this process"
COLUMNS = ("input", "status", "seconds", "error")


def local_cluster_label() -> str:
    return f"local Dask cluster ({usable_cores()} workers)"


class BatchWidget(QWidget):
    """Recipe, input folder, output folder, where to run; Run batch; the inputs and their results."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.recipe = None  # the Recipe to run (from a file or a layer)
        self.report = None  # the BatchReport of the last run
        self.stop = threading.Event()  # set by Cancel: the engine stops, cleans up and reports
        self.recipe_file = FileEdit(label="Recipe", mode="r", filter="*.json")
        self.from_layer = PushButton(text="Use the selected layer's recipe")
        self.from_layer.tooltip = "The steps that made the selected layer, as its provenance records them"
        self.recipe_text = Label(value="No recipe yet.")
        self.recipe_text.native.setWordWrap(True)
        self.inputs = FileEdit(label="Input folder", mode="d")
        self.recursive = CheckBox(text="Include sub-folders", value=False)
        self.out = FileEdit(label="Output folder", mode="d")
        self.where = ComboBox(label="Run on", choices=[IN_PROCESS, local_cluster_label()], value=IN_PROCESS)
        self.force = CheckBox(text="Redo inputs whose results are complete", value=False)
        self.controls = Container(widgets=[
            self.recipe_file, self.from_layer, self.recipe_text, self.inputs, self.recursive, self.out,
            self.where, self.force,
        ])
        self.runner = Runner("Run batch")
        self.counts = Label(value="")
        self.counts.native.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c.capitalize() for c in COLUMNS])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)  # errors wrap
        self.table.setWordWrap(True)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.open_button = PushButton(text="Open result")
        self.open_button.enabled = False

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.runner)
        layout.addWidget(self.counts.native)
        layout.addWidget(self.table)
        layout.addWidget(self.open_button.native)

        self.recipe_file.changed.connect(self._load_recipe_file)
        self.from_layer.changed.connect(self.use_layer_recipe)
        self.runner.run_button.clicked.connect(self.run)
        # Cancel asks the engine to stop (it cancels its tasks, removes what they started and
        # returns what was done), rather than abandoning the generator at its next step
        self.runner.cancel_button.clicked.disconnect()
        self.runner.cancel_button.clicked.connect(self.cancel)
        self.open_button.changed.connect(self.open_selected)
        self.table.itemSelectionChanged.connect(self._update_open)
        self.table.cellDoubleClicked.connect(lambda row, _column: self.open_result(row))

    # -------------------------------------------------------------------------------- recipe
    def _load_recipe_file(self, value=None) -> None:
        from ..recipe import Recipe

        path = Path(self.recipe_file.value)
        if not path.is_file():
            return
        try:
            self._set_recipe(Recipe.load(path), path.name)
        except ValueError as error:
            self.recipe = None
            self.recipe_text.value = "No recipe."
            self.runner.refuse(str(error))

    def use_layer_recipe(self, value=None) -> None:
        """Take the recipe that made the selected layer."""
        from ..recipe import Recipe

        layer = self.viewer.layers.selection.active
        if layer is None:
            self.runner.refuse("Select a layer made by napari-deeper to use its recipe.")
            return
        try:
            recipe = Recipe.from_layer(layer)
            recipe.validate()
        except ValueError as error:
            self.runner.refuse(f"Layer {layer.name!r}: {error}")
            return
        self._set_recipe(recipe, f"layer {layer.name!r}")

    def _set_recipe(self, recipe, origin: str) -> None:
        self.recipe = recipe
        chain = " → ".join(f"{s['operation']} {s.get('method') or ''}".strip() for s in recipe.steps)
        self.recipe_text.value = f"{origin}: {chain}"

    # ------------------------------------------------------------------------------- running
    def run(self) -> None:
        """Check the choices and start the batch in the background."""
        if self.runner.busy:
            return
        inputs, out = Path(self.inputs.value), Path(self.out.value)
        if self.recipe is None:
            self.runner.refuse("Choose a recipe file, or use the recipe of a layer.")
            return
        if not inputs.is_dir():
            self.runner.refuse(f"Choose the folder of cubes to run the recipe on ({inputs} is not a folder).")
            return
        if str(self.out.value).strip() in ("", "."):
            self.runner.refuse("Choose the output folder (it is made if it does not exist).")
            return
        self.report = None
        self.table.setRowCount(0)
        self.open_button.enabled = False
        self.stop.clear()
        self.runner.start(
            batch_steps, self._on_done, self.recipe, [str(inputs)], str(out),
            on_progress=self._on_progress,
            scheduler=INLINE if self.where.value == IN_PROCESS else LOCAL,
            recursive=self.recursive.value, force=self.force.value, stop=self.stop.is_set,
        )

    def cancel(self) -> None:
        """Stop the batch: finished inputs are kept, the others are marked cancelled."""
        if self.runner.busy:
            self.stop.set()
            self.runner.status.setText("Cancelling: stopping the inputs under way...")

    def _on_progress(self, progress) -> None:
        if hasattr(progress, "remaining"):
            self.counts.value = (f"{progress.ok} ok · {progress.failed} failed · {progress.skipped} skipped · "
                                 f"{progress.remaining} remaining, on {progress.where}")

    def _on_done(self, report) -> None:
        self.report = report
        counts = report.counts
        done = (f"{counts['ok']} ok · {counts['failed']} failed · {counts['skipped']} skipped "
                f"in {report.seconds:.1f} s; the table is {report.summary.name} in the output folder.")
        if report.stopped:
            done = f"Cancelled: {counts['cancelled']} inputs not done; nothing half-written was left. {done}"
        self.counts.value = done
        self.table.setRowCount(len(report.rows))
        for index, row in enumerate(report.rows):
            values = (Path(row["input"]).name, row["status"], f"{row['seconds']:.2f}", row["error"])
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(row["input"] if column == 0 else value)
                self.table.setItem(index, column, item)
        self.table.resizeRowsToContents()

    # ------------------------------------------------------------------------------ results
    def _update_open(self) -> None:
        rows = self._selected_rows()
        self.open_button.enabled = bool(rows) and all(self._openable(r) for r in rows)

    def _selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.table.selectedIndexes()})

    def _openable(self, index: int) -> bool:
        return self.report is not None and self.report.rows[index]["status"] in ("ok", "skipped")

    def open_selected(self, value=None) -> None:
        for index in self._selected_rows():
            self.open_result(index)

    def open_result(self, index: int) -> list:
        """Add the results of input ``index`` (a row of the table) as layers; returns them."""
        if not self._openable(index):
            return []
        row = self.report.rows[index]
        made = []
        for relative in row["files"]:
            path = self.report.out / relative
            if path.suffix == ".npz":
                made.append(self._open_cube(path))
            elif path.suffix == ".tif":
                made.append(self._open_tiff(path))
        return made

    def _open_cube(self, path: Path):
        from ..io import load_cube

        cube = load_cube(path, nonfinite="keep")
        record = cube.metadata.get("provenance") or {}
        metadata = {provenance.KEY: record}
        if cube.wavenumbers is not None:
            metadata["wavenumbers"] = np.asarray(cube.wavenumbers, dtype=np.float64)
        label, unit = provenance.axis_names(cube.spectral_unit)
        return self.viewer.add_image(cube.data, name=f"{path.parent.name} · {path.stem}", metadata=metadata,
                                     axis_labels=(label, "y", "x"), units=(unit, "pixel", "pixel"))

    def _open_tiff(self, path: Path):
        import tifffile

        with tifffile.TiffFile(path) as tiff:
            data = tiff.asarray()
            described = (tiff.shaped_metadata or [{}])[0]
        name = described.get("name") or f"{path.parent.name} · {path.stem}"
        metadata = {provenance.KEY: described.get(provenance.KEY, {})}
        if path.stem.endswith("_labels"):
            return self.viewer.add_labels(data, name=name, metadata=metadata)
        return self.viewer.add_image(data, name=name, metadata=metadata, colormap="viridis")
