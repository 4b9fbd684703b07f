"""What the Analyse dock's tabs share: a small plot in the viewer's theme (:mod:`._plot`), 2-D
result layers on their source's grid, cluster colours, and the text fields for bands."""

from __future__ import annotations

import numpy as np
from magicgui.widgets import LineEdit
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtWidgets import QComboBox, QSizePolicy

from .. import provenance
from ._plot import SmallPlot
from .peak_map import BAND_UNITS_TIP, _unit_of
from .unmix import PALETTE, component_color

__all__ = [
    "BAND_UNITS_TIP", "PALETTE", "SmallPlot", "band_text", "compact", "component_color", "label_colormap",
    "map_layer_kwargs", "robust_limits", "text_field", "unit_of", "wrapped",
]

unit_of = _unit_of


def compact(*choosers) -> None:
    """Layer choosers that do not widen the dock to their longest layer name (names elide)."""
    for chooser in choosers:
        native = chooser.native
        if isinstance(native, QComboBox):
            native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            native.setMinimumContentsLength(12)
        else:
            native.setSizePolicy(QSizePolicy.Policy.Ignored, native.sizePolicy().verticalPolicy())


def wrapped(text: str, width: int = 56) -> str:
    """``text`` broken into lines of at most ``width`` characters, for a message under a dock's
    controls (a label as wide as its longest line would widen the whole dock)."""
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in str(text).splitlines())


def text_field(label: str, value: str, tooltip: str) -> LineEdit:
    field = LineEdit(label=label, value=value)
    field.tooltip = tooltip
    return field


def band_text(pairs) -> str:
    """``[(1004, 15), (1450, 20)]`` as ``"1004±15, 1450±20"``, the text the band fields take."""
    return ", ".join(f"{center:g}±{half:g}" for center, half in pairs)


def map_layer_kwargs(source, name: str, record: dict, colormap: str = "magma") -> dict:
    """Keyword arguments of a 2-D map layer that overlays ``source`` (a cube) in world coordinates."""
    return {
        "name": name,
        "scale": np.asarray(source.scale, dtype=float)[-2:],
        "translate": np.asarray(source.translate, dtype=float)[-2:],
        "axis_labels": tuple(source.axis_labels[-2:]),
        "units": tuple(source.units[-2:]),
        "colormap": colormap,
        "metadata": {provenance.KEY: record},
    }


def robust_limits(values: np.ndarray) -> tuple[float, float]:
    """Contrast limits from the 1st to the 99th percentile of the finite values (NaN is masked)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return (0.0, 1.0)
    low, high = (float(v) for v in np.percentile(finite, [1, 99]))
    return (low, high) if high > low else (low, low + 1.0)


def label_colormap(n_labels: int) -> DirectLabelColormap:
    """Label ``k`` (1..n) in the colour of curve ``k - 1`` of the docks' plots; 0 transparent."""
    colours = {None: np.zeros(4), 0: np.zeros(4)}
    colours.update({k: component_color(k - 1) for k in range(1, n_labels + 1)})
    return DirectLabelColormap(color_dict=colours)
