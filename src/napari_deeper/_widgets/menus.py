"""Layer-menu actions: each docks the matching widget (or shows it, if it is already docked);
*Layers > Metadata > Save recipe...* writes the recipe that remakes the selected layer."""

from __future__ import annotations

import re
from pathlib import Path

import napari
from napari.utils.notifications import show_error, show_info

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


def ask_recipe_path(suggested: str) -> str:
    """The file to write a recipe to, from a Qt save dialog ("" when cancelled)."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(None, "Save recipe", suggested, "napari-deeper recipe (*.json)")
    return path


def save_recipe(viewer: napari.viewer.Viewer) -> Path | None:
    """Save the recipe of the selected layer (the steps that remake it from its file) as JSON.

    A layer the plugin did not make, or one whose chain holds a step that cannot be replayed,
    gets an error notification saying why, and nothing is written. Returns the path written.
    """
    from ..recipe import Recipe

    layer = viewer.layers.selection.active
    if layer is None:
        show_error("napari-deeper: select the layer whose recipe to save")
        return None
    try:
        recipe = Recipe.from_layer(layer)
        recipe.validate()
    except ValueError as error:
        show_error(f"napari-deeper: no recipe for {layer.name!r}: {error}")
        return None
    path = ask_recipe_path(re.sub(r'[\\/:*?"<>|]+', "_", layer.name) + ".recipe.json")
    if not path:
        return None
    try:
        written = recipe.save(path)
    except OSError as error:
        show_error(f"napari-deeper: could not save the recipe: {error}")
        return None
    show_info(f"napari-deeper: recipe of {layer.name!r} saved to {written}")
    return written
