"""Spatial textures other than one round cell: abundance maps of fibres, tissue, sharp-edged
domains and point-like particles.

Each texture gives ``(k, Y, X)`` non-negative maps in the order of
:data:`~napari_deeper.simulate.spectra.COMPONENTS` (substrate, proteins, nucleic acids, lipids,
carotenoids), like :func:`~napari_deeper.simulate.cell.cell_abundances`, so the same spectra,
variation and background make a cube of them. They exist so that the super-resolution networks
learn structure a cell image lacks: thin lines at every angle, patchy mixtures, straight
boundaries, objects smaller than a pixel.
"""

from __future__ import annotations

import numpy as np

from ._checks import _generator, _positive_int, _shape2d
from .cell import _smooth_fields, cell_abundances
from .spectra import COMPONENTS

#: textures :func:`texture_abundances` makes ("cell" is :func:`~napari_deeper.simulate.cell.cell_abundances`)
TEXTURES = ("cell", "fibres", "tissue", "edges", "particles")


def _fibres(shape, rng) -> np.ndarray:
    """Substrate crossed by 5-25 smooth curved fibres (proteins, some lipid), 0.4-2.5 pixels thick."""
    ny, nx = shape
    size = min(shape)
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float32)
    maps = np.zeros((len(COMPONENTS), ny, nx), dtype=np.float32)
    for _ in range(int(rng.integers(5, 26))):
        length = rng.uniform(0.5, 1.5) * size
        n = max(8, int(2 * length))  # points half a pixel apart
        turn = np.cumsum(rng.normal(0.0, rng.uniform(0.0, 0.08), n))  # curvature: a random walk
        angle = rng.uniform(0.0, 2 * np.pi) + turn
        step = length / n
        cy = rng.uniform(0, ny) + np.cumsum(step * np.sin(angle)) - 0.5 * length * np.sin(angle[0])
        cx = rng.uniform(0, nx) + np.cumsum(step * np.cos(angle)) - 0.5 * length * np.cos(angle[0])
        distance2 = np.full((ny, nx), np.inf, dtype=np.float32)
        for part in np.array_split(np.arange(n), max(1, n // 64)):  # pixels x 64 points at a time
            d2 = (y[None] - cy[part, None, None].astype(np.float32)) ** 2 + (
                x[None] - cx[part, None, None].astype(np.float32)) ** 2
            np.minimum(distance2, d2.min(axis=0), out=distance2)
        radius = rng.uniform(0.4, 2.5)
        profile = np.exp(-distance2 / (2 * radius**2))
        which = 3 if rng.random() < 0.25 else 1  # lipid or protein
        maps[which] = np.maximum(maps[which], rng.uniform(0.5, 1.5) * profile)
        maps[2] += 0.1 * rng.random() * profile  # some carry nucleic acids
    maps[0] = np.clip(1.0 - 0.85 * maps[1:].sum(axis=0), 0.05, None)
    return maps


def _tissue(shape, rng) -> np.ndarray:
    """Patches of mixed composition that blend into each other: a softmax of smooth random fields."""
    size = min(shape)
    fields = _smooth_fields(len(COMPONENTS), shape, rng, rng.uniform(0.03, 0.1) * size)
    contrast = rng.uniform(1.0, 4.0)
    weights = np.exp(contrast * (fields - fields.max(axis=0)))
    weights /= weights.sum(axis=0)
    amounts = rng.uniform(0.3, 1.5, len(COMPONENTS))[:, None, None]
    fine = 1.0 + 0.15 * _smooth_fields(1, shape, rng, 0.01 * size + 0.5)[0]
    return (weights * amounts * np.clip(fine, 0.0, None)).astype(np.float32)


def _edges(shape, rng) -> np.ndarray:
    """Domains with sharp straight boundaries (a Voronoi tiling), each of its own composition."""
    ny, nx = shape
    n = int(rng.integers(4, 24))
    seeds = rng.uniform(0, 1, (n, 2)) * np.array([ny, nx])
    y, x = np.mgrid[0:ny, 0:nx]
    nearest = np.argmin((y[None] - seeds[:, 0, None, None]) ** 2 + (x[None] - seeds[:, 1, None, None]) ** 2, axis=0)
    composition = rng.dirichlet(np.full(len(COMPONENTS), 0.4), n) * rng.uniform(0.5, 1.5, (n, 1))
    fine = 1.0 + 0.1 * _smooth_fields(1, shape, rng, 0.02 * min(shape) + 0.5)[0]
    return (composition.T[:, nearest] * np.clip(fine, 0.0, None)).astype(np.float32)


def _particles(shape, rng) -> np.ndarray:
    """Substrate with a faint protein film and 20-300 point-like particles (0.3-1.5 pixel radius)."""
    ny, nx = shape
    maps = np.zeros((len(COMPONENTS), ny, nx), dtype=np.float32)
    film = np.clip(0.2 + 0.1 * _smooth_fields(1, shape, rng, 0.1 * min(shape))[0], 0.0, None)
    maps[1] = film
    n = int(rng.integers(20, 301))
    cy, cx = rng.uniform(-0.5, ny - 0.5, n), rng.uniform(-0.5, nx - 0.5, n)
    radius = rng.uniform(0.3, 1.5, n)
    which = rng.choice([1, 2, 3, 4], n, p=[0.2, 0.1, 0.4, 0.3])
    height = rng.uniform(0.5, 2.0, n)
    y, x = np.arange(ny, dtype=np.float32), np.arange(nx, dtype=np.float32)
    # separable Gaussians: (n, Y) x (n, X) summed per component
    gy = np.exp(-((y[None] - cy[:, None]) ** 2) / (2 * radius[:, None] ** 2)).astype(np.float32)
    gx = np.exp(-((x[None] - cx[:, None]) ** 2) / (2 * radius[:, None] ** 2)).astype(np.float32)
    for component in (1, 2, 3, 4):
        chosen = which == component
        maps[component] += np.einsum("n,ny,nx->yx", height[chosen], gy[chosen], gx[chosen], optimize=True)
    maps[0] = np.clip(1.0 - 0.8 * maps[1:].sum(axis=0), 0.05, None)
    return maps


_MAKERS = {"fibres": _fibres, "tissue": _tissue, "edges": _edges, "particles": _particles}


def texture_abundances(shape, rng, texture: str, n_components: int = len(COMPONENTS)) -> np.ndarray:
    """``(k, Y, X)`` float32 non-negative abundance maps of ``texture`` (one of :data:`TEXTURES`).

    "cell" is :func:`~napari_deeper.simulate.cell.cell_abundances`; "fibres": curved fibres on a
    substrate; "tissue": blending patches of mixed composition; "edges": domains with sharp
    straight boundaries; "particles": point-like objects, many smaller than a pixel.
    """
    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {', '.join(TEXTURES)}, got {texture!r}")
    shape = _shape2d(shape, 4)
    k = _positive_int(n_components, "n_components", 1)
    if k > len(COMPONENTS):
        raise ValueError(f"n_components must be between 1 and {len(COMPONENTS)}, got {k}")
    rng = _generator(rng)
    if texture == "cell":
        return cell_abundances(shape, rng, k)
    return np.clip(_MAKERS[texture](shape, rng)[:k], 0.0, None).astype(np.float32)
