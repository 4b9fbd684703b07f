"""Layer choosers hold layer objects and follow the viewer: adds, removals and renames."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

WAVENUMBERS = np.linspace(600, 1800, 24)


def add_cube(viewer, name, seed):
    data = np.random.default_rng(seed).random((WAVENUMBERS.size, 8, 9)).astype(np.float32)
    return viewer.add_image(data, name=name, metadata={"wavenumbers": WAVENUMBERS})


def combo_texts(combo) -> list[str]:
    """What the combo box shows, top to bottom."""
    return [combo.native.itemText(i) for i in range(combo.native.count())]


def test_denoise_chooser_follows_a_rename_and_a_removal(make_napari_viewer, run_dock):
    from napari_deeper._widgets.denoise import DenoiseWidget

    viewer = make_napari_viewer()
    first = add_cube(viewer, "first", seed=0)
    scan = add_cube(viewer, "scan", seed=1)
    widget = DenoiseWidget(viewer)
    widget.input_layer.value = scan
    changes = []
    widget.input_layer.changed.connect(changes.append)

    scan.name = "scan renamed"
    assert combo_texts(widget.input_layer) == ["first", "scan renamed"]
    assert widget.input_layer.value is scan
    assert widget.input_layer.current_choice == "scan renamed"
    assert changes == []  # the same layer stays chosen: no change signal

    widget.methods.value = ["savgol"]
    run_dock(widget)
    result = viewer.layers["scan renamed · savgol"]
    assert result.metadata["napari_deeper"]["source"] == "scan renamed"
    assert result.data.shape == scan.data.shape

    viewer.layers.remove(scan)
    assert widget.input_layer.value is first
    assert changes == [first]
    assert "scan renamed" not in combo_texts(widget.input_layer)

    viewer.layers.remove(first)
    viewer.layers.remove(result)
    assert widget.input_layer.value is None
    run_dock(widget, fails=True)
    assert "choose an input layer" in str(widget.runner.last_error)


def test_a_selected_layer_stays_selected_when_renamed(make_napari_viewer):
    from napari_deeper._widgets.unmix import UnmixWidget

    viewer = make_napari_viewer()
    one, two, three = (add_cube(viewer, name, seed) for seed, name in enumerate(("one", "two", "three")))
    widget = UnmixWidget(viewer)
    widget.targets.value = [one, three]
    two.name = "second"
    three.name = "third"
    assert widget.targets.value == [one, three]
    assert widget.targets.current_choice == ["one", "third"]
    four = add_cube(viewer, "four", seed=3)  # a new cube starts selected
    assert widget.targets.value == [one, three, four]
    viewer.layers.remove(one)
    assert widget.targets.value == [three, four]


def test_a_deleted_dock_stops_following(make_napari_viewer):
    from qtpy.compat import isalive
    from qtpy.QtCore import QCoreApplication, QEvent

    from napari_deeper._widgets.denoise import DenoiseWidget

    viewer = make_napari_viewer()
    widget = DenoiseWidget(viewer)
    followers = len(viewer.layers.events.inserted.callbacks)
    widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not isalive(widget.input_layer.native)
    add_cube(viewer, "after", seed=0)  # no error: the follower of the deleted dock is dropped
    assert len(viewer.layers.events.inserted.callbacks) == followers - 1
