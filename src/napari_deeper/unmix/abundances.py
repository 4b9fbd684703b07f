"""Exact per-pixel NNLS and FCLS abundances, vectorised over all pixels.

Every pixel ``y`` (a spectrum of ``B`` bands) is explained as ``E.T @ x`` with ``x >= 0`` (NNLS)
and, for FCLS, ``sum(x) == 1``. Both problems are solved *exactly*: the answer is the unique
minimiser of ``||E.T @ x - y||``, i.e. what ``scipy.optimize.nnls(E.T, y)`` returns, pixel by
pixel. The least-squares objective equals ``x @ G @ x / 2 - b @ x + const`` with the Gram matrix
``G = E @ E.T`` (k x k) and ``b = E @ y``, so after one pass over the data (``b`` for a chunk of
pixels, in float64) the whole problem lives in k dimensions.

Note the difference with solving ``nnls(G, b)`` (non-negative least squares *on* the normal
equations, as some libraries do): that minimises ``||G x - b||``, a different problem whose
answer is not the NNLS solution whenever a constraint is active.

* NNLS uses block principal pivoting (Kim & Park, SIAM J. Sci. Comput. 33, 2011) with the
  multiple-right-hand-side grouping of their "fast NNLS" (and of Van Benthem & Keenan 2004):
  pixels whose passive (non-zero) sets agree share one k x k system, solved once for all of them.
  It starts from the sign pattern of the unconstrained solution and usually needs 1-3 rounds.
* FCLS uses a primal active-set method (Lawson & Hanson's, with the sum-to-one equality kept in
  every subproblem through the bordered KKT system), grouped the same way.

Both run with numpy on the CPU or with torch on a GPU (the same code through a small backend
shim); pixels are processed in chunks so that memory stays bounded. On the CPU the chunks are
solved in parallel by our own threads, one per core, with BLAS held to one thread meanwhile
(threadpoolctl): BLAS's own threads on top of ours made the many thin products here 1.8 times
slower on an idle 2-core machine and up to 12 times on a busy one.

All arithmetic is float64. Data are float32 and endmembers are refused beyond float32's range, so
no product overflows (``B (3.4e38)^2`` is far inside float64); abundances or residuals that do
not fit the float32 output are refused with a ``ValueError``, never returned as Inf.
"""

from __future__ import annotations

import warnings
from contextlib import closing, nullcontext

import numpy as np

from .. import compute
from .._validation import as_cube, check_finite

#: Relative tolerance of the optimality (KKT) tests, against the pixel's own scale.
KKT_TOLERANCE = 1e-10
#: Largest number of endmembers: passive sets are packed into 63-bit integer codes.
MAX_ENDMEMBERS = 63
#: Pixels per chunk on the CPU (the active-set iterations work on a whole chunk at once).
CPU_CHUNK = 16384
#: Multiply-adds per BLAS call when computing ``E y`` on the CPU (see ``_NumpyOps.project``).
BLAS_WORK = 6e5
#: The largest value the float32 output can hold.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_endmembers(endmembers, n_bands: int) -> np.ndarray:
    """Return the endmembers as a float64 ``(k, n_bands)`` array, or raise a ``ValueError``."""
    if endmembers is None:
        raise ValueError("endmembers is None; expected a (components, bands) array")
    em = np.asarray(endmembers)
    if em.ndim == 1:
        em = em[None, :]
    if em.ndim != 2:
        raise ValueError(
            f"endmembers must be a 2-D (components, bands) array, got shape {em.shape}"
        )
    if not np.issubdtype(em.dtype, np.number) or np.iscomplexobj(em):
        raise ValueError(f"endmembers must hold real numbers, got dtype {em.dtype}")
    k, bands = em.shape
    if bands != n_bands:
        hint = " (transposed? expected components first)" if k == n_bands else ""
        raise ValueError(
            f"endmembers have {bands} bands but the data has {n_bands}{hint}; "
            "endmembers must be a (components, bands) array on the data's spectral axis"
        )
    if k == 0:
        raise ValueError("endmembers is empty: at least one component is needed")
    if k > MAX_ENDMEMBERS:
        raise ValueError(f"{k} endmembers given; at most {MAX_ENDMEMBERS} are supported")
    if k > n_bands:
        raise ValueError(
            f"{k} endmembers cannot be separated with only {n_bands} bands "
            "(the number of endmembers must not exceed the number of bands)"
        )
    em = em.astype(np.float64)
    bad = ~np.isfinite(em)
    if bad.any():
        rows = sorted(set(np.nonzero(bad)[0].tolist()))
        raise ValueError(
            f"endmembers contain {int(bad.sum())} NaN/Inf values (components {rows}); "
            "every endmember must be a finite spectrum"
        )
    largest = float(np.abs(em).max())
    if largest > FLOAT32_MAX:
        raise ValueError(
            f"endmembers hold values up to {largest:.3g}, beyond float32's range ({FLOAT32_MAX:.3g}); "
            "divide them by a constant (the abundances are then multiplied by it)"
        )
    norms = np.linalg.norm(em, axis=1)
    if np.any(norms == 0):
        zero = np.flatnonzero(norms == 0).tolist()
        raise ValueError(f"endmembers {zero} are all zero; every endmember needs a signal")
    singular = np.linalg.svd(em / norms[:, None], compute_uv=False)
    if singular[-1] < 1e-7 * singular[0]:
        raise ValueError(
            "the endmembers are linearly dependent (one is a combination of the others), so the "
            "abundances are not unique; remove duplicated or redundant components"
        )
    return em


def require_finite(cube: np.ndarray, name: str) -> None:
    """Raise the ``ValueError`` for a cube in which a computation met NaN or Inf."""
    check_finite(cube, name)  # counts the NaN and Inf values, when there are any
    raise ValueError(f"{name} holds values too large for float32 arithmetic (overflow)")


def nnls_steps(
    data,
    endmembers,
    sum_to_one: bool = False,
    device=None,
    return_residual: bool = False,
    chunk_size: int | None = None,
) -> compute.Steps:
    """Abundance maps ``(k, Y, X)`` of ``data`` ``(B, Y, X)``: exact NNLS (or FCLS) per pixel.

    Yields :class:`~napari_deeper.compute.Progress` after every chunk of pixels. Returns the
    float32 abundances, or ``(abundances, residual)`` when ``return_residual`` is set, where
    ``residual`` ``(Y, X)`` is the root-mean-square over bands of ``y - E.T @ x``.

    Pixels whose spectrum is all zero (e.g. masked background) get zero abundances, also with
    ``sum_to_one``. Negative data values are allowed (e.g. after baseline removal). Abundances
    (or residuals) beyond float32's range raise a ``ValueError`` saying how to rescale.

    ``device`` None/"auto" looks for a GPU only where one may be (see
    :func:`napari_deeper.compute.resolves_to_cpu`: without a sign of a GPU driver, and with torch
    not imported yet, it stays in numpy and does not import torch); "cpu" is numpy, "cuda"/"gpu"
    is torch on that device.

    ``data`` may be lazy (a dask array): it is then read one block of pixels at a time
    (:func:`_lazy_steps`) and only the maps are held, ``k + 1`` values per pixel.

    On the CPU, chunks are solved in parallel, one thread per core, with BLAS held to one thread
    (process-wide, :func:`napari_deeper.compute.one_blas_thread`) until the last chunk is done or the generator is
    closed (cancelled); closing it waits for the chunks already running, at most one per core.
    """
    from ..io._lazy import is_lazy

    if is_lazy(data):
        return (yield from _lazy_steps(data, endmembers, sum_to_one, device, return_residual, chunk_size))
    # NaN/Inf are caught chunk by chunk (they reach b = E y), and results too large for float32
    # after solving (the float64 arithmetic holds any float32 data), not by a pass over the data
    cube = as_cube(data, "data", allow_nonfinite=True, check_range=False)
    n_bands, ny, nx = cube.shape
    em = check_endmembers(endmembers, n_bands)
    k = em.shape[0]
    n_pixels = ny * nx
    flat = cube.reshape(n_bands, n_pixels)
    ops = _backend(device)
    size = chunk_size or ops.default_chunk(n_bands, k)
    abundances = np.empty((k, n_pixels), dtype=np.float32)
    residual = np.empty(n_pixels, dtype=np.float32) if return_residual else None
    em_dev = ops.asarray(em)
    gram = em_dev @ em_dev.T
    inverses = _PassiveSetInverses(ops, gram, bordered=sum_to_one)
    message = "FCLS abundances" if sum_to_one else "NNLS abundances"

    def solve_chunk(piece: slice) -> None:
        b, power = ops.project(flat[:, piece], em_dev, return_residual)
        if not ops.all_finite(b):
            require_finite(cube, "data")
        if sum_to_one:
            x = _fcls(ops, gram, b, inverses)
            # an all-zero spectrum holds no component: zero abundances, not a forced mixture
            x[:, ops.mask(~np.any(flat[:, piece], axis=0))] = 0
        else:
            x = _nnls(ops, gram, b, inverses)  # an all-zero spectrum has b = 0 and so x = 0
        _check_fits(ops.col_max(x), message)
        abundances[:, piece] = ops.to_numpy(x)
        if residual is not None:
            # ||y - E.T x||^2 = y.y - 2 b.x + x.G x: only k-sized work on top of y.y
            squared = power - 2 * (b * x).sum(0) + (x * (gram @ x)).sum(0)
            rms = (ops.clip_min(squared, 0) / n_bands) ** 0.5  # in float64: y.y may pass 3.4e38
            _check_fits(rms, "residuals")
            residual[piece] = ops.to_numpy(rms)

    yield compute.Progress(0, n_pixels, message)
    # chunks are independent: on the CPU, one per core runs at once in threads (numpy and BLAS
    # release the GIL), with BLAS held to one thread from the first chunk to the last; results
    # land in their own slices, progress is reported in order
    pieces = list(compute.chunks(n_pixels, size))
    with ops.threads(), closing(compute.ordered_map(solve_chunk, pieces, ops.workers)) as solved:
        for piece, _ in zip(pieces, solved):
            yield compute.Progress(piece.stop, n_pixels, message)
    abundances = abundances.reshape(k, ny, nx)
    if residual is None:
        return abundances
    return abundances, residual.reshape(ny, nx)


def _lazy_steps(data, endmembers, sum_to_one: bool, device, return_residual: bool, chunk_size):
    """:func:`nnls_steps` of a lazy cube: each block of pixels (at most
    :data:`~napari_deeper.io._lazy.LAZY_BLOCK_BYTES`, checked for NaN / Inf as it is read) is
    solved in memory by :func:`nnls_steps`; the maps are filled block by block. Every pixel's
    answer is the one the whole cube in memory gives (pixels are independent; on the CPU bit for
    bit, on a GPU to rounding, its chunks being sized otherwise)."""
    from ..io._lazy import FlatPixels, as_cube_or_lazy, lazy_block_pixels

    cube = as_cube_or_lazy(data, "data")
    n_bands, ny, nx = cube.shape
    em = check_endmembers(endmembers, n_bands)
    flat = FlatPixels(cube)
    n_pixels = ny * nx
    slices = compute.chunks(n_pixels, lazy_block_pixels(n_bands))
    abundances = np.empty((em.shape[0], n_pixels), dtype=np.float32)
    residual = np.empty(n_pixels, dtype=np.float32) if return_residual else None
    for piece in slices:
        block = flat[:, piece][:, None, :]  # (B, 1, n): a strip of the image for nnls_steps
        steps = nnls_steps(block, em, sum_to_one, device, return_residual, chunk_size)
        solved = yield from compute.share(steps, piece.start, piece.stop - piece.start, n_pixels)
        if return_residual:
            abundances[:, piece], residual[piece] = solved[0][:, 0], solved[1][0]
        else:
            abundances[:, piece] = solved[:, 0]
    abundances = abundances.reshape(-1, ny, nx)
    return abundances if residual is None else (abundances, residual.reshape(ny, nx))


def nnls(
    data,
    endmembers,
    sum_to_one: bool = False,
    device=None,
    return_residual: bool = False,
    chunk_size: int | None = None,
):
    """Exact per-pixel NNLS abundances ``(k, Y, X)`` (FCLS with ``sum_to_one``); see :func:`nnls_steps`.

    ``data`` is a ``(B, Y, X)`` cube, ``endmembers`` ``(k, B)``. ``device`` None/"auto" uses a
    GPU when there is one (without importing torch on a machine that shows no sign of one),
    "cpu" stays in numpy. The result equals
    ``scipy.optimize.nnls(endmembers.T, data[:, i, j])`` for every pixel, to rounding.
    """
    return compute.run(
        nnls_steps(data, endmembers, sum_to_one, device, return_residual, chunk_size)
    )


# -- solvers -------------------------------------------------------------------------------


class _PassiveSetInverses:
    """The inverse of each passive set's system, padded to full size and cached per set.

    For NNLS the system of a passive set F is ``G_FF``; for FCLS it is the bordered KKT matrix
    ``[[G_FF, 1], [1, 0]]``. A passive set is packed into an integer code (bit ``i`` set when
    variable ``i`` is passive), and its inverse, with zero rows and columns for the active
    variables, maps a pixel's right-hand side straight to its solution (exact zeros where the
    variables are active). Only the few sets that occur are ever inverted.
    """

    def __init__(self, ops, gram, bordered: bool):
        self.ops = ops
        self.gram = ops.to_host(gram)
        self.bordered = bordered
        self.k = self.gram.shape[0]
        self.size = self.k + 1 if bordered else self.k
        self.bits = ops.bit_weights(self.k)
        self.cache: dict[int, object] = {}
        self.unconstrained = self._inverse((1 << self.k) - 1)[: self.k, : self.k] if not bordered else None

    def solve(self, passive, rhs):
        """Solutions ``(size, m)`` for right-hand sides ``rhs`` ``(size, m)`` on ``passive`` ``(k, m)``."""
        ops = self.ops
        if rhs.shape[1] == 0:
            return ops.zeros_like(rhs)
        unique, index = ops.unique(ops.codes(passive, self.bits))
        tables = ops.stack([self._inverse(code) for code in ops.to_list(unique)])
        return ops.apply(tables[index], rhs)

    def _inverse(self, code: int):
        if code not in self.cache:
            variables = [i for i in range(self.k) if code >> i & 1]
            m = len(variables)
            padded = np.zeros((self.size, self.size))
            if m:
                index = variables + [self.k] if self.bordered else variables
                system = np.zeros((len(index), len(index)))
                system[:m, :m] = self.gram[np.ix_(variables, variables)]
                if self.bordered:
                    system[:m, m] = system[m, :m] = 1.0
                padded[np.ix_(index, index)] = np.linalg.inv(system)
            self.cache[code] = self.ops.asarray(padded)
        return self.cache[code]


def _nnls(ops, gram, b, inverses: _PassiveSetInverses):
    """Block principal pivoting for ``min x.G x/2 - b.x, x >= 0`` on every column of ``b``.

    KKT conditions per pixel: ``x >= 0``, ``w = G x - b >= 0``, ``x * w = 0``. Each round
    swaps every variable that breaks them between the passive set (``x`` free, ``w = 0``) and
    the active set (``x = 0``); after three rounds in which the number of broken conditions did
    not fall, Murty's backup rule (swap only the highest broken index) guarantees termination.
    """
    k, n = b.shape
    # the unconstrained solution is the answer wherever it is positive (those pixels meet the
    # KKT conditions and are done); elsewhere its sign pattern is the first passive set.
    # The rounds work on the remaining pixels only, held in compact arrays.
    x = inverses.unconstrained @ b
    todo = ops.nonzero(~(x > 0).all(0))
    passive, bs = x[:, todo] > 0, b[:, todo]
    tol_w = KKT_TOLERANCE * ops.clip_min(ops.col_max(ops.abs(bs)), 1e-300)
    chances = ops.full(todo.shape[0], 3)
    best = ops.full(todo.shape[0], k + 1)
    for _ in range(5 * k + 50):
        xs = inverses.solve(passive, bs)
        x[:, todo] = xs
        ws = gram @ xs - bs
        tol_x = KKT_TOLERANCE * ops.clip_min(ops.col_max(ops.abs(xs)), 1e-300)
        broken = (passive & (xs < -tol_x)) | (~passive & (ws < -tol_w))
        count = broken.sum(0)
        keep = count > 0
        if not ops.any(keep):
            return ops.clip_min(x, 0)
        todo, passive, bs, tol_w = todo[keep], passive[:, keep], bs[:, keep], tol_w[keep]
        broken, count, chances, best = broken[:, keep], count[keep], chances[keep], best[keep]
        improved = count < best
        best = ops.where(improved, count, best)
        chances = ops.where(improved, ops.full(count.shape[0], 3), chances - 1)
        backup = ~improved & (chances < 0)
        if ops.any(backup):
            single = ops.zeros_bool((k, int(backup.sum())))
            single[ops.last_true(broken[:, backup]), ops.arange(single.shape[1])] = True
            broken[:, backup] = single
        passive = passive ^ broken
    _warn_unconverged(int(todo.shape[0]), "NNLS")
    return ops.clip_min(x, 0)


def _fcls(ops, gram, b, inverses: _PassiveSetInverses):
    """Primal active set for ``min x.G x/2 - b.x`` with ``x >= 0`` and ``sum(x) = 1``.

    Every pixel starts at its best single endmember (a feasible vertex), then repeatedly adds the
    variable whose Lagrange multiplier is most negative, solves the equality-constrained problem
    on the passive set and, when that solution leaves the simplex, steps back to the simplex's
    edge and drops the variables that reached zero (Lawson & Hanson's scheme, with the equality
    kept in every subproblem through the bordered KKT system).
    """
    k, n = b.shape
    everything = ops.arange(n)
    tol = KKT_TOLERANCE * (ops.clip_min(ops.col_max(ops.abs(b)), 1e-300) + float(ops.abs(gram).max()))
    rhs = ops.concat([b, ops.ones_like(b[:1])])
    start = (0.5 * ops.diagonal(gram)[:, None] - b).argmin(0)
    passive = ops.zeros_bool((k, n))
    passive[start, everything] = True
    x = ops.zeros_like(b)
    x[start, everything] = 1.0
    last_added = start
    just_added = ops.zeros_bool((n,))
    todo = everything
    for _ in range(10 * k + 50):
        solution = inverses.solve(passive[:, todo], rhs[:, todo])
        s, nu = solution[:k], solution[k]
        leaving = passive[:, todo] & (s <= 0)
        inside = ~leaving.any(0)
        # the subproblem's solution stays in the simplex: accept it and test optimality
        ok = todo[inside]
        x[:, ok] = s[:, inside]
        multipliers = gram @ x[:, ok] - b[:, ok] + nu[inside][None, :]
        multipliers = ops.where(passive[:, ok], ops.zeros_like(multipliers), multipliers)
        entering = multipliers.argmin(0)
        optimal = multipliers[entering, ops.arange(ok.shape[0])] >= -tol[ok]
        grow = ok[~optimal]
        passive[entering[~optimal], grow] = True
        last_added[grow] = entering[~optimal]
        just_added[ok] = ~optimal
        # it leaves the simplex: step to the simplex's edge and drop the variables that hit zero
        out = todo[~inside]
        xo, so, lo = x[:, out], s[:, ~inside], leaving[:, ~inside]
        columns = ops.arange(out.shape[0])
        # a variable that enters and at once leaves had a multiplier of rounding size: done
        stuck = just_added[out] & lo[last_added[out], columns]
        gap = xo - so
        ratio = ops.where(lo, xo / ops.where(lo & (gap > 0), gap, ops.ones_like(gap)), ops.inf_like(xo))
        step = ops.clip_min(ops.col_min(ratio), 0)
        xo = xo + step[None, :] * (so - xo)
        fo = passive[:, out] & (xo > 0) & ~(lo & (ratio <= step[None, :]))
        x[:, out] = ops.where(fo, xo, ops.zeros_like(xo))
        passive[:, out] = fo
        just_added[out] = False
        todo = ops.concat([grow, out[~stuck]])
        if todo.shape[0] == 0:
            return ops.clip_min(x, 0)
    _warn_unconverged(int(todo.shape[0]), "FCLS")
    return ops.clip_min(x, 0)


def _check_fits(per_pixel, what: str) -> None:
    """Raise a ``ValueError`` when per-pixel values (float64) do not fit the float32 output."""
    largest = float(per_pixel.max())
    if largest > FLOAT32_MAX:
        raise ValueError(
            f"{what} of {int((per_pixel > FLOAT32_MAX).sum())} pixels reach {largest:.3g}, beyond "
            f"float32's range ({FLOAT32_MAX:.3g}): the data are too large for these endmembers; "
            "divide the data by a constant (NNLS abundances and residuals divide by it too) or "
            "scale the endmembers up"
        )


def _warn_unconverged(count: int, name: str) -> None:
    warnings.warn(
        f"{name}: {count} pixels did not meet the optimality test within the iteration limit; "
        "their abundances are the last iterate (clipped to >= 0)",
        RuntimeWarning,
        stacklevel=3,
    )


# -- numpy / torch backends ----------------------------------------------------------------


def _backend(device):
    """numpy for the CPU (torch is not imported for it, see ``compute.resolves_to_cpu``), torch
    for a GPU."""
    if compute.resolves_to_cpu(device):
        return _NumpyOps()
    return _TorchOps(compute.select_device(device))


class _NumpyOps:
    """The array operations the solvers need, in numpy float64."""

    #: While chunks are solved, BLAS runs single-threaded: the chunk threads are the parallelism.
    threads = staticmethod(compute.one_blas_thread)

    def __init__(self):
        #: Chunks solved at once: one per thread of :func:`~napari_deeper.compute.thread_budget`
        #: (the cores, or fewer when BLAS is held to fewer, as in a batch worker).
        self.workers = compute.thread_budget()

    def default_chunk(self, n_bands: int, k: int) -> int:
        per_pixel = 8.0 * (n_bands + (k + 1) ** 2 + 12 * k) * self.workers  # a chunk per worker
        return compute.chunk_size(per_pixel, None, maximum=CPU_CHUNK)

    @staticmethod
    def project(chunk: np.ndarray, em: np.ndarray, with_power: bool):
        """``b = E y`` in float64 (and every pixel's ``y.y`` when asked) for a float32 chunk.

        Worked through in blocks of about ``BLAS_WORK`` multiply-adds, so that each block's
        float64 copy stays in cache. A product this size is one that OpenBLAS would split over
        its threads; ``nnls_steps`` holds BLAS to one thread while its chunk threads run.
        """
        k, n_bands = em.shape
        n = chunk.shape[1]
        block = max(16, int(BLAS_WORK // (k * n_bands)))
        buffer = np.empty((n_bands, min(block, n)))
        b = np.empty((k, n))
        power = np.empty(n) if with_power else None
        for start in range(0, n, block):
            stop = min(n, start + block)
            y = buffer[:, : stop - start]
            np.copyto(y, chunk[:, start:stop])
            np.matmul(em, y, out=b[:, start:stop])
            if with_power:
                np.einsum("ij,ij->j", y, y, out=power[start:stop])
        return b, power

    @staticmethod
    def apply(matrices: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """``out[:, j] = matrices[j] @ rhs[:, j]`` for every column ``j``."""
        return np.einsum("mij,jm->im", matrices, rhs)

    asarray = staticmethod(lambda a: np.asarray(a, dtype=np.float64))
    to_host = staticmethod(np.asarray)
    mask = staticmethod(np.asarray)
    to_numpy = staticmethod(lambda a: np.asarray(a, dtype=np.float32))
    zeros_bool = staticmethod(lambda shape: np.zeros(shape, dtype=bool))
    zeros_like = staticmethod(np.zeros_like)
    ones_like = staticmethod(np.ones_like)
    inf_like = staticmethod(lambda a: np.full_like(a, np.inf))
    full = staticmethod(lambda n, value: np.full(n, value, dtype=np.int64))
    arange = staticmethod(lambda n: np.arange(n, dtype=np.int64))
    bit_weights = staticmethod(lambda k: np.left_shift(1, np.arange(k, dtype=np.int64)))
    @staticmethod
    def codes(passive: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Each column's passive set as an integer (bit i = variable i), via ``np.packbits``."""
        packed = np.packbits(passive, axis=0, bitorder="little")
        codes = packed[0].astype(np.int64)
        for byte in range(1, packed.shape[0]):
            codes |= packed[byte].astype(np.int64) << (8 * byte)
        return codes

    @staticmethod
    def unique(codes: np.ndarray):
        """Sorted distinct codes and each code's position among them (``np.unique``, faster
        for the small codes of a few endmembers: a counting pass instead of a sort)."""
        top = int(codes.max()) + 1
        if top > 1 << 16:
            return np.unique(codes, return_inverse=True)
        present = np.bincount(codes, minlength=top) > 0
        return np.flatnonzero(present), (np.cumsum(present) - 1)[codes]

    stack = staticmethod(np.stack)
    where = staticmethod(np.where)
    abs = staticmethod(np.abs)
    diagonal = staticmethod(np.diag)
    clip_min = staticmethod(np.maximum)
    col_max = staticmethod(lambda a: a.max(0))
    col_min = staticmethod(lambda a: a.min(0))
    any = staticmethod(lambda a: bool(np.any(a)))
    nonzero = staticmethod(np.flatnonzero)
    all_finite = staticmethod(lambda a: bool(np.isfinite(a).all()))
    to_list = staticmethod(lambda a: a.tolist())
    concat = staticmethod(np.concatenate)
    last_true = staticmethod(lambda a: a.shape[0] - 1 - a[::-1].argmax(0))


class _TorchOps:
    """The same operations with torch on one device, float64 throughout."""

    workers = 1  # one stream of work on the GPU
    threads = staticmethod(nullcontext)  # no BLAS threads to limit on a GPU

    def __init__(self, device):
        import torch

        self.torch = torch
        self.device = device

    def default_chunk(self, n_bands: int, k: int) -> int:
        per_pixel = 8.0 * (1.5 * n_bands + (k + 1) ** 2 + 12 * k)
        return compute.chunk_size(per_pixel, self.device, maximum=1 << 20)

    def project(self, chunk, em, with_power: bool):
        y = self.torch.from_numpy(np.ascontiguousarray(chunk)).to(self.device)
        y = y.to(self.torch.float64)
        return em @ y, ((y * y).sum(0) if with_power else None)

    def apply(self, matrices, rhs):
        return self.torch.einsum("mij,jm->im", matrices, rhs)

    def asarray(self, a):
        return self.torch.as_tensor(np.asarray(a, dtype=np.float64), device=self.device)

    def to_host(self, a):
        return a.cpu().numpy()

    def mask(self, a):
        return self.torch.as_tensor(np.asarray(a, dtype=bool), device=self.device)

    def to_numpy(self, a):
        return a.to(self.torch.float32).cpu().numpy()

    def zeros_bool(self, shape):
        return self.torch.zeros(shape, dtype=self.torch.bool, device=self.device)

    def zeros_like(self, a):
        return self.torch.zeros_like(a)

    def ones_like(self, a):
        return self.torch.ones_like(a)

    def inf_like(self, a):
        return self.torch.full_like(a, float("inf"))

    def full(self, n, value):
        return self.torch.full((n,), value, dtype=self.torch.int64, device=self.device)

    def arange(self, n):
        return self.torch.arange(n, dtype=self.torch.int64, device=self.device)

    def bit_weights(self, k):
        return self.torch.tensor([1 << i for i in range(k)], dtype=self.torch.int64, device=self.device)

    def codes(self, passive, bits):
        return (passive.to(self.torch.int64) * bits[:, None]).sum(0)

    def unique(self, a):
        return self.torch.unique(a, return_inverse=True)

    def stack(self, arrays):
        return self.torch.stack(arrays)

    def where(self, condition, a, b):
        return self.torch.where(condition, a, b)

    def abs(self, a):
        return a.abs()

    def diagonal(self, a):
        return self.torch.diagonal(a)

    def clip_min(self, a, low):
        return a.clamp_min(low)

    def col_max(self, a):
        return a.amax(0)

    def col_min(self, a):
        return a.amin(0)

    def any(self, a):
        return bool(a.any())

    def nonzero(self, a):
        return self.torch.nonzero(a).flatten()

    def all_finite(self, a):
        return bool(self.torch.isfinite(a).all())

    def to_list(self, a):
        return a.tolist()

    def concat(self, arrays):
        return self.torch.cat(arrays)

    def last_true(self, a):
        return a.shape[0] - 1 - self.torch.flip(a, dims=(0,)).to(self.torch.int32).argmax(0)
