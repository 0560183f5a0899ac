"""Keypoints as one-hot masks (paper §5): targets from hand-placed keypoints, the loss and
the head in float64 by central differences, parity with torchvision's keypointrcnn_loss and
heatmaps_to_keypoints, flips, and the whole model with its keypoint branch."""

import numpy as np
import pytest

import tinymask as tm
from tinymask import nn
from tinymask.config import MaskRCNNConfig
from tinymask.data.augment import horizontal_flip
from tinymask.functional.interpolation import bicubic_matrix
from tinymask.keypoints import (
    heatmaps_to_keypoints,
    keypoint_flip_index,
    keypoint_loss,
    keypoints_to_heatmap,
)
from tinymask.model.keypoint_head import KeypointHead, KeypointPredictor
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.ops import roi_align


def test_targets_of_hand_placed_keypoints():
    """RoI (10, 20)-(38, 48): 28 pixels a side on a 56-cell grid, so a cell is half a pixel
    and cell i covers x in [10 + i/2, 10 + (i+1)/2)."""
    rois = np.array([[10.0, 20.0, 38.0, 48.0]])
    keypoints = np.array([[
        [10.0, 20.0, 2],  # the top-left corner: cell (0, 0)
        [24.3, 34.0, 1],  # hidden but labelled still counts: column 28, row 28
        [38.0, 48.0, 2],  # exactly on the right and bottom edges: the last cell, not past it
        [9.9, 30.0, 2],  # left of the RoI
        [20.0, 30.0, 0],  # not labelled
        [38.1, 30.0, 2],  # right of the RoI
        [10.74, 47.99, 2],  # column floor(1.48) = 1, row floor(55.98) = 55
    ]])
    targets, valid = keypoints_to_heatmap(keypoints, rois, 56)
    assert valid.tolist() == [[True, True, True, False, False, False, True]]
    assert targets[0, 0] == 0
    assert targets[0, 1] == 28 * 56 + 28
    assert targets[0, 2] == 55 * 56 + 55
    assert targets[0, 6] == 55 * 56 + 1
    assert (targets[~valid] == 0).all()


def test_loss_is_the_cross_entropy_over_cells_of_valid_pairs():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 4, 4))
    targets = np.array([[5, 0, 15], [3, 9, 0]])
    valid = np.array([[True, False, True], [False, True, False]])
    loss = keypoint_loss(tm.Tensor(logits), targets, valid)
    expected = []
    for roi, keypoint in zip(*np.nonzero(valid)):
        flat = logits[roi, keypoint].reshape(-1)
        log_softmax = flat - np.log(np.exp(flat).sum())
        expected.append(-log_softmax[targets[roi, keypoint]])
    assert float(loss.data) == pytest.approx(np.mean(expected), rel=1e-12)


def test_loss_without_a_valid_keypoint_is_zero_with_a_gradient():
    logits = tm.Tensor(np.ones((2, 3, 4, 4)), requires_grad=True)
    loss = keypoint_loss(logits, np.zeros((2, 3), np.int64), np.zeros((2, 3), bool))
    loss.backward()
    assert float(loss.data) == 0.0 and np.array_equal(logits.grad, np.zeros((2, 3, 4, 4)))
    empty = keypoint_loss(tm.Tensor(np.ones((0, 3, 4, 4))), np.zeros((0, 3), np.int64),
                          np.zeros((0, 3), bool))
    assert float(empty.data) == 0.0


def test_keypoint_loss_gradient_check():
    rng = np.random.default_rng(1)
    targets = np.array([[5, 0, 15], [3, 9, 0]])
    valid = np.array([[True, False, True], [True, True, False]])
    assert tm.gradcheck(lambda x: keypoint_loss(x, targets, valid),
                        [rng.standard_normal((2, 3, 4, 4))]) < 1e-6


def test_keypoint_branch_gradient_check():
    """Features -> RoIAlign -> 2 convs -> 4x4 stride-2 deconv -> bilinear x2 -> loss."""
    tm.manual_seed(0)
    head = KeypointHead(in_channels=2, channels=2, num_convs=2)
    predictor = KeypointPredictor(2, num_keypoints=2)
    branch = nn.Sequential(head, predictor).double()
    for name, parameter in branch.named_parameters():
        if name.endswith("bias"):  # zero biases put ReLU inputs exactly on the kink at 0
            nn.init.uniform_(parameter, 0.1, 0.5)
    rng = np.random.default_rng(0)
    features = tm.Tensor(rng.standard_normal((1, 2, 6, 6)), requires_grad=True)
    rois = np.array([[0, 1.3, 0.7, 5.2, 4.9], [0, 2.1, 2.4, 5.6, 5.1]])
    keypoints = np.array([[[2.0, 3.0, 2], [4.5, 1.0, 1]], [[5.0, 4.5, 2], [3.0, 3.0, 0]]])
    targets, valid = keypoints_to_heatmap(keypoints, rois[:, 1:], 8)

    def loss(features, *params):
        pooled = roi_align(features, rois, 2, sampling_ratio=2, aligned=True)
        logits = branch(pooled)
        assert logits.shape == (2, 2, 8, 8)
        return keypoint_loss(logits, targets, valid)

    assert valid.sum() == 3
    assert tm.gradcheck(loss, [features, *branch.parameters()]) < 1e-6


def test_head_shapes_follow_the_paper():
    head = KeypointHead(in_channels=8, channels=16)
    predictor = KeypointPredictor(16, num_keypoints=14)
    assert head.num_convs == 8
    logits = predictor(head(tm.Tensor(np.zeros((3, 8, 14, 14), np.float32))))
    assert logits.shape == (3, 14, 56, 56)


def test_bicubic_matrix_resizes_as_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 56, 56))
    for size in [(37, 80), (3, 1), (56, 56), (120, 9)]:
        expected = torch.nn.functional.interpolate(torch.tensor(x)[:, None], size=size,
                                                   mode="bicubic", align_corners=False)
        ours = bicubic_matrix(56, size[0]) @ x @ bicubic_matrix(56, size[1]).T
        np.testing.assert_allclose(ours, expected[:, 0].numpy(), atol=1e-12)


@pytest.mark.torch
@pytest.mark.torchvision
def test_targets_and_loss_match_torchvision_keypointrcnn_loss():
    import torch
    from torchvision.models.detection import roi_heads as tv

    rng = np.random.default_rng(2)
    proposals = [np.array([[3.0, 4.0, 30.0, 41.0], [10.5, 2.25, 20.0, 30.0],
                           [0.0, 0.0, 64.0, 64.0]]), np.array([[5.0, 5.0, 25.0, 45.0]])]
    gt_keypoints = [rng.uniform(0, 64, (2, 5, 3)), rng.uniform(0, 64, (1, 5, 3))]
    for image_keypoints in gt_keypoints:
        image_keypoints[..., 2] = rng.integers(0, 3, image_keypoints.shape[:2])
    gt_keypoints[0][0, 0, :2] = [30.0, 41.0]  # on the first RoI's right and bottom edges
    gt_keypoints[0][0, 0, 2] = 2
    matched = [np.array([0, 1, 0]), np.array([0])]
    logits = rng.standard_normal((4, 5, 56, 56))

    targets, valid = zip(*(keypoints_to_heatmap(kp[index], rois, 56) for kp, index, rois in
                           zip(gt_keypoints, matched, proposals)))
    targets, valid = np.concatenate(targets), np.concatenate(valid)
    for kp, index, rois, ours_targets, ours_valid in zip(
            gt_keypoints, matched, proposals, np.split(targets, [3]), np.split(valid, [3])):
        tv_targets, tv_valid = tv.keypoints_to_heatmap(torch.tensor(kp[index]),
                                                       torch.tensor(rois), 56)
        np.testing.assert_array_equal(ours_targets, tv_targets.numpy())
        np.testing.assert_array_equal(ours_valid, tv_valid.numpy().astype(bool))
    assert valid.sum() > 4

    ours_logits = tm.Tensor(logits.copy(), requires_grad=True)
    ours = keypoint_loss(ours_logits, targets, valid)
    ours.backward()
    torch_logits = torch.tensor(logits, requires_grad=True)
    expected = tv.keypointrcnn_loss(torch_logits, [torch.tensor(p) for p in proposals],
                                    [torch.tensor(k) for k in gt_keypoints],
                                    [torch.tensor(m) for m in matched])
    expected.backward()
    assert float(ours.data) == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(ours_logits.grad, torch_logits.grad.numpy(), atol=1e-15)


@pytest.mark.torch
@pytest.mark.torchvision
def test_decoding_matches_torchvision_heatmaps_to_keypoints():
    import torch
    from torchvision.models.detection.roi_heads import heatmaps_to_keypoints as tv_decode

    rng = np.random.default_rng(3)
    # smooth maps with one clear peak each, so float rounding cannot move the argmax
    rows, cols = np.mgrid[:56, :56]
    centres = rng.uniform(3, 53, (4, 6, 2))
    maps = -((rows - centres[..., 1, None, None]) ** 2
             + (cols - centres[..., 0, None, None]) ** 2) / 40.0
    maps = maps.astype(np.float32)
    rois = np.array([[3.0, 4.0, 30.5, 41.0], [10.5, 2.25, 20.0, 30.0],
                     [0.0, 0.0, 0.4, 64.0], [5.0, 5.0, 125.0, 45.0]], np.float32)
    keypoints, scores = heatmaps_to_keypoints(maps, rois)
    expected_keypoints, expected_scores = tv_decode(torch.tensor(maps), torch.tensor(rois))
    np.testing.assert_allclose(keypoints, expected_keypoints.numpy(), atol=1e-4)
    np.testing.assert_allclose(scores, expected_scores.numpy(), atol=1e-4)


def test_decoding_inverts_the_targets():
    """A one-hot heatmap at a keypoint's target cell decodes back to the keypoint, within
    the half cell the grid cannot tell apart (the box is 56 px, so cells are 1 px)."""
    rois = np.array([[12.0, 7.0, 68.0, 63.0]])
    keypoints = np.array([[[20.3, 30.8, 2], [67.2, 7.1, 2]]])
    targets, valid = keypoints_to_heatmap(keypoints, rois, 56)
    heatmaps = np.full((1, 2, 56 * 56), -10.0)
    heatmaps[0, [0, 1], targets[0]] = 10.0
    decoded, _ = heatmaps_to_keypoints(heatmaps.reshape(1, 2, 56, 56), rois)
    assert valid.all()
    np.testing.assert_allclose(decoded[0, :, :2], keypoints[0, :, :2], atol=0.5 + 1e-6)


def test_small_boxes_decode_on_the_heatmap_grid():
    """A 20 x 30 pixel box: torchvision's resize to the box downsamples the 56 x 56 map
    without a low-pass first, so a one-cell peak can fall between its samples and lose to a
    lower but broader bump; ``resize_to_box=False`` reads the peak's own cell. Across, the
    20 samples sit at cells 0.9, 3.7, 6.5, ... (every 2.8): cell 30 is more than one cell
    from both its neighbours, where the cubic kernel's weights are negative."""
    rois = np.array([[40.0, 10.0, 60.0, 40.0]])
    keypoints = np.array([[[50.9, 25.2, 2], [58.8, 39.1, 2], [41.3, 12.2, 2]]])
    targets, _ = keypoints_to_heatmap(keypoints, rois, 56)
    assert targets[0, 0] % 56 == 30
    heatmaps = np.full((1, 3, 56 * 56), -10.0)
    heatmaps[0, [0, 1, 2], targets[0]] = 10.0
    heatmaps = heatmaps.reshape(1, 3, 56, 56)
    heatmaps[0, 0, 2:7, 2:7] = 5.0  # a lower, broader bump in the top-left corner
    on_grid, scores = heatmaps_to_keypoints(heatmaps, rois, resize_to_box=False)
    cell = np.array([20 / 56, 30 / 56])
    assert (np.abs(on_grid[0, :, :2] - keypoints[0, :, :2]) <= cell / 2 + 1e-5).all()
    assert (scores == 10.0).all()
    resized, _ = heatmaps_to_keypoints(heatmaps, rois)
    assert np.hypot(*(resized[0, 0, :2] - keypoints[0, 0, :2])) > 10.0  # found the bump


def test_flip_swaps_left_and_right_and_mirrors_x():
    names = ["head", "left_wrist", "right_wrist"]
    flip = keypoint_flip_index(names)
    assert flip.tolist() == [0, 2, 1]
    image = np.zeros((10, 20, 3), np.uint8)
    target = {"boxes": np.array([[2.0, 1.0, 8.0, 9.0]]), "labels": np.array([1]),
              "keypoints": np.array([[[5.0, 2.0, 2], [3.0, 4.0, 1], [0.0, 0.0, 0]]])}
    _, flipped = horizontal_flip(image, target, flip)
    assert flipped["keypoints"].tolist() == [[[15.0, 2.0, 2], [0.0, 0.0, 0], [17.0, 4.0, 1]]]
    with pytest.raises(ValueError, match="keypoint_flip"):
        horizontal_flip(image, target)


def keypoint_config(**changes):
    base = dict(min_size=64, max_size=64, num_classes=2, keypoint_branch=True, num_keypoints=3,
                rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=100,
                rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=30,
                box_batch_size_per_image=32, rpn_batch_size_per_image=64,
                keypoint_conv_channels=16)
    base.update(changes)
    return MaskRCNNConfig.small(**base)


def bar_scene():
    image = np.zeros((64, 64, 3), np.uint8)
    image[10:40, 20:50] = 200
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 10:40, 20:50] = 1
    target = {"boxes": np.array([[20.0, 10.0, 50.0, 40.0]], np.float32),
              "labels": np.array([1]), "masks": mask,
              "keypoints": np.array([[[25.0, 15.0, 2], [45.0, 35.0, 2], [0.0, 0.0, 0]]],
                                    np.float32)}
    return image, target


@pytest.mark.parametrize("mask_branch", [False, True])
def test_model_trains_and_predicts_keypoints_with_or_without_masks(mask_branch):
    tm.manual_seed(0)
    model = MaskRCNN(keypoint_config(mask_branch=mask_branch))
    image, target = bar_scene()
    losses = model([image], [target])
    assert ("loss_mask" in losses) == mask_branch
    assert 0 < float(losses["loss_keypoint"].data) < 3 * np.log(56 * 56)
    sum(losses.values()).backward()
    assert model.roi_heads.keypoint_head.conv_fcn1.weight.grad is not None
    model.eval()
    with tm.no_grad():
        (result,) = model([image[:, :48]])  # a 64 x 48 image: keypoints come back in its pixels
    count = result["boxes"].shape[0]
    assert result["keypoints"].shape == (count, 3, 3)
    assert result["keypoints_scores"].shape == (count, 3)
    assert ("masks" in result) == mask_branch
    boxes, keypoints = result["boxes"], result["keypoints"]
    assert (keypoints[..., 0] >= boxes[:, None, 0] - 1e-3).all()
    assert (keypoints[..., 0] <= boxes[:, None, 2] + 1e-3).all()


def test_an_image_without_figures_trains_and_predicts_nothing():
    tm.manual_seed(0)
    model = MaskRCNN(keypoint_config(mask_branch=False, detections_per_img=3))
    image, target = bar_scene()
    empty = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64),
             "masks": np.zeros((0, 64, 64), np.uint8),
             "keypoints": np.zeros((0, 3, 3), np.float32)}
    losses = model([image, np.zeros_like(image)], [target, empty])
    sum(losses.values()).backward()
    only_empty = model([np.zeros_like(image)], [empty])
    assert float(only_empty["loss_keypoint"].data) == 0.0
    model.eval()
    model.roi_heads.score_thresh = 1.0  # nothing passes: no detection to decode
    with tm.no_grad():
        (result,) = model([image])
    assert result["keypoints"].shape == (0, 3, 3) and result["keypoints_scores"].shape == (0, 3)


def test_keypoint_model_refuses_targets_without_keypoints():
    model = MaskRCNN(keypoint_config())
    image, target = bar_scene()
    del target["keypoints"]
    with pytest.raises(tm.errors.UserError, match="keypoints"):
        model([image], [target])
    target["keypoints"] = np.zeros((1, 4, 3), np.float32)
    with pytest.raises(tm.errors.UserError, match="num_keypoints"):
        model([image], [target])


@pytest.mark.slow
def test_small_model_overfits_two_figures_until_the_keypoints_are_right():
    """Keypoint-only model, two 64-pixel images of one whole figure each: after 300 steps
    the top detection's 14 keypoints lie within 2 pixels of the true ones. Gradients are
    clipped as in the figures preset: unclipped, lr 0.02 diverged."""
    from tinymask.data import FiguresDataset

    tm.manual_seed(0)
    dataset = FiguresDataset(20, image_size=64, seed=5, min_objects=1, max_objects=1,
                             min_height=40, max_height_fraction=0.85)
    images, targets = zip(*(dataset[index] for index in (1, 5)))
    for target in targets:  # figures the border does not cut: every keypoint visible
        assert (target["keypoints"][0, :, 2] == 2).all()
    model = MaskRCNN(keypoint_config(num_keypoints=14, mask_branch=False,
                                     keypoint_conv_channels=32))
    optimizer = tm.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    schedule = tm.optim.WarmupMultiStepLR(optimizer, milestones=[], warmup_iters=20,
                                          warmup_factor=0.1)
    for _ in range(300):
        losses = model(list(images), list(targets))
        optimizer.zero_grad()
        sum(losses.values()).backward()
        tm.optim.clip_grad_norm_(list(model.parameters()), 10.0)
        optimizer.step()
        schedule.step()
    model.eval()
    with tm.no_grad():
        results = model(list(images))
    for result, target in zip(results, targets):
        keypoints = target["keypoints"][0]
        errors = np.hypot(*(result["keypoints"][0, :, :2] - keypoints[:, :2]).T)
        assert errors.max() <= 2.0, errors
