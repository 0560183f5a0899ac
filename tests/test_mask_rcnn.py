"""The whole model: torchvision's parameter count, losses at initialisation, empty cases,
every ablation switch, the inspect view, and a float64 gradient check of the mask branch."""

import math

import numpy as np
import pytest

import tinymask as tm
from tinymask import nn
from tinymask.config import MaskRCNNConfig
from tinymask.losses import mask_loss
from tinymask.model.heads import MaskFCNHead, MaskPredictor
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.ops import roi_align

SIZE = 64  # tiny images keep each switch's train + eval step well under a second


def small_config(**changes):
    base = dict(min_size=SIZE, max_size=SIZE, anchor_sizes=(8, 16, 32, 64, 128),
                rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=100,
                rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=30,
                box_batch_size_per_image=32, rpn_batch_size_per_image=64)
    base.update(changes)
    return MaskRCNNConfig.small(**base)


def scene(seed=0, num_objects=2):
    """An image with ellipses (class 1) and rectangles (classes 2, 3), and its target.
    Ellipses make the mask more than its box: a right box alone is not a right mask."""
    rng = np.random.default_rng(seed)
    image = (rng.random((SIZE, SIZE, 3)) * 60).astype(np.uint8)
    boxes, labels, masks = [], [], []
    rows, cols = np.mgrid[:SIZE, :SIZE] + 0.5
    for index in range(num_objects):
        x1, y1 = rng.integers(0, SIZE // 2, size=2)
        w, h = rng.integers(14, SIZE // 2, size=2)
        label = 1 if index % 2 == 0 else int(rng.integers(2, 4))
        if label == 1:
            inside = ((cols - x1 - w / 2) / (w / 2)) ** 2 + ((rows - y1 - h / 2) / (h / 2)) ** 2
            mask = (inside <= 1).astype(np.uint8)
        else:
            mask = np.zeros((SIZE, SIZE), np.uint8)
            mask[y1 : y1 + h, x1 : x1 + w] = 1
        image[mask > 0] = [80 * label, 255 - 60 * label, 40]
        boxes.append([x1, y1, x1 + w, y1 + h])
        labels.append(label)
        masks.append(mask)
    target = {"boxes": np.array(boxes, np.float32).reshape(-1, 4), "labels": np.array(labels),
              "masks": np.array(masks, np.uint8).reshape(-1, SIZE, SIZE)}
    return image, target


LOSS_NAMES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg",
              "loss_mask"}


def test_parameter_count_equals_torchvision_maskrcnn_resnet50_fpn():
    model = MaskRCNN(MaskRCNNConfig(backbone="resnet50", fpn=True, num_classes=91))
    assert model.num_parameters() == 44_401_393  # frozen batch norm values are buffers


def test_losses_at_initialisation_are_near_their_analytic_values():
    tm.manual_seed(0)
    model = MaskRCNN(small_config())
    image, target = scene()
    losses = model([image], [target])
    assert set(losses) == LOSS_NAMES
    values = {name: loss.item() for name, loss in losses.items()}
    assert all(math.isfinite(v) for v in values.values())
    assert values["loss_objectness"] == pytest.approx(math.log(2), abs=0.02)  # logits ~ 0
    assert values["loss_classifier"] == pytest.approx(math.log(4), abs=0.5)  # K+1 = 4 classes
    assert values["loss_mask"] == pytest.approx(math.log(2), abs=0.02)  # every pixel p = 0.5


def test_an_image_without_objects_trains():
    tm.manual_seed(0)
    model = MaskRCNN(small_config())
    image, _ = scene()
    empty = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64),
             "masks": np.zeros((0, SIZE, SIZE), np.uint8)}
    losses = model([image], [empty])
    assert all(math.isfinite(loss.item()) for loss in losses.values())
    for name in ("loss_rpn_box_reg", "loss_box_reg", "loss_mask"):
        assert losses[name].item() == 0.0, name
    sum(losses.values()).backward()  # zero losses still reach every parameter
    assert all(p.grad is not None for p in model.parameters())


def test_no_detections_gives_empty_outputs_of_the_right_shapes():
    tm.manual_seed(0)
    model = MaskRCNN(small_config(box_score_thresh=1.0)).eval()  # no score exceeds 1
    image, _ = scene()
    (result,) = model([image[:50, :40]])
    assert result["boxes"].shape == (0, 4)
    assert result["labels"].shape == (0,) and result["scores"].shape == (0,)
    assert result["masks"].shape == (0, 50, 40)


SWITCHES = [
    {},
    {"roi_op": "pool"},
    {"roi_op": "warp"},
    {"roi_op": "align", "roi_aggregation": "max"},
    {"aligned": False, "sampling_ratio": 0},
    {"mask_loss": "softmax"},
    {"mask_head": "mlp"},
    {"mask_head": "mlp", "mask_mlp_layers": 3},
    {"mask_branch": False},
    {"fpn": False, "single_map": "c4", "anchor_sizes": (8, 16, 32)},
    {"fpn": False, "single_map": "c5", "anchor_sizes": (16, 32, 64), "roi_op": "pool"},
    {"backbone": "resnet34_w16", "norm": "bn"},
    {"backbone": "resnext50_32x4d_w16", "norm": "frozen_bn", "freeze_at": 2},
]


@pytest.mark.parametrize("changes", SWITCHES, ids=[str(s) or "default" for s in SWITCHES])
def test_every_switch_trains_and_predicts(changes):
    tm.manual_seed(0)
    model = MaskRCNN(small_config(**changes))
    images, targets = zip(*(scene(seed) for seed in range(2)))
    losses = model(list(images), list(targets))
    expected = LOSS_NAMES if model.config.mask_branch else LOSS_NAMES - {"loss_mask"}
    assert set(losses) == expected
    assert all(math.isfinite(loss.item()) for loss in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    with tm.no_grad():
        (result,) = model([images[0]])
    assert result["boxes"].shape[1] == 4
    if model.config.mask_branch:
        assert result["masks"].shape == (len(result["boxes"]), SIZE, SIZE)
    else:
        assert "masks" not in result


def test_c4_predicts_14x14_masks_and_fpn_28x28():
    assert small_config(fpn=False, single_map="c4").mask_size == 14
    assert small_config().mask_size == 28


def test_inspect_shows_the_inside_of_a_forward_pass():
    tm.manual_seed(0)
    model = MaskRCNN(small_config())
    image, target = scene()
    _, inside = model([image], [target], inspect=True)
    rpn, heads = inside["rpn"], inside["roi_heads"]
    num_anchors = sum(rpn["anchors_per_level"])
    assert rpn["anchors"].shape == (num_anchors, 4)
    assert rpn["labels"][0].shape == (num_anchors,)
    assert rpn["proposals"][0].shape[1] == 4
    assert heads["sampled_proposals"][0].shape[0] == heads["sampled_labels"][0].shape[0]
    num_positive = int((heads["sampled_labels"][0] > 0).sum())
    assert heads["mask_targets"].shape == (num_positive, 28, 28)
    assert set(np.unique(heads["mask_targets"])) <= {0.0, 1.0}  # binarised (Detectron2)


def test_bad_config_and_missing_targets_are_explained():
    with pytest.raises(ValueError, match="roi_op='bilinear'"):
        MaskRCNNConfig(roi_op="bilinear")
    with pytest.raises(KeyError, match="unknown MaskRCNNConfig field"):
        MaskRCNNConfig.small(roi_type="align")
    model = MaskRCNN(small_config())
    with pytest.raises(ValueError, match="needs targets"):
        model([scene()[0]])


def test_mask_branch_gradient_check():
    """Features -> RoIAlign 4x4 -> FCN head -> deconv predictor -> sigmoid loss, float64."""
    tm.manual_seed(0)
    head = MaskFCNHead(in_channels=2, channels=3, num_convs=2)
    predictor = MaskPredictor(3, 3, num_classes=3)
    nn.init.normal_(predictor.mask_fcn_logits.weight, std=0.3)  # away from the tiny init
    branch = nn.Sequential(head, predictor).double()
    for name, parameter in branch.named_parameters():
        if name.endswith("bias"):  # zero biases put ReLU inputs exactly on the kink at 0
            nn.init.uniform_(parameter, 0.1, 0.5)
    rng = np.random.default_rng(0)
    features = tm.Tensor(rng.standard_normal((1, 2, 8, 8)), requires_grad=True)
    rois = np.array([[0, 1.3, 0.7, 6.2, 5.9], [0, 2.1, 2.4, 7.6, 7.1]])
    targets = (rng.random((2, 8, 8)) > 0.5).astype(np.float64)
    labels = np.array([1, 2])

    def loss(features, *params):
        pooled = roi_align(features, rois, 4, sampling_ratio=2, aligned=True)
        return mask_loss(branch(pooled), targets, labels, "sigmoid")

    assert tm.gradcheck(loss, [features, *branch.parameters()]) < 1e-6

    def softmax_loss(features, *params):
        pooled = roi_align(features, rois, 4, sampling_ratio=2, aligned=True)
        return mask_loss(branch(pooled), targets, labels, "softmax")

    assert tm.gradcheck(softmax_loss, [features, *branch.parameters()]) < 1e-6


def mask_iou_per_object(result, target):
    """For each ground-truth object, the best IoU of a predicted mask of its class."""
    ious = []
    for gt_mask, gt_label in zip(target["masks"], target["labels"]):
        best = 0.0
        for mask, label in zip(result["masks"], result["labels"]):
            if label == gt_label:
                union = np.logical_or(mask, gt_mask).sum()
                best = max(best, np.logical_and(mask, gt_mask).sum() / max(union, 1))
        ious.append(best)
    return ious


def test_small_model_overfits_a_few_images_until_the_masks_are_right():
    tm.manual_seed(0)
    model = MaskRCNN(small_config())
    images, targets = zip(*(scene(seed) for seed in range(3)))
    optimizer = tm.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    schedule = tm.optim.WarmupMultiStepLR(optimizer, milestones=[], warmup_iters=20,
                                          warmup_factor=0.1)
    for _ in range(100):
        losses = model(list(images), list(targets))
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        schedule.step()
    model.eval()
    with tm.no_grad():
        results = model(list(images))
    ious = [iou for result, target in zip(results, targets)
            for iou in mask_iou_per_object(result, target)]
    assert min(ious) > 0.8, f"mask IoU per object after 100 steps: {np.round(ious, 3)}"
