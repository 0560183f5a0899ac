"""Matcher and sampler (REFERENCE.md §4): thresholds, low-quality matches, empty images."""

import numpy
import pytest

from tinymask.backend import is_cupy_array, to_backend, to_numpy
from tinymask.matching import BalancedPositiveNegativeSampler, Matcher

BELOW = Matcher.BELOW_LOW_THRESHOLD  # -1
BETWEEN = Matcher.BETWEEN_THRESHOLDS  # -2


def test_sentinels_are_torchvisions():
    assert (BELOW, BETWEEN) == (-1, -2)


def test_thresholds_without_low_quality_matches():
    # Rows: ground truths, columns: predictions.
    iou = numpy.array(
        [
            [0.70, 0.69, 0.30, 0.29, 0.10, 0.00],
            [0.10, 0.20, 0.00, 0.00, 0.95, 0.00],
        ],
        dtype=numpy.float32,
    )
    matched_idxs = Matcher(0.7, 0.3, allow_low_quality_matches=False)(iou)
    expected = [
        0,  # best IoU 0.70 with gt 0: >= high threshold, matched
        BETWEEN,  # 0.69: between 0.3 and 0.7, ignored
        BETWEEN,  # 0.30: equal to the low threshold counts as between (>= low)
        BELOW,  # 0.29: background
        1,  # 0.95 with gt 1
        BELOW,  # overlaps nothing
    ]
    numpy.testing.assert_array_equal(matched_idxs, expected)
    assert matched_idxs.dtype == numpy.int64


def test_low_quality_matches_restore_every_tie_of_a_gt_best():
    iou = numpy.array(
        [
            # gt 0 is small: its best IoU is 0.40, reached by predictions 1 and 3 (a tie).
            [0.10, 0.40, 0.20, 0.40, 0.40, 0.00],
            # gt 1's best is 0.80 (prediction 0); prediction 4 overlaps it 0.50.
            [0.80, 0.00, 0.00, 0.00, 0.50, 0.25],
        ],
        dtype=numpy.float32,
    )
    without = Matcher(0.7, 0.3, allow_low_quality_matches=False)(iou)
    with_low_quality = Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou)
    numpy.testing.assert_array_equal(without, [1, BETWEEN, BELOW, BETWEEN, BETWEEN, BELOW])
    expected = [
        1,  # matched anyway (0.80 >= 0.7)
        0,  # ties gt 0's best 0.40: restored to gt 0
        BELOW,  # 0.20: nobody's best, stays background
        0,  # the other half of the tie: restored to gt 0 too
        # Ties gt 0's best as well, but its own best ground truth is gt 1 (0.50 > 0.40):
        # torchvision restores the prediction's own best match, not the gt it tied.
        1,
        BELOW,  # 0.25: nobody's best
    ]
    numpy.testing.assert_array_equal(with_low_quality, expected)


def test_a_gt_that_overlaps_nothing_makes_every_prediction_its_tie():
    # torchvision's (and Detectron2's) behaviour, kept and documented: gt 1 has best IoU 0,
    # which every prediction ties, so every prediction is restored to its own best gt.
    iou = numpy.array([[0.9, 0.1, 0.0], [0.0, 0.0, 0.0]], dtype=numpy.float32)
    matched_idxs = Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou)
    numpy.testing.assert_array_equal(matched_idxs, [0, 0, 0])


def test_box_head_matcher_has_no_ignored_band():
    iou = numpy.array([[0.5, 0.4999, 0.0]], dtype=numpy.float32)
    numpy.testing.assert_array_equal(Matcher(0.5, 0.5)(iou), [0, BELOW, BELOW])


def test_no_ground_truth_means_all_background():
    empty = numpy.zeros((0, 5), dtype=numpy.float32)
    for allow in (False, True):
        matched_idxs = Matcher(0.7, 0.3, allow)(empty)
        numpy.testing.assert_array_equal(matched_idxs, [BELOW] * 5)
        assert matched_idxs.dtype == numpy.int64


def test_no_predictions_gives_an_empty_result():
    matched_idxs = Matcher(0.7, 0.3, True)(numpy.zeros((3, 0), dtype=numpy.float32))
    assert matched_idxs.shape == (0,)
    assert matched_idxs.dtype == numpy.int64


def test_matcher_argument_errors():
    with pytest.raises(ValueError, match="must not exceed"):
        Matcher(0.3, 0.7)
    with pytest.raises(ValueError, match=r"got shape \(5,\)"):
        Matcher(0.7, 0.3)(numpy.zeros(5))


def _labels(num_positive, num_negative, num_ignored, rng):
    labels = numpy.array([1] * num_positive + [0] * num_negative + [-1] * num_ignored)
    return rng.permutation(labels)


def test_sampler_caps_positives_and_fills_with_negatives():
    rng = numpy.random.default_rng(0)
    labels = _labels(300, 1000, 50, rng)
    sampler = BalancedPositiveNegativeSampler(256, 0.5)
    (positive,), (negative,) = sampler([labels], numpy.random.default_rng(1))
    assert positive.sum() == 128  # 256 * 0.5
    assert negative.sum() == 128  # the rest of the 256
    assert numpy.all(labels[positive] == 1)
    assert numpy.all(labels[negative] == 0)
    assert not numpy.any(positive & negative)


def test_sampler_with_few_positives_takes_them_all():
    rng = numpy.random.default_rng(0)
    labels = _labels(10, 1000, 0, rng)
    (positive,), (negative,) = BalancedPositiveNegativeSampler(512, 0.25)(
        [labels], numpy.random.default_rng(0)
    )
    assert positive.sum() == 10  # fewer than the cap of 128: all of them
    assert negative.sum() == 502  # 512 - 10


def test_sampler_with_too_few_negatives_returns_a_short_batch():
    labels = numpy.array([2, 3, 0, 0, -1, -1])  # class labels >= 1 count as foreground
    (positive,), (negative,) = BalancedPositiveNegativeSampler(256, 0.25)(
        [labels], numpy.random.default_rng(0)
    )
    numpy.testing.assert_array_equal(positive, [True, True, False, False, False, False])
    numpy.testing.assert_array_equal(negative, [False, False, True, True, False, False])


def test_sampler_one_seed_fixes_the_sample():
    rng = numpy.random.default_rng(0)
    labels_per_image = [_labels(200, 2000, 100, rng), _labels(5, 300, 0, rng)]
    sampler = BalancedPositiveNegativeSampler(256, 0.5)
    first = sampler(labels_per_image, numpy.random.default_rng(42))
    second = sampler(labels_per_image, numpy.random.default_rng(42))
    other = sampler(labels_per_image, numpy.random.default_rng(43))
    for masks_a, masks_b in zip(first, second, strict=True):
        for mask_a, mask_b in zip(masks_a, masks_b, strict=True):
            numpy.testing.assert_array_equal(mask_a, mask_b)
    assert not numpy.array_equal(first[0][0], other[0][0])  # another seed, another sample


def test_sampler_image_without_objects():
    labels = numpy.zeros(1000, dtype=numpy.int64)
    (positive,), (negative,) = BalancedPositiveNegativeSampler(256, 0.5)(
        [labels], numpy.random.default_rng(0)
    )
    assert positive.sum() == 0
    assert negative.sum() == 256


def test_sampler_empty_image():
    labels = numpy.zeros(0, dtype=numpy.int64)
    (positive,), (negative,) = BalancedPositiveNegativeSampler(256, 0.5)(
        [labels], numpy.random.default_rng(0)
    )
    assert positive.shape == negative.shape == (0,)


@pytest.mark.torch
def test_matcher_matches_torchvision():
    det_utils = pytest.importorskip("torchvision.models.detection._utils")
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(0)
    # Rounded IoUs, so that ties (and low-quality ties) occur.
    iou = numpy.round(rng.uniform(0, 1, (6, 200)) ** 3, 2).astype(numpy.float32)
    for allow in (False, True):
        ours = Matcher(0.7, 0.3, allow)(iou)
        theirs = det_utils.Matcher(0.7, 0.3, allow)(torch.from_numpy(iou)).numpy()
        numpy.testing.assert_array_equal(ours, theirs)


@pytest.mark.gpu
def test_matcher_and_sampler_on_cupy_match_numpy():
    rng = numpy.random.default_rng(0)
    iou = numpy.round(rng.uniform(0, 1, (5, 3000)) ** 3, 2).astype(numpy.float32)
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)
    matched_gpu = matcher(to_backend(iou, "cupy"))
    assert is_cupy_array(matched_gpu)
    numpy.testing.assert_array_equal(to_numpy(matched_gpu), matcher(iou))
    # The same seed draws the same sample on either backend.
    labels = _labels(300, 2000, 100, rng)
    sampler = BalancedPositiveNegativeSampler(256, 0.5)
    on_cpu = sampler([labels], numpy.random.default_rng(5))
    on_gpu = sampler([to_backend(labels, "cupy")], numpy.random.default_rng(5))
    for masks_cpu, masks_gpu in zip(on_cpu, on_gpu, strict=True):
        assert is_cupy_array(masks_gpu[0])
        numpy.testing.assert_array_equal(to_numpy(masks_gpu[0]), masks_cpu[0])
