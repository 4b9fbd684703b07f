"""Physics-based simulation of Raman spectra and hyperspectral Raman images of cells.

Everything the plugin trains on, tests against and ships as sample data comes from here. The
model follows what a confocal Raman microscope records:

* **Bands** (:mod:`.spectra`). Each biological component (nucleic acids, proteins, lipids,
  carotenoids, the substrate) is a sum of pseudo-Voigt bands at literature positions,
  ``V = rho*G + (1-rho)*L`` with ``rho = 0.6785`` as in the noise-learning paper (He et al.,
  Nat. Commun. 2024).
* **Mixing** (:mod:`.cell`). A pixel's spectrum is the sum of the components weighted by their
  local amounts (the abundance maps), as linear unmixing assumes, plus per-pixel variation of
  band positions, widths and relative heights (local chemical environment), so that the cube is
  not exactly low-rank, plus a smooth fluorescence background that varies across the image.
* **Detection** (:mod:`.noise`). The clean cube is scaled so that its brightest value is
  ``photons`` counts, then Poisson shot noise, Gaussian read noise and optionally cosmic-ray
  spikes are added, and the result is scaled back to the units of the clean cube.

Pure numpy, vectorised (no per-pixel loops) and seeded: the same seed gives the same data. The
public names are all here (``nd.simulate.simulate_cell``, ``nd.simulate.add_noise``, ...).
"""

from .cell import SimulatedCube, cell_abundances, simulate_cell, simulate_superres_pair, skip_sample
from .noise import DEFAULT_READ_NOISE, add_noise
from .spectra import (
    COMPONENTS,
    DEFAULT_BACKGROUND,
    HEIGHT_STD,
    PSEUDO_VOIGT_RHO,
    SHIFT_STD,
    WIDTH_STD,
    component_spectra,
    fluorescence_background,
    pseudo_voigt,
    random_spectra,
    spectra_batch,
    wavenumber_axis,
)
from .textures import TEXTURES, texture_abundances

__all__ = [
    "COMPONENTS",
    "DEFAULT_BACKGROUND",
    "DEFAULT_READ_NOISE",
    "HEIGHT_STD",
    "PSEUDO_VOIGT_RHO",
    "SHIFT_STD",
    "WIDTH_STD",
    "SimulatedCube",
    "TEXTURES",
    "add_noise",
    "cell_abundances",
    "component_spectra",
    "fluorescence_background",
    "pseudo_voigt",
    "random_spectra",
    "simulate_cell",
    "simulate_superres_pair",
    "skip_sample",
    "spectra_batch",
    "texture_abundances",
    "wavenumber_axis",
]
