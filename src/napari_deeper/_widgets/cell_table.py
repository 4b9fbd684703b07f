"""Cell table tab of the Analyse dock: one row per region with its spectra, area and bands.

Regions come from a Shapes layer (one ROI per shape, drawn in world coordinates and mapped onto
the cube's pixels; shapes may overlap), or from a labels layer (clusters from the Clusters tab,
unmixing classes, a segmentation; 0 is no region), whose size must match the cube's image. Per
region: pixel count, area in µm² (from the pixel size), mean and standard deviation spectra
with the 95 % confidence interval of the mean, per-pixel band areas (mean and std) and band
ratios of the region's mean areas. The table shows in the tab and exports to one CSV (Excel
reads it) or, with the ``anndata`` package installed, to ``.h5ad``.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton
from napari.layers import Labels, Shapes
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from .. import provenance
from ..analysis import region_table_steps
from ..analysis.methods import band_list, band_pair
from ._analysis import BAND_UNITS_TIP, compact, text_field, wrapped
from ._layers import follow_layers, layer_choices, shape_masks, wavenumbers_of
from ._params import float_box
from ._runner import Runner

MICROMETRE = ("µm", "um", "micrometer", "micrometre", "micron")


def is_regions(layer) -> bool:
    return isinstance(layer, (Shapes, Labels))


def ratio_list(text: str) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """``"1660±25/1450±25, 2850±15/2930±15"`` as ``[((1660, 25), (1450, 25)), ...]``."""
    pairs = []
    for item in (part for part in text.split(",") if part.strip()):
        sides = item.split("/")
        if len(sides) != 2:
            raise ValueError(f"a ratio is written numerator/denominator, e.g. 1660±25/1450±25; got {item.strip()!r}")
        pairs.append((band_pair(sides[0]), band_pair(sides[1])))
    return pairs


def pixel_size_of(layer) -> float:
    """The layer's pixel size in µm when its spatial units are micrometres, else 0 (unknown)."""
    units = [str(unit) for unit in layer.units[-2:]]
    scale = np.asarray(layer.scale, dtype=float)[-2:]
    if all(unit in MICROMETRE for unit in units) and np.isclose(scale[0], scale[1]):
        return float(scale[-1])
    return 0.0


class CellTableWidget(QWidget):
    """Cube, regions (Shapes or labels), pixel size, bands and ratios; Make table; export."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.layer = ComboBox(label="Cube", choices=layer_choices(self.viewer))
        self.regions = ComboBox(label="Regions", choices=layer_choices(self.viewer, is_regions))
        self.regions.tooltip = "a Shapes layer (one region per shape) or a labels layer (one per label; 0 is none)"
        compact(self.layer, self.regions)
        self.pixel_size = float_box("Pixel size (µm)", 0.0, 0.0, 1e6,
                                    "side of a pixel in µm, for areas in µm² (0: no areas)", decimals=4)
        self.bands = text_field("Band areas", "1004±12, 1450±20",
                                f"centre±half-window, separated by commas. {BAND_UNITS_TIP}")
        self.ratios = text_field("Ratios", "1660±25/1450±25", "numerator/denominator bands, separated by commas")
        self.controls = Container(widgets=[self.layer, self.regions, self.pixel_size, self.bands, self.ratios])
        self.runner = Runner("Make table")
        self.table_view = QTableWidget(0, 0)
        self.table_view.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table_view.verticalHeader().setVisible(False)
        self.table_view.setMinimumHeight(150)
        self.csv_button = PushButton(text="Export CSV...")
        self.h5ad_button = PushButton(text="Export .h5ad...")
        for button in (self.csv_button, self.h5ad_button):
            button.enabled = False
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        self.table = None  # the last RegionTable
        self.source: dict = {}  # what the last table was made from

        exports = QHBoxLayout()
        exports.addWidget(self.csv_button.native)
        exports.addWidget(self.h5ad_button.native)
        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.runner)
        layout.addWidget(self.table_view)
        layout.addLayout(exports)
        layout.addWidget(self.status.native)
        layout.addStretch(1)

        self.layer.changed.connect(self._on_layer)
        self.runner.run_button.clicked.connect(self.run)
        self.csv_button.changed.connect(self._ask_csv)
        self.h5ad_button.changed.connect(self._ask_h5ad)
        follow_layers(self.viewer, self.layer, self.regions)
        self._on_layer()

    def _on_layer(self, *args) -> None:
        if self.layer.value is not None:
            self.pixel_size.value = pixel_size_of(self.layer.value)

    def _regions(self, cube, regions) -> tuple[np.ndarray, list[str]]:
        """The label image or ROI masks of ``regions`` on ``cube``'s grid, and the region names."""
        if isinstance(regions, Shapes):
            masks = shape_masks(regions, cube)
            if masks.shape[0] == 0:
                raise ValueError(f"the Shapes layer {regions.name!r} has no shape; draw the regions first")
            return masks, [f"ROI {i + 1}" for i in range(masks.shape[0])]
        labels = np.asarray(regions.data)
        if labels.shape != cube.data.shape[1:]:
            raise ValueError(
                f"the labels layer {regions.name!r} is {' x '.join(map(str, labels.shape))} but the cube's image is "
                f"{' x '.join(map(str, cube.data.shape[1:]))} pixels: choose labels made on this cube"
            )
        kind = "cluster" if provenance.of(regions).get("operation") == "cluster" else "label"
        ids = np.unique(labels[labels > 0]) if np.issubdtype(labels.dtype, np.integer) else []
        return labels, [f"{kind} {i}" for i in ids]

    def run(self) -> None:
        cube, regions = self.layer.value, self.regions.value
        try:
            if cube is None:
                raise ValueError("open or choose a spectral layer first")
            if regions is None:
                raise ValueError("choose the regions: a Shapes layer of ROIs or a labels layer")
            labels, names = self._regions(cube, regions)
            bands = list(band_list(self.bands.value)) if self.bands.value.strip() else []
            ratios = ratio_list(self.ratios.value)
        except ValueError as error:
            self.runner.refuse(error)
            return
        size = float(self.pixel_size.value) or None
        self.source = {"cube": cube.name, "regions": regions.name}
        self.runner.start(
            region_table_steps, self._show, np.asarray(cube.data), wavenumbers_of(cube), labels, size, bands,
            ratios, names or None, viewer=self.viewer, inputs=[cube, regions],
        )

    def _show(self, table) -> None:
        self.table = table
        rows = table.rows()
        header = list(rows[0])
        self.table_view.setColumnCount(len(header))
        self.table_view.setHorizontalHeaderLabels(header)
        self.table_view.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row.values()):
                text = "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
                self.table_view.setItem(r, c, QTableWidgetItem(text))
        for button in (self.csv_button, self.h5ad_button):
            button.enabled = True
        self.status.value = wrapped(f"{len(rows)} regions of {self.source['cube']} from {self.source['regions']}")

    # -------------------------------------------------------------------------------- export
    def export_csv(self, path):
        """Write the table (with the mean, std and interval spectra) to ``path``."""
        if self.table is None:
            raise ValueError("make the table first")
        written = self.table.write_csv(path)
        self.status.value = wrapped(f"Wrote {written}")
        show_info(f"napari-deeper: region table written to {written}")
        return written

    def export_h5ad(self, path):
        """Write the table as AnnData (needs the ``anndata`` package)."""
        if self.table is None:
            raise ValueError("make the table first")
        written = self.table.write_h5ad(path)
        self.status.value = wrapped(f"Wrote {written}")
        return written

    def _export(self, export, caption: str, suffix: str, pattern: str) -> None:
        suggested = f"{self.source.get('cube', 'regions')} regions{suffix}"
        path, _ = QFileDialog.getSaveFileName(self, caption, suggested, pattern)
        if not path:
            return
        if not path.lower().endswith(suffix):
            path += suffix
        try:
            export(path)
        except (ValueError, ImportError, OSError) as error:
            self.runner.refuse(error)

    def _ask_csv(self, value=None) -> None:
        self._export(self.export_csv, "Export region table", ".csv", "CSV (*.csv)")

    def _ask_h5ad(self, value=None) -> None:
        self._export(self.export_h5ad, "Export region table as AnnData", ".h5ad", "AnnData (*.h5ad)")
