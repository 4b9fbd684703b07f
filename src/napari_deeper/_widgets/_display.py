"""How the viewer shows spectral data: the displayed band named in cm⁻¹, robust contrast, colour bars.

:func:`install` (once per viewer; the reader, the Spectra plot and every dock call it) makes the
viewer

- name the displayed band's Raman shift (or wavelength): beside the band slider, in a text
  overlay on the canvas and in the status bar (the slider itself counts bands);
- give the spectral layers the plugin opens or makes a contrast from the 1st-99.5th percentiles of
  the band on screen, recomputed as the slider moves (on that band only, subsampled), until the
  user sets a contrast by hand;
- show a colour bar on the maps the plugin makes (peak, abundance, residual and difference maps):
  on the selected one, or on each of them in grid mode;
- keep units consistent: a layer added with napari's default "pixel" units where the others say
  otherwise (a Shapes or Points layer drawn over a cube, a map) takes the others' units, so that
  napari does not warn "Inconsistent units across layers" on every layer added afterwards;
- say so when another reader opened a .npy / .npz that has a spectral axis (see
  :mod:`.reader_choice`).

:func:`cube_defaults` gives a reader's or a dock's new cube the same look before it is added: the
colormap and the percentile contrast of the band napari shows first.
"""

from __future__ import annotations

import weakref

import numpy as np

from .. import provenance

#: the perceptual colormap of cubes the plugin opens or makes (and of its peak maps)
COLORMAP = "magma"
#: contrast limits: these percentiles of the displayed band
PERCENTILES = (1.0, 99.5)
#: at most this many pixels of a band enter the percentiles (an even subsample of larger bands)
SAMPLE_PIXELS = 1 << 18
SPECTRAL_LABELS = ("wavenumber", "wavelength", "band")

_installed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# ------------------------------------------------------------------------------ pure helpers
def robust_limits(image, percentiles=PERCENTILES) -> tuple[float, float]:
    """Contrast limits of one band: its finite values' percentiles (a subsample of large bands).

    A constant or empty band gets limits one unit wide around its value, which napari accepts.
    """
    image = np.asarray(image)
    step = max(1, int(np.ceil(np.sqrt(image.size / SAMPLE_PIXELS)))) if image.ndim == 2 else 1
    sample = np.asarray(image[::step, ::step] if image.ndim == 2 else image, dtype=np.float64).ravel()
    if not np.isfinite(sample).all():
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return (0.0, 1.0)
    low, high = (float(v) for v in np.percentile(sample, percentiles))
    if not high > low:
        return (low - 0.5, low + 0.5)
    return (low, high)


def first_band(n_bands: int) -> int:
    """The band napari shows first for a cube added to an empty viewer (the middle one)."""
    return max(0, (int(n_bands) - 1) // 2)


def cube_defaults(data) -> dict:
    """Layer keyword arguments for a cube's first look: the colormap and a robust contrast."""
    data = data if hasattr(data, "shape") else np.asarray(data)
    return {"colormap": COLORMAP, "contrast_limits": robust_limits(data[first_band(data.shape[0])])}


def with_cube_defaults(layer_data: tuple) -> tuple:
    """A reader's ``(data, kwargs, "image")`` tuple with :func:`cube_defaults` added where unset.

    RGB images and anything that is not a 3-D image are returned as they are.
    """
    data, kwargs, kind = layer_data
    if kind != "image" or kwargs.get("rgb") or getattr(data, "ndim", 0) != 3:
        return layer_data
    defaults = {k: v for k, v in cube_defaults(data).items() if k not in kwargs}
    return (data, {**kwargs, **defaults}, kind)


def unit_text(layer) -> str:
    """"cm⁻¹" or "nm": the unit of a layer's spectral axis."""
    return "nm" if provenance.is_wavelength(layer) else "cm⁻¹"


def spectral_value_text(value: float, layer) -> str:
    """A Raman shift or wavelength as people write it: "1176.3 cm⁻¹", "532.1 nm"."""
    return f"{value:.1f} {unit_text(layer)}"


# ------------------------------------------------------------------------------ layer kinds
def _image(layer) -> bool:
    from napari.layers import Image

    return isinstance(layer, Image) and not layer.rgb


def is_cube(layer) -> bool:
    """A 3-D image whose first axis is spectral (it has wavenumbers, or says so in its axis label)."""
    if not _image(layer) or layer.ndim != 3:
        return False
    return layer.metadata.get("wavenumbers") is not None or str(layer.axis_labels[0]) in SPECTRAL_LABELS


def is_ours(layer) -> bool:
    """Whether the plugin opened or made the layer (it keeps a provenance record)."""
    return bool(provenance.of(layer))


def is_map(layer) -> bool:
    """A map the plugin made: one of its images without a spectral axis (peak, abundance, ...)."""
    return _image(layer) and is_ours(layer) and layer.metadata.get("wavenumbers") is None


# ------------------------------------------------------------------------------ the viewer
def install(viewer) -> Display | None:
    """Give ``viewer`` the display behaviour described in this module; a no-op the second time."""
    if viewer is None:
        return None
    viewer = getattr(viewer, "__wrapped__", viewer)  # docks get napari's proxy of the viewer
    display = _installed.get(viewer)
    if display is None:
        display = Display(viewer)
        _installed[viewer] = display
    return display


def install_current() -> None:
    """:func:`install` on the viewer napari is working in (what a reader or a sample sees)."""
    from napari import current_viewer

    install(current_viewer())


def text_overlay(viewer):
    """The viewer's canvas text overlay (``viewer.canvas.overlays.text`` since napari 0.9)."""
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None)
    return overlays.text if overlays is not None else viewer.text_overlay


def grid_of(viewer):
    """The viewer's grid-mode model (``viewer.canvas.grid`` since napari 0.9)."""
    grid = getattr(getattr(viewer, "canvas", None), "grid", None)
    return grid if grid is not None else viewer.grid


def displayed_band(viewer, layer) -> int:
    """The band of ``layer`` that the viewer shows now."""
    data_point = np.asarray(layer.world_to_data(viewer.dims.point), dtype=float)
    return int(np.clip(np.round(data_point[0]), 0, layer.data.shape[0] - 1))


def readout_layer(viewer):
    """The cube whose band is named: the selected layer when it is a cube, else the top visible one."""
    active = viewer.layers.selection.active
    if active is not None and is_cube(active):
        return active
    cubes = [layer for layer in viewer.layers if is_cube(layer)]
    visible = [layer for layer in cubes if layer.visible]
    return (visible or cubes or [None])[-1]


def band_readout(viewer) -> dict | None:
    """What the viewer shows along the spectral axis now, or None without a cube.

    ``{"layer", "band", "n_bands", "value" (None without wavenumbers), "text", "short"}``;
    ``text`` names the layer when the visible cubes do not share one spectral axis.
    """
    layer = readout_layer(viewer)
    if layer is None:
        return None
    band = displayed_band(viewer, layer)
    n_bands = layer.data.shape[0]
    axis = layer.metadata.get("wavenumbers")
    if axis is None:
        short = f"band {band}"
        return {"layer": layer, "band": band, "n_bands": n_bands, "value": None,
                "text": f"band {band} of {n_bands} (no spectral axis)", "short": short}
    value = float(np.asarray(axis)[band])
    short = spectral_value_text(value, layer)
    text = f"{short} · band {band} of {n_bands}"
    if not _axes_agree(viewer, layer):
        text += f" · {layer.name}"
    return {"layer": layer, "band": band, "n_bands": n_bands, "value": value, "text": text, "short": short}


def _axes_agree(viewer, reference) -> bool:
    """Whether every visible cube shows the same spectral value as ``reference`` now."""
    axis = np.asarray(reference.metadata["wavenumbers"], dtype=float)
    value = axis[displayed_band(viewer, reference)]
    for layer in viewer.layers:
        if layer is reference or not layer.visible or not is_cube(layer):
            continue
        other = layer.metadata.get("wavenumbers")
        if other is None or not np.isclose(np.asarray(other, dtype=float)[displayed_band(viewer, layer)], value):
            return False
    return True


class Display:
    """The display behaviour of one viewer (see the module docstring); made by :func:`install`."""

    def __init__(self, viewer):
        self._viewer = weakref.ref(viewer)
        self._auto: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer -> limits we set
        self._setting = False
        self._maps: weakref.WeakSet = weakref.WeakSet()  # the plugin's maps (they get colour bars)
        self._overlay_text = ""
        self.readout: dict | None = None
        viewer.dims.events.current_step.connect(self._on_step)
        viewer.dims.events.ndisplay.connect(self.refresh_readout)
        # units first: napari may draw (and check the units) before later handlers run
        viewer.layers.events.inserted.connect(self._match_units_of_inserted, position="first")
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self.refresh_readout)
        viewer.layers.selection.events.active.connect(self.refresh_readout)
        viewer.layers.selection.events.active.connect(self._show_colorbars)
        grid_of(viewer).events.enabled.connect(self._show_colorbars)
        viewer.events.status.connect(self._on_status)
        for layer in list(viewer.layers):
            self._adopt(layer)
        self.refresh_readout()

    @property
    def viewer(self):
        return self._viewer()

    # ------------------------------------------------------------------------------ layers
    def _match_units_of_inserted(self, event) -> None:
        self._match_units(event.value)

    def _on_inserted(self, event) -> None:
        from . import reader_choice

        layer = event.value
        self._adopt(layer)
        reader_choice.notice_if_axis_dropped(self.viewer, layer)
        self.refresh_readout()

    def _adopt(self, layer) -> None:
        if is_cube(layer) and is_ours(layer) and layer not in self._auto:
            self._auto[layer] = None
            layer.events.contrast_limits.connect(self._on_contrast)
            layer.events.visible.connect(self._on_visible)
            self._autocontrast(layer)
        elif is_map(layer):
            self._maps.add(layer)
            layer.events.visible.connect(self._show_colorbars)
            self._show_colorbars()
        elif is_cube(layer):
            layer.events.visible.connect(self.refresh_readout)

    def _show_colorbars(self, event=None) -> None:
        """A colour bar on the selected map, or on every map in grid mode (one per panel).

        Maps overlaid in one view (an abundance map per component) would otherwise stack one
        colour bar per layer over the image.
        """
        viewer = self.viewer
        active = viewer.layers.selection.active
        grid = grid_of(viewer).enabled
        for layer in list(self._maps):
            layer.colorbar.visible = layer.visible and (grid or layer is active)

    def _autocontrast(self, layer) -> None:
        band = displayed_band(self.viewer, layer)
        limits = robust_limits(layer.data[band])
        self._auto[layer] = limits
        self._setting = True
        try:
            layer.contrast_limits = limits
        finally:
            self._setting = False

    def _on_visible(self, event) -> None:
        """A cube shown again gets the contrast of the band now shown (hidden ones are skipped)."""
        layer = event.source
        if layer.visible and layer in self._auto:
            self._autocontrast(layer)
        self.refresh_readout()

    def _on_contrast(self, event) -> None:
        """A contrast that this module did not set is the user's: stop following the band."""
        layer = event.source
        if self._setting or layer not in self._auto:
            return
        if not np.allclose(layer.contrast_limits, self._auto[layer]):
            del self._auto[layer]
            layer.events.contrast_limits.disconnect(self._on_contrast)

    def follows_band(self, layer) -> bool:
        """Whether ``layer``'s contrast is still recomputed for every band shown."""
        return layer in self._auto

    def _match_units(self, layer) -> None:
        """Give a new layer's default "pixel" axes the units the other layers have there.

        Units are compared from the last axis backwards, as napari aligns layers; only axes in
        pixels are changed, so a layer that states other units keeps them.
        """
        reference = self._reference_units(exclude=layer)
        if reference is None:
            return
        units = list(layer.units)
        changed = False
        for offset in range(1, min(len(units), len(reference)) + 1):
            mine, theirs = units[-offset], reference[-offset]
            if mine.dimensionality != theirs.dimensionality and str(mine) == "pixel":
                units[-offset] = theirs
                changed = True
        if changed:
            layer.units = units

    def _reference_units(self, exclude) -> tuple | None:
        """The units of the viewer's other layers, longest first, or None if they disagree."""
        others = [layer for layer in self.viewer.layers if layer is not exclude]
        reference: tuple = ()
        for layer in sorted(others, key=lambda layer: -layer.ndim):
            units = tuple(layer.units)
            for mine, theirs in zip(units[::-1], reference[::-1]):
                if mine.dimensionality != theirs.dimensionality:
                    return None
            if len(units) > len(reference):
                reference = units
        return reference or None

    # ------------------------------------------------------------------------------ the band
    def _on_step(self, event=None) -> None:
        viewer = self.viewer
        for layer in list(self._auto.keys()):
            if layer in viewer.layers and layer.visible:
                self._autocontrast(layer)
        self.refresh_readout()

    def refresh_readout(self, event=None) -> None:
        """Name the displayed band beside the slider and on the canvas."""
        viewer = self.viewer
        if viewer is None:
            return
        shows_band = viewer.dims.ndim == 3 and 0 in viewer.dims.not_displayed
        readout = band_readout(viewer) if shows_band else None
        self.readout = readout
        if readout is not None:
            labels = list(viewer.dims.axis_labels)
            if labels[0] != readout["short"]:
                labels[0] = readout["short"]
                viewer.dims.axis_labels = labels
        overlay = text_overlay(viewer)
        if overlay.text and overlay.text != self._overlay_text:
            return  # someone else's text on the canvas: leave it alone
        # on the canvas only while a cube is shown (beside maps alone it would name a hidden band),
        # bottom left: above the slider, clear of the grid's panel titles at the top left
        shown = readout is not None and readout["layer"].visible
        self._overlay_text = readout["text"] if shown else ""
        overlay.text = self._overlay_text
        overlay.position = "bottom_left"
        overlay.visible = shown

    def _on_status(self, event) -> None:
        """Add the displayed band's Raman shift to the status bar's coordinates."""
        status = event.value
        if not isinstance(status, dict) or self.readout is None:
            return
        layer = self.viewer.layers.selection.active
        if layer is None or not is_cube(layer):
            return
        coordinates = str(status.get("coordinates", ""))
        readout = band_readout(self.viewer)
        if readout is None or readout["value"] is None or readout["short"] in coordinates:
            return
        # napari's status bar has shown this status already (its handler runs first): set it anew
        self.viewer.status = {**status, "coordinates": f"{coordinates}  ({readout['short']})"}
