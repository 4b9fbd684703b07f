"""Image-quality metrics with standard definitions, each called as ``metric(estimate, reference)``.

Cubes are ``(B, Y, X)``. ``psnr`` uses the reference's data range unless told otherwise, ``ssim``
is scikit-image's ``structural_similarity`` per band averaged over bands, ``sam`` is the mean
spectral angle in degrees, and ``snr`` is the noise-learning paper's
``10 log10(sum x^2 / sum (y - x)^2)`` with ``x`` the reference. When the spatial sizes differ,
``crop="overlap"`` compares the top-left overlap; otherwise a ``ValueError`` says what differs.

:func:`compare_steps` scores many candidates against one reference (the compare widget and the
worked example use it) and :func:`difference_steps` makes the matching difference maps; both are
``*_steps`` generators (see :mod:`napari_deeper.compute`).
"""

from __future__ import annotations

import math

import numpy as np

from .compute import Progress, Steps, run, stage

__all__ = [
    "mse",
    "nmse",
    "psnr",
    "ssim",
    "sam",
    "snr",
    "classification_accuracy",
    "all_metrics",
    "compare_steps",
    "difference_steps",
    "METRIC_NAMES",
    "DIFFERENCE_MODES",
]

#: The image metrics of :func:`all_metrics`, in table order.
METRIC_NAMES = ("mse", "nmse", "psnr", "ssim", "sam", "snr")
#: ``"cube"``: candidate - reference, band by band; ``"integrated"``: mean |difference| over bands.
DIFFERENCE_MODES = ("cube", "integrated")
CROP_MODES = (None, "overlap")
_SSIM_MIN_SIDE = 7
_SSIM_BANDS_PER_STEP = 32


def _check_crop(crop) -> None:
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be None or 'overlap', got {crop!r}")


def _overlap(est: np.ndarray, ref: np.ndarray, crop) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays cut to their common top-left region, or a ``ValueError`` saying what differs."""
    _check_crop(crop)
    if est.ndim != ref.ndim:
        raise ValueError(
            f"estimate has {est.ndim} dimensions {est.shape}, reference {ref.ndim} {ref.shape}"
        )
    if est.shape == ref.shape:
        return est, ref
    if crop != "overlap":
        raise ValueError(
            f"shapes differ: estimate {est.shape}, reference {ref.shape}; "
            "pass crop='overlap' to compare the common top-left region (same band count)"
        )
    if est.ndim == 3 and est.shape[0] != ref.shape[0]:
        raise ValueError(
            f"band counts differ: estimate has {est.shape[0]} bands, reference {ref.shape[0]}; "
            "crop='overlap' only crops the spatial axes"
        )
    overlap = tuple(slice(0, min(a, b)) for a, b in zip(est.shape, ref.shape))
    return est[overlap], ref[overlap]


def _pair(estimate, reference, crop: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Float64 copies of the compared region of both inputs, checked for size and finiteness."""
    est = np.asarray(estimate)
    ref = np.asarray(reference)
    est, ref = _overlap(est, ref, crop)
    est = est.astype(np.float64)
    ref = ref.astype(np.float64)
    if est.size == 0:
        raise ValueError("nothing to compare: empty arrays")
    if not (np.all(np.isfinite(est)) and np.all(np.isfinite(ref))):
        raise ValueError("estimate or reference contains NaN or Inf")
    return est, ref


def _data_range(ref: np.ndarray, data_range: float | None) -> float:
    value = float(ref.max() - ref.min()) if data_range is None else float(data_range)
    if not value > 0:
        raise ValueError("data_range must be positive (the reference is constant)")
    return value


def _mse(est: np.ndarray, ref: np.ndarray) -> float:
    return float(np.mean((est - ref) ** 2))


def _nmse(est: np.ndarray, ref: np.ndarray) -> float:
    return _mse(est, ref) / max(float(np.mean(ref**2)), np.finfo(float).tiny)


def _psnr(est: np.ndarray, ref: np.ndarray, data_range: float) -> float:
    err = _mse(est, ref)
    return math.inf if err == 0 else float(10 * np.log10(data_range**2 / err))


def _ssim_steps(est: np.ndarray, ref: np.ndarray, data_range: float) -> Steps[float]:
    """Mean SSIM over bands, yielding the number of bands done every few bands."""
    from skimage.metrics import structural_similarity

    if ref.ndim == 2:
        return float(structural_similarity(est, ref, data_range=data_range))
    if ref.ndim != 3:
        raise ValueError(f"ssim takes (Y, X) images or (B, Y, X) cubes, got shape {ref.shape}")
    if min(ref.shape[1:]) < _SSIM_MIN_SIDE:
        raise ValueError(
            f"ssim needs images of at least {_SSIM_MIN_SIDE} x {_SSIM_MIN_SIDE} pixels, "
            f"got {ref.shape[1:]}"
        )
    total = 0.0
    for band, (e, r) in enumerate(zip(est, ref), start=1):
        total += structural_similarity(e, r, data_range=data_range)
        if band % _SSIM_BANDS_PER_STEP == 0:
            yield Progress(band, ref.shape[0], "ssim")
    return float(total / ref.shape[0])


def _sam(est: np.ndarray, ref: np.ndarray) -> float:
    e = est.reshape(est.shape[0], -1)
    r = ref.reshape(ref.shape[0], -1)
    norms = np.linalg.norm(e, axis=0) * np.linalg.norm(r, axis=0)
    valid = norms > 0
    if not np.any(valid):
        raise ValueError("every spectrum is zero: the spectral angle is undefined")
    cos = np.sum(e * r, axis=0)[valid] / norms[valid]
    return float(np.degrees(np.mean(np.arccos(np.clip(cos, -1.0, 1.0)))))


def _snr(est: np.ndarray, ref: np.ndarray) -> float:
    err = float(np.sum((est - ref) ** 2))
    return math.inf if err == 0 else float(10 * np.log10(np.sum(ref**2) / err))

def mse(estimate, reference, crop: str | None = None) -> float:
    """Mean squared error."""
    return _mse(*_pair(estimate, reference, crop))


def nmse(estimate, reference, crop: str | None = None) -> float:
    """MSE divided by the reference's mean square: comparable across intensity scales."""
    return _nmse(*_pair(estimate, reference, crop))


def psnr(estimate, reference, data_range: float | None = None, crop: str | None = None) -> float:
    """Peak signal-to-noise ratio in dB; ``data_range`` defaults to the reference's max - min."""
    est, ref = _pair(estimate, reference, crop)
    return _psnr(est, ref, _data_range(ref, data_range))


def ssim(estimate, reference, data_range: float | None = None, crop: str | None = None) -> float:
    """Structural similarity (scikit-image), per band of a cube, averaged over bands.

    ``data_range`` defaults to the whole reference's max - min, the same for every band.
    """
    est, ref = _pair(estimate, reference, crop)
    return run(_ssim_steps(est, ref, _data_range(ref, data_range)))


def sam(estimate, reference, crop: str | None = None) -> float:
    """Mean spectral angle in degrees between corresponding spectra (axis 0 is spectral).

    Pixels where either spectrum is all zero have no angle and are left out of the mean.
    """
    return _sam(*_pair(estimate, reference, crop))


def snr(estimate, reference, crop: str | None = None) -> float:
    """``10 log10(sum x^2 / sum (y - x)^2)`` in dB, x the reference and y the estimate."""
    return _snr(*_pair(estimate, reference, crop))


def classification_accuracy(
    labels, reference_labels, ignore: int | None = 0, crop: str | None = None
) -> float:
    """Fraction of pixels whose label equals the reference's, skipping reference pixels == ``ignore``.

    Labels are integer images (e.g. the dominant endmember, numbered from 1; 0 = unassigned).
    """
    lab = np.asarray(labels)
    ref = np.asarray(reference_labels)
    try:
        lab, ref = _overlap(lab, ref, crop)
    except ValueError as error:
        raise ValueError(f"labels and reference labels: {error}") from None
    keep = np.ones(ref.shape, bool) if ignore is None else ref != ignore
    if not np.any(keep):
        raise ValueError("the reference has no labelled pixels")
    return float(np.mean(lab[keep] == ref[keep]))


def _metrics_steps(est: np.ndarray, ref: np.ndarray, data_range: float | None) -> Steps[dict]:
    data_range = _data_range(ref, data_range)
    if min(ref.shape[-2:]) >= _SSIM_MIN_SIDE:
        ssim_value = yield from _ssim_steps(est, ref, data_range)
    else:
        ssim_value = math.nan
    return {
        "mse": _mse(est, ref),
        "nmse": _nmse(est, ref),
        "psnr": _psnr(est, ref, data_range),
        "ssim": ssim_value,
        "sam": _sam(est, ref),
        "snr": _snr(est, ref),
    }


def all_metrics(estimate, reference, data_range: float | None = None, crop: str | None = None) -> dict:
    """Every image metric at once, as a dict keyed by :data:`METRIC_NAMES`.

    SSIM is NaN for images smaller than 7 x 7 pixels (scikit-image's window does not fit).
    """
    est, ref = _pair(estimate, reference, crop)
    return run(_metrics_steps(est, ref, data_range))


def _shape_note(est_shape, ref_shape, crop) -> str:
    """Why a candidate cannot be compared ("" when it can)."""
    if est_shape == ref_shape:
        return ""
    if len(est_shape) != len(ref_shape):
        return f"dimensions differ: {est_shape} vs reference {ref_shape}"
    if len(est_shape) == 3 and est_shape[0] != ref_shape[0]:
        return f"band count differs: {est_shape[0]} vs reference {ref_shape[0]}"
    if crop != "overlap":
        return f"shape differs: {est_shape} vs reference {ref_shape}"
    overlap = tuple(min(a, b) for a, b in zip(est_shape, ref_shape))
    return f"cropped to overlap {overlap}"


def compare_steps(
    reference,
    candidates: dict,
    data_range: float | None = None,
    crop: str | None = None,
    labels: dict | None = None,
    reference_labels=None,
) -> Steps[list[dict]]:
    """Score every candidate against ``reference``; return one row (a dict) per candidate.

    Each row holds ``name``, ``shape``, the :data:`METRIC_NAMES` values, ``accuracy`` (when
    ``reference_labels`` and the candidate's entry in ``labels`` are given, else NaN) and
    ``note``. A candidate whose shape differs from the reference is not an error: its metrics are
    NaN and the note says "shape differs", unless ``crop="overlap"`` compares the common top-left
    region (same band count needed). Yields :class:`~napari_deeper.compute.Progress` per band
    chunk and per candidate.
    """
    _check_crop(crop)
    ref_full = np.asarray(reference)
    if ref_full.ndim not in (2, 3) or ref_full.size == 0:
        raise ValueError(
            f"the reference must be a non-empty (Y, X) image or (B, Y, X) cube, got {ref_full.shape}"
        )
    labels = dict(labels or {})
    names = list(candidates)
    n = max(1, len(names))
    rows = []
    yield Progress(0, n, "comparing")
    for index, name in enumerate(names):
        est_full = np.asarray(candidates[name])
        row = {"name": str(name), "shape": tuple(int(n) for n in est_full.shape)}
        row.update(dict.fromkeys(METRIC_NAMES, math.nan))
        row["accuracy"] = math.nan
        row["note"] = _shape_note(est_full.shape, ref_full.shape, crop)
        comparable = est_full.shape == ref_full.shape or row["note"].startswith("cropped")
        if comparable:
            est, ref = _pair(est_full, ref_full, crop)
            row.update((yield from stage(_metrics_steps(est, ref, data_range), index, n, name)))
            if reference_labels is not None and labels.get(name) is not None:
                row["accuracy"] = classification_accuracy(labels[name], reference_labels, crop=crop)
        rows.append(row)
        yield Progress(index + 1, n, f"compared {name}")
    return rows


def difference_steps(
    reference, candidates: dict, mode: str = "cube", crop: str | None = None
) -> Steps[dict]:
    """Difference maps ``candidate - reference`` as float32, one per comparable candidate.

    ``mode="cube"`` keeps every band; ``mode="integrated"`` gives the mean absolute difference
    over bands, a ``(Y, X)`` map. Candidates whose shape differs (without ``crop="overlap"``)
    are left out of the returned dict.
    """
    if mode not in DIFFERENCE_MODES:
        raise ValueError(f"unknown difference mode {mode!r}; choose one of: {', '.join(DIFFERENCE_MODES)}")
    _check_crop(crop)
    ref_full = np.asarray(reference)
    names = list(candidates)
    maps = {}
    yield Progress(0, len(names), "difference maps")
    for index, name in enumerate(names):
        est_full = np.asarray(candidates[name])
        try:
            est, ref = _overlap(est_full, ref_full, crop)
        except ValueError:
            yield Progress(index + 1, len(names), f"{name}: shape differs, no difference map")
            continue
        diff = est.astype(np.float32) - ref.astype(np.float32)
        if mode == "integrated":
            diff = np.mean(np.abs(diff), axis=0) if diff.ndim == 3 else np.abs(diff)
        maps[name] = diff.astype(np.float32, copy=False)
        yield Progress(index + 1, len(names), f"difference map for {name}")
    return maps
