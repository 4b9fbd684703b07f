"""The band-map and preprocessing families of the method schema (see :mod:`napari_deeper.methods`).

- ``band_map``: one method per measure (``area``, ``height``) of the band ``center ± width/2``;
  it makes a ``(Y, X)`` map, which a later recipe step cannot take as a cube.
- ``preprocess``: one method, ``standard``, whose parameters are the steps of
  :func:`~napari_deeper.spectral.preprocess_steps` (each left None is skipped); it returns the
  new cube with its own, possibly cropped, spectral axis.
"""

from __future__ import annotations

import numpy as np

from ..methods import Family, Method, Param
from .bands import BAND_MAP_MODES, band_map_steps
from .preprocess import NORMALISATIONS, preprocess_steps


def _band_map(mode: str):
    def steps(data, wavenumbers, center: float, width: float, baseline: bool):
        return (yield from band_map_steps(data, wavenumbers, center, width, mode, baseline))

    return steps


def _run(data, method: Method, wavenumbers, device, params):
    """Both families' methods take the cube, its axis and their parameters."""
    return (yield from method.steps(data, wavenumbers, **params))


_BAND = (
    Param("center", float, 1450.0, help="band centre, in the spectral axis' units (band index when it has none)"),
    Param("width", float, 30.0, help="full width of the band: centre ± width/2"),
    Param("baseline", bool, False, help="first subtract the straight line joining the band edges"),
)
_MEASURES = {
    "area": "trapezoid integral of each spectrum over the band",
    "height": "largest value of each spectrum inside the band",
}
#: Band maps: the family behind the Peak heatmap dock.
BAND_MAP = Family(
    "band_map",
    {mode: Method(mode, _band_map(mode), _BAND, _MEASURES[mode]) for mode in BAND_MAP_MODES},
    "area", _run, output="map", title="band map",
)


def band_range(value) -> tuple[float | None, float | None]:
    """``(start, stop)`` of a spectral crop from a pair or from text such as ``"400,1800"``.

    Either end may be None (or empty text, "none") to leave it open.
    """
    if isinstance(value, str):
        parts = value.replace(":", ",").split(",")
    else:
        parts = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if len(parts) != 2:
        raise ValueError(f"parameter 'crop' must be a (start, stop) pair, e.g. 400,1800; got {value!r}")
    ends = []
    for part in parts:
        if part is None or (isinstance(part, str) and part.strip().lower() in ("", "none")):
            ends.append(None)
            continue
        try:
            ends.append(float(part))
        except (TypeError, ValueError):
            raise ValueError(f"parameter 'crop' must hold two numbers (or none), got {value!r}") from None
    return tuple(ends)


_STEPS = (
    Param("crop", tuple, None, help="(start, stop) of the bands to keep, in the axis' units", optional=True,
          parse=band_range, none_means="off"),
    Param("fill", float, None, help="value that replaces NaN and Inf", optional=True, none_means="off"),
    Param("despike", float, None, help="cosmic-ray spike threshold, in noise levels", optional=True,
          none_means="off"),
    Param("baseline", int, None, help="polynomial order of the baseline removed (modified polyfit)",
          optional=True, none_means="off"),
    Param("normalise", str, None, choices=NORMALISATIONS, help="normalisation of each spectrum or the cube",
          optional=True, none_means="off"),
)
#: Preprocessing: the family behind the Preprocess spectra dock.
PREPROCESS = Family(
    "preprocess",
    {"standard": Method(
        "standard", preprocess_steps, _STEPS,
        "crop, fill NaN/Inf, remove spikes, remove the baseline and normalise, in that order (None skips a step)",
    )},
    "standard", _run, title="preprocessing",
)
