"""Batches where nothing reaches a head: no object in any image, no proposal in any image.

Every head variant (FPN, C4 and C5 box heads; FCN and MLP mask heads; the mask branch on
and off) must train on such a batch, with finite losses that still reach every trainable
parameter, and predict on it, with empty outputs of the right shapes. Zero RoIs make
(0, ...) arrays all the way through the heads: a reshape that asks NumPy to infer a size
from a size-0 array (``reshape(0, -1)``) is the classic crash here.
"""

import math

import numpy as np
import pytest

import tinymask as tm
from tinymask.config import MaskRCNNConfig
from tinymask.model.mask_rcnn import MaskRCNN

SIZE = 64

C4 = {"fpn": False, "single_map": "c4", "anchor_sizes": (8, 16, 32)}
# The C4 head runs res5 on the RoIs: the rows below use frozen batch norm, the C4 model's
# own setting; the small model's group norm on a batch of zero RoIs is tested on its own.
C4_FROZEN = {**C4, "norm": "frozen_bn", "freeze_at": 2}
HEADS = [
    {"mask_head": "fcn"},
    {"mask_head": "mlp"},
    {"mask_branch": False},
    C4_FROZEN,
    {**C4_FROZEN, "mask_branch": False},
    {"fpn": False, "single_map": "c5", "anchor_sizes": (16, 32, 64)},
    {"fpn": False, "single_map": "c5", "anchor_sizes": (16, 32, 64), "mask_head": "mlp"},
    {"fpn": False, "single_map": "c5", "anchor_sizes": (16, 32, 64), "mask_branch": False},
]
IDS = ["fpn-fcn", "fpn-mlp", "fpn-no-mask", "c4-fcn", "c4-no-mask", "c5-fcn", "c5-mlp",
       "c5-no-mask"]
NO_PROPOSALS = {"rpn_min_size": 1e9}  # every proposal is smaller than this and dropped


def build(changes, **more):
    few = dict(rpn_pre_nms_top_n_train=50, rpn_post_nms_top_n_train=20,
               rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=20, rpn_batch_size_per_image=32,
               box_batch_size_per_image=16)  # a few RoIs are enough, and quick on every head
    tm.manual_seed(0)
    return MaskRCNN(MaskRCNNConfig.small(min_size=SIZE, max_size=SIZE, **few, **changes, **more))


def images(count=2):
    rng = np.random.default_rng(0)
    return [(rng.random((SIZE, SIZE, 3)) * 255).astype(np.uint8) for _ in range(count)]


def no_objects():
    return {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64),
            "masks": np.zeros((0, SIZE, SIZE), np.uint8)}


def one_object():
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[10:40, 12:50] = 1
    return {"boxes": np.array([[12, 10, 50, 40]], np.float32), "labels": np.array([1]),
            "masks": mask[None]}


def check_trains(model, targets):
    losses = model(images(len(targets)), targets)
    assert all(math.isfinite(loss.item()) for loss in losses.values()), losses
    sum(losses.values()).backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reached {missing[:5]}"
    return losses


def check_predicts_nothing(model):
    model.eval()
    with tm.no_grad():
        results = model(images())
    for result in results:
        assert result["boxes"].shape == (0, 4)
        assert result["labels"].shape == (0,) and result["scores"].shape == (0,)
        if model.config.mask_branch:
            assert result["masks"].shape == (0, SIZE, SIZE)
        else:
            assert "masks" not in result


@pytest.mark.parametrize("changes", HEADS, ids=IDS)
def test_batch_without_objects_trains(changes):
    losses = check_trains(build(changes), [no_objects(), no_objects()])
    for name in ("loss_rpn_box_reg", "loss_box_reg", "loss_mask"):
        if name in losses:
            assert losses[name].item() == 0.0, name


@pytest.mark.parametrize("changes", HEADS, ids=IDS)
def test_batch_without_proposals_trains_on_the_ground_truth_boxes(changes):
    # the ground-truth boxes are appended to the proposals: the heads still see one RoI
    check_trains(build(changes, **NO_PROPOSALS), [one_object(), no_objects()])


@pytest.mark.parametrize("changes", HEADS, ids=IDS)
def test_batch_without_proposals_or_objects_trains(changes):
    losses = check_trains(build(changes, **NO_PROPOSALS), [no_objects(), no_objects()])
    for name in ("loss_classifier", "loss_box_reg", "loss_mask"):  # no RoI at all
        if name in losses:
            assert losses[name].item() == 0.0, name


@pytest.mark.parametrize("changes", HEADS, ids=IDS)
def test_batch_without_proposals_predicts_nothing(changes):
    check_predicts_nothing(build(changes, **NO_PROPOSALS))


def test_c4_head_with_group_norm_and_no_proposals():
    check_predicts_nothing(build(C4, **NO_PROPOSALS))


def test_flatten_of_a_size_zero_tensor():
    empty = tm.Tensor(np.zeros((0, 3, 7, 7), np.float32), requires_grad=True)
    flat = empty.flatten(1)
    assert flat.shape == (0, 147)
    flat.sum().backward()
    assert empty.grad.shape == (0, 3, 7, 7)
