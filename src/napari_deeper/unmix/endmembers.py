"""Vertex component analysis (VCA) and a hint for the number of endmembers (HySime).

VCA (Nascimento & Bioucas-Dias, IEEE TGRS 43(4), 2005) finds the purest pixels of a linear
mixture: it projects the data onto the signal subspace and repeatedly picks the pixel with the
largest projection onto a random direction orthogonal to the endmembers found so far. The
estimated SNR chooses between the projective projection (low SNR: centred data, ``k - 1``
principal directions plus a constant coordinate) and the subspace projection (high SNR: ``k``
principal directions, then a perspective division).

The signal subspace needs the top eigenvectors of the band correlation matrix ``Y Y^T / N``.
Computing that ``B x B`` matrix costs ``B^2 N`` operations (250 G for a 1e6 x 500 cube), so for
large cubes it is replaced by a randomized range finder (Halko, Martinsson & Tropp 2011) followed
by Rayleigh-Ritz: the range finder works on a random sample of pixels (with a power iteration),
then one thin product over every pixel gives all the pixels' coordinates on the basis, from which
the leading eigenpairs of both the plain and the centred correlation matrix follow. Small cubes
use the full matrix.

Every pass reads the data in pieces of pixels, so a lazy (dask) cube is read block by block
(:class:`~napari_deeper.io._lazy.FlatPixels`) and never whole: VCA then holds the pixels'
coordinates, about ``pixels x (k + 10)`` float32, besides one block.
"""

from __future__ import annotations

import numpy as np

from .. import compute
from .._validation import as_seed, check_method
from ..io._lazy import as_cube_or_lazy
from .abundances import require_finite

#: Extra sketch directions beyond ``k`` (randomized subspace): more is more accurate and slower.
OVERSAMPLING = 10
#: Below this many multiply-adds the full ``B x B`` correlation matrix is computed instead.
FULL_MATRIX_WORK = 4e9
#: Pixels whose correlation matrix gives the randomized range finder its directions.
SKETCH_PIXELS = 1 << 16
#: Power iterations of the range finder (on the sampled pixels, so they are cheap).
POWER_ITERATIONS = 1
#: Multiply-adds per BLAS call in the thin products (see ``_thin_products``).
BLAS_WORK = 6e5
#: Pixels per chunk of a data pass.
PASS_CHUNK = 8192


def vca_steps(data, n_endmembers: int, seed=0, mask=None, snr: float | None = None):
    """Steps generator of :func:`vca`; yields progress per pass over the data."""
    # NaN/Inf are caught in the data pass (they reach the mean), not by a separate pass
    cube = as_cube_or_lazy(data, "data", allow_nonfinite=True)
    seed = as_seed(seed)
    n_bands, ny, nx = cube.shape
    k = _check_count(n_endmembers, n_bands)
    flat = _flat(cube)
    pixels = _mask_pixels(mask, (ny, nx))
    n = flat.shape[1] if pixels is None else pixels.size
    if n < k:
        raise ValueError(
            f"VCA needs at least as many pixels as endmembers: {n} pixels"
            f"{' in the mask' if pixels is not None else ''} for {k} endmembers"
        )
    rng = np.random.default_rng(seed)
    subspace = yield from _signal_subspace(flat, pixels, k, rng)
    if subspace is None or not (np.isfinite(subspace.mean).all() and np.isfinite(subspace.total_power)):
        require_finite(cube, "data")
    mean, total_power = subspace.mean, subspace.total_power
    centred_values, centred_vectors = subspace.eigh(centred=True)
    if snr is None:
        projected_power = float(centred_values[:k].sum()) + float(mean @ mean)
        snr = estimate_snr(total_power, projected_power, k, n_bands)
    projective = snr < 15 + 10 * np.log10(k)
    if projective:
        basis = centred_vectors[:, : k - 1]  # (q, k-1) in subspace coordinates
        coords = subspace.project(basis, subtract_mean=True)  # (k-1, n)
        radius = float(np.sqrt((coords**2).sum(0).max())) if k > 1 else 1.0
        points = np.vstack([coords, np.full((1, n), max(radius, 1e-300))])
    else:
        _values, vectors = subspace.eigh(centred=False)
        basis = vectors[:, :k]
        coords = subspace.project(basis, subtract_mean=False)  # (k, n)
        points = _perspective(coords)
    chosen = _pick_vertices(points, k, rng)
    # endmembers = the chosen pixels projected on the signal subspace (denoised), as in the paper
    raw = flat[:, chosen if pixels is None else pixels[chosen]].astype(np.float64)
    directions = subspace.basis @ basis  # (B, d) orthonormal
    if projective:
        centred = raw - mean[:, None]
        endmembers = directions @ (directions.T @ centred) + mean[:, None]
    else:
        endmembers = directions @ (directions.T @ raw)
    indices = chosen if pixels is None else pixels[chosen]
    return endmembers.T.astype(np.float32), np.asarray(indices, dtype=np.int64)


def vca(data, n_endmembers: int, seed=0, mask=None, snr: float | None = None):
    """Endmembers ``(k, B)`` float32 and their pixel indices ``(k,)`` of a ``(B, Y, X)`` cube.

    ``pixel_indices`` are flat indices into ``Y * X`` (``np.unravel_index(i, (Y, X))`` gives the
    pixel). The endmembers are those pixels' spectra projected onto the signal subspace (the
    paper's choice: it removes most of their noise); ``data.reshape(B, -1)[:, indices]`` gives
    the raw spectra. ``mask`` (``(Y, X)`` bool) limits the search to the pixels where it is
    True (e.g. leave out background or saturated pixels). ``snr`` (dB) overrides the estimate
    that chooses the projection. The same input and ``seed`` give the same answer.

    ``data`` may be lazy (a dask array, e.g. a zarr store): it is read block by block, and the
    answer is the one the cube in memory gives, bit for bit. Its values are checked where they
    are read (a cube in memory is checked whole): with a mask, NaN or Inf in unmasked pixels on
    the rows read for the masked ones are refused too.
    """
    return compute.run(vca_steps(data, n_endmembers, seed, mask, snr))


def estimate_snr(total_power: float, projected_power: float, k: int, n_bands: int) -> float:
    """The paper's SNR estimate (dB) from the data power and its power in the k-subspace.

    ``+inf`` when the data lie entirely in the subspace (no noise), ``-inf`` when the subspace
    holds no more than its share of the noise: the division by zero of the formula is avoided.
    """
    noise = total_power - projected_power
    signal = projected_power - k / n_bands * total_power
    if noise <= 1e-12 * total_power:
        return float("inf")
    if signal <= 0:
        return float("-inf")
    return float(10 * np.log10(signal / noise))


#: Ways to suggest the number of endmembers (see :func:`estimate_n_endmembers`).
ESTIMATORS = ("variance", "hysime")


def estimate_n_endmembers(
    data,
    method: str = "variance",
    mask=None,
    max_pixels: int = 20000,
    signal_fraction: float = 0.99,
    seed=0,
) -> int:
    """A hint for the number of endmembers; a starting point, not a rule.

    ``method="variance"`` (default): the noise variance comes from the data's second
    differences along the spectral axis (a robust median: Raman bands are smooth over a few
    bands, noise is not); principal components whose variance exceeds the largest that pure
    noise reaches (the Marchenko-Pastur edge) carry signal, and the hint is the number of them
    needed for ``signal_fraction`` of the signal variance, plus one (k endmembers span k - 1
    directions around the mean).

    ``method="hysime"``: HySime (Bioucas-Dias & Nascimento, TGRS 2008): each band's noise is
    estimated by regressing it on all other bands, and every eigen-direction whose signal power
    exceeds twice its noise power counts. It measures the whole signal subspace: band shifts,
    baselines and spectrally correlated noise each add directions, so on real spectra it is
    often far above the number of chemical components.

    Computed on at most ``max_pixels`` randomly chosen pixels (``seed``); of a lazy cube only
    those are read.
    """
    method = check_method(method, ESTIMATORS)
    cube = as_cube_or_lazy(data, "data", allow_nonfinite=True)
    n_bands, ny, nx = cube.shape
    flat = _flat(cube)
    pixels = _mask_pixels(mask, (ny, nx))
    if pixels is None:
        pixels = np.arange(ny * nx)
    if pixels.size < 2 or n_bands < 3:
        raise ValueError(
            "estimating the number of endmembers needs at least 2 pixels and 3 bands, "
            f"got {pixels.size} pixels and {n_bands} bands"
        )
    if pixels.size > max_pixels:
        pixels = np.sort(np.random.default_rng(seed).choice(pixels, max_pixels, replace=False))
    y = flat[:, pixels].astype(np.float64)
    if not np.isfinite(y).all():
        require_finite(cube, "data")
    if method == "hysime":
        return _hysime(y)
    return _variance_rule(y, signal_fraction)


def _variance_rule(y: np.ndarray, signal_fraction: float) -> int:
    n_bands, n = y.shape
    values = np.linalg.eigvalsh(np.cov(y))[::-1]
    # the second difference of white noise of variance s2 has variance 6 s2
    noise = (np.median(np.abs(np.diff(y, 2, axis=0))) / 0.6745) ** 2 / 6
    edge = noise * (1 + np.sqrt(n_bands / n)) ** 2
    signal = np.maximum(values - edge, 0)
    if signal.sum() <= 0:
        return 1
    explained = np.cumsum(signal) / signal.sum()
    return int(min(n_bands, np.searchsorted(explained, signal_fraction) + 2))


def _hysime(y: np.ndarray) -> int:
    n_bands = y.shape[0]
    corr = y @ y.T / y.shape[1]
    scale = np.trace(corr) / n_bands
    if scale <= 0:
        return 0
    precision = np.linalg.inv(corr + 1e-6 * scale * np.eye(n_bands))
    noise_var = 1.0 / np.diag(precision)  # residual variance of each band given the others
    # x = y - noise with noise_i = (P y)_i / P_ii, so x's correlation follows from corr and P
    signal_corr = corr - 2 * np.diag(noise_var) + noise_var[:, None] * precision * noise_var[None, :]
    _values, vectors = np.linalg.eigh((signal_corr + signal_corr.T) / 2)
    noise_var = noise_var + np.trace(signal_corr) / n_bands / 1e5
    power = np.sum(vectors * (corr @ vectors), axis=0)
    noise_power = (vectors**2 * noise_var[:, None]).sum(axis=0)
    return int(np.count_nonzero(2 * noise_power - power < 0))


# -- internals -----------------------------------------------------------------------------


def _check_count(n_endmembers, n_bands: int) -> int:
    try:
        k = int(n_endmembers)
    except (TypeError, ValueError):
        raise ValueError(f"n_endmembers must be a positive integer, got {n_endmembers!r}") from None
    if k != n_endmembers or k < 1:
        raise ValueError(f"n_endmembers must be a positive integer, got {n_endmembers!r}")
    if k > n_bands:
        raise ValueError(
            f"cannot find {k} endmembers in data with only {n_bands} bands "
            "(the number of endmembers must not exceed the number of bands)"
        )
    return k


def _mask_pixels(mask, shape: tuple[int, int]) -> np.ndarray | None:
    """Flat indices of the mask's True pixels (None: every pixel)."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"mask has shape {m.shape} but the image is {shape} (y, x)")
    return np.flatnonzero(m.astype(bool).ravel())


def _flat(cube):
    """The pixels as ``(B, Y * X)``: a view of a cube in memory, a block reader of a lazy one."""
    from ..io._lazy import FlatPixels, is_lazy

    return FlatPixels(cube) if is_lazy(cube) else cube.reshape(cube.shape[0], -1)


def _data_chunks(flat, pixels: np.ndarray | None):
    """The data as ``(B, n)`` float32 pieces (only the chosen pixels, sorted flat indices, when
    ``pixels`` is given)."""
    n = flat.shape[1] if pixels is None else pixels.size
    for piece in compute.chunks(n, PASS_CHUNK):
        yield piece, (flat[:, piece] if pixels is None else _gather(flat, pixels[piece]))


def _gather(flat, indices: np.ndarray) -> np.ndarray:
    """``flat[:, indices]`` for sorted ``indices``; a lazy cube's read as contiguous runs of pixels.

    A gather per piece (dask's ``vindex``) would read every chunk it touches again for every
    piece; the runs (one per :data:`PASS_CHUNK` pixels holding any index, from its first index
    to its last) go through the reader's row cache, which reads each row of chunks once.
    """
    if isinstance(flat, np.ndarray):
        return flat[:, indices]
    window = indices // PASS_CHUNK
    starts = np.flatnonzero(np.diff(window, prepend=-1))
    ends = np.append(starts[1:], indices.size)
    runs = [flat[:, indices[a] : indices[b - 1] + 1][:, indices[a:b] - indices[a]] for a, b in zip(starts, ends)]
    return runs[0] if len(runs) == 1 else np.concatenate(runs, axis=1)


class _Subspace:
    """A basis ``Q`` (B x q) holding the signal, the correlation ``Q^T R Q`` and ``Y^T Q``."""

    def __init__(self, basis, reduced_corr, projections, mean, total_power):
        self.basis = basis  # (B, q) float64, orthonormal columns
        self.reduced_corr = reduced_corr  # (q, q): Q^T (Y Y^T / N) Q
        self.projections = projections  # (n, q) float32: Y^T Q
        self.mean = mean  # (B,) float64
        self.total_power = total_power  # mean over pixels of ||y||^2

    def eigh(self, centred: bool):
        """Eigenpairs (descending) of the (centred) correlation restricted to the subspace."""
        matrix = self.reduced_corr
        if centred:
            m = self.basis.T @ self.mean
            matrix = matrix - np.outer(m, m)
        values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
        return values[::-1], vectors[:, ::-1]

    def project(self, vectors, subtract_mean: bool) -> np.ndarray:
        """Coordinates ``(d, n)`` of every pixel on the directions ``Q @ vectors``."""
        coords = _blocked_matmul(self.projections, vectors).T
        if subtract_mean:
            coords -= (vectors.T @ (self.basis.T @ self.mean))[:, None]
        return coords


def _signal_subspace(flat, pixels, k: int, rng):
    """Steps: the :class:`_Subspace` of the data, exact for small cubes, randomized for large."""
    n_bands = flat.shape[0]
    n = flat.shape[1] if pixels is None else pixels.size
    q = min(n_bands, k + OVERSAMPLING)
    if q == n_bands or float(n_bands) ** 2 * n <= FULL_MATRIX_WORK:
        return (yield from _full_subspace(flat, pixels, n))
    # range finder on a random sample of pixels (with power iterations): R_s^p Omega spans the
    # dominant directions; the sample's mean joins the basis
    sample = _sample_blocks(n, SKETCH_PIXELS, rng)
    sample = sample if pixels is None else pixels[sample]
    units = sample.size + n  # progress: the sample is read, then every pixel
    ys = np.empty((n_bands, sample.size), dtype=np.float32)
    for piece, y in _data_chunks(flat, sample):
        ys[:, piece] = y
        yield compute.Progress(piece.stop, units, "VCA: pixel sample")
    if not np.isfinite(ys).all():
        return None  # the caller reports the NaN/Inf values
    image = rng.standard_normal((n_bands, q - 1)).astype(np.float32)
    for _ in range(1 + POWER_ITERATIONS):
        image = np.linalg.qr(_thin_products(ys, image, with_image=True)[2])[0].astype(np.float32)
    basis = np.linalg.qr(np.column_stack([ys.mean(1, dtype=np.float64), image]))[0]
    basis32 = basis.astype(np.float32)
    # the sample also gives the power outside the subspace (noise, statistically uniform)
    inside = float(np.trace(_thin_products(ys, basis32)[1]))
    total = float(np.einsum("ij,ij->", ys, ys, dtype=np.float64))
    outside_power = max(0.0, total - inside) / ys.shape[1]
    del ys  # (not held through the pass below: B x 65536 float32, 78 MB at 300 bands)
    # one pass over every pixel: its coordinates W = Y^T Q. Rayleigh-Ritz needs only W:
    # Q^T R Q = W^T W / N, and the mean's component in the subspace is the mean of W
    projections = np.empty((n, q), dtype=np.float32)
    reduced = np.zeros((q, q))
    for piece, y in _data_chunks(flat, pixels):
        projections[piece], gram, _ = _thin_products(y, basis32)
        reduced += gram
        yield compute.Progress(sample.size + piece.stop, units, "VCA: signal subspace")
    reduced /= n
    mean = basis @ projections.sum(0, dtype=np.float64) / n
    return _Subspace(basis, reduced, projections, mean, float(np.trace(reduced)) + outside_power)


def _sample_blocks(n: int, size: int, rng, block: int = 64) -> np.ndarray:
    """About ``size`` sorted pixel indices in runs of ``block`` neighbours at random places.

    Runs of neighbouring pixels read whole cache lines of every band, so the sample costs a
    fraction of a pass over the data (single random pixels would each cost a cache line).
    """
    if n <= size:
        return np.arange(n)
    starts = np.sort(rng.choice(n // block, size // block, replace=False)) * block
    return (starts[:, None] + np.arange(block)).ravel()


def _thin_products(y: np.ndarray, basis: np.ndarray, with_image: bool = False):
    """``W = y.T @ basis``, ``W.T @ W`` (float64) and, when asked, ``y @ W``, in blocks of pixels.

    Small blocks in cache, with BLAS held to one thread: OpenBLAS threads even products this
    small, and on a busy machine its threads wait for each other (the thin products of a
    512 x 512 x 500 cube took 4.0 s with the default threads, 0.6 s with one, at load 3.4).
    """
    n_bands, n = y.shape
    width = basis.shape[1]
    block = max(16, int(BLAS_WORK // (n_bands * width)))
    coords = np.empty((n, width), dtype=np.float32)
    gram = np.zeros((width, width))
    image = np.zeros((n_bands, width)) if with_image else None
    with compute.one_blas_thread():
        for start in range(0, n, block):
            part = y[:, start : start + block]
            local = coords[start : start + part.shape[1]]
            np.matmul(part.T, basis, out=local)
            local64 = local.astype(np.float64)
            gram += local64.T @ local64
            if with_image:
                image += part @ local
    return coords, gram, image


def _blocked_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in float64 for a tall ``a``, in row blocks (one BLAS thread, see above)."""
    out = np.empty((a.shape[0], b.shape[1]))
    block = max(16, int(BLAS_WORK // max(1, a.shape[1] * b.shape[1])))
    with compute.one_blas_thread():
        for start in range(0, a.shape[0], block):
            np.matmul(a[start : start + block].astype(np.float64), b, out=out[start : start + block])
    return out


def _full_subspace(flat, pixels, n: int):
    """Steps: the exact subspace (Q = identity) from the full ``B x B`` correlation matrix.

    Its projections are the data themselves: a view of a cube in memory, a lazy cube's pixels
    kept from the same pass. They fit: this path runs only while ``B^2 N <= FULL_MATRIX_WORK``
    (at most ``4 FULL_MATRIX_WORK / B`` bytes, 53 MB at 300 bands) or when ``k + OVERSAMPLING >=
    B`` (the randomized path's coordinates would be as large).
    """
    n_bands = flat.shape[0]
    corr = np.zeros((n_bands, n_bands))
    sums = np.zeros(n_bands)
    kept = None if isinstance(flat, np.ndarray) else np.empty((n_bands, n), dtype=np.float32)
    for piece, y in _data_chunks(flat, pixels):
        y64 = y.astype(np.float64)
        corr += y64 @ y64.T
        sums += y64.sum(1)
        if kept is not None:
            kept[:, piece] = y
        yield compute.Progress(piece.stop, n, "VCA: signal subspace")
    projections = ((flat if pixels is None else flat[:, pixels]) if kept is None else kept).T
    return _Subspace(np.eye(n_bands), corr / n, projections, sums / n, float(np.trace(corr)) / n)


def _perspective(coords: np.ndarray) -> np.ndarray:
    """The subspace projection's division ``x / (u . x)``, guarded against zero denominators.

    Pixels whose denominator is (numerically) zero lie on the projective plane's horizon; they
    are set to zero so that they are never picked as vertices.
    """
    direction = coords.mean(1)
    denominator = direction @ coords
    big = np.abs(denominator).max()
    safe = np.abs(denominator) > 1e-12 * big if big > 0 else np.zeros_like(denominator, bool)
    points = np.zeros_like(coords)
    points[:, safe] = coords[:, safe] / denominator[safe]
    return points


def _pick_vertices(points: np.ndarray, k: int, rng) -> np.ndarray:
    """VCA's loop: each vertex is the pixel most extreme along a direction orthogonal to the
    vertices found so far (a random one, from the seeded generator)."""
    vertices = np.zeros((k, k))
    vertices[-1, 0] = 1.0
    chosen = np.zeros(k, dtype=np.int64)
    for i in range(k):
        direction = _orthogonal_direction(vertices, rng)
        score = np.abs(direction @ points)
        chosen[i] = int(score.argmax())
        vertices[:, i] = points[:, chosen[i]]
    return chosen


def _orthogonal_direction(vertices: np.ndarray, rng) -> np.ndarray:
    """A random unit vector orthogonal to the columns of ``vertices`` (never a zero vector)."""
    projector = vertices @ np.linalg.pinv(vertices)
    for _ in range(20):
        w = rng.random(vertices.shape[0])
        f = w - projector @ w
        norm = np.linalg.norm(f)
        if norm > 1e-10 * max(1.0, np.linalg.norm(w)):
            return f / norm
    # the vertices already span everything (degenerate data): any random direction will do
    w = rng.standard_normal(vertices.shape[0])
    return w / np.linalg.norm(w)
