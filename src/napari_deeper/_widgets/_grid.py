"""Side-by-side grids (Denoise, Super-resolve, Compare): titled panels, the view reset, one robust contrast.

:func:`show_side_by_side` shows only the given layers in napari's grid, one per panel, and

- titles every panel with the part of its layer's name that tells it apart from the others
  ("resunet", "savgol"), not the whole name, whose common prefix would fill a narrow panel, cut
  to the panel's width (again when the canvas is resized);
- resets the view, so every panel shows its whole image;
- gives the panels one contrast from the 1st-99.5th percentiles of their displayed bands (a few
  hot pixels or cosmic rays do not set it), linked while the grid is shown: changing it on one
  panel changes it on all.

:func:`restore_view` leaves the grid, removes the titles and the link and shows every layer again;
leaving the grid with napari's own grid button removes the titles and the link too.

napari's own panel title (``layer.name_overlay``) can only show the full layer name; the titles
here are a layer overlay of napari's layer-name kind whose text is set, registered with napari's
canvas once. Where a napari version does not offer that hook, the full layer name is shown.
"""

from __future__ import annotations

import weakref

import numpy as np

from ._display import PERCENTILES, displayed_band, grid_of, robust_limits

#: key of the title overlay among a layer's overlays
TITLE_KEY = "napari_deeper_title"
TITLE_FONT_SIZE = 9
#: a title longer than this keeps its end (where names differ) behind an ellipsis
TITLE_MAX_CHARS = 36
#: on-screen width of a title's average character at :data:`TITLE_FONT_SIZE` (pixels), so that
#: a title is cut to its panel's width and does not run into the next panel's
TITLE_CHAR_PIXELS = 8.5
TITLE_MIN_CHARS = 10
SEPARATOR = " · "
LINKED_ATTRIBUTES = ("contrast_limits", "gamma")

_state: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # viewer -> layers titled and linked


def _real(obj):
    """The object behind napari's proxy (docks get the viewer and its layers through one)."""
    return getattr(obj, "__wrapped__", obj)


# ------------------------------------------------------------------------------ pure helpers
def distinct_titles(names, max_chars: int = TITLE_MAX_CHARS) -> list[str]:
    """What tells each name apart: the names' ``" · "``-parts with the parts all share removed.

    ``["cell · resunet", "cell · savgol"]`` gives ``["resunet", "savgol"]``; a name that is
    nothing but the shared parts (the input of the results beside it) keeps its last part. When
    the names share nothing (a reference beside a scan and its results), the names that start
    alike are trimmed among themselves, and a name alone stays whole. Titles longer than
    ``max_chars`` keep their end.
    """
    names = [str(name) for name in names]
    firsts = [name.split(SEPARATOR)[0] for name in names]
    if len(set(firsts)) > 1 and any(firsts.count(first) > 1 for first in firsts):
        titles = list(names)
        for first in set(firsts):
            group = [i for i, f in enumerate(firsts) if f == first]
            if len(group) > 1:
                for i, title in zip(group, distinct_titles([names[i] for i in group], max_chars)):
                    titles[i] = title
        if len(set(titles)) == len(set(names)):
            return [_shortened(t, max_chars) for t in titles]
    parts = [name.split(SEPARATOR) for name in names]
    if len(names) > 1:
        lead = 0
        while all(len(p) > lead for p in parts) and len({p[lead] for p in parts}) == 1:
            lead += 1
        trail = 0
        while all(len(p) > lead + trail for p in parts) and len({p[-1 - trail] for p in parts}) == 1:
            trail += 1
        trimmed = [p[lead : len(p) - trail] or p[-1:] for p in parts]
        titles = [SEPARATOR.join(p) for p in trimmed]
        if len(set(titles)) < len(set(names)):  # trimming made two names alike: keep them whole
            titles = names
    else:
        titles = names
    return [_shortened(t, max_chars) for t in titles]


def _shortened(title: str, max_chars: int) -> str:
    """A title of at most ``max_chars`` characters; a long one keeps its end."""
    return title if len(title) <= max_chars else "…" + title[-(max_chars - 1) :]


def title_chars(viewer) -> int:
    """Characters a panel title may have to fit the width of a grid panel as shown now."""
    canvas = getattr(viewer, "canvas", None)
    if canvas is None:
        return TITLE_MAX_CHARS
    width = canvas.viewbox_size(viewer.layers)[1]
    return int(np.clip(width / TITLE_CHAR_PIXELS - 2, TITLE_MIN_CHARS, TITLE_MAX_CHARS))


def shared_limits(layers, viewer) -> tuple[float, float]:
    """One contrast for ``layers``: the widest of their displayed bands' robust limits."""
    lows, highs = [], []
    for layer in layers:
        data = layer.data
        image = data[displayed_band(viewer, layer)] if data.ndim == 3 else data
        low, high = robust_limits(np.asarray(image), PERCENTILES)
        lows.append(low)
        highs.append(high)
    return float(min(lows)), float(max(highs))


# ------------------------------------------------------------------------------ titles
def title_overlay_class():
    """The overlay model of a text a layer shows on its panel, registered with napari's canvas (None without the hook)."""
    try:
        from napari._vispy.overlays.text import VispyLayerNameOverlay
        from napari._vispy.utils.visual import overlay_to_visual
        from napari.components.overlays import LayerNameOverlay
    except ImportError:
        return None
    for model in overlay_to_visual:
        if model.__name__ == "PanelTitleOverlay":
            return model

    class PanelTitleOverlay(LayerNameOverlay):
        """A layer's panel title with a text of its own."""

        text: str = ""

    class VispyPanelTitleOverlay(VispyLayerNameOverlay):
        def _connect_events(self):
            self.overlay.events.text.connect(self._on_text_change)

        def _on_text_change(self):
            self.node.text = self.overlay.text
            self._on_position_change()

    overlay_to_visual[PanelTitleOverlay] = VispyPanelTitleOverlay
    return PanelTitleOverlay


def panel_title(layer) -> str | None:
    """The title shown on ``layer``'s grid panel, or None when it has none."""
    layer = _real(layer)
    overlay = layer._overlays.get(TITLE_KEY)
    if overlay is not None and overlay.visible:
        return overlay.text
    return layer.name if layer.name_overlay.visible else None


def _add_titles(layers, max_chars: int = TITLE_MAX_CHARS) -> None:
    model = title_overlay_class()
    for layer, title in zip(layers, distinct_titles([layer.name for layer in layers], max_chars)):
        if model is None:
            layer.name_overlay.font_size = TITLE_FONT_SIZE
            layer.name_overlay.visible = True
        elif TITLE_KEY in layer._overlays:
            layer._overlays[TITLE_KEY].text = title
        else:
            layer._overlays[TITLE_KEY] = model(text=title, font_size=TITLE_FONT_SIZE, visible=True)


def _remove_titles(layers) -> None:
    for layer in layers:
        if TITLE_KEY in layer._overlays:
            del layer._overlays[TITLE_KEY]
        else:
            layer.name_overlay.visible = False


# ------------------------------------------------------------------------------ the grid
def show_side_by_side(viewer, layers, link_contrast: bool = True) -> None:
    """Show ``layers`` (only them) in napari's grid: titled panels, the view reset, one contrast."""
    from napari.experimental import link_layers

    viewer = _real(viewer)
    layers = [_real(layer) for layer in layers]
    _undo(viewer)
    for layer in viewer.layers:
        layer.visible = any(layer is chosen for chosen in layers)
    if not layers:
        return
    if link_contrast:
        limits = shared_limits(layers, viewer)
        for layer in layers:
            layer.contrast_limits = limits
        if len(layers) > 1:
            link_layers(layers, LINKED_ATTRIBUTES)

    def retitle(event=None) -> None:  # a layer renamed, the canvas resized: every title worked out again
        _add_titles([layer for layer in layers if layer in viewer.layers], title_chars(viewer))

    for layer in layers:
        layer.events.name.connect(retitle)
    grid = grid_of(viewer)

    def left(event=None) -> None:  # the grid left with napari's own button: titles and link go too
        if not grid.enabled:
            _undo(viewer)

    _state[viewer] = {"layers": layers, "linked": link_contrast and len(layers) > 1, "retitle": retitle,
                      "left": left}
    grid.stride = 1
    grid.shape = (-1, -1)
    grid.enabled = True
    grid.events.enabled.connect(left)
    retitle()
    if hasattr(viewer, "canvas"):
        viewer.canvas.events.size.connect(retitle)
    viewer.reset_view()


def _undo(viewer) -> None:
    """Remove the titles and the contrast link of the grid last shown in ``viewer``."""
    from napari.experimental import unlink_layers

    state = _state.pop(viewer, None)
    if state is None:
        return
    grid_of(viewer).events.enabled.disconnect(state["left"])
    for layer in state["layers"]:
        layer.events.name.disconnect(state["retitle"])
    if hasattr(viewer, "canvas"):
        viewer.canvas.events.size.disconnect(state["retitle"])
    alive = [layer for layer in state["layers"] if layer in viewer.layers]
    _remove_titles(alive)
    if state["linked"] and len(alive) > 1:
        unlink_layers(alive, LINKED_ATTRIBUTES)


def toggle_side_by_side(viewer, on: bool, layers) -> None:
    """The docks' side-by-side switch: the grid of ``layers`` (those still there), or back."""
    viewer = _real(viewer)
    alive = [_real(layer) for layer in layers if layer in viewer.layers]
    if on and alive:
        show_side_by_side(viewer, alive)
    elif not on:
        restore_view(viewer)


def restore_view(viewer) -> None:
    """Leave the grid: titles and contrast link removed, every layer shown again."""
    viewer = _real(viewer)
    _undo(viewer)
    grid_of(viewer).enabled = False
    for layer in viewer.layers:
        layer.visible = True
