"""Cluster maps of the spectra: k-means and Ward, optionally on PCA scores, as labels.

Labels run from 1 to ``n_clusters`` (0 is left for "no label", as napari's labels layers
expect), ordered by cluster size: label 1 is the largest cluster. Ward's hierarchical
clustering is quadratic in the number of spectra, so it runs on a random subsample and every
other pixel joins the cluster whose centroid is nearest; k-means runs on all pixels
(mini-batch k-means beyond ``_FULL_KMEANS`` of them).

scikit-learn runs with ``threads`` threads (OpenMP and BLAS; one by default): on a 4096-pixel
cube its default two threads spent 5x the CPU time of one on the same k-means (spinning while
waiting for each other on a loaded two-core machine), so one thread was also faster by the clock.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .._validation import as_cube, check_method
from ..compute import Progress, Steps, chunks, run
from ..spectral.preprocess import NORMALISATIONS
from ..spectral.preprocess import normalise as normalise_cube

CLUSTER_METHODS = ("kmeans", "ward")
_FULL_KMEANS = 200_000  # above this many spectra, mini-batch k-means
_ASSIGN_CHUNK = 65536
_SILHOUETTE_SAMPLE = 5000  # the silhouette holds sample^2 distances (200 MB at 5000)


def _features(cube: np.ndarray, normalise: str | None, pca: int | None, seed: int, sample: int):
    """``(N, d)`` float32 features: the spectra, normalised and/or projected on PCA scores."""
    if normalise is not None:
        cube = normalise_cube(cube, normalise)
    spectra = cube.reshape(cube.shape[0], -1).T
    if pca is None:
        return np.ascontiguousarray(spectra, dtype=np.float32)
    from sklearn.decomposition import PCA

    pca = int(pca)
    if not 1 <= pca <= min(spectra.shape):
        raise ValueError(f"pca must be between 1 and {min(spectra.shape)} components, got {pca}")
    rng = np.random.default_rng(seed)
    rows = rng.choice(spectra.shape[0], min(sample, spectra.shape[0]), replace=False)
    model = PCA(n_components=pca, random_state=seed).fit(spectra[rows])
    return model.transform(spectra).astype(np.float32)


def _nearest(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) of every row, a chunk at a time."""
    out = np.empty(features.shape[0], dtype=np.int64)
    c = centroids.astype(np.float64)
    c2 = np.einsum("kd,kd->k", c, c)
    for rows in chunks(features.shape[0], _ASSIGN_CHUNK):
        block = features[rows].astype(np.float64)
        out[rows] = np.argmin(c2[None, :] - 2.0 * block @ c.T, axis=1)
    return out


def _by_size(assignment: np.ndarray, n_clusters: int) -> np.ndarray:
    """Labels 1..k with 1 the largest cluster (ties by the original index)."""
    counts = np.bincount(assignment, minlength=n_clusters)
    order = np.lexsort((np.arange(n_clusters), -counts))
    relabel = np.empty(n_clusters, dtype=np.int32)
    relabel[order] = np.arange(1, n_clusters + 1, dtype=np.int32)
    return relabel[assignment]


def _check(cube, n_clusters, method, normalise):
    method = check_method(method, CLUSTER_METHODS)
    if normalise is not None:
        check_method(normalise, NORMALISATIONS)
    n_pixels = cube.shape[1] * cube.shape[2]
    if isinstance(n_clusters, bool) or int(n_clusters) != n_clusters or not 2 <= n_clusters <= n_pixels:
        raise ValueError(
            f"n_clusters must be a whole number from 2 to {n_pixels} (the pixels), got {n_clusters!r}"
        )
    return method, int(n_clusters)


def _check_threads(threads) -> None:
    if threads is not None and (isinstance(threads, bool) or int(threads) != threads or threads < 1):
        raise ValueError(f"threads must be a whole number >= 1 or None, got {threads!r}")


@contextmanager
def _threads(threads):
    """Hold scikit-learn's OpenMP and BLAS threads to ``threads`` inside (None: leave them)."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(threads)):
        yield


def _assign(features, n_clusters, method, seed, sample):
    """Cluster index 0..k-1 of every row of ``features``."""
    n = features.shape[0]
    if method == "kmeans":
        from sklearn.cluster import KMeans, MiniBatchKMeans

        # four k-means++ starts, the best kept: one start (scikit-learn's default) ended 41 %
        # higher in inertia on the THP-1 cube at 3 clusters
        if n > _FULL_KMEANS:
            model = MiniBatchKMeans(n_clusters, random_state=seed, n_init=3, batch_size=4096)
        else:
            model = KMeans(n_clusters, random_state=seed, n_init=4)
        return model.fit_predict(features)
    from sklearn.cluster import AgglomerativeClustering

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, min(sample, n), replace=False))
    if rows.size < n_clusters:
        raise ValueError(f"sample ({rows.size}) must hold at least n_clusters ({n_clusters}) spectra")
    subset = AgglomerativeClustering(n_clusters, linkage="ward").fit_predict(features[rows])
    centroids = np.stack([features[rows[subset == k]].mean(axis=0) for k in range(n_clusters)])
    assignment = _nearest(features, centroids)
    assignment[rows] = subset  # the sampled spectra keep their own cluster
    return assignment


def cluster_steps(data, n_clusters: int = 4, method: str = "kmeans", pca: int | None = None,
                  normalise: str | None = None, seed: int = 0, sample: int = 5000,
                  threads: int | None = 1) -> Steps[np.ndarray]:
    """Steps version of :func:`cluster`."""
    cube = as_cube(data)
    method, n_clusters = _check(cube, n_clusters, method, normalise)
    _check_threads(threads)
    yield Progress(0, 3, f"{method}: features")
    with _threads(threads):
        features = _features(cube, normalise, pca, seed, max(int(sample), n_clusters))
    yield Progress(1, 3, f"{method}: {n_clusters} clusters")
    with _threads(threads):
        assignment = _assign(features, n_clusters, method, seed, max(int(sample), n_clusters))
    yield Progress(3, 3, f"{method}: done")
    return _by_size(assignment, n_clusters).reshape(cube.shape[1:])


def cluster(data, n_clusters: int = 4, method: str = "kmeans", pca: int | None = None,
            normalise: str | None = None, seed: int = 0, sample: int = 5000,
            threads: int | None = 1) -> np.ndarray:
    """A ``(Y, X)`` int32 map of cluster labels 1..``n_clusters`` (1 the largest cluster).

    ``method``: ``"kmeans"`` (scikit-learn's KMeans, mini-batch beyond 200 000 pixels) or
    ``"ward"`` (agglomerative, Ward linkage, on ``sample`` random spectra; the rest join the
    nearest cluster centroid). ``normalise`` (one of
    :data:`napari_deeper.spectral.NORMALISATIONS`, e.g. ``"vector"``) clusters on spectral
    shape rather than intensity; ``pca`` clusters on that many principal-component scores
    (fitted on ``sample`` spectra). ``threads`` caps scikit-learn's threads (None: its own
    choice). Seeded: the same call gives the same labels.
    """
    return run(cluster_steps(data, n_clusters, method, pca, normalise, seed, sample, threads))


def suggest_clusters_steps(data, candidates=range(2, 9), method: str = "kmeans", pca: int | None = None,
                           normalise: str | None = None, seed: int = 0, sample: int = 2000,
                           threads: int | None = 1) -> Steps[dict]:
    """Steps version of :func:`suggest_clusters`."""
    from sklearn.metrics import pairwise_distances, silhouette_score

    cube = as_cube(data)
    if not 2 <= int(sample) <= _SILHOUETTE_SAMPLE:
        raise ValueError(
            f"sample must be from 2 to {_SILHOUETTE_SAMPLE} spectra (the silhouette keeps all their "
            f"pairwise distances), got {sample!r}"
        )
    candidates = sorted({int(k) for k in candidates})
    if not candidates or candidates[0] < 2:
        raise ValueError(f"candidates must be cluster counts of at least 2, got {candidates!r}")
    method, _ = _check(cube, candidates[-1], method, normalise)
    _check_threads(threads)
    with _threads(threads):
        features = _features(cube, normalise, pca, seed, sample)
    rng = np.random.default_rng(seed)
    rows = rng.choice(features.shape[0], min(int(sample), features.shape[0]), replace=False)
    subset = features[rows]
    if subset.shape[0] <= candidates[-1]:
        raise ValueError(
            f"the sample ({subset.shape[0]} spectra) must hold more spectra than the largest "
            f"candidate ({candidates[-1]}); raise sample or lower the candidates"
        )
    with _threads(threads):
        distances = pairwise_distances(subset)  # once, for every candidate
    scores = {}
    for index, k in enumerate(candidates):
        yield Progress(index, len(candidates), f"silhouette for {k} clusters")
        with _threads(threads):
            labels = _assign(subset, k, method, seed, subset.shape[0])
            scores[k] = (float(silhouette_score(distances, labels, metric="precomputed"))
                         if np.unique(labels).size > 1 else -1.0)
    best = max(scores, key=scores.get)
    yield Progress(len(candidates), len(candidates), "silhouette")
    return {
        "best": best,
        "scores": scores,
        "message": f"{best} clusters has the highest silhouette ({scores[best]:.2f}) of "
                   f"{', '.join(map(str, candidates))}, on {subset.shape[0]} sampled spectra",
    }


def suggest_clusters(data, candidates=range(2, 9), method: str = "kmeans", pca: int | None = None,
                     normalise: str | None = None, seed: int = 0, sample: int = 2000,
                     threads: int | None = 1) -> dict:
    """A hint for the number of clusters: the silhouette score of each candidate count.

    Clusters a random ``sample`` of the spectra (as :func:`cluster` would, with the same
    ``method``, ``pca`` and ``normalise``) for each count in ``candidates`` and scores it.
    Returns ``best`` (the count with the highest score), ``scores`` ({count: silhouette}) and a
    one-line ``message`` to show. A hint only: the silhouette favours well-separated clusters,
    and cells are often a continuum.
    """
    return run(suggest_clusters_steps(data, candidates, method, pca, normalise, seed, sample, threads))
