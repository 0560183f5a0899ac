"""The RoI pooler: FPN level assignment (Eqn. 1), input order, gradients to every level, the
single-map mode (C4, C5), and the RoI op as a config string (Table 2c)."""

from __future__ import annotations

import numpy as np
import pytest
from roi_cases import random_features

from tinymask import Tensor
from tinymask.ops import RoIPooler, assign_fpn_levels, roi_align, roi_pool, roi_warp

STRIDES = (4, 8, 16, 32)  # P2..P5


def square(size, x=0.0, y=0.0):
    return [x, y, x + size, y + size]


@pytest.mark.parametrize("box, level", [
    (square(28), 2),  # clamped up: Eqn. 1 gives level 1
    (square(56), 2),
    (square(111.9), 2),
    (square(112), 3),  # exactly 112: log2(1/2) = -1, level 4 - 1 (the 1e-6 keeps it there)
    (square(223.9), 3),
    (square(224), 4),  # the canonical ImageNet size -> k0 = 4
    (square(447.9), 4),
    (square(448), 5),
    (square(896), 5),  # clamped down: Eqn. 1 gives level 6
    ([10, 20, 10 + 224, 20 + 56], 3),  # sqrt(224 * 56) = 112: the area decides, not a side
    ([5, 5, 5, 50], 2),  # zero area
    ([50, 50, 10, 10], 2),  # end before start: a degenerate box goes to the finest level
])
def test_level_assignment_table(box, level):
    assert assign_fpn_levels(np.array([box], dtype=np.float64)).tolist() == [level]
    assert assign_fpn_levels(np.array([box], dtype=np.float32)).tolist() == [level]


def fpn_features(num_images=2, channels=3, image_size=512, requires_grad=True):
    return [Tensor(random_features(num_images, channels, image_size // stride,
                                   image_size // stride, seed=stride),
                   requires_grad=requires_grad)
            for stride in STRIDES]


# boxes of every level, out of level order, on both images (sqrt(area) in the comments)
ROIS = np.array([
    [0, 10, 10, 480, 470],  # 465 -> P5
    [1, 30, 40, 60, 70],  # 30 -> P2
    [0, 5, 100, 165, 260],  # 160 -> P3
    [1, 100, 20, 340, 250],  # 235 -> P4
    [0, 0, 0, 20, 30],  # 24 -> P2
    [1, 16, 16, 140, 140],  # 124 -> P3
], dtype=np.float64)
ROI_LEVELS = [5, 2, 3, 4, 2, 3]


def test_rows_come_back_in_input_order_each_from_its_level():
    levels = assign_fpn_levels(ROIS[:, 1:])
    assert levels.tolist() == ROI_LEVELS
    features = fpn_features()
    pooler = RoIPooler(7, STRIDES, op="align", aligned=True, sampling_ratio=2)
    pooled = pooler(features, ROIS)
    assert pooled.shape == (len(ROIS), 3, 7, 7)
    for row, (roi, level) in enumerate(zip(ROIS, levels)):
        alone = roi_align(features[level - 2].data, roi[None], 7, 1 / 2**level, 2, True)
        np.testing.assert_array_equal(pooled.data[row], alone.data[0])


def test_gradients_reach_every_level_used():
    features = fpn_features()
    pooled = RoIPooler((7, 5), STRIDES)(features, ROIS)
    grad_output = random_features(*pooled.shape, seed=7)
    pooled.backward(grad_output)
    levels = assign_fpn_levels(ROIS[:, 1:])
    for level, feature_map in zip(range(2, 6), features):
        rows = np.nonzero(levels == level)[0]
        expected_input = Tensor(feature_map.data, requires_grad=True)
        alone = roi_align(expected_input, ROIS[rows], (7, 5), 1 / 2**level, 0, True)
        alone.backward(grad_output[rows])
        np.testing.assert_allclose(feature_map.grad, expected_input.grad, atol=1e-12)
        assert np.abs(feature_map.grad).sum() > 0


def test_merging_the_levels_equals_cat_then_argsort():
    """InRoIOrder against its readable spelling, forward and backward."""
    from tinymask.ops.poolers import InRoIOrder
    from tinymask.tensor import cat

    rows_of_level = [np.array([4, 1]), np.array([], dtype=np.int64), np.array([0, 3, 2])]
    levels = [Tensor(random_features(len(rows), 3, 2, 2, seed=len(rows)), requires_grad=True)
              for rows in rows_of_level]
    merged = InRoIOrder.apply(*levels, rows_of_level=rows_of_level)
    grad_output = random_features(*merged.shape, seed=9)
    merged.backward(grad_output)
    ours = [level.grad for level in levels]
    copies = [Tensor(level.data, requires_grad=True) for level in levels]
    readable = cat(copies, dim=0)[np.argsort(np.concatenate(rows_of_level))]
    readable.backward(grad_output)
    np.testing.assert_array_equal(merged.data, readable.data)
    for grad, copy in zip(ours, copies):
        np.testing.assert_array_equal(grad, copy.grad)


def test_a_level_without_rois_gets_a_zero_gradient():
    features = fpn_features()
    small_boxes = ROIS[[1, 4]]  # both on P2
    pooled = RoIPooler(7, STRIDES)(features, small_boxes)
    pooled.backward(np.ones(pooled.shape))
    assert np.abs(features[0].grad).sum() > 0
    for feature_map in features[1:]:
        assert feature_map.grad.shape == feature_map.shape and not feature_map.grad.any()


def test_no_rois_give_an_empty_output():
    features = fpn_features()
    pooled = RoIPooler(14, STRIDES)(features, np.zeros((0, 5)))
    assert pooled.shape == (0, 3, 14, 14)
    pooled.backward(np.zeros(pooled.shape))
    assert all(not feature_map.grad.any() for feature_map in features)


@pytest.mark.parametrize("stride", [16, 32], ids=["C4", "C5"])
def test_single_map_reads_every_roi_from_it(stride):
    feature_map = Tensor(random_features(2, 3, 512 // stride, 512 // stride), requires_grad=True)
    pooled = RoIPooler(14, (stride,), sampling_ratio=0)([feature_map], ROIS)
    expected = roi_align(feature_map.data, ROIS, 14, 1 / stride, 0, True)
    np.testing.assert_array_equal(pooled.data, expected.data)


@pytest.mark.parametrize("op, aggregation", [("align", "max"), ("warp", "max"), ("warp", "avg"),
                                             ("pool", "avg")])
def test_the_op_is_a_config_string(op, aggregation):
    feature_map = random_features(2, 3, 16, 16)
    pooled = RoIPooler(7, (16,), op=op, aggregation=aggregation, aligned=False,
                       sampling_ratio=2)([feature_map], ROIS)
    expected = {
        "align": lambda: roi_align(feature_map, ROIS, 7, 1 / 16, 2, False, aggregation),
        "warp": lambda: roi_warp(feature_map, ROIS, 7, 1 / 16, 2, aggregation),
        "pool": lambda: roi_pool(feature_map, ROIS, 7, 1 / 16),  # always the max
    }[op]()
    np.testing.assert_array_equal(pooled.data, expected.data)


def test_warp_aligned_reaches_roi_warp_from_the_model_config():
    """``MaskRCNNConfig.warp_aligned`` (lesson 6's control, not the paper's RoIWarp) is
    passed to every pooler and changes RoIWarp only."""
    from tinymask.config import MaskRCNNConfig
    from tinymask.errors import ConfigError
    from tinymask.model.mask_rcnn import _pooler

    feature_map = random_features(2, 3, 16, 16)
    config = MaskRCNNConfig.small(roi_op="warp", roi_aggregation="max", warp_aligned=True)
    pooler = _pooler(config, 7, (16,))
    assert pooler.warp_aligned and "warp_aligned=True" in repr(pooler)
    ratio = pooler.sampling_ratio
    pooled = pooler([feature_map], ROIS).data
    np.testing.assert_array_equal(
        pooled, roi_warp(feature_map, ROIS, 7, 1 / 16, ratio, "max", aligned=True).data)
    assert not np.array_equal(pooled, roi_warp(feature_map, ROIS, 7, 1 / 16, ratio, "max").data)
    assert not _pooler(MaskRCNNConfig.small(roi_op="warp"), 7, (16,)).warp_aligned
    with pytest.raises(ConfigError, match="warp_aligned=True changes RoIWarp only"):
        MaskRCNNConfig.small(roi_op="align", warp_aligned=True)


def test_list_of_boxes_per_image_is_accepted():
    features = fpn_features(requires_grad=False)
    per_image = [ROIS[ROIS[:, 0] == index, 1:] for index in range(2)]
    rows = np.concatenate([ROIS[ROIS[:, 0] == index] for index in range(2)])
    pooler = RoIPooler(7, STRIDES)
    np.testing.assert_array_equal(pooler(features, per_image).data, pooler(features, rows).data)


def test_bad_configs_say_what_is_wrong():
    with pytest.raises(ValueError, match="op must be one of"):
        RoIPooler(7, STRIDES, op="crop")
    with pytest.raises(ValueError, match="consecutive FPN levels"):
        RoIPooler(7, (4, 16))
    with pytest.raises(ValueError, match="consecutive FPN levels"):
        RoIPooler(7, (4, 12))
    with pytest.raises(ValueError, match="4 feature maps for strides \\(4, 8, 16\\)"):
        RoIPooler(7, STRIDES[:3])(fpn_features(), ROIS)
