"""The Unmix dock's defaults in a real viewer, driven as a new user does: open it on the selected
layer and press Unmix. Targets on the source's axis only, spikes removed before VCA (and a
warning when an endmember still looks like one), the background optionally left out of the
classes, one colour abundance layer per target, and a class legend on the canvas."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper._widgets.unmix import COMPOSITE, UnmixWidget, component_color

pytestmark = pytest.mark.gui


@pytest.fixture
def cell():
    return nd.simulate.simulate_cell((28, 28), n_bands=120, photons=200, seed=1)


def spiked(cell):
    """The cell with one strong cosmic ray: two bands, one pixel."""
    cube = cell.noisy.copy()
    cube[60:62, 5, 7] += 50 * cube.max()
    return cube


def add(viewer, data, name, wavenumbers):
    return viewer.add_image(data, name=name, metadata={"wavenumbers": wavenumbers})


def run(qtbot, widget):
    widget.runner.run_button.click()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60000)
    assert widget.runner.last_error is None, widget.runner.last_error


def drawn_legend(viewer, labels) -> list[tuple[str, tuple]]:
    """The legend entries napari's canvas shows for ``labels``: (text, RGB colour)."""
    canvas = viewer.window._qt_viewer.canvas
    visuals = canvas._layer_overlay_to_visual.get(labels, {})
    return sorted(
        (visual.node.text, tuple(np.round(overlay.color.rgba[:3] if hasattr(overlay.color, "rgba")
                                          else np.asarray(overlay.color)[:3], 3)))
        for overlay, visual in visuals.items()
        if type(overlay).__name__ == "PanelTitleOverlay" and visual.node.visible
    )


def test_defaults_run_on_the_selected_layer_and_compatible_targets(qtbot, make_napari_viewer, cell):
    viewer = make_napari_viewer()
    w = cell.wavenumbers
    other = add(viewer, cell.clean, "thp1_witec_40x40x500 · clean", w)
    add(viewer, cell.noisy[20:80], "thp1_witec_40x40x500 · cropped", w[20:80])  # another band count
    shifted = add(viewer, cell.noisy, "thp1_witec_40x40x500 · shifted axis", w + 7.0)  # same count, other axis
    raw = add(viewer, cell.noisy, "thp1_witec_40x40x500", w)
    viewer.layers.selection.active = raw
    widget = UnmixWidget(viewer)
    viewer.window.add_dock_widget(widget)

    assert widget.source.value is raw  # the selected layer
    assert {layer.name for layer in widget.targets.value} == {raw.name, other.name}
    assert widget.output.value == COMPOSITE and widget.despike.value
    before = len(viewer.layers)
    run(qtbot, widget)  # the defaults run: no refusal for the cropped layer

    assert len(viewer.layers) == before + 2 * 3  # abundances, labels, residual per target
    assert list(widget.made) == [raw.name, other.name]  # the source first
    for target in (raw, other):
        layer = viewer.layers[f"{target.name} · abundances"]
        assert layer.rgb and layer.data.shape == (28, 28, 3)
        np.testing.assert_allclose(layer.data.max(), 1.0, atol=1e-6)
        for kind in ("labels", "residual"):
            assert f"{target.name} · {kind}" in viewer.layers
    # one legend on the canvas: the top labels layer's; every labels panel's in grid mode
    raw_labels, other_labels = viewer.layers[f"{raw.name} · labels"], viewer.layers[f"{other.name} · labels"]
    assert len(drawn_legend(viewer, other_labels)) == 5 and drawn_legend(viewer, raw_labels) == []
    other_labels.visible = False
    assert len(drawn_legend(viewer, raw_labels)) == 5
    other_labels.visible = True
    viewer.canvas.grid.enabled = True
    assert len(drawn_legend(viewer, raw_labels)) == len(drawn_legend(viewer, other_labels)) == 5
    viewer.canvas.grid.enabled = False
    # the names end with what tells the targets apart, then a short kind
    assert viewer.layers[-3].name.endswith("· clean · abundances")

    # a new cube on the source's axis starts chosen; one on another axis does not
    again = add(viewer, cell.noisy * 2, "again", w)
    add(viewer, cell.noisy[:50], "short", w[:50])
    assert {layer.name for layer in widget.targets.value} == {raw.name, other.name, again.name}
    # choosing another source re-proposes the targets on its axis
    widget.source.value = shifted
    assert [layer.name for layer in widget.targets.value] == [shifted.name]


def test_spikes_removed_before_vca_by_default_and_warned_about_otherwise(qtbot, make_napari_viewer, cell):
    viewer = make_napari_viewer()
    layer = add(viewer, spiked(cell), "raw", cell.wavenumbers)
    widget = UnmixWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.n_endmembers.value = 5

    widget.despike.value = False
    run(qtbot, widget)
    assert widget.result.spike_like and widget.result.spike_like[0]["band"] in (60, 61)
    where = f"{cell.wavenumbers[widget.result.spike_like[0]['band']]:.1f} cm⁻¹"
    assert "cosmic-ray spike" in widget.warning.value and where in widget.warning.value
    assert "Remove cosmic-ray spikes before VCA" in widget.warning.value
    # the spike pixel is an endmember
    assert np.ravel_multi_index((5, 7), (28, 28)) in widget.result.pixel_indices

    widget.despike.value = True  # the default
    run(qtbot, widget)
    assert widget.result.spike_like == [] and widget.warning.value == ""
    assert widget.result.spikes_removed >= 2
    assert np.ravel_multi_index((5, 7), (28, 28)) not in widget.result.pixel_indices
    assert widget.result.params["despike"] > 0
    np.testing.assert_array_equal(layer.data, spiked(cell))  # the input untouched


def test_background_left_out_and_the_legend_on_the_canvas(qtbot, make_napari_viewer, cell):
    viewer = make_napari_viewer()
    add(viewer, cell.noisy, "cell", cell.wavenumbers)
    widget = UnmixWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.n_endmembers.value = 4

    run(qtbot, widget)
    labels = viewer.layers["cell · labels"]
    names = [f"component {i}" for i in range(1, 5)]
    assert widget.legend(labels) == [f"■ {name}" for name in names]
    drawn = drawn_legend(viewer, labels)
    assert [text for text, _ in drawn] == sorted(f"■ {name}" for name in names)
    colours = {text: colour for text, colour in drawn}
    np.testing.assert_allclose(colours["■ component 2"], np.round(component_color(1)[:3], 3), atol=1e-3)
    everyone = set(np.unique(labels.data)) - {0}

    widget.background.value = True
    run(qtbot, widget)
    labels = viewer.layers["cell · labels [1]"] if "cell · labels [1]" in viewer.layers else viewer.layers[-2]
    background = widget.result.targets["cell"].background
    assert background is not None
    assert background + 1 in everyone  # it was a class before
    assert background + 1 not in set(np.unique(labels.data))  # and is left out now
    assert (labels.data == 0).sum() > 0.2 * labels.data.size  # the slide around the cell
    assert f"■ component {background + 1}" not in widget.legend(labels)
    assert len(widget.legend(labels)) == 3
    step = labels.metadata["napari_deeper"]["recipe"][-1]
    assert step["params"]["background"] == background
    replayed = nd.Recipe.from_layer(labels).run(cell.noisy, device="cpu").final  # the same labels again
    np.testing.assert_array_equal(replayed, labels.data)

    widget.rename_component(0 if background != 0 else 1, "nucleus")
    assert "■ nucleus" in widget.legend(labels)


def test_raw_thp1_spikes_warned_about_and_removed_by_default(qtbot, make_napari_viewer, thp1_path):
    """The real WITec THP-1 map, opened as a user does, with a cropped copy beside it."""
    from napari_deeper._widgets.preprocess import PreprocessWidget

    viewer = make_napari_viewer()
    (raw,) = viewer.open(str(thp1_path), plugin="napari-deeper")
    crop = PreprocessWidget(viewer)
    viewer.window.add_dock_widget(crop)
    crop_range = raw.metadata["wavenumbers"][[20, -20]]
    crop.crop_start.value, crop.crop_stop.value = float(crop_range[0]), float(crop_range[1])
    crop.runner.run_button.click()
    qtbot.waitUntil(lambda: not crop.runner.busy, timeout=60000)
    assert crop.runner.last_error is None, crop.runner.last_error
    viewer.layers.selection.active = raw
    widget = UnmixWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.source.value is raw and list(widget.targets.value) == [raw]  # not the cropped copy
    widget.n_endmembers.value = 8

    widget.despike.value = False
    run(qtbot, widget)
    assert "624.5 cm⁻¹" in widget.warning.value and "679.9 cm⁻¹" in widget.warning.value

    widget.despike.value = True
    run(qtbot, widget)
    assert widget.warning.value == "" and widget.result.spikes_removed > 0
