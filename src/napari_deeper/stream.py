"""Streamed operations: results that would not fit in memory go block by block into a zarr store.

    import napari_deeper as nd
    from napari_deeper import stream
    cube = nd.load_cube("scan.zarr")                                # lazy: a dask array
    clean = stream.denoise(cube.data, wavenumbers=cube.wavenumbers) # the default denoiser, into a zarr store
    smooth = stream.denoise(cube.data, "savgol", window=11)         # a per-spectrum method
    hr = stream.upscale(clean, 2, "bicubic", out="scan_x2.zarr")    # a store of your choosing
    abundances = stream.nnls(hr, endmembers)
    pre = stream.preprocess(cube.data, cube.wavenumbers, despike=8.0, baseline=3)  # .data: the store

**The rule** (:func:`should_stream`): an operation streams when its input is lazy (a dask
array, e.g. a zarr store or a large ``.npy`` / v7.3 file opened lazily) or when its result would
take more than a quarter of the RAM; ``stream=True`` / ``False`` forces the choice. Otherwise it
is the plain in-memory call of the same method and returns a NumPy array.

A streamed run reads one block of pixels (every band of a few 64 x 64 tiles) at a time, runs the
method's own public ``*_steps`` function on it, and writes the block's result into the store
(:class:`napari_deeper.io._zarr.StoreWriter`); upscaling reads each tile with a margin of
:data:`MARGIN` pixels so the spline's reach is inside the tile and the seams vanish. Progress is
reported per block and inside it, so cancelling (closing the generator) stops at the next step;
a cancelled or failed run removes its partial store, and a full disk raises a ValueError that
says so (before the start when the free space is already short of the result's size: streamed
stores are uncompressed). Without ``out=``, stores go to :func:`scratch_folder`.

Streamed methods are those whose result at a pixel depends on that pixel's spectrum (or, for
upscaling, on a bounded neighbourhood), given what they fit on the whole cube first from reads
that stay bounded: Savitzky-Golay, Whittaker and wavelet denoising and the per-spectrum networks
as trained (``resunet``, ``aunet``, every saved ``task: denoise`` model, ``adapt="off"``), with ``auto`` parameters
calibrated on evenly spaced sampled spectra and ``stabilise``'s noise model read from strips of
rows (the transform is then applied to each block as it is read, its inverse to each result);
nearest / bilinear / bicubic upscaling, NNLS / FCLS abundances and band maps (and VCA, which
reads a lazy cube block by block itself: :func:`unmix_steps` streams only the spike removal
before it); and spectral preprocessing (crop, NaN / Inf filling, baseline, per-spectrum
normalisation; despiking reads each block with a one-pixel halo, its noise floor from the
cube's largest value found in a first pass; ``cube-max`` / ``cube-minmax`` are refused). PCA
and the default denoiser, ``hybrid``, are fitted on the whole cube through statistics gathered block by
block: PCA's rank (evened noise, Gavish-Donoho or bi-cross-validation on sampled spectra), mean
and ``B x B`` Gram matrix each take a pass over pixel blocks, its reconstruction another. The
hybrid's noise model reads evenly spaced strips of rows, its noise scaling, subspace and
component scores one pass each over pixel blocks (read as float32 from the lazy input, never the
cube whole; at most :data:`~napari_deeper.io._lazy.LAZY_BLOCK_BYTES` of input each),
and both reconstructions go into the store by whole rows of tiles (:class:`PixelRows`). Besides
one block (and the row of input chunks it lies in) the hybrid holds its component images,
``components x pixels`` float32: 0.16 GiB for 1024 x 1024 pixels at the default
``max_components`` of 40, 0.62 GiB for 2048 x 2048. Their noise variances, as large again, wait
on disk (:func:`spilled`, beside the store) from the score pass to the spatial step (measured
peaks in docs/benchmarks.md). Results equal the in-memory ones to the bit when the pixel blocks
are the same (a cube of at most one lazy block, 16 777 spectra of 500 bands), and to float32
rounding otherwise (sums over blocks taken in another order). ``n2s`` gathers its noise model,
subspace and component images the same way, trains its network on the component images in
memory and writes its back projection by rows of tiles; an adapting per-spectrum network
(``adapt="auto"``, their default) gathers its noise model and subspace the same way, reads its
training sample (at most 16 384 spectra) spectrum by spectrum, and writes its result block by
block. The super-resolution networks take
their basis and component images (``components x pixels`` float32) from two passes over pixel
blocks, adapt to the cube on those images, self-check on its central 256 x 256 pixels, and
write their result block by block of whole network tiles; when the self-check picks the
network on the denoised cube, the default denoiser streams into a scratch store first, removed
when the run ends.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .compute import Progress, Steps, chunks, run, share, stage
from .io._lazy import is_lazy, lazy_threshold
from .io._zarr import TILE, StoreWriter, chunk_shape, open_result
from .superres.interpolation import MARGIN

#: Normalisations that stream: one factor per spectrum (the cube-wide ones need the finished cube).
NORMALISERS = ("max", "minmax", "vector", "area")
#: Input pixels along each side of an upscaled tile (the margin's share of the work falls with
#: it, the interpolation matrices' cost grows with it).
UPSCALE_TILE = 128
#: Bytes of input read per block (every band of whole 64 x 64 tiles along a row of tiles).
BLOCK_BYTES = 96 << 20
#: Environment variable naming the folder for streamed results made without ``out=``.
SCRATCH_ENV = "NAPARI_DEEPER_SCRATCH"


def scratch_folder() -> Path:
    """Where streamed results without ``out=`` go: ``$NAPARI_DEEPER_SCRATCH``, else the user cache
    folder (``platformdirs``), ``.../napari-deeper/streamed``; created when missing."""
    given = os.environ.get(SCRATCH_ENV)
    if given:
        folder = Path(given)
    else:
        from platformdirs import user_cache_path

        folder = user_cache_path("napari-deeper") / "streamed"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def should_stream(data, out_shape, stream=None) -> bool:
    """The rule: True for a lazy input or a float32 result over a quarter of the RAM (or as forced)."""
    if stream not in (None, True, False):
        raise ValueError(f"stream must be True, False or None (automatic); got {stream!r}")
    if stream is not None:
        return stream
    return is_lazy(data) or int(np.prod(out_shape)) * 4 > lazy_threshold()


def _cube_shape(data) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in getattr(data, "shape", ()))
    if len(shape) != 3 or 0 in shape:
        raise ValueError(f"data must be a non-empty 3-D (bands, y, x) cube, got shape {shape}")
    if np.dtype(data.dtype).kind not in "iuf":
        raise ValueError(f"data must hold real numbers (integers or floats), got dtype {data.dtype}")
    return shape


def _destination(out, name: str) -> Path:
    if out is not None:
        return Path(out)
    return scratch_folder() / f"{name}-{uuid.uuid4().hex[:10]}.zarr"


def _read(data, where) -> np.ndarray:
    """One block of ``data`` in memory as a C-contiguous float32 array (a dask array computes only
    its chunks; a strided view of a NumPy cube is copied, which the matrix products need for speed)."""
    return np.ascontiguousarray(data[where], dtype=np.float32)


def _column_groups(n_cols: int, tile: int, n_bands: int, rows: int) -> list[slice]:
    """Column ranges of whole tiles whose every band of ``rows`` rows fits :data:`BLOCK_BYTES`."""
    per_tile = n_bands * rows * tile * 4
    return list(chunks(n_cols, tile * max(1, BLOCK_BYTES // max(1, per_tile))))


def streamed_steps(out_shape, block_steps, *, out=None, name: str = "result", wavenumbers=None,
                   record: dict | None = None, label: str = "", in_bands: int = 1, scale: int = 1,
                   side: int | None = None) -> Steps:
    """Fill a zarr store of ``out_shape`` block by block; return it as a lazy dask array.

    ``block_steps(rows, cols)`` is a ``*_steps`` generator returning the result of the input
    pixels ``rows`` x ``cols`` (output pixels ``scale`` times as many along each axis). Blocks
    are rows of :data:`TILE` input pixels, as wide as :data:`BLOCK_BYTES` of input allows; when
    upscaling (``scale`` > 1), square tiles of :data:`UPSCALE_TILE` input pixels (the
    interpolation's cost per pixel grows with the tile's side), or of ``side`` when given.
    """
    path = _destination(out, name)
    rows_in, cols_in = (int(n) // scale for n in out_shape[-2:])
    with StoreWriter(path, out_shape, wavenumbers=wavenumbers, record=record, chunks=chunk_shape(out_shape),
                     compress=False, overwrite=False) as writer:  # (uncompressed: no CPU spent on noise)
        side = side or (TILE if scale == 1 else UPSCALE_TILE)
        groups = _column_groups(cols_in, side, in_bands, side) if scale == 1 else list(chunks(cols_in, side))
        blocks = [(rows, cols) for rows in chunks(rows_in, side) for cols in groups]
        total = rows_in * cols_in
        done = 0
        yield Progress(0, total, label)
        for rows, cols in blocks:
            weight = (rows.stop - rows.start) * (cols.stop - cols.start)
            block = yield from share(block_steps(rows, cols), done, weight, total, label)
            where = (*(slice(None),) * (len(out_shape) - 2),
                     slice(rows.start * scale, rows.stop * scale), slice(cols.start * scale, cols.stop * scale))
            writer.write(where, block)
            done += weight
        writer.commit()
    return open_result(path)


# --- operations ------------------------------------------------------------------------------


def denoise_steps(data, method: str | None = None, wavenumbers=None, device=None, *, out=None, stream=None,
                  **params) -> Steps:
    """:func:`napari_deeper.denoise.denoise_steps` (the default method when ``method`` is None),
    streamed by the rule of :func:`should_stream`."""
    from .denoise import DEFAULT, FAMILY
    from .denoise import denoise_steps as plain

    method = DEFAULT if method is None else method
    shape = _cube_shape(data)
    if not should_stream(data, shape, stream):
        return (yield from plain(np.asarray(data), method, wavenumbers, device, **params))
    chosen, checked = FAMILY.check(method, params)
    if chosen.name == "hybrid":
        return (yield from _hybrid_steps(data, shape, wavenumbers, checked, out))
    if chosen.name == "pca":
        return (yield from _pca_steps(data, shape, wavenumbers, checked, out))
    if chosen.name == "n2s" or (chosen.kind == "network" and checked.get("adapt", "auto") != "off"):
        return (yield from _trained_steps(data, chosen, shape, wavenumbers, device, checked, out))
    # every other denoiser works per spectrum (savgol, whittaker, wavelet, every saved task: denoise network)
    from .denoise.calibrate import calibrated_steps
    from .denoise.vst import stabiliser_steps

    record = {"operation": "denoise", "method": chosen.name, "params": _plain(checked)}
    stabilise, auto = checked.pop("stabilise", "off"), checked.pop("auto", False)
    transform, noise = yield from stabiliser_steps(data, stabilise)
    if auto:
        checked = yield from calibrated_steps(chosen.name, _transformed(data, transform), noise, checked)

    def block(rows, cols):
        values = _read(data, (slice(None), rows, cols))
        if transform is not None:
            values = transform.forward(values)
        result = yield from plain(values, chosen.name, wavenumbers, device, **checked)
        return result if transform is None else transform.inverse(result)

    return (yield from streamed_steps(shape, block, out=out, name=f"denoise-{chosen.name}", wavenumbers=wavenumbers,
                                      record=record, label=f"{chosen.name} (streamed)", in_bands=shape[0]))


def _transformed(data, transform):
    """``data`` through the stabilising ``transform`` (None: as it is), as a lazy array computed
    chunk by chunk when read (a cube in memory is wrapped, not transformed whole)."""
    if transform is None:
        return data
    import dask.array as da

    lazy = data if is_lazy(data) else da.from_array(data, chunks=chunk_shape(data.shape))
    return lazy.map_blocks(transform.forward, dtype=np.float32)


def _pca_steps(data, shape, wavenumbers, params: dict, out) -> Steps:
    """PCA denoising streamed: its rank (when automatic), mean and Gram matrix from passes over
    pixel blocks, its reconstruction into the store by rows of tiles (through the inverse
    transform when ``stabilise`` calls for one). It holds one block and the ``B x B`` matrix."""
    from .denoise.classical import pca_steps
    from .denoise.vst import stabiliser_steps

    record = {"operation": "denoise", "method": "pca", "params": _plain(params)}
    transform, _noise = yield from stabiliser_steps(data, params["stabilise"])
    source = _transformed(data if is_lazy(data) else np.asarray(data), transform)

    def fill(target, _spill):
        return pca_steps(source, params["n_components"], params["rank_rule"], target=target)

    return (yield from _filled_steps(shape, fill, out=out, name="denoise-pca", wavenumbers=wavenumbers, record=record,
                                     label="pca (streamed)", convert=None if transform is None else transform.inverse))


def _hybrid_steps(data, shape, wavenumbers, params: dict, out) -> Steps:
    """The default denoiser streamed: its passes read the cube block by block (a lazy cube's
    :class:`~napari_deeper.io._lazy.FlatPixels`), its reconstruction goes into the store row of
    tiles by row of tiles (:class:`PixelRows`). What it holds besides one block is its
    component images (components x pixels, float32); their noise variances wait on disk."""
    from ._validation import as_cube, as_wavenumbers
    from .denoise.hybrid import hybrid_steps

    as_wavenumbers(wavenumbers, shape[0])
    cube = data if is_lazy(data) else as_cube(data, "data")
    record = {"operation": "denoise", "method": "hybrid", "params": _plain(params)}

    def fill(target, spill):
        return hybrid_steps(cube, wavenumbers, None, target=target, spill=spill, **params)

    return (yield from _filled_steps(shape, fill, out=out, name="denoise-hybrid", wavenumbers=wavenumbers,
                                     record=record, label="hybrid (streamed)"))


def _trained_steps(data, chosen, shape, wavenumbers, device, params: dict, out) -> Steps:
    """A denoiser that trains on the whole cube first, streamed: ``n2s`` (its noise model,
    subspace and scores from bounded reads and passes over pixel blocks, its network trained on
    the component images, held in memory, ``components x pixels`` float32, its back projection
    written by rows of tiles) or an adapting per-spectrum network (its subspace the same way, its
    training sample read spectrum by spectrum, its result written block by block)."""
    record = {"operation": "denoise", "method": chosen.name, "params": _plain(params)}

    def fill(target, _spill):
        return chosen.steps(data, wavenumbers=wavenumbers, device=device, target=target, **params)

    return (yield from _filled_steps(shape, fill, out=out, name=f"denoise-{chosen.name}", wavenumbers=wavenumbers,
                                     record=record, label=f"{chosen.name} (streamed)"))


def _filled_steps(shape, fill, *, out, name: str, wavenumbers, record: dict, label: str, convert=None) -> Steps:
    """A store filled in pixel order by ``fill(target, spill)``: a method's steps writing
    ``target[:, sl] = block`` for consecutive slices of pixels into a :class:`PixelRows` (the
    values through ``convert`` first, when given), with ``spill`` from :func:`spilled` (beside
    the store); returns the store as a lazy array."""
    path = _destination(out, name)
    with StoreWriter(path, shape, wavenumbers=wavenumbers, record=record, chunks=chunk_shape(shape),
                     compress=False, overwrite=False) as writer:
        rows = PixelRows(writer, shape, convert)
        pixels = shape[1] * shape[2]
        with spilled(writer.partial.with_name(writer.partial.name + ".spill")) as spill:
            yield from share(fill(rows, spill), 0, pixels, pixels, label)
        if not rows.complete:
            raise RuntimeError(f"the streamed {name} run wrote {rows.first} of {shape[1]} rows")
        writer.commit()
    return open_result(path)


@contextmanager
def spilled(folder: Path):
    """``spill(shape, block)``: float32 arrays kept on disk in ``folder`` (uncompressed zarr, one
    chunk per row and ``block`` columns), for a streamed run's intermediate results; the folder
    is removed when the block ends, also on an error or a cancel."""
    import zarr

    made = []

    def spill(shape, block: int):
        store = zarr.open_group(str(folder), mode="a")
        made.append(store.create_array(str(len(made)), shape=shape, chunks=(1, int(block)), dtype="float32",
                                       compressors=None, fill_value=0.0))
        return made[-1]

    try:
        yield spill
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class PixelRows:
    """A ``(B, Y * X)`` target of consecutive pixel slices that writes a store by whole rows of tiles.

    ``rows[:, sl] = block`` takes the next pixels in row-major order; every :data:`TILE` rows
    complete (every shard of them whole) go to the :class:`StoreWriter` at once, so no shard is
    written twice. Holds one row of tiles (``B x TILE x X`` float32) from the first write to
    the last. ``convert`` (optional) maps each written block's values first (an inverse
    transform).
    """

    def __init__(self, writer: StoreWriter, shape, convert=None):
        self.writer = writer
        self.convert = convert
        n_bands, self.rows, self.cols = (int(n) for n in shape)
        self.shape = (n_bands, self.rows * self.cols)
        self.buffer = None
        self.first = 0  # the buffer's first row
        self.filled = 0  # pixels of the buffer filled

    @property
    def complete(self) -> bool:
        return self.first == self.rows

    def __setitem__(self, where, values) -> None:
        start, stop, _ = where[1].indices(self.shape[1])
        if start != self.first * self.cols + self.filled:
            raise ValueError(f"pixels are written in order: expected pixel {self.first * self.cols + self.filled}, "
                             f"got {start}")
        values = np.asarray(values) if self.convert is None else self.convert(values)
        if self.buffer is None:
            self.buffer = np.empty((self.shape[0], min(TILE, self.rows) * self.cols), dtype=np.float32)
        done = 0
        while done < stop - start:
            height = min(TILE, self.rows - self.first)
            take = min(height * self.cols - self.filled, stop - start - done)
            self.buffer[:, self.filled : self.filled + take] = values[:, done : done + take]
            self.filled += take
            done += take
            if self.filled == height * self.cols:
                block = self.buffer[:, : self.filled].reshape(self.shape[0], height, self.cols)
                self.writer.write((slice(None), slice(self.first, self.first + height), slice(None)), block)
                self.first += height
                self.filled = 0
        if self.complete:
            self.buffer = None


def upscale_steps(data, scale: int = 2, method: str = "bicubic", device=None, *, out=None, stream=None,
                  **params) -> Steps:
    """:func:`napari_deeper.superres.upscale_steps`, streamed by the rule of :func:`should_stream`.

    Interpolation (nearest, bilinear, bicubic) reads each tile with a :data:`MARGIN`; the networks
    (``hyrisr``, ``srresnet``, saved ``task: superres`` models, with their ``params``) run their
    streamed pipeline (:func:`napari_deeper.superres.deep.network_upscale_steps`), whose
    denoised version of the cube, when the self-check picks it, goes into a scratch store
    removed when the run ends.
    """
    from .superres import FAMILY, check_scale, check_size
    from .superres import upscale_steps as plain

    scale = check_scale(scale)
    b, ny, nx = _cube_shape(data)
    out_shape = (b, ny * scale, nx * scale)
    if not should_stream(data, out_shape, stream):
        return (yield from plain(np.asarray(data), scale, method, device=device, **params))
    chosen, checked = FAMILY.check(method, {"scale": scale, **params})
    check_size((b, ny, nx), scale)
    if chosen.kind == "network":
        return (yield from _network_upscale_steps(data, chosen, checked, device, out))
    name = chosen.name

    def block(rows, cols):
        top, left = max(0, rows.start - MARGIN), max(0, cols.start - MARGIN)
        bottom, right = min(ny, rows.stop + MARGIN), min(nx, cols.stop + MARGIN)
        tile = _read(data, (slice(None), slice(top, bottom), slice(left, right)))
        big = yield from plain(tile, scale, name)
        y0, x0 = (rows.start - top) * scale, (cols.start - left) * scale
        return big[:, y0 : y0 + (rows.stop - rows.start) * scale, x0 : x0 + (cols.stop - cols.start) * scale]

    record = {"operation": "upscale", "method": name, "scale": scale}
    return (yield from streamed_steps(out_shape, block, out=out, name=f"upscale-{name}-x{scale}", record=record,
                                      label=f"{name} x{scale} (streamed)", in_bands=b, scale=scale))


def restore_steps(data, scale: int = 2, denoise_method: str | None = None, upscale_method: str | None = None,
                  wavenumbers=None, device=None, exposure_ratio: float | None = None, upscale_params: dict | None = None,
                  *, stream=None) -> Steps:
    """:func:`napari_deeper.superres.restore_steps` (Fast scan restore), streamed by the rule of
    :func:`should_stream`: the denoised cube and the upscaled one each go into a store (in
    :func:`scratch_folder`); a cancel or a failure leaves neither."""
    from .superres import RestoreResult, restore_choice_steps, restore_plan
    from .superres import restore_steps as plain

    b, ny, nx = _cube_shape(data)
    plan = restore_plan((b, ny, nx), scale, denoise_method, upscale_method, exposure_ratio, upscale_params)
    if not should_stream(data, (b, ny * plan["scale"], nx * plan["scale"]), stream):
        return (yield from plain(np.asarray(data), scale, denoise_method, upscale_method, wavenumbers, device,
                                 exposure_ratio, upscale_params))
    paths = [_destination(None, f"denoise-{plan['denoise_method']}"),
             _destination(None, f"upscale-{plan['upscale_method']}-x{plan['scale']}")]
    try:
        denoised = yield from stage(denoise_steps(data, plan["denoise_method"], wavenumbers, device, out=paths[0],
                                                  stream=True), 0, 3, "denoising")
        plan = yield from stage(restore_choice_steps(data, plan, device), 1, 3, "self-check on the scan")
        upscaled = yield from stage(upscale_steps(denoised, plan["scale"], plan["upscale_method"], device, out=paths[1],
                                                  stream=True, **plan["upscale_params"]), 2, 3, "super-resolving")
    except BaseException:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
        raise
    return RestoreResult(denoised, upscaled, **plan)


def _network_upscale_steps(data, chosen, params: dict, device, out) -> Steps:
    """A super-resolution network on a cube larger than memory (see :func:`upscale_steps`)."""
    from .io._lazy import from_array
    from .superres import network_steps
    from .superres.deep import Streamed

    params = dict(params)
    scale = params.pop("scale")
    lazy = data if is_lazy(data) else from_array(np.asarray(data), chunk_shape(data.shape))
    scratch = []
    record = {"operation": "upscale", "method": chosen.name, "scale": scale, "params": _plain(params)}

    def denoised(cube) -> Steps:
        scratch.append(_destination(None, "denoised"))
        try:
            return (yield from denoise_steps(cube, out=scratch[-1], stream=True))
        except ValueError:
            return None

    def interpolated(cube, factor, method) -> Steps:
        return upscale_steps(cube, factor, method, out=out, stream=True)

    def fill(shape, block_steps, side) -> Steps:
        return streamed_steps(shape, block_steps, out=out, name=f"upscale-{chosen.name}-x{scale}", record=record,
                              label=f"{chosen.name} x{scale} (streamed)", in_bands=shape[0], scale=scale, side=side)

    try:
        return (yield from network_steps(chosen.model, lazy, scale, device, chosen.name,
                                         streamed=Streamed(denoised, interpolated, fill), **params))
    finally:
        for path in scratch:
            shutil.rmtree(path, ignore_errors=True)


def nnls_steps(data, endmembers, sum_to_one: bool = False, device=None, *, out=None, stream=None) -> Steps:
    """:func:`napari_deeper.unmix.nnls` abundances ``(k, Y, X)``, streamed by pixel blocks."""
    from .unmix.abundances import check_endmembers
    from .unmix.abundances import nnls_steps as plain

    b, ny, nx = _cube_shape(data)
    em = check_endmembers(endmembers, b)
    out_shape = (em.shape[0], ny, nx)
    if not should_stream(data, out_shape, stream):
        return (yield from plain(np.asarray(data), em, sum_to_one, device))

    def block(rows, cols):
        return plain(_read(data, (slice(None), rows, cols)), em, sum_to_one, device)

    what = "FCLS" if sum_to_one else "NNLS"
    record = {"operation": "nnls", "sum_to_one": bool(sum_to_one), "endmembers": em.tolist()}
    return (yield from streamed_steps(out_shape, block, out=out, name=what.lower(), record=record,
                                      label=f"{what} (streamed)", in_bands=b))


def band_map_steps(data, wavenumbers=None, center: float = 1450.0, width: float = 30.0, mode: str = "area",
                   baseline: bool = False, *, out=None, stream=None) -> Steps:
    """:func:`napari_deeper.band_map`, streamed: a ``(Y, X)`` store filled by pixel blocks."""
    from .spectral import band_map_steps as plain

    b, ny, nx = _cube_shape(data)
    if not should_stream(data, (ny, nx), stream):
        return (yield from plain(np.asarray(data), wavenumbers, center, width, mode, baseline))

    def block(rows, cols):
        return plain(data[:, rows, cols], wavenumbers, center, width, mode, baseline)

    record = {"operation": "band_map", "center": float(center), "width": float(width), "mode": mode,
              "baseline": bool(baseline)}
    return (yield from streamed_steps((ny, nx), block, out=out, name="band-map", record=record,
                                      label=f"band {center:g} (streamed)", in_bands=b))


def preprocess_steps(data, wavenumbers=None, crop=None, fill=None, despike=None, baseline=None, normalise=None, *,
                     out=None, stream=None) -> Steps:
    """:func:`napari_deeper.spectral.preprocess_steps`, streamed by the rule of :func:`should_stream`.

    The crop slices the kept bands off the lazy cube; every pixel block is then filled,
    despiked, baseline-corrected and normalised by the in-memory functions, so the result equals
    the in-memory one bit for bit. Despiking reads each block with a one-pixel halo (the reach
    of its 3 x 3 spatial median) and takes its noise floor from the whole cube's largest absolute
    value, found in a first pass over the cropped and filled cube. ``cube-max`` and
    ``cube-minmax`` are refused: their one factor is a statistic of the finished cube, known
    only after the whole chain has run (streaming would run it twice). Returns a
    :class:`~napari_deeper.spectral.Preprocessed` whose ``data`` is a dask array over the store.
    """
    from ._validation import as_cube, check_method
    from .spectral.bands import crop_slice, spectral_axis
    from .spectral.preprocess import NORMALISATIONS, Preprocessed, fill_nonfinite, find_spikes
    from .spectral.preprocess import preprocess_steps as plain

    n_bands, ny, nx = _cube_shape(data)
    bands = slice(None) if crop is None else crop_slice(wavenumbers, n_bands, *crop)
    kept = len(range(*bands.indices(n_bands)))
    if not should_stream(data, (kept, ny, nx), stream):
        return (yield from plain(data, wavenumbers, crop, fill, despike, baseline, normalise))
    if normalise is not None and check_method(normalise, NORMALISATIONS) not in NORMALISERS:
        raise ValueError(
            f"normalising with {normalise!r} divides by a statistic of the whole preprocessed cube and cannot "
            f"stream block by block; streamed normalisations (per spectrum): {', '.join(NORMALISERS)}"
        )
    cube = data[bands]
    if crop is not None and wavenumbers is not None:
        wavenumbers = spectral_axis(wavenumbers, n_bands)[bands].copy()
    # the in-memory run checks for NaN / Inf (unless filled) and huge values, except a crop alone
    checked = crop is None or any(step is not None for step in (despike, baseline, normalise))

    def load(rows, cols) -> np.ndarray:
        tile = _read(cube, (slice(None), rows, cols))
        as_cube(tile, f"data (rows {rows.start}-{rows.stop - 1}, columns {cols.start}-{cols.stop - 1})",
                allow_nonfinite=fill is not None or not checked, check_range=checked)
        return tile

    def peak_steps() -> Steps[float]:
        """The largest absolute value of the cropped and filled cube, block by block."""
        blocks = [(rows, cols) for rows in chunks(ny, TILE) for cols in _column_groups(nx, TILE, kept, TILE)]
        peak = 0.0
        yield Progress(0, len(blocks), "largest value")
        for index, (rows, cols) in enumerate(blocks):
            tile = load(rows, cols)
            peak = max(peak, float(np.abs(tile if fill is None else fill_nonfinite(tile, fill)[0]).max()))
            yield Progress(index + 1, len(blocks), "largest value")
        return peak

    replaced = {"fill": 0, "despike": 0}
    later: list[dict] = []  # the baseline and normalise steps, as the in-memory run of a block lists them

    def block(rows, cols):
        near = (_with_halo(rows, ny), _with_halo(cols, nx)) if despike is not None else (rows, cols)
        tile = load(*near)
        core = (slice(None), *(slice(a.start - b.start, a.stop - b.start) for a, b in zip((rows, cols), near)))
        if fill is not None:
            replaced["fill"] += int(np.count_nonzero(~np.isfinite(tile[core])))
            tile, _ = fill_nonfinite(tile, fill)
        if despike is not None:
            mask, replacement = find_spikes(tile, despike, peak=peak)
            tile = np.where(mask, replacement, tile)  # (a new array: a block of a NumPy input may be a view of it)
            replaced["despike"] += int(mask[core].sum())
        tile = tile[core]
        if baseline is None and normalise is None:
            return tile
        rest = yield from plain(tile, wavenumbers, baseline=baseline, normalise=normalise)
        later[:] = rest.steps
        return rest.data

    label = "preprocess (streamed)"
    # progress in tenths of pixels: the first pass only reads, about a tenth of a despiking pass (measured)
    pixels = ny * nx
    first = pixels if despike is not None else 0
    peak = (yield from share(peak_steps(), 0, first, 10 * pixels, label)) if first else None
    params = {"crop": None if crop is None else [None if end is None else float(end) for end in crop], "fill": fill,
              "despike": despike, "baseline": baseline, "normalise": normalise}
    record = {"operation": "preprocess", "method": "standard", "params": _plain(params)}
    result = yield from share(streamed_steps((kept, ny, nx), block, out=out, name="preprocess",
                                             wavenumbers=wavenumbers, record=record, label=label, in_bands=kept),
                              first, 10 * pixels - first, 10 * pixels)
    steps = []
    if crop is not None:
        steps.append({"step": "crop", "start": crop[0], "stop": crop[1], "bands": kept})
    if fill is not None:
        steps.append({"step": "fill", "value": fill, "replaced": replaced["fill"]})
    if despike is not None:
        steps.append({"step": "despike", "threshold": despike, "replaced": replaced["despike"]})
    return Preprocessed(result, wavenumbers, steps + later)


def _with_halo(span: slice, n: int) -> slice:
    """``span`` of an axis of ``n`` pixels widened by the one pixel of the 3 x 3 spatial median's
    reach on each side, and to at least 3 pixels where the axis has them (a narrower block would
    take the spectral spike test alone, which the whole cube does not)."""
    stop = min(n, span.stop + 1)
    return slice(max(0, min(span.start - 1, stop - 3)), stop)


def preprocess(data, wavenumbers=None, crop=None, fill=None, despike=None, baseline=None, normalise=None, *,
               out=None, stream=None):
    """:func:`preprocess_steps` run to the end."""
    return run(preprocess_steps(data, wavenumbers, crop, fill, despike, baseline, normalise, out=out, stream=stream))


def unmix_steps(source, targets: dict, n_endmembers=None, endmembers=None, *, despike=None, **options) -> Steps:
    """:func:`napari_deeper.unmix.unmix_steps`, with the spike removal of a lazy source streamed.

    VCA and the abundances read lazy cubes block by block themselves; removing cosmic-ray
    spikes before VCA needs each value's 3 x 3 neighbours, so a lazy source is despiked first
    into a scratch store (:func:`preprocess_steps`), which VCA then reads and which is removed
    when the run ends (finished, failed or cancelled). The result equals the in-memory run's.
    """
    from .unmix import unmix_steps as plain
    from .unmix.pipeline import checked_inputs

    if despike is None or endmembers is not None or not is_lazy(source):
        return (yield from plain(source, targets, n_endmembers, endmembers, despike=despike, **options))
    checked_inputs(source, targets, n_endmembers, endmembers)  # (every input before any work)
    name = options.get("source_name")
    label = "source" if name is None else f"source {name!r}"
    path = _destination(None, "despiked")
    try:
        try:
            cleaned = yield from share(preprocess_steps(source, despike=despike, out=path, stream=True), 0, 1, 2,
                                       "removing spikes")
        except ValueError as error:
            raise ValueError(f"{label}: {error}") from error
        result = yield from share(plain(cleaned.data, targets, n_endmembers, endmembers, **options), 1, 1, 2)
    finally:
        shutil.rmtree(path, ignore_errors=True)
    result.spikes_removed = next(step["replaced"] for step in cleaned.steps if step["step"] == "despike")
    result.params["despike"] = despike
    return result


def denoise_many_steps(data, jobs: dict[str, dict], wavenumbers=None, device=None) -> Steps[dict]:
    """The Denoise dock's run: :meth:`Family.many_steps` in memory, or every job streamed."""
    from .denoise import FAMILY

    return (yield from _many_steps(
        FAMILY, data, jobs, wavenumbers, device, lambda shape: shape,
        lambda name, params, out: denoise_steps(data, name, wavenumbers, device, out=out, stream=True, **params),
    ))


def upscale_many_steps(data, jobs: dict[str, dict], wavenumbers=None, device=None) -> Steps[dict]:
    """The Super-resolve dock's run (jobs ``{method: {"scale": f, ...}}``), in memory or streamed."""
    from .superres import FAMILY

    largest = max((int(params.get("scale", 2)) for params in jobs.values()), default=2)
    return (yield from _many_steps(
        FAMILY, data, jobs, wavenumbers, device, lambda shape: (shape[0], shape[1] * largest, shape[2] * largest),
        lambda name, params, out: upscale_steps(data, method=name, device=device, out=out, stream=True, **params),
    ))


def _many_steps(family, data, jobs: dict[str, dict], wavenumbers, device, result_shape, streamed) -> Steps[dict]:
    """``family.many_steps`` in memory, or every job streamed by ``streamed(name, params, out)``.

    Returns ``{method: result}``; streamed results are dask arrays over their stores (in
    :func:`scratch_folder`). A cancel or a failure leaves no store behind: those of the jobs
    already complete are removed too.
    """
    import shutil

    from .compute import many

    shape = getattr(data, "shape", ())
    if len(shape) != 3 or not should_stream(data, result_shape(shape)):  # (the in-memory run says what is wrong)
        return (yield from family.many_steps(np.asarray(data), jobs, wavenumbers, device))
    for name, params in jobs.items():
        family.check(name, params)
    n = len(jobs)
    outs = {name: _destination(None, f"{family.name}-{name}") for name in jobs}
    try:
        results = yield from many(
            (f"{name} ({index + 1}/{n})", streamed(name, params, outs[name]))
            for index, (name, params) in enumerate(jobs.items())
        )
    except BaseException:
        for path in outs.values():
            shutil.rmtree(path, ignore_errors=True)
        raise
    return dict(zip(jobs, results))


def _plain(params: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}


def denoise(data, method: str | None = None, wavenumbers=None, device=None, *, out=None, stream=None, **params):
    """:func:`denoise_steps` run to the end."""
    return run(denoise_steps(data, method, wavenumbers, device, out=out, stream=stream, **params))


def upscale(data, scale: int = 2, method: str = "bicubic", device=None, *, out=None, stream=None, **params):
    """:func:`upscale_steps` run to the end."""
    return run(upscale_steps(data, scale, method, device, out=out, stream=stream, **params))


def restore(data, scale: int = 2, denoise_method: str | None = None, upscale_method: str | None = None,
            wavenumbers=None, device=None, exposure_ratio: float | None = None, upscale_params: dict | None = None,
            *, stream=None):
    """:func:`restore_steps` run to the end: a :class:`~napari_deeper.superres.RestoreResult`."""
    return run(restore_steps(data, scale, denoise_method, upscale_method, wavenumbers, device, exposure_ratio,
                             upscale_params, stream=stream))


def nnls(data, endmembers, sum_to_one: bool = False, device=None, *, out=None, stream=None):
    """:func:`nnls_steps` run to the end."""
    return run(nnls_steps(data, endmembers, sum_to_one, device, out=out, stream=stream))


def band_map(data, wavenumbers=None, center: float = 1450.0, width: float = 30.0, mode: str = "area",
             baseline: bool = False, *, out=None, stream=None):
    """:func:`band_map_steps` run to the end."""
    return run(band_map_steps(data, wavenumbers, center, width, mode, baseline, out=out, stream=stream))


def unmix(source, targets: dict, n_endmembers=None, endmembers=None, **options):
    """:func:`unmix_steps` run to the end: a :class:`~napari_deeper.unmix.UnmixResult`."""
    return run(unmix_steps(source, targets, n_endmembers, endmembers, **options))
