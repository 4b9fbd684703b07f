"""Compare dock widget: score candidate layers against a reference, side by side and in a table.

Pick a reference cube (the high-SNR or high-resolution scan) and any number of candidates (the
raw scan, every method's output). *Compare* computes MSE, NMSE, PSNR, SSIM, SAM and SNR per
candidate in a worker (:func:`napari_deeper.metrics.compare_steps`), plus the classification
accuracy when the unmix widget has made labels for both the reference and the candidate (found
through ``metadata["napari_deeper"]["source"]``). The table sorts by any column and exports to
CSV. *Side by side* shows the reference and the candidates in napari's grid (see :mod:`._grid`): each
panel titled with the part of its name that differs, the view reset, one percentile contrast
linked across the panels; *Normal view* undoes it. Optional difference maps
(candidate - reference per band, or the band-averaged absolute difference) become new layers.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Select
from napari.layers import Labels
from napari.utils.notifications import show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import metrics, provenance
from ._layers import (
    cube_layer_kwargs,
    follow_layers,
    is_spectral,
    layer_choices,
    refresh_choices,
    restore_view,
    result_name,
    show_side_by_side,
)
from ._runner import Runner

DIFFERENCE_OPERATION = "difference"
NOT_REPLAYABLE = "a difference map is made from two layers (a candidate and a reference); a recipe replays one chain"
#: Made layers that are 3-D but not spectral cubes: difference maps, stacked abundance maps.
NOT_CANDIDATES = {DIFFERENCE_OPERATION, "unmix"}
DIFFERENCE_CHOICES = {
    "none": None,
    "per band (candidate - reference)": "cube",
    "band-averaged |difference|": "integrated",
}
# (row key, column title, display format)
METRIC_COLUMNS = (
    ("mse", "MSE", "{:.3e}"),
    ("nmse", "NMSE", "{:.3e}"),
    ("psnr", "PSNR (dB)", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("sam", "SAM (°)", "{:.2f}"),
    ("snr", "SNR (dB)", "{:.2f}"),
)
ACCURACY_COLUMN = ("accuracy", "Accuracy", "{:.1%}")
CSV_FIELDS = ("name", *metrics.METRIC_NAMES, "accuracy", "shape", "note")


def is_comparable(layer) -> bool:
    """A spectral cube, but not a difference map or stacked abundance maps."""
    return is_spectral(layer) and provenance.of(layer).get("operation") not in NOT_CANDIDATES


def _format(value: float, pattern: str) -> str:
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return pattern.format(value)


class NumericItem(QTableWidgetItem):
    """A table cell shown formatted but sorted by its number (NaN always sorts last)."""

    def __init__(self, value: float, pattern: str):
        super().__init__(_format(value, pattern))
        self.value = float(value)
        self.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))

    def __lt__(self, other):
        if not isinstance(other, NumericItem):
            return super().__lt__(other)
        if math.isnan(self.value) or math.isnan(other.value):
            ascending = self.tableWidget().horizontalHeader().sortIndicatorOrder() == (
                Qt.SortOrder.AscendingOrder
            )
            # NaN last in both directions
            return (not math.isnan(self.value)) == ascending and math.isnan(self.value) != math.isnan(
                other.value
            )
        return self.value < other.value


def _compare_and_difference_steps(
    reference, candidates, crop, labels, reference_labels, difference_mode
):
    """The worker's job: the metrics table, then the difference maps when asked for."""
    rows = yield from metrics.compare_steps(
        reference, candidates, crop=crop, labels=labels, reference_labels=reference_labels
    )
    maps = {}
    if difference_mode is not None:
        maps = yield from metrics.difference_steps(reference, candidates, difference_mode, crop)
    return rows, maps


def _csv_value(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, tuple):
        return "x".join(str(n) for n in value)
    return str(value)


class CompareWidget(QWidget):
    """Metrics table, side-by-side grid and difference maps of candidates against a reference."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.rows: list[dict] = []
        self.reference_name: str | None = None

        self.reference = ComboBox(label="Reference", choices=layer_choices(self.viewer, is_comparable))
        self.candidates = Select(label="Candidates", choices=layer_choices(self.viewer, self._is_candidate))
        self.candidates.native.setMaximumHeight(120)
        self.candidates.tooltip = "Ctrl/Shift-click to choose several"
        self.crop = CheckBox(text="Crop to overlap (compare shapes that differ on the common region)")
        self.differences = ComboBox(
            label="Difference maps", choices=list(DIFFERENCE_CHOICES), value="none"
        )
        self.controls = Container(
            widgets=[self.reference, self.candidates, self.crop, self.differences]
        )
        self.runner = Runner("Compare")

        self.table = QTableWidget(0, 0)
        self.table.setSortingEnabled(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)

        self.side_by_side_button = QPushButton("Side by side")
        self.normal_view_button = QPushButton("Normal view")
        self.export_button = QPushButton("Export CSV...")
        self.export_button.setEnabled(False)
        buttons = QHBoxLayout()
        for button in (self.side_by_side_button, self.normal_view_button, self.export_button):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.runner)
        layout.addWidget(self.table)
        layout.addLayout(buttons)

        self.reference.changed.connect(self._refresh_candidates)
        self.runner.run_button.clicked.connect(self.compare)
        self.side_by_side_button.clicked.connect(self.side_by_side)
        self.normal_view_button.clicked.connect(self.normal_view)
        self.export_button.clicked.connect(self._export_dialog)
        self.candidates.value = list(self.candidates.choices)
        follow_layers(self.viewer, self.reference, then=self._refresh_candidates)

    # ----------------------------------------------------------------------------- layer lists
    def _is_candidate(self, layer) -> bool:
        return is_comparable(layer) and layer is not self.reference.value

    def _refresh_candidates(self, value=None) -> None:
        """Re-list the candidates (all but the reference), keeping the user's selection.

        While there were none to choose from, every candidate that appears starts selected.
        """
        had_choices = bool(self.candidates.choices)
        refresh_choices(self.candidates)
        if not had_choices:
            self.candidates.value = list(self.candidates.choices)

    def labels_for(self, name: str):
        """The newest labels layer that the unmix widget made from layer ``name`` (or None)."""
        for layer in reversed(list(self.viewer.layers)):
            record = provenance.of(layer)
            if isinstance(layer, Labels) and record.get("source") == name:
                return layer
        return None

    # ----------------------------------------------------------------------------- computing
    def compare(self) -> None:
        """Start the comparison in the background; the table fills in when it is done."""
        reference = self.reference.value
        layers = list(self.candidates.value)
        if reference is None or not layers:
            self.runner.refuse("Choose a reference layer and at least one candidate layer.")
            return
        # rows and difference maps are named after the layers as they are called now
        by_name = {layer.name: layer for layer in layers}
        candidates = {name: np.asarray(layer.data) for name, layer in by_name.items()}
        labels = {}
        for name in by_name:
            layer = self.labels_for(name)
            if layer is not None:
                labels[name] = np.asarray(layer.data)
        reference_labels = self.labels_for(reference.name)
        crop = "overlap" if self.crop.value else None
        mode = DIFFERENCE_CHOICES[self.differences.value]
        self.runner.start(
            _compare_and_difference_steps,
            lambda result: self._on_done(result, reference.name, by_name, crop, mode),
            np.asarray(reference.data),
            candidates,
            crop,
            labels,
            None if reference_labels is None else np.asarray(reference_labels.data),
            mode,
        )

    def _on_done(self, result, reference_name: str, layers: dict, crop, mode) -> None:
        rows, maps = result
        self.rows = rows
        self.reference_name = reference_name
        self._fill_table()
        self.export_button.setEnabled(bool(rows))
        for name, diff in maps.items():
            if layers[name] in self.viewer.layers:
                self._add_difference_layer(layers[name], name, reference_name, diff, mode, crop)

    def _add_difference_layer(self, source, name, reference_name, diff, mode, crop) -> None:
        params = {"reference": reference_name, "mode": mode, "crop": crop}
        record = provenance.record(DIFFERENCE_OPERATION, source, params,
                                   replay=provenance.not_replayable(DIFFERENCE_OPERATION, params, NOT_REPLAYABLE))
        limit = float(np.max(np.abs(diff))) or 1.0
        if mode == "cube":
            kwargs = cube_layer_kwargs(
                source, result_name(name, f"difference to {reference_name}"), record
            )
            kwargs.update(colormap="PiYG", contrast_limits=(-limit, limit))
            self.viewer.add_image(diff, **kwargs)
        else:
            self.viewer.add_image(
                diff,
                name=result_name(name, f"|difference| to {reference_name}"),
                scale=tuple(source.scale[-2:]),
                translate=tuple(source.translate[-2:]),
                units=tuple(source.units[-2:]),
                colormap="magma",
                contrast_limits=(0.0, limit),
                metadata={provenance.KEY: record},
            )

    # ----------------------------------------------------------------------------- table, CSV
    def _columns(self) -> list[tuple[str, str, str]]:
        columns = list(METRIC_COLUMNS)
        if any(not math.isnan(row["accuracy"]) for row in self.rows):
            columns.append(ACCURACY_COLUMN)
        return columns

    def _fill_table(self) -> None:
        columns = self._columns()
        self.table.setSortingEnabled(False)
        # no sort column until the user clicks a header: rows start in candidate order
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.clear()
        self.table.setColumnCount(len(columns) + 2)
        self.table.setHorizontalHeaderLabels(
            ["Candidate", *(title for _, title, _ in columns), "Note"]
        )
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            self.table.setItem(r, 0, QTableWidgetItem(row["name"]))
            for c, (key, _title, pattern) in enumerate(columns, start=1):
                self.table.setItem(r, c, NumericItem(row[key], pattern))
            self.table.setItem(r, len(columns) + 1, QTableWidgetItem(row["note"]))
        self.table.setSortingEnabled(True)

    def column_titles(self) -> list[str]:
        return [self.table.horizontalHeaderItem(c).text() for c in range(self.table.columnCount())]

    def displayed_rows(self) -> list[dict]:
        """The result rows in the order the table shows them (after any sorting)."""
        by_name = {row["name"]: row for row in self.rows}
        return [by_name[self.table.item(r, 0).text()] for r in range(self.table.rowCount())]

    def export_csv(self, path) -> Path:
        """Write the table (full precision, in the displayed order) to ``path`` as CSV."""
        if not self.rows:
            raise ValueError("nothing to export yet: press Compare first")
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["reference", *CSV_FIELDS])
            for row in self.displayed_rows():
                writer.writerow([self.reference_name, *(_csv_value(row[key]) for key in CSV_FIELDS)])
        return path

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", "metrics.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)
            self.runner.status.setText(f"Saved {path}")

    # ----------------------------------------------------------------------------- views
    def side_by_side(self) -> None:
        """Grid view of the reference and the candidates: titled panels, the view reset, one contrast.

        Each panel's title is the part of its layer's name that differs from the others; the
        contrast comes from the panels' 1st-99.5th percentiles and stays linked while the grid
        is shown (changing it on one layer changes it on all), until *Normal view*.
        """
        chosen = [self.reference.value, *self.candidates.value]
        layers = [layer for layer in chosen if layer is not None]
        if not layers:
            show_info("Choose a reference and candidates to show side by side.")
            return
        show_side_by_side(self.viewer, layers)

    def normal_view(self) -> None:
        """Leave the grid, show every layer again and remove the titles and the contrast link."""
        restore_view(self.viewer)
