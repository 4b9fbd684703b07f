"""Writers of napari layer data (File > Save Selected Layers...): maps as TIFF or .npy, labels, endmember CSV.

Each writer has npe2's single-layer signature ``writer(path, data, attributes) -> [paths]``,
where ``attributes`` is the layer's state (``name``, ``metadata``, ``scale``, ...). napari's
save dialog asks before it replaces a file; the writers themselves write exactly the path given.

- :func:`write_tiff`: any image layer (abundance maps ``(k, Y, X)``, a single map, a cube) to a
  multi-page float TIFF; component names, the spectral axis, scale, units and the layer's
  provenance go into the TIFF's JSON description (read them with
  ``tifffile.TiffFile(path).shaped_metadata[0]``).
- :func:`write_npy`: the array as ``.npy``; a spectral cube is written by
  :func:`napari_deeper.io.save_cube` (wavenumbers in a ``<name>_wavenumbers.npy`` sidecar).
- :func:`write_zarr`: a cube or map layer (lazy ones too, tile by tile) as a zarr store that
  :func:`napari_deeper.io.load_cube` reads back with its spectral axis, pixel size and provenance.
- :func:`write_labels_tiff`: a labels layer as an unsigned-integer TIFF (8 to 64 bits, the
  smallest that holds every label), with the component names of its classes.
- :func:`write_endmembers_csv`: the endmember spectra of an unmixing result (kept in the layer's
  ``metadata["napari_deeper"]``) as a CSV table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import provenance


def write_tiff(path: str, data, attributes: dict) -> list[str]:
    """Write an image layer to a multi-page TIFF with its metadata as JSON."""
    import tifffile

    array = _plain_array(data, attributes)
    if array.ndim < 2:
        raise ValueError(f"a TIFF needs an image of at least 2 dimensions, got shape {array.shape}")
    if array.dtype.kind == "f" and array.dtype != np.float64:
        array = array.astype(np.float32)
    tifffile.imwrite(path, array, metadata=tiff_metadata(array, attributes), photometric="minisblack")
    return [str(path)]


def write_labels_tiff(path: str, data, attributes: dict) -> list[str]:
    """Write a labels layer as an unsigned-integer TIFF (the smallest type that holds it)."""
    import tifffile

    labels = _plain_array(data, attributes)
    if labels.ndim < 2 or labels.dtype.kind not in "iub":
        raise ValueError(f"labels must be an integer image, got {labels.dtype} of shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must not be negative")
    top = int(labels.max()) if labels.size else 0
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if top <= np.iinfo(t).max)
    tifffile.imwrite(
        path, labels.astype(dtype), metadata=tiff_metadata(labels, attributes), photometric="minisblack"
    )
    return [str(path)]


def write_npy(path: str, data, attributes: dict) -> list[str]:
    """Write an image layer as ``.npy``; spectral cubes keep their axis in a sidecar file."""
    array = _plain_array(data, attributes)
    metadata = attributes.get("metadata") or {}
    wavenumbers = metadata.get("wavenumbers")
    if array.ndim == 3 and wavenumbers is not None and len(wavenumbers) == array.shape[0]:
        from ._write import save_cube

        units = _unit_names(attributes)
        unit = provenance.WAVELENGTH if units and provenance.is_wavelength(units[0]) else provenance.RAMAN_SHIFT
        return save_cube(array, path, wavenumbers=wavenumbers, metadata={"spectral_unit": unit})
    np.save(path, np.ascontiguousarray(array))
    return [str(path)]


def write_zarr(path: str, data, attributes: dict) -> list[str]:
    """Write an image layer (a cube or a map; a lazy one tile by tile) as a zarr store."""
    from ._write import save_zarr

    if attributes.get("multiscale"):
        data = data[0]
    if getattr(data, "ndim", 0) not in (2, 3):
        raise ValueError(f"a zarr store takes a (bands, y, x) cube or a (y, x) map, got shape {getattr(data, 'shape', None)}")
    metadata = attributes.get("metadata") or {}
    wavenumbers = metadata.get("wavenumbers") if data.ndim == 3 else None
    if wavenumbers is not None and len(wavenumbers) != data.shape[0]:
        wavenumbers = None
    units = _unit_names(attributes)
    unit = provenance.WAVELENGTH if units and provenance.is_wavelength(units[0]) else provenance.RAMAN_SHIFT
    saved = {"spectral_unit": unit, "name": attributes.get("name", "")}
    scale, translate = list(attributes.get("scale") or []), list(attributes.get("translate") or [])
    if len(scale) >= 2 and len(translate) >= 2:
        labels = [str(label) for label in (attributes.get("axis_labels") or ["y", "x"])][-2:]
        saved.update({"pixel_size": [float(v) for v in scale[-2:]], "origin": [float(v) for v in translate[-2:]],
                      "space_units": (units or ["pixel", "pixel"])[-2:], "space_axes": labels})
    record = provenance.of(metadata)
    if record:
        saved["layer_record"] = json.loads(json.dumps(record, default=_jsonable))
    return [str(save_zarr(data, path, wavenumbers, saved))]


def write_endmembers_csv(path: str, data, attributes: dict) -> list[str]:
    """Write the endmember spectra stored with an unmixing layer as a CSV table."""
    from .endmembers import save_endmembers_csv

    record = provenance.of(attributes.get("metadata") or {})
    endmembers = record.get("endmembers")
    if endmembers is None:
        raise ValueError(
            f"layer {attributes.get('name', '')!r} holds no endmember spectra: save the abundance "
            "or labels layer that the Unmix dock made (its metadata keeps the endmembers)"
        )
    save_endmembers_csv(path, endmembers, record.get("wavenumbers"), record.get("components"))
    return [str(path)]


def tiff_metadata(array: np.ndarray, attributes: dict) -> dict:
    """JSON-ready description of a layer: name, axes, spectral axis, components, provenance."""
    metadata = attributes.get("metadata") or {}
    record = provenance.of(metadata)
    described = {
        "name": attributes.get("name", ""),
        "axes": "CYX"[-array.ndim :] if array.ndim <= 3 else "Q" * (array.ndim - 2) + "YX",
        "axis_labels": list(attributes.get("axis_labels") or []),
        "units": _unit_names(attributes),
        "scale": list(attributes.get("scale") or []),
        "translate": list(attributes.get("translate") or []),
    }
    if metadata.get("wavenumbers") is not None:
        described["wavenumbers"] = metadata["wavenumbers"]
    if record.get("components") is not None:
        described["components"] = record["components"]
    if record:
        described[provenance.KEY] = record
    return _json_ready(described)


class _NotNative(Exception):
    """A value JSON would have to convert (or refuse)."""


#: Values JSON writes and reads back as they are.
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _json_ready(value):
    """``value`` as JSON reads it back: ``json.loads(json.dumps(value, default=_jsonable))``.

    A value made only of JSON's own types (dicts with text keys, lists, tuples, text, numbers,
    True/False/None), as a provenance record is, is copied without the text in between: for a
    recipe that carries endmember spectra that round trip was most of a TIFF's writing time.
    """
    try:
        return _native_copy(value)
    except (_NotNative, RecursionError):
        return json.loads(json.dumps(value, default=_jsonable))


def _native_copy(value):
    kind = type(value)
    if kind is dict:
        if not all(type(key) is str for key in value):
            raise _NotNative
        return {key: _native_copy(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        if all(type(item) in _JSON_SCALARS for item in value):  # a spectrum: no call per number
            return list(value)
        return [_native_copy(item) for item in value]
    if kind in _JSON_SCALARS:
        return value
    raise _NotNative


def _plain_array(data, attributes: dict) -> np.ndarray:
    if attributes.get("multiscale"):
        data = data[0]
    return np.asarray(data)


def _unit_names(attributes: dict) -> list[str]:
    return [str(unit) for unit in (attributes.get("units") or [])]


def _jsonable(value):
    """numpy values and anything else JSON does not know, as plain numbers, lists or text."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)
