"""Metrics against hand-computed values and scikit-image's reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from napari_deeper import compute, metrics


@pytest.fixture
def pair(rng):
    reference = rng.uniform(0, 10, size=(6, 12, 14)).astype(np.float32)
    estimate = (reference + rng.normal(0, 0.5, size=reference.shape)).astype(np.float32)
    return estimate, reference


def test_hand_computed_values():
    reference = np.array([1.0, 2.0, 3.0, 5.0])
    estimate = np.array([1.0, 2.0, 5.0, 5.0])
    assert metrics.mse(estimate, reference) == pytest.approx(4 / 4)
    assert metrics.nmse(estimate, reference) == pytest.approx(1 / ((1 + 4 + 9 + 25) / 4))
    # data range of the reference: 5 - 1 = 4
    assert metrics.psnr(estimate, reference) == pytest.approx(10 * math.log10(16 / 1))
    assert metrics.psnr(estimate, reference, data_range=2) == pytest.approx(10 * math.log10(4))
    # SNR = 10 log10(sum x^2 / sum (y - x)^2) with x the reference
    assert metrics.snr(estimate, reference) == pytest.approx(10 * math.log10(39 / 4))


def test_argument_order_matters_where_the_definition_is_asymmetric():
    reference = np.array([0.0, 4.0])
    estimate = np.array([0.0, 2.0])
    assert metrics.psnr(estimate, reference) == pytest.approx(10 * math.log10(16 / 2))
    assert metrics.psnr(reference, estimate) == pytest.approx(10 * math.log10(4 / 2))
    assert metrics.snr(estimate, reference) == pytest.approx(10 * math.log10(16 / 4))


def test_identical_inputs_are_perfect(pair):
    _, reference = pair
    assert metrics.mse(reference, reference) == 0
    assert metrics.psnr(reference, reference) == math.inf
    assert metrics.snr(reference, reference) == math.inf
    assert metrics.ssim(reference, reference) == pytest.approx(1.0)
    assert metrics.sam(reference, reference) == pytest.approx(0.0, abs=1e-5)


def test_psnr_matches_scikit_image(pair):
    estimate, reference = pair
    est, ref = estimate.astype(np.float64), reference.astype(np.float64)
    expected = peak_signal_noise_ratio(ref, est, data_range=float(ref.max() - ref.min()))
    assert metrics.psnr(estimate, reference) == pytest.approx(expected, rel=1e-9)


def test_ssim_is_scikit_image_per_band_averaged(pair):
    estimate, reference = pair
    est, ref = estimate.astype(np.float64), reference.astype(np.float64)
    data_range = float(ref.max() - ref.min())
    per_band = [structural_similarity(e, r, data_range=data_range) for e, r in zip(est, ref)]
    assert metrics.ssim(estimate, reference) == pytest.approx(np.mean(per_band), rel=1e-9)
    assert metrics.ssim(est[0], ref[0], data_range=3.0) == pytest.approx(
        structural_similarity(est[0], ref[0], data_range=3.0), rel=1e-9
    )
    assert metrics.ssim(estimate, reference) < metrics.ssim(reference, reference)


def test_ssim_rejects_images_too_small_for_its_window():
    cube = np.ones((3, 5, 20))
    cube[:, 0, 0] = 2
    with pytest.raises(ValueError, match="at least 7 x 7"):
        metrics.ssim(cube, cube)
    assert math.isnan(metrics.all_metrics(cube, cube)["ssim"])


def test_sam_known_angles():
    reference = np.array([[[1.0, 1.0, 3.0]], [[0.0, 0.0, 0.0]]])  # (2 bands, 1, 3 pixels)
    estimate = np.array([[[1.0, 0.0, 6.0]], [[1.0, 1.0, 0.0]]])
    # pixel angles: (1,0)-(1,1) = 45 deg, (1,0)-(0,1) = 90 deg, (3,0)-(6,0) = 0 deg
    assert metrics.sam(estimate, reference) == pytest.approx((45 + 90 + 0) / 3)
    angle = np.radians(30)
    rotated = np.array([np.cos(angle), np.sin(angle)]).reshape(2, 1, 1)
    assert metrics.sam(rotated, np.array([1.0, 0.0]).reshape(2, 1, 1)) == pytest.approx(30)


def test_sam_is_scale_invariant_and_skips_zero_spectra(pair):
    _, reference = pair
    assert metrics.sam(3 * reference, reference) == pytest.approx(0.0, abs=1e-5)
    with_zero = reference.copy()
    with_zero[:, 0, 0] = 0
    assert np.isfinite(metrics.sam(with_zero, reference))
    with pytest.raises(ValueError, match="zero"):
        metrics.sam(np.zeros((3, 2, 2)), np.ones((3, 2, 2)))


def test_crop_to_overlap_compares_the_top_left_region(rng):
    reference = rng.uniform(0, 1, size=(4, 10, 16))
    estimate = rng.uniform(0, 1, size=(4, 12, 9))
    with pytest.raises(ValueError, match="crop='overlap'"):
        metrics.mse(estimate, reference)
    est, ref = estimate[:, :10, :9], reference[:, :10, :9]
    assert metrics.mse(estimate, reference, crop="overlap") == pytest.approx(metrics.mse(est, ref))
    assert metrics.psnr(estimate, reference, crop="overlap") == pytest.approx(metrics.psnr(est, ref))
    assert metrics.ssim(estimate, reference, crop="overlap") == pytest.approx(metrics.ssim(est, ref))
    assert metrics.sam(estimate, reference, crop="overlap") == pytest.approx(metrics.sam(est, ref))
    assert metrics.snr(estimate, reference, crop="overlap") == pytest.approx(metrics.snr(est, ref))


@pytest.mark.parametrize(
    ("estimate_shape", "reference_shape", "crop", "message"),
    [
        ((4, 8, 8), (4, 8, 9), None, "shapes differ"),
        ((3, 8, 8), (4, 8, 8), "overlap", "band counts differ"),
        ((8, 8), (4, 8, 8), None, "dimensions"),
        ((4, 8, 8), (4, 8, 8), "centre", "crop must be"),
    ],
)
def test_mismatched_inputs_say_what_differs(estimate_shape, reference_shape, crop, message):
    with pytest.raises(ValueError, match=message):
        metrics.mse(np.ones(estimate_shape), np.ones(reference_shape), crop=crop)


def test_non_finite_and_empty_inputs_are_rejected():
    bad = np.ones((2, 8, 8))
    bad[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metrics.psnr(bad, np.ones((2, 8, 8)))
    with pytest.raises(ValueError, match="empty"):
        metrics.mse(np.ones((0, 3)), np.ones((0, 3)))
    with pytest.raises(ValueError, match="constant"):
        metrics.psnr(np.ones((2, 8, 8)), np.ones((2, 8, 8)))


def test_classification_accuracy_skips_unassigned_reference_pixels():
    reference = np.array([[0, 1, 2], [1, 2, 2]])
    labels = np.array([[5, 1, 1], [1, 2, 2]])
    # labelled reference pixels: 5, of which all but (0, 2) match; with the 0 pixel: 4 of 6
    assert metrics.classification_accuracy(labels, reference) == pytest.approx(4 / 5)
    assert metrics.classification_accuracy(labels, reference, ignore=None) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.classification_accuracy(labels[:, :2], reference)
    assert metrics.classification_accuracy(labels[:, :2], reference, crop="overlap") == 1.0
    with pytest.raises(ValueError, match="no labelled pixels"):
        metrics.classification_accuracy(labels, np.zeros_like(reference))


def test_all_metrics_agrees_with_each_metric(pair):
    estimate, reference = pair
    table = metrics.all_metrics(estimate, reference)
    assert tuple(table) == metrics.METRIC_NAMES
    for name in metrics.METRIC_NAMES:
        assert table[name] == pytest.approx(getattr(metrics, name)(estimate, reference), rel=1e-12)


def test_compare_steps_scores_candidates_and_notes_shape_differences(pair, rng):
    estimate, reference = pair
    small = reference[:, ::2, ::2]
    candidates = {"noisy": estimate, "same": reference.copy(), "lr": small}
    reference_labels = rng.integers(1, 4, size=reference.shape[1:])
    noisy_labels = reference_labels.copy()
    noisy_labels[0, :5] = 0
    progress = []
    rows = compute.run(
        metrics.compare_steps(
            reference,
            candidates,
            labels={"noisy": noisy_labels, "same": reference_labels},
            reference_labels=reference_labels,
        ),
        progress.append,
    )
    assert [row["name"] for row in rows] == ["noisy", "same", "lr"]
    assert progress[-1].fraction == 1.0
    assert all(isinstance(p, compute.Progress) for p in progress)
    assert rows[0]["psnr"] == pytest.approx(metrics.psnr(estimate, reference))
    assert rows[0]["ssim"] == pytest.approx(metrics.ssim(estimate, reference))
    assert rows[0]["accuracy"] == pytest.approx(metrics.classification_accuracy(noisy_labels, reference_labels))
    assert rows[1]["mse"] == 0 and rows[1]["accuracy"] == 1.0 and rows[1]["note"] == ""
    assert rows[2]["note"].startswith("shape differs")
    assert all(math.isnan(rows[2][name]) for name in metrics.METRIC_NAMES)
    assert rows[2]["shape"] == small.shape

    cropped = compute.run(metrics.compare_steps(reference, {"lr": small}, crop="overlap"))
    assert cropped[0]["note"].startswith("cropped to overlap")
    assert cropped[0]["mse"] == pytest.approx(metrics.mse(small, reference, crop="overlap"))


def test_difference_steps_per_band_and_integrated(pair):
    estimate, reference = pair
    candidates = {"noisy": estimate, "lr": reference[:, ::2, ::2]}
    cubes = compute.run(metrics.difference_steps(reference, candidates, mode="cube"))
    assert list(cubes) == ["noisy"]
    np.testing.assert_allclose(cubes["noisy"], estimate - reference, atol=1e-6)
    maps = compute.run(metrics.difference_steps(reference, candidates, "integrated", crop="overlap"))
    np.testing.assert_allclose(maps["noisy"], np.abs(estimate - reference).mean(axis=0), atol=1e-6)
    assert maps["lr"].shape == (6, 7)
    with pytest.raises(ValueError, match="difference mode"):
        compute.run(metrics.difference_steps(reference, candidates, mode="ratio"))
