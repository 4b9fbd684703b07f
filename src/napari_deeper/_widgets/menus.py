"""Layer-menu actions: each docks the matching widget (or shows it, if it is already docked)."""

from __future__ import annotations

import napari

PLUGIN = "napari-deeper"


def _open(viewer: napari.viewer.Viewer, widget_name: str) -> None:
    viewer.window.add_plugin_dock_widget(PLUGIN, widget_name)


def open_denoise(viewer: napari.viewer.Viewer) -> None:
    _open(viewer, "Denoise")


def open_superres(viewer: napari.viewer.Viewer) -> None:
    _open(viewer, "Super-resolve")


def open_peak_map(viewer: napari.viewer.Viewer) -> None:
    _open(viewer, "Peak heatmap")


def open_unmix(viewer: napari.viewer.Viewer) -> None:
    _open(viewer, "Unmix (VCA + NNLS)")


def open_compare(viewer: napari.viewer.Viewer) -> None:
    _open(viewer, "Compare")


def open_preprocess(viewer: napari.viewer.Viewer) -> None:
    _open(viewer, "Preprocess spectra")
