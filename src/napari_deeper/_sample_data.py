"""Sample data (File > Open Sample > napari-deeper): simulated cells and one real cell.

The simulated samples come from :mod:`napari_deeper.simulate` with a fixed seed, so they
are the same every time, and carry their ground truth. The real sample is a WITec export of a
THP-1 cell shipped in ``data/`` (BSD-3-Clause, from RamanSPy; see ``data/README.md``), read with
:func:`napari_deeper.load_cube`. The functions return plain napari LayerData tuples and import
nothing from napari.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import provenance
from ._widgets._display import with_cube_defaults  # colormap and percentile contrast (numpy only)

SHAPE = (64, 64)
N_BANDS = 500
SEED = 0
LOW_PHOTONS = 20.0
HIGH_PHOTONS = 1000.0
SUPERRES_PHOTONS = 1000.0
FACTOR = 2
LASER_NM = 532.0

THP1_FILE = Path(__file__).parent / "data" / "thp1_witec_40x40x500.mat"
#: Where the real THP-1 map comes from and on what terms (kept in the layer's metadata).
THP1_ORIGIN = {
    "file": THP1_FILE.name,
    "md5": "44bc5a8d5faf51dcacabf78d68afeb88",
    "source": "RamanSPy, https://github.com/barahona-research-group/RamanSPy, "
    "docs/source/examples/3D THP1 map 001 L5 (B+R) (Sub BG).mat",
    "licence": "BSD-3-Clause",
    "copyright": "Copyright (c) 2023, Dimitar Georgiev",
    "reference": "Kallepitis et al., Nat. Commun. 8, 14843 (2017), doi:10.1038/ncomms14843",
    "instrument": "WITec confocal Raman microscope, exported from WITec Project FIVE 5.2",
}


def _wavenumbers() -> np.ndarray:
    from .simulate import wavenumber_axis

    # the fingerprint range as a grating spectrometer with a 532 nm laser samples it: uniform in
    # wavelength, so the steps in cm-1 shrink smoothly from about 2.8 to 2.4
    return wavenumber_axis(N_BANDS, 500.0, 1800.0, laser_nm=LASER_NM)


def _layer(data, name: str, cube, params: dict, truth_grid=None, **kwargs) -> tuple:
    """LayerData tuple; ``truth_grid`` maps HR ground-truth images onto the layer's pixels."""
    on_grid = truth_grid or (lambda image: image)
    metadata = {
        "wavenumbers": np.asarray(cube.wavenumbers, dtype=np.float64),
        "ground_truth": {
            "abundances": on_grid(cube.abundances),
            "endmembers": cube.endmembers,
            "names": list(cube.names),
            "clean": on_grid(cube.clean),
        },
        provenance.KEY: provenance.record("simulate", "napari_deeper.simulate", dict(params), replay=False),
    }
    layer_kwargs = {
        "name": name,
        "metadata": metadata,
        "axis_labels": ("wavenumber", "y", "x"),
        "units": ("1/cm", "pixel", "pixel"),
        "colormap": "magma",
    }
    layer_kwargs.update(kwargs)
    return with_cube_defaults((data, layer_kwargs, "image"))


def denoise_pair() -> list[tuple]:
    """The same simulated cell at high SNR (1000 photons) and low SNR (20 photons).

    Both share the clean cube (same seed); each layer is reproduced exactly by
    ``simulate_cell((64, 64), wavenumbers=w, photons=p, seed=0)`` with ``w`` from its metadata.
    """
    from .simulate import simulate_cell

    w = _wavenumbers()
    layers = []
    for photons, label in ((HIGH_PHOTONS, "high SNR"), (LOW_PHOTONS, "low SNR")):
        cube = simulate_cell(SHAPE, wavenumbers=w, photons=photons, seed=SEED)
        layers.append(
            _layer(cube.noisy, f"cell {label} ({photons:g} photons)", cube, dict(cube.metadata))
        )
    return layers


def superres_pair() -> list[tuple]:
    """A simulated cell (HR) and its 2x skip-sampled low-resolution version, overlaid exactly.

    LR pixel ``i`` is HR pixel ``2 i + 1``, so the LR layer has ``scale`` 2 and ``translate`` 1
    (HR pixels) along y and x. Each layer's ground truth (abundances, clean cube) is on its own
    pixel grid.
    """
    from .simulate import simulate_superres_pair, skip_sample

    hr, lr_noisy, _lr_clean = simulate_superres_pair(
        SHAPE, FACTOR, wavenumbers=_wavenumbers(), photons=SUPERRES_PHOTONS, seed=SEED
    )
    params = dict(hr.metadata)
    hr_layer = _layer(hr.noisy, "cell HR", hr, params)
    lr_layer = _layer(
        lr_noisy,
        f"cell LR (1/{FACTOR})",
        hr,
        {**params, "skip_sample_offset": FACTOR // 2},
        truth_grid=lambda image: skip_sample(image, FACTOR),
        scale=(1.0, float(FACTOR), float(FACTOR)),
        translate=(0.0, float(FACTOR // 2), float(FACTOR // 2)),
    )
    return [hr_layer, lr_layer]


def thp1_cell() -> list[tuple]:
    """The real THP-1 cell map (WITec, 40 x 40 pixels, 500 bands), as the plugin's reader opens it.

    The layer keeps the file's Raman-shift axis in ``metadata["wavenumbers"]``, how it was read in
    ``metadata["napari_deeper"]`` and the data's source, licence and reference in
    ``metadata["sample"]``.
    """
    from .io import load_cube

    cube = load_cube(THP1_FILE)
    read = cube.metadata
    metadata = {
        "wavenumbers": np.asarray(cube.wavenumbers, dtype=np.float64),
        "sample": dict(THP1_ORIGIN),
        provenance.KEY: provenance.record(
            "load", str(THP1_FILE), replay=False,
            format=read["format"], choices=read.get("choices", ""), title=read.get("title", ""),
        ),
    }
    kwargs = {
        "name": "THP-1 cell (WITec)",
        "metadata": metadata,
        "axis_labels": ("wavenumber", "y", "x"),
        "units": (read.get("spectral_unit", "1/cm"), *read.get("space_units", ("pixel", "pixel"))),
        "colormap": "magma",
    }
    if "pixel_size" in read:  # 0.625 µm, as the file's image axes give it
        kwargs["scale"] = (1.0, *read["pixel_size"])
        kwargs["translate"] = (0.0, *read["origin"])
    return [with_cube_defaults((cube.data, kwargs, "image"))]
