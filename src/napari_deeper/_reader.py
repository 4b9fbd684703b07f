"""npe2 reader: open hyperspectral cubes (``.mat``, ``.npy``, ``.npz``, ``.zarr`` stores, Renishaw ``.wdf``,
Horiba ``.xml``, Trivista ``.tvf``, text tables) as napari image layers.

Zarr stores, and ``.npy`` / MATLAB v7.3 cubes larger than a quarter of the RAM, open lazily: the
layer's data is a dask array and napari reads only the chunks of the band it shows.

Each file becomes one ``(B, Y, X)`` layer named after the file, with its spectral axis in
``metadata["wavenumbers"]`` and how it was read in ``metadata["napari_deeper"]``; paired arrays
in the same file (e.g. the Outputs of a DeepeR Inputs/Outputs set) become extra layers named
"<file> <array>". Guesses are shown as a notification. A file that cannot be read shows an
error notification and opens nothing; NaN / Inf values are kept, with a warning pointing to the
Cube layout widget, which replaces them. Instrument files open at their size and position in µm
(``scale``, ``translate``, units), with the sample's white-light image, when the file has one, as
an RGB layer beneath, and a short "About" notification of how the cube was acquired.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning

from . import provenance
from ._widgets import _display
from .io import _text, _vendor, load_cube
from .io._read import EXTENSIONS, is_plain_image

# napari's "this reader handled the file but made no layers" answer (see napari.plugins.io):
# returning an empty list instead would make napari raise a second, vaguer error.
NO_LAYERS = [(None,)]


def get_reader(path):
    """Return :func:`read_cubes` when every path is a file (or ``.zarr`` store) napari-deeper reads."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or any(Path(p).suffix.lower() not in EXTENSIONS for p in paths):
        return None
    if not all(_ours(Path(p)) for p in paths):  # .xml, .txt and .csv are shared with other formats
        return None
    if any(is_plain_image(p) for p in paths):  # a 2-D map or an RGB image: napari's own reader
        return None
    return read_cubes


def read_cubes(path) -> list:
    """Layer data tuples for one path or a list of paths; unreadable files are reported."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers = []
    for one in paths:
        layers.extend(read_cube_layers(Path(one)))
    _display.install_current()  # the band named in cm⁻¹, per-band contrast, consistent units
    return [_display.with_cube_defaults(layer) for layer in layers] or NO_LAYERS


def read_cube_layers(path: Path) -> list:
    """The layers of one file, or [] after an error notification."""
    try:
        cube = load_cube(path, nonfinite="keep")
    except ValueError as error:
        show_error(f"napari-deeper could not open {path.name}: {error}")
        return []
    metadata = cube.metadata
    unit = metadata.get("spectral_unit", "1/cm")
    record = provenance.record(  # a file starts a recipe: the steps that follow replay on it
        "load",
        str(path),
        replay=False,
        format=metadata.get("format", ""),
        choices=metadata.get("choices", ""),
        notes=list(metadata.get("notes", [])),
        spectral_unit=unit,
        stored_axes=metadata.get("stored_axes"),
        pixel_order=metadata.get("pixel_order"),
        nonfinite=metadata.get("nonfinite"),
    )
    layers = [(cube.data, _layer_kwargs(path.stem, cube.wavenumbers, unit, record, metadata), "image")]
    for name, data in metadata.get("companions", {}).items():
        companion = {**record, "companion": name}
        layers.append((data, _layer_kwargs(f"{path.stem} {name}", cube.wavenumbers, unit, companion, metadata), "image"))
    white = metadata.get("white_light")
    if white is not None:  # first, so that it lies beneath the map
        layers.insert(0, (white["data"], _white_light_kwargs(path.stem, white, record), "image"))
    _tell(path, metadata)
    return layers


def _ours(path: Path) -> bool:
    """Whether a file with a generic suffix is one napari-deeper reads, judged from its first bytes."""
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return _vendor.claims(path)
    if suffix in _text.TEXT_EXTENSIONS:
        return _text.claims(path)
    return True


def _layer_kwargs(name: str, wavenumbers, unit: str, record: dict, cube_metadata: dict) -> dict:
    metadata = {provenance.KEY: record}
    if wavenumbers is not None:
        metadata["wavenumbers"] = np.asarray(wavenumbers, dtype=np.float64)
    for key in ("acquisition", "original_axis"):
        if key in cube_metadata:
            metadata[key] = cube_metadata[key]
    kwargs = {
        "name": name,
        "metadata": metadata,
        "axis_labels": (provenance.axis_names(unit)[0], "y", "x"),
        "units": (unit, "pixel", "pixel"),
    }
    size = cube_metadata.get("pixel_size")
    if size is not None:  # the pixel size and position the file states (µm, or s for a time series)
        kwargs["scale"] = (1.0, *size)
        kwargs["translate"] = (0.0, *cube_metadata["origin"])
        kwargs["axis_labels"] = (kwargs["axis_labels"][0], *cube_metadata["space_axes"])
        kwargs["units"] = (unit, *cube_metadata["space_units"])
    rotation = cube_metadata.get("rotation")
    if rotation is not None:  # a line scan at an angle: its row lies along the line
        (a, b), (c, d) = rotation
        kwargs["rotate"] = [[1.0, 0.0, 0.0], [0.0, a, b], [0.0, c, d]]
    return kwargs


def _white_light_kwargs(stem: str, white: dict, record: dict) -> dict:
    unit = white["units"]
    return {
        "name": f"{stem} white light",
        "rgb": True,
        "scale": tuple(white["pixel_size"]),
        "translate": tuple(white["origin"]),
        "axis_labels": ("y", "x"),
        "units": (unit, unit),
        "metadata": {"napari_deeper": {**record, "companion": "white light"}},
    }


def _tell(path: Path, metadata: dict) -> None:
    """Notifications: the guesses made, other notes, and NaN / Inf values kept."""
    said = [metadata.get("choices", "")] + list(metadata.get("notes", []))
    said = [text for text in said if text and "values kept" not in text]
    if metadata.get("about"):
        show_info(f"About {path.name}: {metadata['about']}")
    if said:
        show_info(f"{path.name} read as {metadata.get('format')}: " + "; ".join(said))
    counts = metadata.get("nonfinite") or {}
    if counts.get("nan") or counts.get("inf"):
        show_warning(
            f"{path.name} contains {counts['nan']} NaN and {counts['inf']} Inf values; they are "
            "kept. Use Plugins > napari-deeper > Cube layout > 'Replace NaN/Inf with 0' before "
            "processing."
        )
