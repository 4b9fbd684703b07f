"""Read and write hyperspectral cubes: pure NumPy / SciPy / h5py, no Qt, no napari.

    from napari_deeper.io import load_cube, save_cube
    cube = load_cube("map.mat")          # Cube: data (B, Y, X) float32, wavenumbers, metadata
    print(cube.metadata["format"], cube.metadata["choices"])
    save_cube(cube, "map.npz")           # lossless: load_cube reads it back exactly

Layouts read, formats written and every guess the reader may make: docs/formats.md.
"""

from ._cube import MAX_ELEMENTS, Cube, count_nonfinite
from ._read import load_cube
from ._relayout import relayout, relayout_steps, replace_nonfinite, replace_nonfinite_steps
from ._write import save_cube, save_zarr, save_zarr_steps

__all__ = [
    "MAX_ELEMENTS",
    "Cube",
    "count_nonfinite",
    "load_cube",
    "relayout",
    "relayout_steps",
    "replace_nonfinite",
    "replace_nonfinite_steps",
    "save_cube",
    "save_zarr",
    "save_zarr_steps",
]
