"""The unmixing families of the method schema (see :mod:`napari_deeper.methods`).

- ``unmix`` (:data:`FAMILY`): abundances of given endmembers, ``nnls`` or ``fcls`` (sum to one).
  The endmembers are a parameter (a ``(k, B)`` array, or nested lists in a recipe file), so a
  recipe step carries them inline and replays without the layer they were found on. ``map``
  chooses which of the run's maps the step returns: the abundances (all ``k``, or one
  ``component``), the dominant-component labels or the residual.
- ``endmembers`` (:data:`ENDMEMBERS`): ``vca``, the purest pixels' spectra.
- ``endmember_count`` (:data:`ENDMEMBER_COUNT`): a hint for the number of endmembers.
"""

from __future__ import annotations

import numpy as np

from ..compute import Progress
from ..methods import Family, Method, Param
from .abundances import MAX_ENDMEMBERS, nnls_steps
from .endmembers import estimate_n_endmembers, vca_steps
from .labels import classify

MAPS = ("abundance", "labels", "residual")


def endmember_array(value) -> np.ndarray:
    """A ``(k, B)`` float64 array of endmember spectra (one spectrum may be given as ``(B,)``).

    The full check against the data's band count is :func:`~napari_deeper.unmix.check_endmembers`'s,
    when the step runs.
    """
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("parameter 'endmembers' must be a (components, bands) array of numbers") from None
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"parameter 'endmembers' must be a (components, bands) array, got shape {array.shape}")
    return array


def _abundances(sum_to_one: bool):
    def steps(data, device, endmembers, map, component, min_abundance, background=None):
        if component is not None and map != "abundance":
            raise ValueError(f"parameter 'component' applies to the abundance map only, not to {map!r}")
        if component is not None and component >= len(endmembers):
            raise ValueError(f"component {component} asked for, but there are {len(endmembers)} endmembers")
        abundances, residual = yield from nnls_steps(data, endmembers, sum_to_one, device, return_residual=True)
        if map == "labels":
            return classify(abundances, min_abundance, background)
        if map == "residual":
            return residual
        return abundances if component is None else abundances[component]

    return steps


def _run_abundances(data, method: Method, wavenumbers, device, params):
    return (yield from method.steps(data, device, **params))


_ABUNDANCE_PARAMS = (
    Param("endmembers", np.ndarray, None, help="(components, bands) spectra on the data's axis", parse=endmember_array),
    Param("map", str, "abundance", choices=MAPS, help="which map the step returns"),
    Param("component", int, None, (0, MAX_ENDMEMBERS - 1), help="one component's abundance map (0-based)",
          optional=True, none_means="all"),
    Param("min_abundance", float, None, help="labels: a pixel whose largest abundance is below this is unassigned",
          optional=True, none_means="off"),
    Param("background", int, None, (0, MAX_ENDMEMBERS - 1),
          help="labels: this component (0-based) is background, its pixels are unassigned",
          optional=True, none_means="none"),
)
#: Abundances of given endmembers: the family behind the Unmix dock's maps.
FAMILY = Family(
    "unmix",
    {
        "nnls": Method("nnls", _abundances(False), _ABUNDANCE_PARAMS, "exact non-negative least squares per pixel",
                       uses_device=True),
        "fcls": Method("fcls", _abundances(True), _ABUNDANCE_PARAMS,
                       "fully constrained least squares per pixel: non-negative, summing to one", uses_device=True),
    },
    "nnls", _run_abundances, output="map", title="unmixing",
)


def _vca(data, n_endmembers: int, seed: int):
    return (yield from vca_steps(data, n_endmembers, seed=seed))


def _run_data_only(data, method: Method, wavenumbers, device, params):
    return (yield from method.steps(data, **params))


#: Endmember extraction: ``(endmembers (k, B), pixel_indices (k,))``.
ENDMEMBERS = Family(
    "endmembers",
    {"vca": Method(
        "vca", _vca,
        (
            Param("n_endmembers", int, 5, (1, MAX_ENDMEMBERS), help="number of endmembers"),
            Param("seed", int, 0, (0, 2**31 - 1), help="random seed (the same seed gives the same answer)"),
        ),
        "vertex component analysis: the purest pixels, projected on the signal subspace",
    )},
    "vca", _run_data_only, output="endmembers", title="endmember",
)


def _count(method: str):
    def steps(data, seed: int, **options):
        yield Progress(0, 1, f"counting endmembers ({method})")
        count = estimate_n_endmembers(data, method, seed=seed, **options)
        yield Progress(1, 1, f"counting endmembers ({method})")
        return count

    return steps


_SEED = Param("seed", int, 0, (0, 2**31 - 1), help="random seed of the pixel sample")
_PIXELS = Param("max_pixels", int, 20000, (2, 10**9), help="largest number of pixels looked at")
#: A hint for the number of endmembers (an int).
ENDMEMBER_COUNT = Family(
    "endmember_count",
    {
        "variance": Method(
            "variance", _count("variance"),
            (_PIXELS, Param("signal_fraction", float, 0.99, (0.0, 1.0), help="share of the signal variance explained"),
             _SEED),
            "principal components above the noise (Marchenko-Pastur edge) that explain the signal, plus one",
        ),
        "hysime": Method("hysime", _count("hysime"), (_PIXELS, _SEED),
                         "HySime: every direction whose signal power exceeds twice its noise power"),
    },
    "variance", _run_data_only, output="count", title="endmember count",
)
