"""Each of torchvision's semantics is a config field, switched one at a time: the fields of
``MaskRCNNConfig.torchvision()``, and each one reaching the part of the model it changes.
(The comparisons with torchvision itself are in test_torchvision_parity.py.)"""

import numpy as np
import pytest

import tinymask as tm
from tinymask import nn
from tinymask.anchors import AnchorGenerator
from tinymask.ops import roi_pool
from tinymask.ops.roi_geometry import quantize_rois, roi_pool_bin_range
from tinymask.ops.roi_pool_cpu import roi_pool_forward_cpu
from tinymask.ops.roi_pool_cuda import roi_pool_forward_cuda
from tinymask.ops.roi_pool_reference import roi_pool_forward_reference

TORCHVISION = {"aligned": False, "sampling_ratio": 2, "mask_target_aligned": False,
               "binarize_mask_targets": False, "anchor_strides_from_image": True,
               "roi_pool_bins_in_input_dtype": True, "frozen_bn_eps": 0.0,
               "mask_threshold": None, "keypoint_resize_to_box": True}
DEFAULTS = {"aligned": True, "sampling_ratio": 0, "mask_target_aligned": True,
            "binarize_mask_targets": True, "anchor_strides_from_image": False,
            "roi_pool_bins_in_input_dtype": False, "frozen_bn_eps": 1e-5, "mask_threshold": 0.5,
            "keypoint_resize_to_box": False}


def test_torchvision_constructor_sets_every_switch_and_leaves_the_defaults_alone():
    config = tm.MaskRCNNConfig.torchvision()
    assert {name: getattr(config, name) for name in TORCHVISION} == TORCHVISION
    default = tm.MaskRCNNConfig()
    assert {name: getattr(default, name) for name in DEFAULTS} == DEFAULTS
    # apart from the switches, it is the default model: torchvision's architecture
    assert {**config.to_dict(), **DEFAULTS} == default.to_dict()
    changed = tm.MaskRCNNConfig.torchvision(num_classes=5, aligned=True)
    assert changed.num_classes == 5 and changed.aligned and not changed.mask_target_aligned
    with pytest.raises(KeyError, match="unknown MaskRCNNConfig field"):
        tm.MaskRCNNConfig.torchvision(align=False)


def small_model(**switches):
    settings = dict(min_size=64, max_size=64, anchor_sizes=(8, 16, 32, 64, 128),
                    norm="frozen_bn", freeze_at=2, rpn_pre_nms_top_n_train=100,
                    rpn_post_nms_top_n_train=50, box_batch_size_per_image=32)
    tm.manual_seed(0)
    return tm.MaskRCNN(tm.MaskRCNNConfig.small(**{**settings, **switches}))


def test_each_switch_reaches_its_part_of_the_model():
    ours = small_model(**TORCHVISION)
    for pooler in (ours.roi_heads.box_pooler, ours.roi_heads.mask_pooler):
        assert (pooler.aligned, pooler.sampling_ratio) == (False, 2)
        assert pooler.roi_pool_bins_in_input_dtype
    assert ours.rpn.anchor_generator.strides_from_image_size
    frozen = [m for m in ours.modules() if isinstance(m, nn.FrozenBatchNorm2d)]
    assert frozen and all(m.eps == 0.0 for m in frozen)
    default = small_model()
    assert all(m.eps == 1e-5 for m in default.modules() if isinstance(m, nn.FrozenBatchNorm2d))


def test_frozen_bn_eps_reaches_the_c4_res5_head_and_batch_norms_frozen_later():
    tm.manual_seed(0)
    model = tm.MaskRCNN(tm.MaskRCNNConfig.small(fpn=False, single_map="c4", norm="bn",
                                                freeze_at=2, frozen_bn_eps=0.0,
                                                anchor_sizes=(8, 16, 32)))
    frozen = [m for m in model.modules() if isinstance(m, nn.FrozenBatchNorm2d)]
    assert frozen and all(m.eps == 0.0 for m in frozen)  # the stem and res2, frozen from bn
    tm.manual_seed(0)
    c4 = tm.MaskRCNN(tm.MaskRCNNConfig.small(fpn=False, single_map="c4", norm="frozen_bn",
                                             frozen_bn_eps=0.0, anchor_sizes=(8, 16, 32)))
    head = [m for m in c4.roi_heads.res5_head.modules() if isinstance(m, nn.FrozenBatchNorm2d)]
    assert head and all(m.eps == 0.0 for m in head)


def scene():
    rng = np.random.default_rng(0)
    image = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    rows, cols = np.mgrid[:64, :64] + 0.5
    mask = (((cols - 30) / 18) ** 2 + ((rows - 34) / 12) ** 2 <= 1).astype(np.uint8)
    return image, {"boxes": np.array([[12, 22, 48, 46]], np.float32), "labels": np.array([1]),
                   "masks": mask[None]}


@pytest.mark.parametrize("switch", ["binarize_mask_targets", "mask_target_aligned"])
def test_mask_target_switches(switch):
    image, target = scene()
    targets = {}
    for value in (True, False):
        model = small_model(**{switch: value})
        _, inside = model([image], [target], inspect=True)
        targets[value] = inside["roi_heads"]["mask_targets"]
    soft = targets[False] if switch == "binarize_mask_targets" else targets[True]
    if switch == "binarize_mask_targets":
        assert set(np.unique(targets[True])) <= {0.0, 1.0}
        assert ((soft > 0) & (soft < 1)).any()
    else:  # the same RoIs read half a pixel apart
        assert targets[True].shape == targets[False].shape
        assert not np.array_equal(targets[True], targets[False])


def test_masks_are_returned_as_probabilities_without_a_threshold():
    image, _ = scene()
    model = small_model(mask_threshold=None, box_score_thresh=0.0).eval()
    with tm.no_grad():
        (result,) = model([image])
    assert len(result["masks"]) and result["masks"].dtype == np.float32


# ---------------------------------------------------------------- anchors
def test_anchor_strides_from_the_padded_image_size():
    generator = AnchorGenerator(strides_from_image_size=True)
    shapes = [(200, 272), (100, 136), (50, 68), (25, 34), (13, 17)]
    assert generator.level_strides(shapes, (800, 1088)) == (
        (4, 4), (8, 8), (16, 16), (32, 32), (61, 64))
    anchors = generator(shapes, image_size=(800, 1088))
    fixed = AnchorGenerator()(shapes)
    p6 = 13 * 17 * 3
    np.testing.assert_array_equal(anchors[:-p6], fixed[:-p6])
    # the last row of P6 centres: 12 * 61 = 732 down, not 768
    assert anchors[-1, 1] - fixed[-1, 1] == 732 - 768
    with pytest.raises(ValueError, match="call it with image_size"):
        generator(shapes)


def test_the_model_passes_its_padded_size_to_the_anchors():
    image, _ = scene()
    model = small_model(anchor_strides_from_image=True, min_size=96, max_size=96).eval()
    with tm.no_grad():
        _, inside = model([image], inspect=True)
    # 96 x 96: P6 has 2 x 2 cells, stride 96 // 2 = 48
    p6 = inside["rpn"]["anchors"][-12:].reshape(2, 2, 3, 4)
    assert p6[1, 1, 0, 0] - p6[0, 0, 0, 0] == 48


# ---------------------------------------------------------------- RoIPool's bins
def test_roi_pool_bin_edges_in_float32_and_float64():
    """57 cells in 7 bins: 7 * (57 / 7) is 57.000004 in float32 (the last bin takes a 58th
    cell), exactly 57 in float64; for 29 cells float64 rounds up and float32 does not."""
    assert roi_pool_bin_range(0, 57, 7, 6, 100, True) == (48, 58)
    assert roi_pool_bin_range(0, 57, 7, 6, 100, False) == (48, 57)
    assert roi_pool_bin_range(0, 29, 7, 6, 100, True) == (24, 29)
    assert roi_pool_bin_range(0, 29, 7, 6, 100, False) == (24, 30)
    assert roi_pool_bin_range(0, 57, 7, 6, 100) == (48, 57)  # float64 unless asked


def test_roi_pool_switch_in_every_kernel():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((1, 2, 70, 70)).astype(np.float32)
    # 57- and 29-cell RoIs, where the two precisions disagree, and a few others
    rois = np.array([[0, 1, 2, 57, 58], [0, 3, 1, 31, 29], [0, 0, 0, 64, 64],
                     [0, 5.4, 7.6, 40.2, 22.9]], np.float32)
    expected, _ = roi_pool_forward_reference(features, rois, 7, 7, 1.0, bins_in_input_dtype=True)
    in_float64, _ = roi_pool_forward_reference(features, rois, 7, 7, 1.0)
    assert not np.array_equal(expected, in_float64)
    quantized = quantize_rois(rois.astype(np.float64), 1.0)
    for forward in (roi_pool_forward_cpu, roi_pool_forward_cuda):
        output, _ = forward(features, quantized, 7, 7, True)
        np.testing.assert_array_equal(output, expected)
        output, _ = forward(features, quantized, 7, 7, False)
        np.testing.assert_array_equal(output, in_float64)
    np.testing.assert_array_equal(roi_pool(features, rois, 7, bins_in_input_dtype=True).data,
                                  expected)
    # a float64 map has float64 bins either way
    as_float64 = features.astype(np.float64)
    np.testing.assert_array_equal(roi_pool(as_float64, rois, 7, bins_in_input_dtype=True).data,
                                  roi_pool(as_float64, rois, 7).data)
