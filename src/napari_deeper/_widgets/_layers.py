"""Small helpers every widget shares: find spectral layers, make result layers with provenance.

The provenance record itself (key, record, recipe steps) is the core's :mod:`napari_deeper.provenance`.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image

from .. import provenance
from . import _display, _docks
from ._grid import restore_view, show_side_by_side, toggle_side_by_side  # noqa: F401 (the docks' grid)


def is_spectral(layer) -> bool:
    """A spectral layer is a 3-D, non-RGB image whose first axis is the spectral one."""
    return isinstance(layer, Image) and layer.ndim == 3 and not layer.rgb


def spectral_layers(viewer) -> list[Image]:
    return [layer for layer in viewer.layers if is_spectral(layer)]


def wavenumbers_of(layer) -> np.ndarray | None:
    """The layer's spectral axis from ``metadata["wavenumbers"]`` (None when it has none)."""
    w = layer.metadata.get("wavenumbers") if layer is not None else None
    return None if w is None else np.asarray(w, dtype=float)


def spectral_axis(layer) -> np.ndarray:
    """The spectral axis for plotting: the wavenumbers, or band indices when there are none."""
    w = wavenumbers_of(layer)
    return w if w is not None else np.arange(layer.data.shape[0], dtype=float)


def layer_choices(viewer, predicate=is_spectral):
    """A magicgui ``choices`` callable: ``(name, layer)`` of the viewer's layers that pass ``predicate``.

    A chooser built with it has layer objects as its values, as magicgui gives napari
    ``Layer``-typed parameters, and shows the layers' names.
    """

    def choices(widget=None) -> list[tuple[str, object]]:
        return [(layer.name, layer) for layer in viewer.layers if predicate(layer)]

    return choices


def _same(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b))
    return a is b


def refresh_choices(widget) -> None:
    """Re-list a layer chooser's choices, keeping the chosen layers that are still offered.

    magicgui matches choices by their text, so on its own it would drop a renamed layer from
    the selection; here the value is kept by identity. A combo box whose layer is gone moves
    to the first choice; a list keeps the rest of its selection. ``changed`` is emitted once,
    and only when the value really changed.
    """
    before = widget.value
    with widget.changed.blocked():
        widget.reset_choices()
        offered = widget.choices
        if isinstance(before, list):
            widget.value = [layer for layer in before if any(layer is c for c in offered)]
        elif before is not None and any(before is c for c in offered):
            widget.value = before
    after = widget.value
    if not _same(before, after):
        widget.changed.emit(after)


def follow_layers(viewer, *widgets, then=None) -> None:
    """Keep layer choosers (made with :func:`layer_choices`) in step with the viewer.

    When a layer is added, removed or renamed, each widget's choices are re-listed with
    :func:`refresh_choices`; ``then(event)`` (optional) runs afterwards, for a dock's own rule
    such as selecting newly added layers. Once the dock's Qt widgets are deleted, napari drops
    the connection at the next event (it disconnects callbacks that hit a deleted Qt object).
    """

    def refresh(event=None) -> None:
        for widget in widgets:
            refresh_choices(widget)
        if then is not None:
            then(event)

    # every dock calls this: the viewer's display rules, and the docks tabbed together
    _display.install(viewer)
    if widgets:
        _docks.arrange_soon(widgets[0].native)
    events = viewer.layers.events
    for emitter in (events.inserted, events.removed, events.renamed):
        emitter.connect(refresh)
    refresh()


def required_layer(widget, message: str = "choose an input layer (a spectral cube)"):
    """The layer a chooser holds, or a ``ValueError`` with ``message`` when there is none."""
    layer = widget.value
    if layer is None:
        raise ValueError(message)
    return layer


def shape_masks(shapes, layer) -> np.ndarray:
    """One boolean ``(Y, X)`` mask per shape of a Shapes layer, on ``layer``'s pixel grid (the
    shapes live in world coordinates, the masks in the layer's)."""
    from napari.layers import Shapes

    vertices = []
    for shape_vertices in shapes.data:
        world = [shapes.data_to_world(vertex) for vertex in shape_vertices]
        vertices.append(np.array([np.asarray(layer.world_to_data(p))[-2:] for p in world]))
    if not vertices:
        return np.zeros((0, *layer.data.shape[-2:]), dtype=bool)
    grid = Shapes(vertices, shape_type=shapes.shape_type)
    return np.asarray(grid.to_masks(mask_shape=layer.data.shape[-2:]), dtype=bool)


def model_record(model_name: str) -> dict:
    """What provenance keeps of the trained model a method ran (name, version, card)."""
    from ..models import find_model

    info = find_model(model_name)
    return {
        "model": info.name,
        "model_version": info.card.get("version", ""),
        "model_arch": info.arch,
        "model_shipped": info.shipped,
        "model_card": str(info.path.with_suffix(".json")),
    }


def cube_layer_kwargs(source: Image, name: str, record: dict, scale_factor: float = 1.0) -> dict:
    """Keyword arguments for a new cube layer that inherits the source's spectral axis.

    ``scale_factor`` > 1 is a spatial upscaling: the new pixels are ``scale_factor`` times
    smaller, and the translate is shifted so that output pixel ``f*i + f//2`` sits exactly on
    input pixel ``i`` in world coordinates.
    """
    scale = np.asarray(source.scale, dtype=float).copy()
    translate = np.asarray(source.translate, dtype=float).copy()
    if scale_factor != 1:
        f = float(scale_factor)
        offset = (int(f) // 2) * scale[1:] / f
        scale[1:] = scale[1:] / f
        translate[1:] = translate[1:] - offset
    metadata = {key: value for key, value in source.metadata.items() if key != provenance.KEY}
    metadata[provenance.KEY] = record
    return {
        "name": name,
        "scale": scale,
        "translate": translate,
        "metadata": metadata,
        "axis_labels": source.axis_labels,
        "units": source.units,
        "colormap": source.colormap.name,
    }


def result_name(source_name: str, method: str) -> str:
    return f"{source_name} · {method}"
