"""The plugin's docks in a real window: tabbed together so the window fits a 1080p screen, with
parameters that are not squeezed; the Denoise dock starts on the selected layer."""

from __future__ import annotations

import pytest
from qtpy.QtWidgets import QApplication, QScrollArea

from napari_deeper._widgets import _docks

pytestmark = pytest.mark.gui

PLUGIN = "napari-deeper"
SCREEN_1080P = 1080


def every_dock(viewer) -> list[str]:
    """The plugin's dock names, as its Plugins menu lists them."""
    from napari.plugins import _npe2

    manifest = _npe2.pm.get_manifest(PLUGIN)
    return [widget.display_name for widget in manifest.contributions.widgets]


def test_every_dock_open_fits_the_screen(qtbot, make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "denoise_pair")
    window = viewer.window._qt_window
    names = every_dock(viewer)
    assert len(names) >= 9
    for name in names:  # as the Plugins menu opens them, one after the other
        viewer.window.add_plugin_dock_widget(PLUGIN, name)
        qtbot.wait(50)
    qtbot.wait(200)
    available = window.screen().availableGeometry().height()
    assert window.frameGeometry().height() <= min(SCREEN_1080P, available)
    docks = {dock.name: dock for dock in window.findChildren(type(viewer.window._wrapped_dock_widgets[
        f"Spectra ({PLUGIN})"])) if _docks.is_ours(dock)}
    spectra = docks.pop(f"Spectra ({PLUGIN})")
    tabbed = window.tabifiedDockWidgets(next(iter(docks.values())))
    assert set(tabbed) | {next(iter(docks.values()))} == set(docks.values())  # one group of tabs
    assert spectra not in tabbed and spectra.height() >= 200  # the plot keeps its own place
    # the Denoise parameters are not a 50 px strip: the dock scrolls as a whole instead
    denoise_dock = docks[f"Denoise ({PLUGIN})"]
    denoise_dock.raise_()
    qtbot.wait(100)
    denoise = viewer.window.dock_widgets[f"Denoise ({PLUGIN})"]
    params = [area for area in denoise.findChildren(QScrollArea) if area.objectName() != _docks.SCROLLED]
    assert params, "the Denoise dock has its parameter area"
    needed = params[0].widget().sizeHint().height()
    assert params[0].height() >= min(needed, 200)
    # the dock's own controls still work after being put in a scroll area
    assert denoise.methods.choices and denoise.input_layer.choices
    # every dock's viewer (napari hands each a proxy) shares the one set of display rules
    from napari_deeper._widgets import _display

    assert denoise.viewer is not viewer and _display.install(denoise.viewer) is _display.install(viewer)
    # a dock opened again is the same widget (napari's registry still holds it)
    _, again = viewer.window.add_plugin_dock_widget(PLUGIN, "Denoise")
    assert again is denoise


def test_a_tall_window_comes_back_within_the_screen(qtbot, make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    screen = window.screen().availableGeometry().height()
    window.resize(window.width(), screen + 600)
    QApplication.processEvents()
    viewer.window.add_plugin_dock_widget(PLUGIN, "Unmix (VCA + NNLS)")
    qtbot.waitUntil(lambda: window.frameGeometry().height() <= screen, timeout=3000)


def test_denoise_dock_starts_on_the_selected_layer(qtbot, make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "denoise_pair")
    first, second = viewer.layers[0], viewer.layers[1]
    viewer.layers.selection.active = second
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Denoise")
    assert widget.input_layer.value is second
    assert widget.input_layer.choices[0] is first  # it is not simply the first one offered
