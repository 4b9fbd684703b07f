"""The Analyse dock: what a cell biologist does with a clean cube, one tab per step.

Baseline (remove the fluorescence, previewed under the mouse), Peak fit (centre, FWHM, height,
area and R² maps of fitted bands), Band ratio, Clusters (labels and each cluster's mean ±
std spectrum), Calibration (correct the wavenumber axis from reference lines, named and saved)
and Cell table (per ROI, label or cluster, exported to CSV or .h5ad). Each tab is its own widget
(see its module); they share the dock so that the plugin's tab bar stays short.
"""

from __future__ import annotations

from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from .band_ratio import BandRatioWidget
from .baseline import BaselineWidget
from .calibration import CalibrationWidget
from .cell_table import CellTableWidget
from .clusters import ClusterWidget
from .peak_fit import PeakFitWidget

#: tab title -> attribute of the dock that holds the tab's widget
TABS = {
    "Baseline": "baseline",
    "Peak fit": "peak_fit",
    "Band ratio": "band_ratio",
    "Clusters": "clusters",
    "Calibration": "calibration",
    "Cell table": "cell_table",
}


class AnalyseWidget(QWidget):
    """The six analysis tabs of one viewer; ``show_tab("Clusters")`` brings one to the front."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.baseline = BaselineWidget(napari_viewer)
        self.peak_fit = PeakFitWidget(napari_viewer)
        self.band_ratio = BandRatioWidget(napari_viewer)
        self.clusters = ClusterWidget(napari_viewer)
        self.calibration = CalibrationWidget(napari_viewer)
        self.cell_table = CellTableWidget(napari_viewer)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.setUsesScrollButtons(True)
        for title, attribute in TABS.items():
            self.tabs.addTab(getattr(self, attribute), title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)

    def show_tab(self, title: str) -> QWidget:
        """Bring the tab called ``title`` to the front; returns its widget."""
        if title not in TABS:
            raise ValueError(f"no tab {title!r}; the tabs are {', '.join(TABS)}")
        widget = getattr(self, TABS[title])
        self.tabs.setCurrentWidget(widget)
        return widget
