"""Band maps and spectral crops: the numbers behind peak heatmaps and the crop step.

Both read only the bands they need, so they work on memory-mapped cubes (``np.load(...,
mmap_mode="r")``) and other lazily loaded arrays without pulling the whole cube into memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validation import as_cube, as_real, as_wavenumbers, check_method, check_real_dtype
from ..compute import Progress, Steps, chunk_size, chunks, many, run

BAND_MAP_MODES = ("area", "height")
FLOAT32_MAX = float(np.finfo(np.float32).max)


def lazy_cube(data, name: str = "data"):
    """Check that ``data`` is a real-valued ``(B, Y, X)`` array without reading its values.

    NumPy arrays and memory maps come back as they are; array-likes without ``shape``/``dtype``
    (lists) are converted. Values are read later, one slice at a time, through :func:`as_cube`.
    """
    if data is None:
        raise ValueError(f"{name} is None; expected a (bands, y, x) array")
    if not all(hasattr(data, attr) for attr in ("shape", "dtype", "__getitem__")):
        data = np.asarray(data)
    shape = tuple(data.shape)
    if len(shape) != 3:
        raise ValueError(f"{name} must be a 3-D (bands, y, x) cube, got an array of shape {shape}")
    if 0 in shape:
        raise ValueError(f"{name} is empty (shape {shape})")
    check_real_dtype(data.dtype, name)
    return data


def spectral_axis(wavenumbers, n_bands: int) -> np.ndarray:
    """The wavenumbers as float64, or band indices ``0..B-1`` when there are none."""
    axis = as_wavenumbers(wavenumbers, n_bands)
    return np.arange(n_bands, dtype=np.float64) if axis is None else axis


def _check_monotonic(axis: np.ndarray) -> None:
    steps = np.diff(axis)
    if steps.size and not (np.all(steps > 0) or np.all(steps < 0)):
        raise ValueError(
            "wavenumbers must increase (or decrease) strictly from band to band; "
            "sort the bands first"
        )


def band_window(axis: np.ndarray, center: float, width: float) -> tuple[float, float, np.ndarray]:
    """The band ``[center - width/2, center + width/2]`` clipped to the axis, and its band indices.

    Returns ``(low, high, indices)``: the clipped edges and the indices of the bands inside them.
    A band reaching past one end of the axis is clipped to it; a band entirely outside the axis,
    or one too narrow to contain a single band, raises a ``ValueError``.
    """
    axis = np.asarray(axis, dtype=np.float64)
    _check_monotonic(axis)
    center, width = as_real(center, "band center"), as_real(width, "band width")
    if width <= 0:
        raise ValueError(f"band width must be a positive number, got {width:g}")
    low, high = center - width / 2, center + width / 2
    first, last = float(axis.min()), float(axis.max())
    if high < first or low > last:
        raise ValueError(
            f"band {low:g}-{high:g} lies outside the spectral axis, which runs from {first:g} "
            f"to {last:g}"
        )
    low, high = max(low, first), min(high, last)
    inside = np.flatnonzero((axis >= low) & (axis <= high))
    if inside.size == 0:
        nearest = np.sort(np.abs(axis - center))[:2]
        spacing = float(nearest.sum()) if nearest.size == 2 else float(width)
        raise ValueError(
            f"band {center:g} ± {width / 2:g} covers no band of the spectral axis; "
            f"widen it to at least about {spacing:.3g} (the band spacing there)"
        )
    return low, high, inside


def _value_at(x: np.ndarray, block: np.ndarray, where: float) -> np.ndarray:
    """Linear interpolation of ``block`` (bands first, ``x`` increasing) at one axis value."""
    if x.size == 1:
        return block[0]
    j = int(np.clip(np.searchsorted(x, where, side="right") - 1, 0, x.size - 2))
    t = (where - x[j]) / (x[j + 1] - x[j])
    return block[j] * (1.0 - t) + block[j + 1] * t


def _band_values(block: np.ndarray, x: np.ndarray, low: float, high: float, mode: str, baseline: bool):
    """Area or height of one block of spectra (bands first, ``x`` increasing) over [low, high]."""
    block = block.astype(np.float64, copy=False)
    inside = (x >= low) & (x <= high)
    x_in, y_in = x[inside], block[inside]
    y_low, y_high = _value_at(x, block, low), _value_at(x, block, high)
    if baseline:
        span = high - low
        if span > 0:
            fraction = ((x_in - low) / span)[:, None, None]
            y_in = y_in - (y_low + (y_high - y_low) * fraction)
        else:
            y_in = y_in - y_low
        y_low = np.zeros_like(y_low)
        y_high = np.zeros_like(y_high)
    if mode == "height":
        return y_in.max(axis=0)
    xs = np.concatenate([[low], x_in, [high]])
    ys = np.concatenate([y_low[None], y_in, y_high[None]], axis=0)
    return np.trapezoid(ys, xs, axis=0)


def band_map_steps(
    data,
    wavenumbers=None,
    center: float = 1450.0,
    width: float = 30.0,
    mode: str = "area",
    baseline: bool = False,
) -> Steps[np.ndarray]:
    """Steps version of :func:`band_map`: yields progress per chunk of rows."""
    cube = lazy_cube(data)
    mode = check_method(mode, BAND_MAP_MODES)
    n_bands, n_rows, n_cols = cube.shape
    axis = spectral_axis(wavenumbers, n_bands)
    low, high, inside = band_window(axis, center, width)
    first = max(int(inside[0]) - 1, 0)
    last = min(int(inside[-1]) + 1, n_bands - 1)
    x = axis[first : last + 1]
    descending = x.size > 1 and x[0] > x[-1]
    if descending:
        x = x[::-1]
    out = np.empty((n_rows, n_cols), dtype=np.float32)
    rows_per_chunk = chunk_size(x.size * n_cols * 8 * 4, maximum=max(1, n_rows))
    message = f"band {center:g} ± {width / 2:g}, {mode}"
    yield Progress(0, n_rows, message)
    for rows in chunks(n_rows, rows_per_chunk):
        block = as_cube(cube[first : last + 1, rows], name="data")
        if descending:
            block = block[::-1]
        values = _band_values(block, x, low, high, mode, baseline)
        largest = float(np.abs(values).max())
        if largest > FLOAT32_MAX:
            raise ValueError(
                f"the band {mode} reaches {largest:.3g}, beyond float32's range ({FLOAT32_MAX:.3g}): "
                "rescale the data or the spectral axis"
            )
        out[rows] = values
        yield Progress(rows.stop, n_rows, message)
    return out


def band_map(data, wavenumbers=None, center: float = 1450.0, width: float = 30.0,
             mode: str = "area", baseline: bool = False) -> np.ndarray:
    """A ``(Y, X)`` float32 map of one band: its area or its height in every pixel.

    The band is ``[center - width/2, center + width/2]`` in the units of ``wavenumbers`` (band
    indices when None). ``mode="area"`` integrates with the trapezoid rule over the real,
    possibly non-uniform axis, with the spectrum interpolated at the exact band edges;
    ``mode="height"`` takes the largest value of the bands inside. ``baseline=True`` first
    subtracts the straight line joining the spectrum's values at the two edges, so a sloping
    background does not count. A band that reaches past the axis is clipped to it.
    """
    return run(band_map_steps(data, wavenumbers, center, width, mode, baseline))


def band_maps_steps(
    cubes: Sequence[tuple[object, object]],
    center: float,
    width: float,
    mode: str = "area",
    baseline: bool = False,
) -> Steps[list[np.ndarray]]:
    """Band maps of several cubes ``[(data, wavenumbers), ...]``, with one progress scale."""
    cubes = list(cubes)
    return (yield from many(
        (f"cube {index + 1}/{len(cubes)}", band_map_steps(data, wavenumbers, center, width, mode, baseline))
        for index, (data, wavenumbers) in enumerate(cubes)
    ))


def crop(data, wavenumbers, start: float | None = None, stop: float | None = None):
    """Keep the bands whose wavenumber lies in ``[start, stop]``; returns ``(data, wavenumbers)``.

    ``start``/``stop`` are in the units of ``wavenumbers`` (band indices when None) and may be
    given in either order; None leaves that end open. Only the kept bands are read, and the
    result is a new float32 array (it never shares memory with the input).
    """
    cube = lazy_cube(data)
    bands = crop_slice(wavenumbers, cube.shape[0], start, stop)
    cropped = np.array(as_cube(cube[bands], allow_nonfinite=True, check_range=False), dtype=np.float32, copy=True)
    return cropped, (None if wavenumbers is None else spectral_axis(wavenumbers, cube.shape[0])[bands].copy())


def crop_slice(wavenumbers, n_bands: int, start: float | None = None, stop: float | None = None) -> slice:
    """The bands :func:`crop` keeps, as a slice, without reading any data (streamed runs slice a
    lazy cube with it)."""
    axis = spectral_axis(wavenumbers, n_bands)
    _check_monotonic(axis)
    low = -np.inf if start is None else float(start)
    high = np.inf if stop is None else float(stop)
    low, high = min(low, high), max(low, high)
    kept = np.flatnonzero((axis >= low) & (axis <= high))
    if kept.size == 0:
        raise ValueError(
            f"crop {low:g}-{high:g} keeps no band; the spectral axis runs from "
            f"{axis.min():g} to {axis.max():g}"
        )
    return slice(int(kept[0]), int(kept[-1]) + 1)
