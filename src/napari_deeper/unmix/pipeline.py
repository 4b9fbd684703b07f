"""One unmixing run: endmembers from a source image (VCA, or given), abundances for each target.

This is the steps generator that the Unmix widget runs in its worker; scripts may call
:func:`unmix` the same way. Lazy (dask) sources and targets are read block by block, never
whole (:func:`~napari_deeper.unmix.vca`, :func:`~napari_deeper.unmix.nnls_steps`); the maps
they give are small and held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import compute
from ..io._lazy import as_cube_or_lazy
from .abundances import check_endmembers, nnls_steps
from .endmembers import vca_steps
from .labels import background_component, classify
from .spikes import spike_like_endmembers


@dataclass
class TargetResult:
    """What one target image becomes: abundance maps, the residual map and dominant labels."""

    abundances: np.ndarray  # (k, Y, X) float32
    residual: np.ndarray  # (Y, X) float32, RMS over bands of data - model
    labels: np.ndarray  # (Y, X) int32, 1 + dominant component, 0 = unassigned
    background: int | None = None  # the component left out of the labels (0-based), if any


@dataclass
class UnmixResult:
    """Endmembers (with their pixels when VCA found them) and every target's maps."""

    endmembers: np.ndarray  # (k, B) float32
    pixel_indices: np.ndarray | None  # (k,) flat indices into the source image, None if given
    targets: dict[str, TargetResult] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    #: endmembers that look like cosmic-ray spikes (:func:`~napari_deeper.unmix.spikes.spike_like_endmembers`)
    spike_like: list = field(default_factory=list)
    spikes_removed: int = 0  # spike values replaced in the source before VCA


def unmix_steps(
    source,
    targets: dict,
    n_endmembers: int | None = None,
    endmembers=None,
    sum_to_one: bool = False,
    device=None,
    seed=0,
    mask=None,
    min_abundance: float | None = None,
    source_name: str | None = None,
    despike: float | None = None,
    background: bool = False,
) -> compute.Steps[UnmixResult]:
    """VCA on ``source`` (skipped when ``endmembers`` are given), then NNLS/FCLS on each target.

    ``despike`` (a threshold, see :func:`napari_deeper.spectral.preprocess.remove_spikes`)
    removes cosmic-ray spikes from the source before VCA, so no spike becomes an endmember; the
    targets are unmixed as they are. Endmembers that still look like spikes are listed in the
    result's ``spike_like``. ``background=True`` leaves each target's background component
    (:func:`~napari_deeper.unmix.labels.background_component`) out of its labels.

    ``targets`` maps names to ``(B, Y, X)`` cubes; their spatial sizes may differ from the
    source's, their band count may not. Every input is checked before any work starts, so a bad
    one fails at once with a ``ValueError``. NaN / Inf values are found during the work; the
    ``ValueError`` then names the image that holds them (``source_name`` names the source).

    Any of them may be lazy (dask arrays): the results equal those of the cubes in memory.
    ``despike`` with a lazy source is refused here: :func:`napari_deeper.stream.unmix_steps`
    streams it.
    """
    label = "source" if source_name is None else f"source {source_name!r}"
    reference, cubes, endmembers = checked_inputs(source, targets, n_endmembers, endmembers)
    if despike is not None and reference is not None and not isinstance(reference, np.ndarray):
        raise ValueError(
            f"{label} is a lazy cube (read block by block, e.g. a zarr store), but removing cosmic-ray "
            "spikes before VCA needs each value's neighbours: use napari_deeper.stream.unmix_steps, which "
            "removes them into a scratch store first, or run without spike removal"
        )
    weights = [reference.shape[1] * reference.shape[2]] if reference is not None else []
    weights += [cube.shape[1] * cube.shape[2] for cube in cubes.values()]
    total = int(sum(weights))
    done = 0
    removed = 0
    if reference is not None and despike is not None:
        from ..spectral.preprocess import find_spikes

        try:
            spikes, replacement = find_spikes(reference, despike)
        except ValueError as error:
            raise ValueError(f"{label}: {error}") from error
        removed = int(spikes.sum())
        if removed:
            reference = np.where(spikes, replacement, reference).astype(np.float32)
    if reference is not None:
        found, pixel_indices = yield from _named(
            label,
            compute.share(vca_steps(reference, n_endmembers, seed=seed, mask=mask), done, weights[0], total),
        )
        done += weights[0]
        endmembers = found
    else:
        pixel_indices = None
    em = check_endmembers(endmembers, next(iter(cubes.values())).shape[0]).astype(np.float32)  # (VCA's too)
    result = UnmixResult(
        em,
        pixel_indices,
        params={
            "n_endmembers": int(em.shape[0]),
            "endmembers_from": "vca" if reference is not None else "given",
            "sum_to_one": bool(sum_to_one),
            "seed": seed,
            "min_abundance": min_abundance,
            "device": "auto" if device is None else str(device),
            "despike": despike,
            "background": bool(background),
        },
        spike_like=spike_like_endmembers(endmembers, reference, pixel_indices),
        spikes_removed=removed,
    )
    for name, cube in cubes.items():
        pixels = cube.shape[1] * cube.shape[2]
        abundances, residual = yield from _named(
            f"target {name!r}",
            compute.share(nnls_steps(cube, em, sum_to_one, device, return_residual=True), done, pixels, total, name),
        )
        done += pixels
        left_out = background_component(abundances) if background else None
        result.targets[name] = TargetResult(
            abundances, residual, classify(abundances, min_abundance, left_out), left_out
        )
    return result


def checked_inputs(source, targets: dict, n_endmembers=None, endmembers=None):
    """``(source, targets, endmembers)`` of an unmixing run, checked (shapes, band counts, the
    endmembers' form) before any work; a lazy cube stays lazy. ``source`` is None when the
    endmembers are given."""
    if not targets:
        raise ValueError("no target images given: choose at least one layer to unmix")
    cubes = {
        name: as_cube_or_lazy(cube, f"target {name!r}", allow_nonfinite=True) for name, cube in targets.items()
    }
    if endmembers is None:
        if n_endmembers is None:
            raise ValueError("give either n_endmembers (to run VCA) or endmembers")
        reference = as_cube_or_lazy(source, "source", allow_nonfinite=True)
        n_bands = reference.shape[0]
    else:
        reference = None
        n_bands = next(iter(cubes.values())).shape[0]
    for name, cube in cubes.items():
        if cube.shape[0] != n_bands:
            raise ValueError(
                f"target {name!r} has {cube.shape[0]} bands but the "
                f"{'source' if reference is not None else 'first target'} has {n_bands}; "
                "all images must share one spectral axis"
            )
    if endmembers is not None:
        endmembers = check_endmembers(endmembers, n_bands)
    return reference, cubes, endmembers


def unmix(source, targets: dict, n_endmembers=None, endmembers=None, **options) -> UnmixResult:
    """Run :func:`unmix_steps` to the end and return its :class:`UnmixResult`."""
    return compute.run(unmix_steps(source, targets, n_endmembers, endmembers, **options))


def _named(label: str, steps):
    """Run ``steps``; a ``ValueError`` from it is raised again with ``label`` (the image) in front."""
    try:
        return (yield from steps)
    except ValueError as error:
        raise ValueError(f"{label}: {error}") from error
