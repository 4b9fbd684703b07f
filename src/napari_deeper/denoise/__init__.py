"""Denoising of hyperspectral cubes: one entry point over classical methods and trained networks.

    import napari_deeper as nd
    clean = nd.denoise(cube)                                  # the default method
    clean = nd.denoise(cube, method="savgol", window=21)
    clean = nd.denoise(cube, method="resunet", device="cuda")

:data:`METHODS` maps each built-in method name to a :class:`Method` (its ``*_steps`` function and
its parameter schema); the widget, the CLI and the benchmark are built from it. Every model saved
with ``task: "denoise"`` (shipped or fine-tuned by the user) is a method too: :func:`available_methods`
returns the full list, and ``denoise(data, method="my-lab-model")`` runs it with the inference of
the architecture its card names.
"""

from __future__ import annotations

import sys
import types

import numpy as np

from .._validation import as_cube, as_wavenumbers
from ..compute import run
from ..methods import Family, Method, Param, saved_models

__all__ = [
    "DEFAULT", "FAMILY", "METHODS", "Method", "Param", "available_methods", "denoise", "denoise_steps", "get_method",
]


def _classical(fn):
    def steps(data, wavenumbers=None, device=None, **params):
        return (yield from fn(data, **params))

    return steps


def _network(model_name: str):
    from .deep import network_steps

    def steps(data, wavenumbers=None, device=None, **params):
        return (yield from network_steps(data, model_name, device, **params))

    return steps


def _build_registry() -> dict[str, Method]:
    from . import calibrate, classical, deep, hybrid, selfsupervised
    from .vst import STABILISE_CHOICES

    network = (
        Param("adapt", str, "auto", choices=deep.ADAPT_CHOICES,
              help="auto: train the network further on this cube's own spectra, projected on its spectral "
                   "components (Recorrupted-to-Recorrupted, no clean answer), within the time budget; "
                   "off: the network as trained"),
        Param("time_budget", float, deep.DEFAULT_BUDGET, (1.0, 86400.0),
              help="seconds for the whole run when adapting; training stops early enough to finish within it"),
        Param("steps", int, None, (0, 1_000_000), optional=True,
              help="adaptation steps (auto: as many as the time budget allows); set it to get the same result "
                   "on every run"),
        Param("batch_size", int, None, (1, 1 << 16), help="spectra per batch (auto: from free memory)",
              optional=True),
    )
    stabilise = Param("stabilise", str, "off", choices=STABILISE_CHOICES,
                      help="generalised Anscombe transform around the method (noise model estimated on the cube); "
                           "auto: when the noise depends on the intensity")

    def auto(what: str) -> Param:
        return Param("auto", bool, False, help=f"choose {what} on the cube itself (no clean answer needed)")

    registry = {
        "hybrid": Method(
            "hybrid", hybrid.hybrid_steps, hybrid.params(), hybrid.DESCRIPTION, kind="hybrid",
        ),
        "savgol": Method(
            "savgol", _classical(calibrate.classical_steps("savgol", classical.savgol_steps)),
            (
                Param("window", int, 15, (3, 1001), help="window length in bands (odd)"),
                Param("order", int, 2, (0, 10), help="polynomial order"),
                auto("window and order (leave-one-out loss)"),
                stabilise,
            ),
            "Savitzky-Golay smoothing of each spectrum",
        ),
        "wavelet": Method(
            "wavelet", _classical(calibrate.classical_steps("wavelet", classical.wavelet_steps)),
            (
                Param("wavelet", str, "sym8", help="PyWavelets discrete wavelet, e.g. sym8, db4, coif3"),
                Param("level", int, None, (1, 20), help="decomposition levels (auto: maximum - 2)", optional=True),
                Param("mode", str, "soft", choices=("soft", "hard"), help="thresholding"),
                Param("threshold", str, "bayesshrink", choices=classical.WAVELET_THRESHOLDS,
                      help="BayesShrink (per level) or VisuShrink (universal)"),
                Param("threshold_scale", float, 1.0, (0.0, 100.0), help="multiplies the threshold"),
                auto("level and threshold scale (SURE under the cube's noise model)"),
                stabilise,
            ),
            "wavelet shrinkage of each spectrum (noise estimated per spectrum)",
        ),
        "pca": Method(
            "pca", _classical(calibrate.classical_steps("pca", classical.pca_steps)),
            (
                Param("n_components", int, None, (1, 10000),
                      help="components kept (auto: chosen by rank_rule)", optional=True),
                Param("rank_rule", str, "gavish-donoho", choices=classical.RANK_RULES,
                      help="automatic rank, on the cube with its noise evened out: Gavish-Donoho threshold, "
                           "or bi-cross-validation over pixels and bands"),
                stabilise,
            ),
            "PCA (low-rank) denoising over all pixels",
        ),
        "whittaker": Method(
            "whittaker", _classical(calibrate.classical_steps("whittaker", classical.whittaker_steps)),
            (
                Param("lam", float, 1000.0, (0.0, 1e12), help="smoothness (second-difference penalty, band units)"),
                auto("lambda (leave-one-out loss)"),
                stabilise,
            ),
            "Whittaker smoothing of each spectrum (penalised least squares, second differences)",
        ),
        "resunet": Method(
            "resunet", _network("resunet"), network,
            "DeepeR's 1D residual U-net, per spectrum, adapted to the cube", kind="network", model="resunet", uses_device=True,
        ),
        "aunet": Method(
            "aunet", _network("aunet"), network,
            "noise-learning attention U-net in the DCT domain, per spectrum, adapted to the cube", kind="network", model="aunet",
            uses_device=True,
        ),
        "n2s": Method(
            "n2s", selfsupervised.n2s_steps, selfsupervised.params(), selfsupervised.DESCRIPTION, kind="network",
            model=selfsupervised.MODEL, uses_device=True,
        ),
    }
    return registry


METHODS: dict[str, Method] = _build_registry()
#: The method ``denoise(data)`` runs: chosen by measurement (see docs/denoise.md).
DEFAULT = "hybrid"


def _saved_model(info) -> Method:
    """A saved denoising model (shipped or the user's) as a method, under its own name."""
    return Method(
        info.name, _network(info.name), METHODS["resunet"].params,
        info.card.get("description", f"{info.arch} model"), kind="network", model=info.name, uses_device=True,
    )


def _run(data, method: Method, wavenumbers, device, params):
    cube = as_cube(data, "data")
    as_wavenumbers(wavenumbers, cube.shape[0])
    result = yield from method.steps(cube, wavenumbers=wavenumbers, device=device, **params)
    return np.asarray(result, dtype=np.float32)


#: The denoising family of the method schema (see :mod:`napari_deeper.methods`).
FAMILY = Family("denoise", METHODS, DEFAULT, _run, title="denoising", models=saved_models("denoise", _saved_model))
available_methods = FAMILY.available
get_method = FAMILY.lookup


def denoise_steps(data, method: str = DEFAULT, wavenumbers=None, device=None, **params):
    """Steps generator of :func:`denoise`: yields ``Progress`` between chunks, returns the cube."""
    return FAMILY.steps(data, method, wavenumbers, device, **params)


def denoise(data, method: str = DEFAULT, wavenumbers=None, device=None, **params) -> np.ndarray:
    """Denoise a ``(B, Y, X)`` cube with ``method``; returns a new float32 cube in the same units.

    ``method`` is a name from :func:`available_methods` (``DEFAULT`` when not given); ``params`` are that
    method's parameters (see ``METHODS[name].params``). ``device`` is "auto"/None, "cpu", "cuda"
    or "gpu" for the methods that run networks. The input is never modified.
    """
    return run(denoise_steps(data, method, wavenumbers, device, **params))



class _CallableModule(types.ModuleType):
    """``napari_deeper.denoise`` is both this package and the public function ``nd.denoise``.

    Importing the package makes Python set the attribute ``napari_deeper.denoise`` to the module,
    which would hide the lazily exported function; calling the module calls :func:`denoise`, so
    ``nd.denoise(cube)`` works whichever of the two the attribute holds.
    """

    def __call__(self, data, method: str = DEFAULT, wavenumbers=None, device=None, **params):
        return denoise(data, method, wavenumbers, device, **params)


sys.modules[__name__].__class__ = _CallableModule
