"""Test cubes of the denoising benchmark: real cubes made clean, and simulated cells.

**Semi-real cases.** Each real cube (THP-1 from WITec; Renishaw ``renishaw_test_map2.wdf``;
Trivista ``trivista_test_map.tvf``, read with RosettaSciIO) is made clean by

1. a low-rank fit: the mean spectrum plus the first ``k`` principal components of the real
   cube, ``k`` the bi-cross-validated rank of the variance-stabilised real cube (its noise model
   estimated on it), so the fit keeps what the data support and not the file's own noise;
2. smooth per-pixel spectral shifts: every spectrum moved along the bands by a smooth random
   field (Gaussian-filtered, spatial scale a sixth of the image, 0.5 band standard deviation),
   cubic-spline interpolated, so the clean cube is not exactly low-rank (as real band positions
   drift with the local chemistry);
3. shifted so its smallest value is zero (photons cannot be negative: THP-1 is background-
   subtracted and Trivista carries a dark offset).

Then Poisson shot noise and Gaussian read noise (1 count) at 20, 60 and 200 photons at the
clean cube's 99th percentile (:func:`napari_deeper.simulate.add_noise`).

**Simulated cases.** Cells from ``nd.simulate.simulate_cell`` (64 x 64 pixels; 300, 500 and
1000 bands; seeds never used in training), given noise the same way.

Every case is fixed by its seed. The vendor files are GPL-3.0 and stay in ``../shared/data``;
a case whose file is absent is left out, with a message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import napari_deeper as nd

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = {
    "THP-1 (WITec)": SHARED / "thp1_witec_40x40x500.mat",
    "Renishaw map": SHARED / "vendor" / "renishaw_test_map2.wdf",
    "Trivista map": SHARED / "vendor" / "trivista_test_map.tvf",
}
PHOTONS = (20, 60, 200)
SIMULATED = ((300, 60, 9101), (500, 20, 9102), (500, 200, 9103), (1000, 60, 9104))
SHIFT_BANDS = 0.5
READ_NOISE = 1.0


@dataclass
class Case:
    """One benchmark cube: noisy input, clean answer, where it came from."""

    name: str
    noisy: np.ndarray
    clean: np.ndarray
    kind: str  # "semi-real" or "simulated"
    source: str
    photons: float
    rank: int | None = None


def read_real(path: Path) -> np.ndarray:
    """A real file as a ``(B, Y, X)`` float32 cube (THP-1 through our reader, vendor maps through
    RosettaSciIO)."""
    if path.suffix == ".mat":
        return nd.load_cube(path).data
    logging.getLogger("rsciio").setLevel(logging.ERROR)
    if path.suffix == ".wdf":
        from rsciio.renishaw import file_reader
    else:
        from rsciio.trivista import file_reader
    signal = file_reader(str(path))[0]
    return np.ascontiguousarray(np.moveaxis(np.asarray(signal["data"], dtype=np.float32), -1, 0))


def low_rank_clean(real: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    """The clean cube made from a real one (low-rank fit, smooth shifts, zero minimum) and its rank."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    from napari_deeper.denoise.calibrate import bcv_rank
    from napari_deeper.denoise.noise import estimate_noise
    from napari_deeper.denoise.vst import Anscombe

    n_bands, ny, nx = real.shape
    stable = Anscombe.from_noise(estimate_noise(real, spikes=False)).forward(real)
    rank = bcv_rank(stable)
    flat = real.reshape(n_bands, -1).astype(np.float64)
    mean = flat.mean(axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    fit = (mean + (u[:, :rank] * s[:rank]) @ vt[:rank]).reshape(real.shape)
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal((ny, nx)), max(1.0, min(ny, nx) / 6.0), mode="reflect")
    field *= SHIFT_BANDS / max(field.std(), 1e-12)
    b, y, x = np.meshgrid(np.arange(n_bands), np.arange(ny), np.arange(nx), indexing="ij")
    shifted = map_coordinates(fit, [b + field[None], y, x], order=3, mode="nearest")
    shifted -= shifted.min()
    return shifted.astype(np.float32), rank


def noisy_at(clean: np.ndarray, photons: float, seed: int) -> np.ndarray:
    """Poisson-Gaussian noise with ``photons`` counts at the clean cube's 99th percentile."""
    from napari_deeper.simulate import add_noise

    at_max = photons * float(clean.max()) / float(np.quantile(clean, 0.99))
    return add_noise(clean, at_max, np.random.default_rng(seed), READ_NOISE)


def semi_real_cases(log=print) -> list[Case]:
    cases = []
    for index, (name, path) in enumerate(REAL.items()):
        if not path.exists():
            log(f"{path} not found: the {name} cases are left out")
            continue
        clean, rank = low_rank_clean(read_real(path), seed=700 + index)
        for j, photons in enumerate(PHOTONS):
            noisy = noisy_at(clean, photons, seed=7100 + 10 * index + j)
            shape = "x".join(map(str, clean.shape[1:])) + f"x{clean.shape[0]}"
            cases.append(Case(f"{name} {shape}, {photons} ph", noisy, clean, "semi-real", path.name, photons, rank))
    return cases


def simulated_cases() -> list[Case]:
    cases = []
    for bands, photons, seed in SIMULATED:
        cell = nd.simulate.simulate_cell((64, 64), n_bands=bands, photons=100, seed=seed)
        noisy = noisy_at(cell.clean, photons, seed + 1)
        cases.append(Case(f"cell 64x64x{bands}, {photons} ph", noisy, cell.clean, "simulated", "simulate_cell",
                          photons))
    return cases


def all_cases(log=print) -> list[Case]:
    return semi_real_cases(log) + simulated_cases()
