"""The :class:`Cube` that every reader returns, and the checks and axis moves they share.

Everything here works from shapes and dtypes first: a file's header is checked before a single
value is read, so a truncated or absurd file is rejected without loading gigabytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import isqrt, prod

import numpy as np

from ..provenance import spectral_unit

#: The largest cube napari-deeper opens: 2**31 values (8 GiB as float32).
MAX_ELEMENTS = 2**31

#: ``nonfinite=`` choices of :func:`napari_deeper.io.load_cube`.
NONFINITE_MODES = ("raise", "zero", "keep")

#: Axis orders of a stored 3-D array (b = bands, y = rows, x = columns) and of a 2-D one
#: (n = pixels, b = bands).
AXES_3D = ("byx", "bxy", "ybx", "xby", "yxb", "xyb")
AXES_2D = ("nb", "bn")

# Bytes of one chunk when a memory-mapped cube is scanned or copied band by band.
_CHUNK_BYTES = 64 << 20


@dataclass
class Cube:
    """A hyperspectral image in the one in-memory layout: ``data`` is ``(B, Y, X)`` float32.

    ``wavenumbers`` is the spectral axis (length B, float64) or None when the file has none.
    ``metadata`` says where the cube came from and how it was read: ``source`` (path),
    ``format`` (which layout was recognised), ``choices`` (text of every guess made, "" when
    none), ``spectral_unit`` ("1/cm" or "nm"), ``notes`` (other things worth knowing),
    ``companions`` (other cubes in the same file, name -> ``(B, Y, X)`` array) and more.
    """

    data: np.ndarray
    wavenumbers: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)

    @property
    def spectral_unit(self) -> str:
        return self.metadata.get("spectral_unit", "1/cm")

    @classmethod
    def from_result(cls, result, given: Cube) -> Cube:
        """A cube-making method's ``result`` (a ``Cube`` or an array) as a ``Cube``: its own axis
        when it made one, else that of ``given``, its input, when the band counts agree."""
        if isinstance(result, Cube):
            return result
        data = result if isinstance(result, np.ndarray) else getattr(result, "data", result)  # ndarray.data: a memoryview
        wavenumbers = getattr(result, "wavenumbers", None)
        if wavenumbers is None and given.wavenumbers is not None and data.shape[0] == len(given.wavenumbers):
            wavenumbers = given.wavenumbers
        return cls(data, wavenumbers, {})


def describe(shape, dtype=None) -> str:
    """``(1600, 500) float32``: how error messages and choices name an array."""
    text = "(" + ", ".join(str(int(n)) for n in shape) + ("," if len(shape) == 1 else "") + ")"
    return f"{text} {np.dtype(dtype)}" if dtype is not None else text


def is_numeric(dtype) -> bool:
    """Real numbers only: integers and floats; no booleans, complex numbers, timedelta64,
    strings or Python objects."""
    return np.dtype(dtype).kind in "iuf"


def check_array_header(shape, dtype, what: str) -> tuple[int, ...]:
    """Reject, from its shape and dtype alone, an array that cannot be a cube.

    Returns the shape with singleton axes dropped when the array has more than three axes
    (MATLAB likes trailing ones). The messages say what was found and what is accepted.
    """
    shape = tuple(int(n) for n in shape)
    if dtype is not None and not is_numeric(dtype):
        raise ValueError(
            f"{what} does not hold real numbers; a cube must hold integers or floats"
        )
    if len(shape) > 3:
        squeezed = tuple(n for n in shape if n != 1)
        shape = squeezed if len(squeezed) >= 2 else shape
    count = prod(shape) if shape else 1
    if count > MAX_ELEMENTS:
        raise ValueError(
            f"{what} claims shape {describe(shape)} = {count:,} values "
            f"({count * 4 / 2**30:.1f} GiB as float32); napari-deeper opens cubes of at most "
            f"2**31 values. Crop or bin the data first, or the file is damaged."
        )
    if len(shape) not in (2, 3):
        kind = {0: "a scalar", 1: "a 1-D array (one spectrum or an axis)"}.get(
            len(shape), f"a {len(shape)}-D array"
        )
        raise ValueError(
            f"{what} is {kind} of shape {describe(shape)}, not a cube; expected a 3-D "
            "(bands, y, x) / (y, x, bands) array or a 2-D (pixels, bands) matrix"
        )
    if count == 0:
        raise ValueError(f"{what} is empty: shape {describe(shape)}")
    return shape


def parse_axes(layout: str, ndim: int) -> str:
    """Check a user's ``layout=`` string (e.g. "yxb", "nb") against an array's dimensions."""
    axes = str(layout).lower().replace(",", "").replace(" ", "").strip("()")
    accepted = AXES_3D if ndim == 3 else AXES_2D
    if axes not in accepted:
        raise ValueError(
            f"layout {layout!r} does not fit a {ndim}-D array; use one of: {', '.join(accepted)} "
            "(b = bands, y = rows, x = columns, n = pixels)"
        )
    return axes


def axes_label(axes: str) -> str:
    """``"yxb"`` -> ``"(Y,X,B)"``, the form used in format names and choices."""
    return "(" + ",".join(axes.upper()) + ")"


def spectral_axis_3d(shape, n_wavenumbers: int | None, prefer_last: bool) -> tuple[int, str]:
    """Which axis of a 3-D array holds the bands, and a sentence saying why.

    A spectral vector of matching length decides; else the odd one out when two axes are
    equal (images are often square); else the longest axis. Ties go to the file type's
    convention: the last axis for MATLAB files, the first for NumPy files.
    """
    order = [2, 0, 1] if prefer_last else [0, 2, 1]
    convention = "MATLAB files put bands last" if prefer_last else "NumPy files put bands first"
    if n_wavenumbers:
        matches = [a for a in order if shape[a] == n_wavenumbers]
        if len(matches) == 1:
            return matches[0], ""
        if matches:
            return matches[0], (
                f"{n_wavenumbers} spectral values match several axes of {describe(shape)}: "
                f"bands = axis {matches[0]} ({convention})"
            )
    for axis in range(3):
        others = [shape[a] for a in range(3) if a != axis]
        if others[0] == others[1] != shape[axis]:
            return axis, f"3-D array {describe(shape)}: bands = axis {axis} (the two other axes are equal)"
    longest = max(shape)
    axis = next(a for a in order if shape[a] == longest)
    tie = " and the file type's convention" if list(shape).count(longest) > 1 else ""
    return axis, f"3-D array {describe(shape)}: bands = axis {axis} (the longest{tie})"


def spectral_axes_2d(shape, n_wavenumbers: int | None, n_pixels: int | None, bands_first: bool | None) -> tuple[str, str]:
    """``"nb"`` or ``"bn"`` for a 2-D matrix, and a sentence saying why ("" when certain).

    Decided, in order, by a spectral vector of matching length, by a known pixel count, by the
    file layout's own convention (``bands_first``), by a square pixel count, else rows are
    spectra (bands last).
    """
    rows, cols = shape
    if n_wavenumbers and (rows == n_wavenumbers) != (cols == n_wavenumbers):
        return ("bn" if rows == n_wavenumbers else "nb"), ""
    if n_pixels and (rows == n_pixels) != (cols == n_pixels):
        return ("nb" if rows == n_pixels else "bn"), ""
    if bands_first is not None:
        return ("bn" if bands_first else "nb"), ""
    row_square, col_square = _is_square(rows), _is_square(cols)
    if row_square != col_square:
        axes = "nb" if row_square else "bn"
        pixels = rows if row_square else cols
        return axes, (
            f"2-D array {describe(shape)}: bands = axis {1 if axes == 'nb' else 0} "
            f"({pixels} is a square number of pixels)"
        )
    return "nb", f"2-D array {describe(shape)}: bands = last axis (one spectrum per row)"


def _is_square(n: int) -> bool:
    return n > 1 and isqrt(n) ** 2 == n


def image_shape(n_pixels: int, user_shape, file_shape, pixel_order: str) -> tuple[tuple[int, int], str]:
    """The (Y, X) of ``n_pixels`` spectra, and a sentence when it was guessed.

    The caller's ``shape=`` wins, then the size stored in the file, then a square; anything
    else becomes a 1 x N strip that the Cube layout widget (or ``shape=``) can fold.
    """
    order_text = "column-major, as MATLAB stores them" if pixel_order == "F" else "row-major"
    if user_shape is not None:
        return check_shape(user_shape, n_pixels), ""
    fallback = ""
    if file_shape is not None:
        try:
            return check_shape(file_shape, n_pixels), ""
        except ValueError:
            fallback = (
                f"the image size stored in the file, {tuple(int(v) for v in file_shape)}, "
                f"does not fit {n_pixels} spectra; "
            )
    side = isqrt(n_pixels)
    if side * side == n_pixels:
        return (side, side), f"{fallback}{n_pixels} pixels -> {side} x {side} (square, {order_text})"
    return (1, n_pixels), (
        f"{fallback}{n_pixels} spectra is not a square number: shown as a 1 x {n_pixels} strip; "
        "set the image shape with the Cube layout widget or load_cube(path, shape=(Y, X))"
    )


def parse_shape(shape) -> tuple[int, int]:
    """An image shape as two positive integers (Y, X), or a ValueError."""
    try:
        values = np.asarray(shape).ravel()
        if values.size != 2 or values.dtype.kind not in "iuf" or np.any(values != np.round(values)):
            raise TypeError
        y, x = (int(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be two integers (Y, X), got {shape!r}") from None
    if y < 1 or x < 1:
        raise ValueError(f"shape must be positive, got ({y}, {x})")
    return y, x


def check_shape(shape, n_pixels: int) -> tuple[int, int]:
    """Validate an image shape (Y, X) against a pixel count."""
    y, x = parse_shape(shape)
    if y * x != n_pixels:
        raise ValueError(
            f"shape ({y}, {x}) has {y * x} pixels but there are {n_pixels} spectra; "
            f"choose Y and X with Y * X = {n_pixels}"
        )
    return y, x


def to_byx(array, axes: str, shape=None, pixel_order: str = "C") -> np.ndarray:
    """Rearrange a stored array into float32 ``(B, Y, X)``.

    ``axes`` names the stored axes ("yxb", "nb", ...). 2-D matrices need ``shape`` (Y, X) and
    the order the pixels were flattened in ("C": row by row, "F": column by column). A float32
    array already in ``(B, Y, X)`` order is returned as it is (a memory map stays one);
    everything else is copied once into a C-contiguous float32 array.
    """
    if len(axes) == 2:
        y, x = shape
        bands = array.T if axes == "nb" else array
        if pixel_order == "F":
            arranged = bands.reshape(bands.shape[0], x, y).transpose(0, 2, 1)
        else:
            arranged = bands.reshape(bands.shape[0], y, x)
    else:
        arranged = np.transpose(array, [axes.index(c) for c in "byx"])
    if arranged.dtype == np.float32 and arranged.flags.c_contiguous:
        return arranged
    return copy_float32(arranged)


def copy_float32(array) -> np.ndarray:
    """A C-contiguous float32 copy, made band chunk by band chunk (bounded extra memory)."""
    out = np.empty(array.shape, dtype=np.float32)
    step = max(1, _CHUNK_BYTES // max(1, array[:1].size * 4))
    for start in range(0, array.shape[0], step):
        out[start : start + step] = array[start : start + step]
    return out


def count_nonfinite(data) -> tuple[int, int]:
    """(NaN count, Inf count), scanned band chunk by band chunk so memory maps stay cheap."""
    n_nan = n_inf = 0
    step = max(1, _CHUNK_BYTES // max(1, data[:1].size * data.dtype.itemsize))
    for start in range(0, data.shape[0], step):
        block = np.asarray(data[start : start + step])
        if block.dtype.kind != "f":
            continue
        n_nan += int(np.count_nonzero(np.isnan(block)))
        n_inf += int(np.count_nonzero(np.isinf(block)))
    return n_nan, n_inf


def parse_unit(label) -> str | None:
    """ "nm" or "1/cm" from an axis label such as 'rel. 1/cm', 'cm-1', 'Wavelength (nm)' (the rule
    is :func:`napari_deeper.provenance.spectral_unit`, the one every part of the package uses)."""
    return spectral_unit(label)


def placement(pixel_size, origin, units, axes) -> dict:
    """The metadata entries that place a cube's pixels: size and origin per axis, units, names."""
    return {
        "pixel_size": [float(v) for v in pixel_size],
        "origin": [float(v) for v in origin],
        "space_units": [str(u) for u in units],
        "space_axes": [str(a) for a in axes],
    }


def unplaced() -> dict:
    """:func:`placement` of a file that does not say where its pixels are: unit pixels from 0."""
    return placement((1.0, 1.0), (0.0, 0.0), ("pixel", "pixel"), ("y", "x"))
