"""The analysis families of the method schema (see :mod:`napari_deeper.methods`).

- ``baseline``: one method per baseline algorithm of :data:`~napari_deeper.analysis.BASELINE_METHODS`
  (arpls, asls, airpls, iarpls, modpoly (the hand-written iterative polynomial of the
  Preprocess dock), imodpoly, snip, rubberband, aspls, mor), each with its Raman-scale
  defaults; it makes the corrected cube.
- ``peak_fit``: one method per peak shape (lorentzian, gaussian, pseudo-voigt). A fit makes
  several maps per band (centre, FWHM, height, area, R², the failure codes); a step returns the
  one its ``map`` parameter names, for all bands stacked ``(k, Y, X)`` or for one ``band``
  ``(Y, X)``, so a dock that shows five maps records five steps that each remake one layer.
- ``band_ratio``: one method per measure (area, height, fitted-area, fitted-height); the
  ``(Y, X)`` ratio map, NaN where it is masked.
- ``cluster``: kmeans and ward; a ``(Y, X)`` labels map, 1 the largest cluster.
- ``calibrate``: ``linear`` applies ``slope * axis + offset`` (a saved calibration, its numbers
  inline); ``reference`` finds the reference lines in the cube itself and applies what it found.
  Both return the cube with its new axis, which later steps use.
"""

from __future__ import annotations

import re

import numpy as np

from ..compute import Progress
from ..methods import Family, Method, Param
from ..spectral.preprocess import NORMALISATIONS
from .baseline import BASELINE_METHODS, remove_baseline_steps
from .calibrate import REFERENCES, Calibration, find_calibration_steps
from .cluster import cluster_steps
from .peaks import PEAK_SHAPES, band_pairs, fit_peaks_steps
from .ratio import RATIO_MODES, band_ratio_steps

__all__ = [
    "BAND_RATIO", "BASELINE", "CALIBRATE", "CLUSTER", "PEAK_FIT", "PEAK_MAPS",
    "band_list", "band_pair", "peak_map", "reference_lines",
]


def _run(data, method: Method, wavenumbers, device, params):
    """Every analysis method takes the cube, its axis and its parameters."""
    return (yield from method.steps(data, wavenumbers, **params))


# -------------------------------------------------------------------------------- parsers
_PAIR = re.compile(r"^\s*([-+0-9.eE]+)\s*(?:±|\+/-|:|\s)\s*([-+0-9.eE]+)\s*$")


def band_list(value) -> tuple[tuple[float, float], ...]:
    """``(center, half_window)`` pairs from pairs of numbers or from text such as
    ``"1004±15, 1450±20"`` (``:`` or ``+/-`` also separate a centre from its half window;
    ``,`` or ``;`` separate bands)."""
    if isinstance(value, str):
        parts = [part for part in re.split(r"[;,]", value) if part.strip()]
        if not parts:
            raise ValueError("bands is empty; give at least one band as centre±half-window, e.g. 1004±15")
        pairs = []
        for part in parts:
            match = _PAIR.match(part)
            if match is None:
                raise ValueError(
                    f"bands must be written as centre±half-window, e.g. 1004±15, 1450±20; got {part.strip()!r}"
                )
            pairs.append((match.group(1), match.group(2)))
        value = pairs
    if isinstance(value, np.ndarray):
        value = value.tolist()
    try:
        pairs = band_pairs(value)
    except ValueError:
        raise ValueError(f"bands must be (centre, half-window) pairs, e.g. 1004±15, 1450±20; got {value!r}") from None
    for center, half in pairs:
        if not (np.isfinite(center) and np.isfinite(half) and half > 0):
            raise ValueError(f"band {center:g}±{half:g}: the centre must be finite and the half window positive")
    return tuple(pairs)


def band_pair(value) -> tuple[float, float]:
    """One ``(center, half_window)`` band, from a pair or text such as ``"1450±25"``."""
    pairs = band_list(value)
    if len(pairs) != 1:
        raise ValueError(f"give one band (centre±half-window), got {len(pairs)}")
    return pairs[0]


def fwhm_range(value) -> tuple[float, float]:
    """``(low, high)`` FWHM bounds from a pair or text such as ``"2, 40"``."""
    parts = value.replace(":", ",").split(",") if isinstance(value, str) else list(np.ravel(value))
    try:
        low, high = (float(part) for part in parts)
    except (TypeError, ValueError):
        raise ValueError(f"fwhm_bounds must be two numbers low, high (e.g. 2, 40); got {value!r}") from None
    if not 0 < low < high < np.inf:
        raise ValueError(f"fwhm_bounds must be 0 < low < high, got {value!r}")
    return (low, high)


def reference_lines(value):
    """A reference name (``silicon``, ``polystyrene``) or line positions (numbers or text
    such as ``"1001.4, 1602.3"``)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in REFERENCES:
            return text
        try:
            value = [float(part) for part in re.split(r"[;,\s]+", text) if part]
        except ValueError:
            raise ValueError(
                f"reference must be one of {', '.join(REFERENCES)} or line positions such as "
                f"1001.4, 1602.3; got {value!r}"
            ) from None
    lines = tuple(float(v) for v in np.atleast_1d(np.asarray(value, dtype=np.float64)))
    if not lines or not all(np.isfinite(lines)):
        raise ValueError(f"reference lines must be finite numbers, got {value!r}")
    return lines


# ------------------------------------------------------------------------------- baseline
_BASELINE_PARAMS = {
    "lam": (float, (1e-2, 1e13), "smoothness: larger gives a stiffer baseline (band units, as in pybaselines)"),
    "p": (float, (1e-5, 0.5), "asymmetry: weight of points above the baseline"),
    "diff_order": (int, (1, 3), "order of the difference penalty"),
    "max_iter": (int, (1, 100_000), "largest number of iterations"),
    "tol": (float, (0.0, 1.0), "relative change at which the iterations stop"),
    "poly_order": (int, (0, 30), "polynomial order"),
    "num_std": (float, (0.0, 100.0), "standard deviations above the fit that count as a peak"),
    "max_half_window": (int, (1, 100_000), "largest half window of the clipping, in bands"),
    "decreasing": (bool, None, "clip from the largest window down"),
    "segments": (int, (1, 10_000), "number of segments, each with its own hull"),
    "half_window": (int, (1, 100_000), "half window of the opening, in bands"),
}


def _baseline(name: str):
    def steps(data, wavenumbers, **params):
        return (yield from remove_baseline_steps(data, wavenumbers, name, **params))

    return steps


def _baseline_method(name: str) -> Method:
    chosen = BASELINE_METHODS[name]
    params = []
    for key, default in chosen.defaults.items():
        kind, bounds, text = _BASELINE_PARAMS[key]
        params.append(Param(key, kind, kind(default), bounds, help=text))
    return Method(name, _baseline(name), tuple(params), chosen.summary)


#: Baseline removal: the family behind the Analyse dock's Baseline tab.
BASELINE = Family(
    "baseline", {name: _baseline_method(name) for name in BASELINE_METHODS}, "arpls", _run,
    title="baseline",
)


# ------------------------------------------------------------------------------- peak fit
#: The maps one peak fit makes, in the order the dock shows them.
PEAK_MAPS = ("center", "fwhm", "height", "area", "r2", "gaussian_fraction", "reason")


def peak_map(fit: dict, map: str, band: int | None = None) -> np.ndarray:
    """One map of a :func:`~napari_deeper.analysis.fit_peaks` result: ``(k, Y, X)`` for every
    band, or ``(Y, X)`` for ``band`` (0-based)."""
    if map not in fit:
        made = ", ".join(key for key in PEAK_MAPS if key in fit)
        raise ValueError(f"a {fit['shape']} fit makes no {map!r} map; it makes {made}")
    maps = fit[map]
    if band is None:
        return maps
    if not 0 <= band < maps.shape[0]:
        raise ValueError(f"band {band} asked for, but {maps.shape[0]} band(s) were fitted (0-based)")
    return maps[band]


def _peak_fit(shape: str):
    def steps(data, wavenumbers, bands, fwhm_bounds, max_iter, tol, min_snr, map, band):
        fit = yield from fit_peaks_steps(data, wavenumbers, bands, shape, fwhm_bounds, max_iter, tol, min_snr)
        return peak_map(fit, map, band)

    return steps


def _peak_params(shape: str) -> tuple[Param, ...]:
    maps = tuple(key for key in PEAK_MAPS if key != "gaussian_fraction" or shape == "pseudo-voigt")
    return (
        Param("bands", tuple, ((1004.0, 15.0),), parse=band_list,
              help="bands to fit, centre±half-window in the axis' units (e.g. 1004±15, 1450±20); "
                   "overlapping windows are fitted together"),
        Param("fwhm_bounds", tuple, None, optional=True, parse=fwhm_range,
              help="(low, high) bounds of the FWHM (default: from the band spacing to the window width)"),
        Param("max_iter", int, 200, (1, 100_000), help="largest number of Levenberg-Marquardt iterations"),
        Param("tol", float, 1e-8, (1e-15, 1.0), help="relative change of the fit at which a pixel has converged"),
        Param("min_snr", float, 5.0, (0.0, 1e6),
              help="detection SNR below which a pixel has no peak (how much the peak lowers the misfit "
                   "of a straight line, in noise standard deviations)"),
        Param("map", str, "center", choices=maps, help="which map of the fit the step returns"),
        Param("band", int, None, (0, 10_000), optional=True, none_means="all",
              help="one band's map (0-based, in the order given); all bands stacked when unset"),
    )


_SHAPES = {
    "lorentzian": "Lorentzian peaks on a straight-line background, Levenberg-Marquardt in every pixel at once",
    "gaussian": "Gaussian peaks on a straight-line background, Levenberg-Marquardt in every pixel at once",
    "pseudo-voigt": "pseudo-Voigt peaks (Gaussian fraction fitted) on a straight-line background",
}
#: Peak-fit maps: the family behind the Analyse dock's Peak fit tab.
PEAK_FIT = Family(
    "peak_fit",
    {shape: Method(shape, _peak_fit(shape), _peak_params(shape), _SHAPES[shape]) for shape in PEAK_SHAPES},
    "lorentzian", _run, output="map", title="peak fit",
)


# ----------------------------------------------------------------------------- band ratio
def _ratio(mode: str):
    def steps(data, wavenumbers, numerator, denominator, threshold, shape="lorentzian"):
        result = yield from band_ratio_steps(data, wavenumbers, numerator, denominator, mode, threshold, shape)
        return result["ratio"]

    return steps


_RATIO_BANDS = (
    Param("numerator", tuple, (1660.0, 25.0), parse=band_pair, help="numerator band, centre±half-window"),
    Param("denominator", tuple, (1450.0, 25.0), parse=band_pair, help="denominator band, centre±half-window"),
    Param("threshold", float, 3.0, (0.0, 1e6),
          help="mask pixels whose denominator area is below this many noise standard deviations"),
)
_FITTED = Param("shape", str, "lorentzian", choices=PEAK_SHAPES, help="peak shape of the fit")
_RATIOS = {
    "area": "ratio of the areas above the straight line between each window's edges",
    "height": "ratio of the heights above the straight line between each window's edges",
    "fitted-area": "ratio of the fitted peak areas (both bands fitted in every pixel)",
    "fitted-height": "ratio of the fitted peak heights (both bands fitted in every pixel)",
}
#: Band-ratio maps: the family behind the Analyse dock's Band ratio tab.
BAND_RATIO = Family(
    "band_ratio",
    {mode: Method(mode, _ratio(mode), _RATIO_BANDS + ((_FITTED,) if mode.startswith("fitted") else ()),
                  _RATIOS[mode]) for mode in RATIO_MODES},
    "area", _run, output="map", title="band ratio",
)


# -------------------------------------------------------------------------------- cluster
def _cluster(method: str):
    def steps(data, wavenumbers, n_clusters, pca, normalise, seed, sample):
        return (yield from cluster_steps(data, n_clusters, method, pca, normalise, seed, sample))

    return steps


_CLUSTER_PARAMS = (
    Param("n_clusters", int, 4, (2, 1000), help="number of clusters"),
    Param("pca", int, None, (1, 1000), optional=True, none_means="off",
          help="cluster on this many principal-component scores instead of the spectra"),
    Param("normalise", str, None, choices=NORMALISATIONS, optional=True, none_means="off",
          help="normalise the spectra first (vector: cluster on shape rather than intensity)"),
    Param("seed", int, 0, (0, 2**31 - 1), help="random seed (the same seed gives the same labels)"),
    Param("sample", int, 5000, (2, 10**7),
          help="spectra Ward clusters (the rest join the nearest centroid) and PCA is fitted on"),
)
#: Cluster maps: the family behind the Analyse dock's Clusters tab.
CLUSTER = Family(
    "cluster",
    {
        "kmeans": Method("kmeans", _cluster("kmeans"), _CLUSTER_PARAMS,
                         "k-means (scikit-learn; mini-batch beyond 200 000 pixels)"),
        "ward": Method("ward", _cluster("ward"), _CLUSTER_PARAMS,
                       "hierarchical clustering, Ward linkage, on a sample; the rest join the nearest centroid"),
    },
    "kmeans", _run, output="labels", title="clustering",
)


# ------------------------------------------------------------------------------ calibrate
def _calibrated(data, axis) -> object:
    from .._validation import as_cube
    from ..io import Cube

    return Cube(as_cube(data, check_range=False, allow_nonfinite=True), axis, {})


def _linear(data, wavenumbers, slope, offset):
    if wavenumbers is None:
        raise ValueError("calibration needs the cube's spectral axis (its wavenumbers); this cube has none")
    yield Progress(0, 1, "calibrating the axis")
    axis = Calibration("linear", (), (), slope, offset).apply(wavenumbers)
    yield Progress(1, 1, "calibrating the axis")
    return _calibrated(data, axis)


def _from_reference(data, wavenumbers, reference, search, half_window, min_snr):
    if wavenumbers is None:
        raise ValueError("calibration needs the cube's spectral axis (its wavenumbers); this cube has none")
    calibration = yield from find_calibration_steps(wavenumbers, data, reference, search, half_window, min_snr)
    return _calibrated(data, calibration.apply(wavenumbers))


#: Axis calibration: the family behind the Analyse dock's Calibration tab.
CALIBRATE = Family(
    "calibrate",
    {
        "linear": Method("linear", _linear, (
            Param("slope", float, 1.0, (1e-3, 1e3), help="corrected = slope * axis + offset"),
            Param("offset", float, 0.0, (-1e6, 1e6), help="corrected = slope * axis + offset, in the axis' units"),
        ), "apply a straight-line correction of the axis (a saved calibration's numbers)"),
        "reference": Method("reference", _from_reference, (
            Param("reference", str, "silicon", parse=reference_lines,
                  help=f"{', '.join(REFERENCES)} or line positions (e.g. 1001.4, 1602.3)"),
            Param("search", float, 10.0, (0.1, 1e4), help="how far from its position a line is searched for"),
            Param("half_window", float, None, (0.1, 1e4), optional=True,
                  help="half window of the fit of each line (default: 8 cm-1 or 4 band spacings)"),
            Param("min_snr", float, 5.0, (0.0, 1e6), help="a line counts when it stands this many noise levels high"),
        ), "find reference lines in the cube itself and correct its axis from them"),
    },
    "linear", _run, title="calibration",
)
