"""What a made layer keeps of how it was made, and the spectral unit rules: one Qt-free place.

Every layer the plugin makes carries ``metadata[KEY]``: the operation, its parameters, the source
it was made from and the plugin version, plus the **recipe** of the whole chain (see
:mod:`napari_deeper.recipe`): the source's own recipe with this operation's steps appended, so
any layer can be remade from its file by replaying its recipe. A layer read from a file starts
an empty recipe.

A recipe step is ``{"operation", "method", "params"}`` (plus ``"input"`` when it does not take the
previous step's result). An operation that cannot be replayed (it needs two layers, or it
corrects how a file was read) is recorded with :func:`not_replayable`, so that replaying the
chain fails and says why instead of replaying something else.
"""

from __future__ import annotations

import copy

import numpy as np

from . import __version__

#: ``layer.metadata`` key of the provenance record.
KEY = "napari_deeper"
#: ``spectral_unit`` values the package writes: Raman shift or wavelength.
RAMAN_SHIFT, WAVELENGTH = "1/cm", "nm"
#: Step parameters that say where to run rather than what to compute: not part of a recipe.
RUN_OPTIONS = ("device",)


def of(layer_or_metadata) -> dict:
    """The provenance record of a layer (or of its metadata dict); {} when it has none."""
    metadata = getattr(layer_or_metadata, "metadata", layer_or_metadata)
    found = metadata.get(KEY) if isinstance(metadata, dict) else None
    return found if isinstance(found, dict) else {}


def plain(value):
    """``value`` with NumPy arrays and scalars (and tuples) turned into JSON-ready lists and numbers."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def step(operation: str, params: dict, input=None) -> dict:
    """A recipe step from an operation and the parameters it ran with (``method`` among them).

    Run options (``device``) are left out: a recipe says what to compute, not where.
    """
    params = {k: v for k, v in params.items() if k not in RUN_OPTIONS}
    entry = {"operation": operation, "method": params.pop("method", None), "params": plain(params)}
    if input is not None:
        entry["input"] = input
    return entry


def not_replayable(operation: str, params: dict, reason: str) -> dict:
    """The step of an operation that a recipe cannot replay; ``reason`` says why (and what to do)."""
    return {**step(operation, params), "not_replayable": reason}


def record(operation: str, source, params: dict | None = None, *, replay=None, **extra) -> dict:
    """The record of a layer made by ``operation`` from ``source`` (a layer, or a file path).

    ``replay`` is what the recipe appends to the source's recipe: None, a step made from
    ``operation`` and ``params`` (``method`` among them), which is what most docks need; a step
    or a list of steps (:func:`step`, :func:`not_replayable`); or False, nothing (a file read).
    """
    params = dict(params or {})
    chain = copy.deepcopy(of(source).get("recipe", []))
    if replay is None:
        chain.append(step(operation, params))
    elif replay is not False:
        chain.extend([replay] if isinstance(replay, dict) else replay)
    made = {
        "operation": operation,
        "params": params,
        "source": source.name if hasattr(source, "metadata") else str(source),
        "napari_deeper_version": __version__,
        "recipe": chain,
    }
    made.update(extra)
    return made


def spectral_unit(label) -> str | None:
    """ "nm" or "1/cm" from a unit or an axis label ('rel. 1/cm', 'cm-1', '1 / centimeter',
    'nanometer', 'Wavelength (nm)'); None when it names neither."""
    text = str(label).lower()
    if "cm" in text or "centimet" in text:
        return RAMAN_SHIFT
    if "nm" in text or "nanomet" in text or "wavelength" in text:
        return WAVELENGTH
    return None


def is_wavelength(layer_or_unit) -> bool:
    """True when a layer's spectral axis (or a unit label) is a wavelength rather than a Raman shift."""
    units = getattr(layer_or_unit, "units", None)
    label = units[0] if units else layer_or_unit
    return spectral_unit(label) == WAVELENGTH


def axis_names(unit) -> tuple[str, str]:
    """(napari axis label, napari unit) of the spectral axis for a unit or a layer: Raman shift
    unless it is a wavelength."""
    if is_wavelength(unit):
        return "wavelength", WAVELENGTH
    return "wavenumber", RAMAN_SHIFT
