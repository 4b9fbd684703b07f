"""Image-quality metrics with standard definitions, each called as ``metric(estimate, reference)``.

Cubes are ``(B, Y, X)``. ``psnr`` uses the reference's data range unless told otherwise, ``ssim``
is scikit-image's ``structural_similarity`` per band averaged over bands, ``sam`` is the mean
spectral angle in degrees, and ``snr`` is the noise-learning paper's
``10 log10(sum x^2 / sum (y - x)^2)`` with ``x`` the reference. When the spatial sizes differ,
``crop="overlap"`` compares the top-left overlap; otherwise a ``ValueError`` says what differs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mse", "nmse", "psnr", "ssim", "sam", "snr", "classification_accuracy", "all_metrics"]


def _pair(estimate, reference, crop: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if est.ndim != ref.ndim:
        raise ValueError(
            f"estimate has {est.ndim} dimensions {est.shape}, reference {ref.ndim} {ref.shape}"
        )
    if est.shape != ref.shape:
        if crop != "overlap" or est.shape[0] != ref.shape[0]:
            raise ValueError(
                f"shapes differ: estimate {est.shape}, reference {ref.shape}; "
                "pass crop='overlap' to compare the common top-left region (same band count)"
            )
        overlap = tuple(slice(0, min(a, b)) for a, b in zip(est.shape, ref.shape))
        est, ref = est[overlap], ref[overlap]
    if est.size == 0:
        raise ValueError("nothing to compare: empty arrays")
    if not (np.all(np.isfinite(est)) and np.all(np.isfinite(ref))):
        raise ValueError("estimate or reference contains NaN or Inf")
    return est, ref


def mse(estimate, reference, crop: str | None = None) -> float:
    """Mean squared error."""
    est, ref = _pair(estimate, reference, crop)
    return float(np.mean((est - ref) ** 2))


def nmse(estimate, reference, crop: str | None = None) -> float:
    """MSE divided by the reference's mean square: comparable across intensity scales."""
    est, ref = _pair(estimate, reference, crop)
    return float(np.mean((est - ref) ** 2) / max(np.mean(ref**2), np.finfo(float).tiny))


def psnr(estimate, reference, data_range: float | None = None, crop: str | None = None) -> float:
    """Peak signal-to-noise ratio in dB; ``data_range`` defaults to the reference's max - min."""
    est, ref = _pair(estimate, reference, crop)
    if data_range is None:
        data_range = float(ref.max() - ref.min())
    if data_range <= 0:
        raise ValueError("data_range must be positive (the reference is constant)")
    err = np.mean((est - ref) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(data_range**2 / err))


def ssim(estimate, reference, data_range: float | None = None, crop: str | None = None) -> float:
    """Structural similarity (scikit-image), per band of a cube, averaged over bands."""
    from skimage.metrics import structural_similarity

    est, ref = _pair(estimate, reference, crop)
    if data_range is None:
        data_range = float(ref.max() - ref.min())
    if data_range <= 0:
        raise ValueError("data_range must be positive (the reference is constant)")
    if ref.ndim == 2:
        return float(structural_similarity(est, ref, data_range=data_range))
    if ref.ndim != 3:
        raise ValueError(f"ssim takes (Y, X) images or (B, Y, X) cubes, got shape {ref.shape}")
    if min(ref.shape[1:]) < 7:
        raise ValueError(f"ssim needs images of at least 7 x 7 pixels, got {ref.shape[1:]}")
    return float(
        np.mean([structural_similarity(e, r, data_range=data_range) for e, r in zip(est, ref)])
    )


def sam(estimate, reference, crop: str | None = None) -> float:
    """Mean spectral angle in degrees between corresponding spectra (axis 0 is spectral)."""
    est, ref = _pair(estimate, reference, crop)
    e = est.reshape(est.shape[0], -1)
    r = ref.reshape(ref.shape[0], -1)
    norms = np.linalg.norm(e, axis=0) * np.linalg.norm(r, axis=0)
    valid = norms > 0
    if not np.any(valid):
        raise ValueError("every spectrum is zero: the spectral angle is undefined")
    cos = np.sum(e * r, axis=0)[valid] / norms[valid]
    return float(np.degrees(np.mean(np.arccos(np.clip(cos, -1.0, 1.0)))))


def snr(estimate, reference, crop: str | None = None) -> float:
    """``10 log10(sum x^2 / sum (y - x)^2)`` in dB, x the reference and y the estimate."""
    est, ref = _pair(estimate, reference, crop)
    err = np.sum((est - ref) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(np.sum(ref**2) / err))


def classification_accuracy(labels, reference_labels, ignore: int | None = 0) -> float:
    """Fraction of pixels whose label equals the reference's, skipping reference pixels == ``ignore``."""
    lab = np.asarray(labels)
    ref = np.asarray(reference_labels)
    if lab.shape != ref.shape:
        raise ValueError(f"labels {lab.shape} and reference labels {ref.shape} differ in shape")
    keep = np.ones(ref.shape, bool) if ignore is None else ref != ignore
    if not np.any(keep):
        raise ValueError("the reference has no labelled pixels")
    return float(np.mean(lab[keep] == ref[keep]))


def all_metrics(estimate, reference, data_range: float | None = None, crop: str | None = None) -> dict:
    """Every image metric at once, as a dict (used by the compare widget and the benchmarks)."""
    est, ref = _pair(estimate, reference, crop)
    return {
        "mse": mse(est, ref),
        "nmse": nmse(est, ref),
        "psnr": psnr(est, ref, data_range),
        "ssim": ssim(est, ref, data_range) if min(ref.shape[-2:]) >= 7 else float("nan"),
        "sam": sam(est, ref),
        "snr": snr(est, ref),
    }
