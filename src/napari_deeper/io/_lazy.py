"""Lazy cubes: dask arrays over files that stay on disk, and the rule for when a cube is one.

A lazy cube is a ``(B, Y, X)`` float32 dask array whose chunks are read from the file only when a
slice is asked for (napari showing one band, a spectrum under the mouse, a streamed operation's
block). ``load_cube(lazy=None)`` opens a file lazily when its cube would take more than
:func:`lazy_threshold` bytes (a quarter of the machine's RAM); zarr stores always open lazily.
"""

from __future__ import annotations

import os

import numpy as np

#: Bytes of one chunk when a lazy cube is made over an unchunked array (a memory map, an HDF5
#: dataset stored contiguously).
CHUNK_BYTES = 64 << 20


def physical_memory() -> int:
    """Bytes of RAM in this machine (8 GiB when the system does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def lazy_threshold() -> int:
    """Cubes (and results) larger than this many bytes stay on disk: a quarter of the RAM."""
    return physical_memory() // 4


def is_lazy(array) -> bool:
    """Whether ``array`` is a dask array (read chunk by chunk when sliced)."""
    return type(array).__module__.split(".")[0] == "dask"


#: Float32 input bytes of one pixel block of a lazy cube at most: what a pass holds besides the
#: block (its float64 copies) stays near 0.2 GiB whatever the free memory, so a streamed run's
#: peak is set by what it keeps, not by its blocks.
LAZY_BLOCK_BYTES = 32 << 20


def lazy_block_pixels(n_bands: int) -> int:
    """Pixels per block when a lazy cube of ``n_bands`` is read by pixels: at most
    :data:`LAZY_BLOCK_BYTES` of float32 input (and at least 256 pixels)."""
    return max(256, LAZY_BLOCK_BYTES // (4 * int(n_bands)))


def as_cube_or_lazy(data, name: str = "data", **options):
    """A lazy (dask) ``(B, Y, X)`` cube as it is, else :func:`~napari_deeper._validation.as_cube`.

    A lazy cube's shape and dtype are checked here (with ``as_cube``'s messages); its values are
    checked block by block as they are read (:class:`FlatPixels`).
    """
    from .._validation import as_cube, check_real_dtype

    if not is_lazy(data):
        return as_cube(data, name, **options)
    if data.ndim != 3:
        raise ValueError(f"{name} must be a 3-D (bands, y, x) cube, got an array of shape {data.shape}")
    if data.size == 0:
        raise ValueError(f"{name} is empty (shape {data.shape})")
    check_real_dtype(data.dtype, name)
    return data


def wants_lazy(lazy, shape) -> bool:
    """``load_cube``'s ``lazy=`` rule: True / False as given, None above :func:`lazy_threshold`."""
    if lazy not in (None, True, False):
        raise ValueError(f"lazy must be True, False or None (automatic, by size); got {lazy!r}")
    if lazy is None:
        return int(np.prod(shape)) * 4 > lazy_threshold()
    return lazy


def from_array(array, chunks=None):
    """A dask array over ``array`` (memory map, HDF5 dataset, zarr array) without reading it.

    ``chunks`` defaults to the array's own shards (zarr) or chunks when it has any, else about
    :data:`CHUNK_BYTES` pieces along the first axis. A slice of the dask array reads only the
    stored chunks it needs (dask passes the slice down to the array).
    """
    import dask.array as da

    if chunks is None:
        chunks = getattr(array, "shards", None) or getattr(array, "chunks", None)
        if not (isinstance(chunks, tuple) and len(chunks) == len(array.shape)):
            row = int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize
            chunks = (max(1, CHUNK_BYTES // max(1, row)), *array.shape[1:])
    return da.from_array(array, chunks=chunks, lock=False, asarray=True, fancy=False)


def to_byx_lazy(array, axes: str):
    """A lazy ``(B, Y, X)`` float32 view of a dask array stored with 3-D ``axes`` ("yxb", ...)."""
    arranged = array.transpose([axes.index(c) for c in "byx"])
    return arranged if arranged.dtype == np.float32 else arranged.astype(np.float32)


#: How :class:`FlatPixels` computes a block: in the calling thread, one chunk after another (the
#: passes that read the blocks run one block at a time anyway).
SCHEDULER = "synchronous"


#: Bytes of the one row of chunks :class:`FlatPixels` keeps at most (a row of 64 x 64 shards of a
#: 2048-pixel-wide cube of 500 bands is 0.25 GiB).
ROW_CACHE_BYTES = 320 << 20


class FlatPixels:
    """The pixels of a lazy ``(B, Y, X)`` cube as a ``(B, Y * X)`` array read only block by block.

    ``flat[:, sl]`` (a slice of pixels, in row-major order) reads the rows that hold them and
    returns them as a float32 NumPy array, as ``cube.reshape(B, -1)[:, sl]`` would for a cube
    in memory. It keeps the row of the cube's chunks a block ended inside (when that holds at
    most :data:`ROW_CACHE_BYTES`) until a block reads it to its end, so consecutive blocks
    shorter than a chunk's height read every chunk once, not once per block (a zarr shard is
    read whole), and nothing is kept between passes. ``flat[:, index]`` (integer
    pixel indices) reads those spectra chunk by chunk (dask's ``vindex``). Every block read is
    checked for NaN, Inf and magnitudes beyond float32's safe range, which a cube in memory is
    refused for as a whole (:func:`napari_deeper._validation.as_cube`).
    """

    ndim = 2

    def __init__(self, cube):
        self.cube = cube
        self.dtype = np.dtype(np.float32)
        n_bands, self.rows, self.cols = (int(n) for n in cube.shape)
        self.shape = (n_bands, self.rows * self.cols)
        heights = cube.chunks[1]
        self.edges = np.concatenate([[0], np.cumsum(heights)]) if (
            max(heights) * self.cols * n_bands * 4 <= ROW_CACHE_BYTES) else None
        self.cached = (-1, None)  # (chunk row, its values)

    def _read(self, first: int, last: int) -> np.ndarray:
        """Rows ``first:last``, filled one column of chunks at a time (computing them at once
        held every chunk and the array they were joined into, twice the rows' size)."""
        rows = np.empty((self.shape[0], last - first, self.cols), dtype=np.float32)
        left = 0
        for width in self.cube.chunks[2]:
            piece = self.cube[:, first:last, left : left + width].compute(scheduler=SCHEDULER)
            rows[:, :, left : left + width] = piece
            left += width
        return rows

    def _rows(self, first: int, last: int) -> np.ndarray:
        """Rows ``first:last`` of the cube, float32 ``(B, rows, X)``, through the chunk-row cache."""
        if self.edges is None:
            return self._read(first, last)
        pieces = []
        k = int(np.searchsorted(self.edges, first, side="right")) - 1
        while self.edges[k] < last:
            top, bottom = int(self.edges[k]), int(self.edges[k + 1])
            if self.cached[0] != k:
                self.cached = (-1, None)  # (the previous row of chunks goes before the next is read)
                self.cached = (k, self._read(top, bottom))
            pieces.append(self.cached[1][:, max(first, top) - top : min(last, bottom) - top].copy())
            if last >= bottom:  # read to its end: a pass moves on (or is over), so nothing is kept
                self.cached = (-1, None)
            k += 1
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=1)

    def __getitem__(self, where) -> np.ndarray:
        bands, pixels = where
        if bands != slice(None):
            raise ValueError("FlatPixels reads every band of a block of pixels: flat[:, pixels]")
        if isinstance(pixels, slice):
            start, stop, step = pixels.indices(self.shape[1])
            if step != 1:
                raise ValueError("FlatPixels reads contiguous slices of pixels (step 1) or integer indices")
            first, last = start // self.cols, -(-stop // self.cols)
            rows = self._rows(first, last)
            offset = first * self.cols
            block = np.ascontiguousarray(rows.reshape(self.shape[0], -1)[:, start - offset : stop - offset])
        else:
            y, x = np.divmod(np.asarray(pixels, dtype=np.int64), self.cols)
            picked = self.cube.vindex[:, y, x].compute(scheduler=SCHEDULER)
            block = np.ascontiguousarray(np.asarray(picked, dtype=np.float32).T)
        from .._validation import check_finite, check_magnitude

        check_finite(block, "data")
        check_magnitude(float(np.abs(block).max(initial=0.0)), "data")
        return block
