"""Hyperspectral Raman images of one cell: abundance maps, the clean cube and its noisy version.

A pixel's spectrum is the sum of the library components weighted by their local amounts (the
abundance maps), as linear unmixing assumes, plus spatially smooth per-pixel variation of band
positions, widths and relative heights, plus a smooth fluorescence background; the noisy cube is
:func:`~napari_deeper.simulate.noise.add_noise` of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import _axis, _fraction, _generator, _non_negative, _positive, _positive_int, _shape2d
from .noise import DEFAULT_READ_NOISE, add_noise
from .spectra import (
    COMPONENTS,
    HEIGHT_STD,
    SHIFT_STD,
    WIDTH_STD,
    _background_strength,
    _band_table,
    _mix,
    _variation_basis,
    component_spectra,
    fluorescence_background,
    wavenumber_axis,
)

# --------------------------------------------------------------------------------------------
# Spatial structure


def _smooth_fields(n: int, shape: tuple[int, int], rng, sigma: float) -> np.ndarray:
    """``(n, Y, X)`` smooth random fields, zero mean and unit std.

    White noise filtered by a Gaussian of ``sigma`` pixels in Fourier space (periodic, which a
    random texture does not mind, and fast for any image size).
    """
    white = rng.standard_normal((n, *shape))
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    transfer = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    smooth = np.fft.irfft2(np.fft.rfft2(white) * transfer, s=shape)
    smooth -= smooth.mean(axis=(1, 2), keepdims=True)
    std = smooth.std(axis=(1, 2), keepdims=True)
    return np.divide(smooth, std, out=np.zeros_like(smooth), where=std > 1e-12)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class _Blob:
    """An irregular ellipse: normalised radius (1 on the outline) of any point, and a soft mask."""

    def __init__(self, rng, center, radii, roughness: float):
        self.center = np.asarray(center, dtype=np.float64)
        self.radii = np.asarray(radii, dtype=np.float64)
        self.angle = rng.uniform(0.0, np.pi)
        # outline = 1 + a sum of low-order harmonics of the polar angle (a lumpy ellipse)
        self.orders = np.arange(2, 6)
        self.amplitudes = roughness * rng.uniform(0.0, 1.0, self.orders.size) / (self.orders - 1)
        self.phases = rng.uniform(0.0, 2 * np.pi, self.orders.size)

    def radius(self, y, x) -> np.ndarray:
        dy, dx = y - self.center[0], x - self.center[1]
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        u = (dy * cos + dx * sin) / self.radii[0]
        v = (-dy * sin + dx * cos) / self.radii[1]
        theta = np.arctan2(v, u)
        harmonics = np.cos(self.orders[:, None] * theta.ravel() + self.phases[:, None])
        outline = 1.0 + (self.amplitudes @ harmonics).reshape(np.shape(theta))
        return np.hypot(u, v) / outline

    def point(self, r, theta) -> tuple[np.ndarray, np.ndarray]:
        """Image coordinates of normalised polar points (before the outline's roughness)."""
        u, v = r * np.cos(theta) * self.radii[0], r * np.sin(theta) * self.radii[1]
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        return self.center[0] + u * cos - v * sin, self.center[1] + u * sin + v * cos

    def mask(self, y, x, edge: float) -> np.ndarray:
        """1 inside, 0 outside, a smooth edge about ``edge`` pixels wide."""
        return _sigmoid((1.0 - self.radius(y, x)) * self.radii.mean() / edge)


def _soft_discs(y, x, centers_y, centers_x, radii, edge: float) -> np.ndarray:
    """Maximum over small round objects with smooth edges, ``(Y, X)`` in [0, 1]."""
    if len(radii) == 0:
        return np.zeros(np.broadcast_shapes(y.shape, x.shape))
    d = np.hypot(y[None] - centers_y[:, None, None], x[None] - centers_x[:, None, None])
    return _sigmoid((radii[:, None, None] - d) / edge).max(axis=0)


def _places(rng, cell: _Blob, nucleus: _Blob, n: int, r_max: float):
    """``n`` random points inside ``cell`` (normalised radius < ``r_max``), outside the nucleus."""
    candidates = max(64, 20 * n)
    r = r_max * np.sqrt(rng.uniform(0.0, 1.0, candidates))
    theta = rng.uniform(0.0, 2 * np.pi, candidates)
    py, px = cell.point(r, theta)
    keep = (nucleus.radius(py, px) > 1.2) & (cell.radius(py, px) < r_max)
    return py[keep][:n], px[keep][:n]


def cell_abundances(shape, rng, n_components: int = len(COMPONENTS)) -> np.ndarray:
    """``(k, Y, X)`` float32 non-negative abundance maps of one cell on a substrate.

    Maps follow the order of :data:`COMPONENTS` (the first ``n_components`` of substrate,
    proteins, nucleic acids, lipids, carotenoids): the substrate outside the cell, proteins in
    the cytoplasm (an irregular ellipse with some texture), nucleic acids in the nucleus (and a
    little in the cytoplasm, RNA), several small lipid droplets and a few carotenoid spots in
    the cytoplasm. Edges are smooth (about 1.5 % of the image size, at least 0.7 pixels).
    Values are amounts in units where a pure component has abundance about 1.
    """
    ny, nx = _shape2d(shape, 4)
    k = _positive_int(n_components, "n_components", 1)
    if k > len(COMPONENTS):
        raise ValueError(f"n_components must be between 1 and {len(COMPONENTS)}, got {k}")
    rng = _generator(rng)
    size = min(ny, nx)
    edge = max(0.7, 0.015 * size)
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)

    center = np.array([ny, nx]) / 2.0 - 0.5 + rng.uniform(-0.06, 0.06, 2) * np.array([ny, nx])
    cell = _Blob(rng, center, rng.uniform(0.28, 0.38, 2) * np.array([ny, nx]), roughness=0.12)
    offset = cell.point(rng.uniform(0.0, 0.3), rng.uniform(0.0, 2 * np.pi))
    nucleus = _Blob(rng, offset, rng.uniform(0.38, 0.5, 2) * cell.radii, roughness=0.05)
    cell_mask = cell.mask(y, x, edge)
    nucleus_mask = nucleus.mask(y, x, edge) * cell_mask

    n_droplets = int(rng.integers(5, 12))
    dy, dx = _places(rng, cell, nucleus, n_droplets, 0.85)
    droplet_radii = np.maximum(0.7, rng.uniform(0.02, 0.045, dy.size) * size)
    droplets = _soft_discs(y, x, dy, dx, droplet_radii, max(0.35, 0.3 * edge))
    n_spots = int(rng.integers(2, 5))
    sy, sx = _places(rng, cell, nucleus, n_spots, 0.9)
    spot_radii = np.maximum(0.6, rng.uniform(0.01, 0.022, sy.size) * size)
    spots = _soft_discs(y, x, sy, sx, spot_radii, max(0.3, 0.25 * edge))

    texture = _smooth_fields(2, (ny, nx), rng, 0.04 * size)
    organelles = np.maximum(droplets, spots)
    maps = np.stack(
        [
            1.0 - 0.85 * cell_mask,
            0.7 * cell_mask * np.clip(1.0 + 0.2 * texture[0], 0.0, None)
            * (1.0 - 0.35 * nucleus_mask) * (1.0 - 0.6 * organelles),
            0.9 * nucleus_mask * np.clip(1.0 + 0.15 * texture[1], 0.0, None) + 0.05 * cell_mask,
            2.0 * droplets + 0.06 * cell_mask,
            1.0 * spots,
        ]
    )
    return np.clip(maps[:k], 0.0, None).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Simulated images


@dataclass
class SimulatedCube:
    """A simulated hyperspectral image with its ground truth.

    ``clean`` and ``noisy`` are ``(B, Y, X)`` float32 in the same units; ``endmembers`` are the
    pure component spectra (without per-pixel variation), ``abundances`` their ``(k, Y, X)``
    maps, ``photons`` the counts of the brightest clean value, ``metadata`` the parameters and
    seed that reproduce the cube.
    """

    clean: np.ndarray
    noisy: np.ndarray
    wavenumbers: np.ndarray
    abundances: np.ndarray
    endmembers: np.ndarray
    names: list[str]
    photons: float
    metadata: dict = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        """``(Y, X)`` index of the dominant component (largest abundance) at each pixel."""
        return np.argmax(self.abundances, axis=0)


def _cell_clean(shape, w, n_components, background, variation, rng, texture="cell"):
    """Clean cube, abundances, pure endmembers and names for one simulated image of ``texture``."""
    from .textures import texture_abundances  # it builds on this module's cell and fields

    ny, nx = shape
    n = ny * nx
    abundances = texture_abundances(shape, rng, texture, n_components)
    names, tables = _band_table(list(COMPONENTS)[:n_components])
    endmembers, _ = component_spectra(w, names)
    basis = _variation_basis(w, tables, variation, rng)
    k = len(names)
    if variation > 0:
        fields = _smooth_fields(k * (2 + basis.n_modes), shape, rng, 0.08 * min(shape))
        fields = fields.reshape(k, 2 + basis.n_modes, n)
        shifts = SHIFT_STD * variation * fields[:, 0]
        widths = WIDTH_STD * variation * fields[:, 1]
        heights = HEIGHT_STD * variation * fields[:, 2:]
    else:
        shifts = widths = np.zeros((k, n))
        heights = np.zeros((k, 0, n))
    clean = _mix(basis, abundances.reshape(k, n), shifts, widths, heights)
    if background > 0:
        shapes = fluorescence_background(3, w, rng, background)
        inside = np.clip(1.0 - abundances[0], 0.0, 1.0).reshape(n) if k > 1 else np.zeros(n)
        maps = np.exp(0.3 * _smooth_fields(3, shape, rng, 0.15 * min(shape)).reshape(3, n))
        maps *= (0.4 + 0.6 * inside) / 3.0
        clean += shapes.T @ maps.astype(np.float32)
    clean = np.maximum(clean, 0.0).reshape(w.size, ny, nx).astype(np.float32)
    return clean, abundances, endmembers, names


def simulate_cell(
    shape=(64, 64),
    wavenumbers=None,
    n_bands: int = 500,
    photons: float = 100.0,
    read_noise: float = DEFAULT_READ_NOISE,
    background=True,
    variation: float = 1.0,
    spikes: float = 0.0,
    seed=0,
    n_components: int = len(COMPONENTS),
    texture: str = "cell",
) -> SimulatedCube:
    """Simulate a Raman image of one cell: ``SimulatedCube`` with clean and noisy ``(B, Y, X)``.

    ``clean`` mixes the component spectra by :func:`cell_abundances`, with spatially smooth
    per-pixel variation of band positions (``1.5 * variation`` cm-1 std), widths (5 %) and
    relative heights (8 %), plus (``background``: True, False or a strength) a fluorescence
    background that varies smoothly across the image and is stronger inside the cell. ``noisy``
    is :func:`add_noise` of it at ``photons`` counts for the brightest value. ``wavenumbers``
    defaults to ``wavenumber_axis(n_bands)`` (500-1800 cm-1). Everything, noise included, is
    fixed by ``seed``; the noise is drawn last, so cubes that differ only in ``photons``,
    ``read_noise`` or ``spikes`` share the same clean cube. ``texture`` other than "cell" lays
    the same components out as fibres, tissue, sharp-edged domains or particles
    (:func:`~napari_deeper.simulate.textures.texture_abundances`).
    """
    shape = _shape2d(shape, 4)
    w = wavenumber_axis(n_bands) if wavenumbers is None else _axis(wavenumbers)
    photons = _positive(photons, "photons")
    read_noise = _non_negative(read_noise, "read_noise")
    strength = _background_strength(background)
    variation = _non_negative(variation, "variation")
    spikes = _fraction(spikes, "spikes")
    rng = np.random.default_rng(seed)
    clean, abundances, endmembers, names = _cell_clean(
        shape, w, n_components, strength, variation, rng, texture
    )
    noisy = add_noise(clean, photons, rng, read_noise, spikes, band_axis=0)
    metadata = {
        "generator": "napari_deeper.simulate.simulate_cell",
        "shape": list(shape),
        "n_bands": int(w.size),
        "wavenumber_range": [float(w.min()), float(w.max())],
        "photons": photons,
        "read_noise": read_noise,
        "background": strength,
        "variation": variation,
        "spikes": spikes,
        "n_components": len(names),
        "seed": seed if seed is None else int(seed),
        "texture": texture,
    }
    return SimulatedCube(clean, noisy, w, abundances, endmembers, names, photons, metadata)


def skip_sample(hr, factor: int) -> np.ndarray:
    """Low-resolution image as a raster microscope takes it with ``factor`` times fewer points.

    LR pixel ``i`` is HR pixel ``factor * i + factor // 2`` along both spatial axes, i.e.
    ``hr[:, f//2::f, f//2::f]`` (a copy). In world coordinates the LR image therefore has
    ``scale = factor`` and ``translate = factor // 2`` (in HR pixels).
    """
    factor = _positive_int(factor, "factor", 1)
    arr = np.asarray(hr)
    if arr.ndim != 3:
        raise ValueError(f"hr must be a 3-D (bands, y, x) cube, got shape {arr.shape}")
    if min(arr.shape[1:]) < factor:
        raise ValueError(
            f"hr is {arr.shape[1]}x{arr.shape[2]} pixels, too small for factor {factor}"
        )
    offset = factor // 2
    return np.ascontiguousarray(arr[:, offset::factor, offset::factor])


def simulate_superres_pair(
    shape=(64, 64),
    factor: int = 2,
    wavenumbers=None,
    n_bands: int = 500,
    photons: float = 100.0,
    read_noise: float = DEFAULT_READ_NOISE,
    background=True,
    variation: float = 1.0,
    spikes: float = 0.0,
    seed=0,
) -> tuple[SimulatedCube, np.ndarray, np.ndarray]:
    """``(hr, lr_noisy, lr_clean)``: a simulated HR cell and its skip-sampled LR version.

    ``hr`` is :func:`simulate_cell` at ``shape``; ``lr_noisy = skip_sample(hr.noisy, factor)``
    and ``lr_clean = skip_sample(hr.clean, factor)`` (the LR scan measures the same points with
    the same dwell time, so its noise is that of the HR pixels it lands on).
    """
    factor = _positive_int(factor, "factor", 1)
    hr = simulate_cell(
        shape, wavenumbers, n_bands, photons, read_noise, background, variation, spikes, seed
    )
    hr.metadata["factor"] = factor
    return hr, skip_sample(hr.noisy, factor), skip_sample(hr.clean, factor)
