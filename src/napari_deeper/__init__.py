"""napari-deeper: see, denoise, super-resolve and unmix hyperspectral Raman images.

The public API is imported lazily so that ``import napari_deeper`` (and napari's start-up) stays
fast: torch, scikit-learn and friends load only when a function that needs them is called.

    import napari_deeper as nd
    cube = nd.load_cube("cell.mat")                 # Cube(data (B, Y, X), wavenumbers, metadata)
    clean = nd.denoise(cube.data, wavenumbers=cube.wavenumbers)
    hr = nd.upscale(clean, scale=2)
    endmembers, _ = nd.vca(hr, 5)
    abundances = nd.nnls(hr, endmembers)
"""

from importlib import import_module

__version__ = "0.1.0"

_API = {
    "Cube": "napari_deeper.io",
    "load_cube": "napari_deeper.io",
    "save_cube": "napari_deeper.io",
    "denoise": "napari_deeper.denoise",
    "estimate_noise": "napari_deeper.denoise.noise",
    "upscale": "napari_deeper.superres",
    "vca": "napari_deeper.unmix",
    "nnls": "napari_deeper.unmix",
    "band_map": "napari_deeper.spectral",
    "remove_baseline": "napari_deeper.analysis",
    "fit_peaks": "napari_deeper.analysis",
    "band_ratio": "napari_deeper.analysis",
    "cluster": "napari_deeper.analysis",
    "calibrate_axis": "napari_deeper.analysis",
    "Recipe": "napari_deeper.recipe",
}
_MODULES = {
    "metrics": "napari_deeper.metrics",
    "simulate": "napari_deeper.simulate",
    "unmix": "napari_deeper.unmix",
    "spectral": "napari_deeper.spectral",
    "compute": "napari_deeper.compute",
    "analysis": "napari_deeper.analysis",
    "stream": "napari_deeper.stream",
}

__all__ = ["__version__", *_API, *_MODULES]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    if name in _MODULES:
        return import_module(_MODULES[name])
    raise AttributeError(f"module 'napari_deeper' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
