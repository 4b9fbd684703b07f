"""Pixel classification from abundance maps: the dominant component of every pixel."""

from __future__ import annotations

import numpy as np

#: Label of a pixel that no component explains (napari draws label 0 as transparent background).
UNASSIGNED = 0


def classify(abundances, min_abundance: float | None = None, background: int | None = None) -> np.ndarray:
    """Labels ``(Y, X)`` int32: ``1 + argmax`` of the ``(k, Y, X)`` abundances, 0 = unassigned.

    Labels start at 1 so that component ``i`` (0-based) is label ``i + 1`` and napari's label 0
    stays background. A pixel is unassigned when its largest abundance is not positive (no
    component present, e.g. an all-zero spectrum) or is below ``min_abundance``, and, with
    ``background`` (a 0-based component, e.g. from :func:`background_component`), when that
    component dominates it: the background is then left out of the classes.
    """
    a = np.asarray(abundances)
    if a.ndim != 3 or a.shape[0] == 0:
        raise ValueError(
            f"abundances must be a (components, y, x) array with at least one component, got shape {a.shape}"
        )
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"abundances must hold numbers, got dtype {a.dtype}")
    if np.isnan(a).any():
        raise ValueError("abundances contain NaN values")
    dominant = a.argmax(axis=0)
    largest = np.take_along_axis(a, dominant[None], axis=0)[0]
    labels = (dominant + 1).astype(np.int32)
    unassigned = largest <= 0
    if min_abundance is not None:
        unassigned |= largest < float(min_abundance)
    if background is not None:
        if not 0 <= int(background) < a.shape[0]:
            raise ValueError(f"background component {background} asked for, but there are {a.shape[0]} components")
        unassigned |= dominant == int(background)
    labels[unassigned] = UNASSIGNED
    return labels


def background_component(abundances) -> int:
    """The component (0-based) that dominates the image's border pixels: the background.

    A cell or tissue section is imaged with some empty slide or medium around it, so the
    component most often dominant on the outermost rows and columns is taken as background.
    """
    a = np.asarray(abundances)
    if a.ndim != 3 or a.shape[0] == 0:
        raise ValueError(f"abundances must be a (components, y, x) array, got shape {a.shape}")
    border = np.concatenate([a[:, 0, :], a[:, -1, :], a[:, :, 0], a[:, :, -1]], axis=1)
    return int(np.bincount(border.argmax(axis=0), minlength=a.shape[0]).argmax())
