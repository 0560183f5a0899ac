"""tinymask held against torchvision, the library a student will put beside it.

* The whole R50-FPN Mask R-CNN in eval, stage by stage: torchvision's
  ``maskrcnn_resnet50_fpn`` as built for its COCO weights (frozen batch norm, eps 0),
  randomly initialised, copied into tinymask with ``from_torchvision`` and run with
  ``MaskRCNNConfig.torchvision()``: the batch, every FPN level, the anchors (on a padded size
  where P6's stride is not 64), the proposals, the detections and the pasted masks.
* Training: the five losses and the gradients of a few parameters, with samplers so large
  that every anchor and RoI is taken (nothing is drawn at random).
* The ops against ``torchvision.ops`` in float32 and float64.
* Weights: round trips through ``from_torchvision`` / ``to_torchvision``.

The images are small (a few hundred pixels) and the proposal and detection counts low, so
that the R50 comparisons take seconds on a CPU.
"""

import numpy as np
import pytest

import tinymask as tm
from tinymask.anchors import AnchorGenerator
from tinymask.boxes import box_iou
from tinymask.model.roi_heads import crop_mask_targets
from tinymask.ops import batched_nms, nms, roi_align, roi_pool

pytestmark = pytest.mark.torchvision

MIN_SIZE, MAX_SIZE = 128, 160
# 150 x 190 and 170 x 130 are resized to 126 x 160 and 160 x 122 and padded together to
# 160 x 160: P5 is 5 x 5, P6 3 x 3, and torchvision's P6 stride is 160 // 3 = 53, not 64
IMAGE_SHAPES = [(150, 190), (170, 130)]
LEVELS = {"0": "p2", "1": "p3", "2": "p4", "3": "p5", "pool": "p6"}


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def torchvision():
    return pytest.importorskip("torchvision")


def torchvision_mask_rcnn(torch, torchvision, seed=0, **settings):
    """torchvision's maskrcnn_resnet50_fpn as built for its COCO weights (FrozenBatchNorm2d
    with eps 0, the stem and res2 frozen), with random weights made worth comparing.

    Random weights alone compare nothing: frozen batch norms at their initial values are
    identities, so 16 residual blocks let the activations grow without bound, and the class
    logits (weights of std 0.01) give every one of 91 classes a score near 1/91, under the
    0.05 threshold: no detection at all. So every batch norm gets random statistics and
    affine values, the last one of each residual branch a smaller scale, and the class
    weights are multiplied by 30.
    """
    detection = torchvision.models.detection
    torch.manual_seed(seed)
    backbone = detection.backbone_utils.resnet_fpn_backbone(
        backbone_name="resnet50", weights=None,
        norm_layer=torchvision.ops.misc.FrozenBatchNorm2d, trainable_layers=3)
    model = detection.MaskRCNN(backbone, num_classes=91, min_size=MIN_SIZE, max_size=MAX_SIZE,
                               **settings)
    detection._utils.overwrite_eps(model, 0.0)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torchvision.ops.misc.FrozenBatchNorm2d):
                count = module.weight.numel()
                module.running_mean.copy_(torch.randn(count, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(count, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(count, generator=generator) * 0.5 + 0.5)
                module.bias.copy_(torch.randn(count, generator=generator) * 0.1)
                if name.endswith(("bn3", "downsample.1")):  # where a residual branch ends
                    module.weight.mul_(0.3)
        model.roi_heads.box_predictor.cls_score.weight.mul_(30.0)
    return model


def tinymask_config(**settings):
    return tm.MaskRCNNConfig.torchvision(min_size=MIN_SIZE, max_size=MAX_SIZE, **settings)


def test_image_shapes_make_torchvisions_p6_stride_differ():
    transform = tm.model.transform
    sizes = [transform.resized_size(*shape, MIN_SIZE, MAX_SIZE) for shape in IMAGE_SHAPES]
    padded = [-(-max(side) // 32) * 32 for side in zip(*sizes)]
    p6 = [-(-side // 64) for side in padded]  # stride-2 steps round up
    assert [side // cells for side, cells in zip(padded, p6)] == [53, 53]


def images(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((3, *shape)).astype(np.float32) for shape in IMAGE_SHAPES]


def assert_close_relative(ours, theirs, rtol, what):
    """|ours - theirs| within rtol of the largest |theirs| (float32 through 50 layers)."""
    theirs = np.asarray(theirs)
    scale = max(float(np.abs(theirs).max()), 1e-12)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=rtol * scale, err_msg=what)


def matching_rows(ours, theirs, atol):
    """For two sets of rows, the index in ``ours`` of each row of ``theirs`` (nearest by the
    largest coordinate difference), checking it is one to one and within ``atol``."""
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    distance = np.abs(ours[None, :, :] - theirs[:, None, :]).max(axis=2)  # (theirs, ours)
    nearest = distance.argmin(axis=1)
    assert len(set(nearest.tolist())) == len(nearest), "two rows matched the same row"
    worst = distance[np.arange(len(nearest)), nearest].max(initial=0.0)
    assert worst <= atol, f"a row is {worst} away from its nearest match"
    return nearest


# ---------------------------------------------------------------- the whole model, eval
EVAL_SETTINGS = dict(rpn_post_nms_top_n_test=200, box_detections_per_img=15)


@pytest.fixture(scope="module")
def eval_runs(torch, torchvision):
    """torchvision's model and tinymask's with its weights, run on the same two images;
    torchvision's stages are called one by one so each can be compared."""
    theirs = torchvision_mask_rcnn(torch, torchvision, **EVAL_SETTINGS).eval()
    ours = tm.from_torchvision(theirs.state_dict(), tinymask_config(
        rpn_post_nms_top_n_test=200, detections_per_img=15)).eval()
    pictures = images()
    with torch.no_grad():
        batch, _ = theirs.transform([torch.from_numpy(picture) for picture in pictures])
        features = theirs.backbone(batch.tensors)
        anchors = theirs.rpn.anchor_generator(batch, list(features.values()))
        proposals, _ = theirs.rpn(batch, features)
        detections, _ = theirs.roi_heads(features, proposals, batch.image_sizes)
        results = theirs.transform.postprocess(detections, batch.image_sizes,
                                               [picture.shape[1:] for picture in pictures])
    with tm.no_grad():
        our_results, inside = ours(pictures, inspect=True)
    theirs_stages = {"batch": batch, "features": features, "anchors": anchors,
                     "proposals": proposals, "results": results}
    return theirs_stages, our_results, inside


def test_eval_batch(eval_runs):
    theirs, _, inside = eval_runs
    assert inside["batch"].image_sizes == [tuple(size) for size in theirs["batch"].image_sizes]
    # normalised pixels of about unit size; the two bilinear resizes round differently
    np.testing.assert_allclose(inside["batch"].images, theirs["batch"].tensors.numpy(),
                               atol=1e-4)


def test_eval_fpn_levels(eval_runs):
    theirs, _, inside = eval_runs
    for their_name, our_name in LEVELS.items():
        assert_close_relative(inside["features"][our_name].data,
                              theirs["features"][their_name].numpy(), 1e-4, our_name)


def test_eval_anchors_with_torchvisions_strides(eval_runs):
    theirs, _, inside = eval_runs
    for their_anchors in theirs["anchors"]:  # the same for both images
        np.testing.assert_array_equal(inside["rpn"]["anchors"], their_anchors.numpy())
    # P6 (the last 3 x 3 x 3 anchors): centres 53 pixels apart, not 64
    p6 = inside["rpn"]["anchors"][-27:].reshape(3, 3, 3, 4)
    assert p6[0, 1, 0, 0] - p6[0, 0, 0, 0] == 53


def test_eval_proposals_are_the_same_sets(eval_runs):
    theirs, _, inside = eval_runs
    for ours, their_boxes in zip(inside["rpn"]["proposals"], theirs["proposals"]):
        assert len(ours) == 200
        matching_rows(ours, their_boxes.numpy(), atol=1e-3)


def test_eval_detections(eval_runs):
    theirs, ours, _ = eval_runs
    for our_result, their_result in zip(ours, theirs["results"]):
        their_boxes = their_result["boxes"].numpy()
        assert len(their_boxes) >= 10, "too few detections to compare"
        order = matching_rows(our_result["boxes"], their_boxes, atol=1e-3)
        np.testing.assert_array_equal(our_result["labels"][order],
                                      their_result["labels"].numpy())
        np.testing.assert_allclose(our_result["scores"][order], their_result["scores"].numpy(),
                                   rtol=1e-4)


def test_eval_pasted_masks(eval_runs):
    theirs, ours, _ = eval_runs
    for our_result, their_result in zip(ours, theirs["results"]):
        their_masks = their_result["masks"][:, 0].numpy()  # (D, 1, H, W) probabilities
        order = matching_rows(our_result["boxes"], their_result["boxes"].numpy(), atol=1e-3)
        assert our_result["masks"].dtype.kind == "f"  # probabilities, as torchvision's
        assert their_masks.max() > 0.4, "the masks should not all be near zero"
        np.testing.assert_allclose(our_result["masks"][order], their_masks, atol=2e-5)


# ---------------------------------------------------------------- training
# every anchor and every RoI is sampled, so nothing is drawn at random on either side
EVERYTHING = 10**7
TRAIN_SETTINGS = dict(rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=150,
                      rpn_batch_size_per_image=EVERYTHING, box_batch_size_per_image=EVERYTHING)
# one parameter per part: mask predictor, FPN, RPN head, backbone (torchvision's names)
GRADIENT_CHECKED = ["roi_heads.mask_predictor.mask_fcn_logits.weight",
                    "backbone.fpn.inner_blocks.0.0.weight", "rpn.head.conv.0.0.weight",
                    "backbone.body.layer2.0.conv1.weight"]


def targets_for(shapes, seed=0):
    """An ellipse and a rectangle per image: boxes in the image's pixels, binary masks."""
    rng = np.random.default_rng(seed)
    targets = []
    for height, width in shapes:
        rows, cols = np.mgrid[:height, :width] + 0.5
        boxes, masks = [], []
        for kind in ("ellipse", "rectangle"):
            x1, y1 = rng.uniform(0, width / 2), rng.uniform(0, height / 2)
            w, h = rng.uniform(30, width / 2), rng.uniform(30, height / 2)
            if kind == "ellipse":
                centre_x, centre_y = x1 + w / 2, y1 + h / 2
                mask = ((cols - centre_x) / (w / 2)) ** 2 + ((rows - centre_y) / (h / 2)) ** 2 <= 1
            else:
                mask = (cols >= x1) & (cols < x1 + w) & (rows >= y1) & (rows < y1 + h)
            boxes.append([x1, y1, x1 + w, y1 + h])
            masks.append(mask)
        targets.append({"boxes": np.array(boxes, np.float32), "labels": np.array([1, 7]),
                        "masks": np.array(masks, np.uint8)})
    return targets


@pytest.fixture(scope="module")
def training_runs(torch, torchvision):
    """One training forward and backward of each model on the same images and targets."""
    theirs = torchvision_mask_rcnn(torch, torchvision, seed=2, **TRAIN_SETTINGS).train()
    ours = tm.from_torchvision(theirs.state_dict(), tinymask_config(**TRAIN_SETTINGS)).train()
    pictures, targets = images(seed=1), targets_for(IMAGE_SHAPES)
    their_targets = [{name: torch.from_numpy(value) for name, value in target.items()}
                     for target in targets]
    batch, their_targets = theirs.transform([torch.from_numpy(p) for p in pictures],
                                            their_targets)
    features = theirs.backbone(batch.tensors)
    proposals, their_losses = theirs.rpn(batch, features, their_targets)
    _, roi_losses = theirs.roi_heads(features, proposals, batch.image_sizes, their_targets)
    their_losses.update(roi_losses)
    sum(their_losses.values()).backward()
    their_gradients = {name: parameter.grad.numpy()
                       for name, parameter in theirs.named_parameters()
                       if name in GRADIENT_CHECKED}

    our_losses, inside = ours(pictures, targets, inspect=True)
    sum(our_losses.values()).backward()
    our_parameters = dict(ours.named_parameters())
    our_gradients = {name: our_parameters[tm.torchvision_weights.tinymask_name(name)].grad
                     for name in GRADIENT_CHECKED}
    return ({name: loss.item() for name, loss in their_losses.items()}, their_gradients,
            [p.detach().numpy() for p in proposals],
            {name: loss.item() for name, loss in our_losses.items()}, our_gradients, inside)


def test_training_proposals_are_the_same_sets(training_runs):
    _, _, their_proposals, _, _, inside = training_runs
    for ours, theirs in zip(inside["rpn"]["proposals"], their_proposals):
        matching_rows(ours, theirs, atol=1e-3)


def test_training_losses(training_runs):
    their_losses, _, _, our_losses, _, inside = training_runs
    assert set(our_losses) == set(their_losses)
    assert int((np.concatenate(inside["roi_heads"]["sampled_labels"]) > 0).sum()) >= 4
    for name, theirs in their_losses.items():
        # every anchor is sampled: the RPN box loss is divided by all of them and is small
        assert theirs > 1e-5, f"{name} = {theirs}: too small to compare"
        assert our_losses[name] == pytest.approx(theirs, rel=1e-4), name


def test_training_gradients(training_runs):
    _, their_gradients, _, _, our_gradients, _ = training_runs
    for name in GRADIENT_CHECKED:
        ours, theirs = our_gradients[name], their_gradients[name]
        assert np.linalg.norm(theirs) > 0, name
        error = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
        assert error < 1e-3, f"{name}: relative error {error:.2e}"


def test_mask_targets_switch(torch, torchvision):
    """torchvision's targets (RoIAlign aligned=False, soft) with the switches set, and how
    far the defaults (aligned, binarised at 0.5: Detectron2's) are from them."""
    project = torchvision.models.detection.roi_heads.project_masks_on_boxes
    (target,) = targets_for([(150, 190)])
    rng = np.random.default_rng(3)
    matched = rng.integers(0, 2, 20)
    rois = (target["boxes"][matched] + rng.uniform(-12, 12, (20, 4))).astype(np.float32)
    theirs = project(torch.from_numpy(target["masks"]), torch.from_numpy(rois),
                     torch.from_numpy(matched), 28).numpy()
    ours = crop_mask_targets(target["masks"], matched, rois, 28, binarize=False, aligned=False)
    # torchvision places the samples in float32, tinymask in float64
    np.testing.assert_allclose(ours, theirs, atol=2e-5)
    defaults = crop_mask_targets(target["masks"], matched, rois, 28)
    assert np.abs(defaults - theirs).max() > 0.25


# ---------------------------------------------------------------- anchors and ops
def test_anchor_strides_switch_on_torchvisions_800_x_1088(torch, torchvision):
    """800 x 1088 is torchvision's batch for a 480 x 640 COCO image: P6 is 13 x 17 cells,
    so its stride is 800 // 13 = 61 down and 1088 // 17 = 64 across."""
    detection = torchvision.models.detection
    theirs = detection.anchor_utils.AnchorGenerator(((32,), (64,), (128,), (256,), (512,)),
                                                    ((0.5, 1.0, 2.0),) * 5)
    shapes = [(200, 272), (100, 136), (50, 68), (25, 34), (13, 17)]
    batch = detection.image_list.ImageList(torch.zeros(1, 3, 800, 1088), [(800, 1066)])
    features = [torch.zeros(1, 1, *shape) for shape in shapes]
    (their_anchors,) = theirs(batch, features)
    ours = AnchorGenerator(strides_from_image_size=True)
    assert ours.level_strides(shapes, (800, 1088))[-1] == (61, 64)
    np.testing.assert_array_equal(ours(shapes, image_size=(800, 1088)), their_anchors.numpy())
    fixed = AnchorGenerator()(shapes)
    p6 = slice(-13 * 17 * 3, None)
    np.testing.assert_array_equal(fixed[: p6.start], their_anchors.numpy()[: p6.start])
    assert np.abs(fixed[p6] - their_anchors.numpy()[p6]).max() == 12 * (64 - 61)


DTYPES = [np.float32, np.float64]
SIZES = np.arange(1, 129)  # every RoI size from 1 to 128 cells


def rois_of_every_size(dtype, map_size, spatial_scale, rng, fractional=True):
    """(128, 5) RoIs of 1..128 cells wide (and 128..1 high), at random places.

    With ``fractional=False`` the corners sit on quarter cells, so RoI sizes are whole
    numbers of cells in float32 as in float64: tinymask computes RoIAlign's geometry in
    float64 and torchvision in the input's dtype, and where float32 rounding moves
    ``roi_size / bins`` across a whole number the adaptive sample count differs by one."""
    count = len(SIZES)
    if fractional:
        x1, y1 = rng.uniform(0, map_size - 128, (2, count))
    else:
        x1, y1 = rng.integers(0, 4 * (map_size - 128), (2, count)) / 4
    cells = np.stack([x1, y1, x1 + SIZES, y1 + SIZES[::-1]], axis=1)
    batch_index = rng.integers(0, 2, (count, 1))
    return np.concatenate([batch_index, cells / spatial_scale], axis=1).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_every_size(torch, torchvision, dtype, aligned, sampling_ratio):
    rng = np.random.default_rng(sampling_ratio + 2 * aligned)
    scale, map_size = 0.25, 136
    features = rng.standard_normal((2, 3, map_size, map_size)).astype(dtype)
    rois = rois_of_every_size(dtype, map_size, scale, rng, fractional=False)
    grad = rng.standard_normal((len(rois), 3, 7, 7)).astype(dtype)
    inputs = tm.Tensor(features, requires_grad=True)
    ours = roi_align(inputs, rois, 7, scale, sampling_ratio, aligned)
    ours.backward(grad)
    their_inputs = torch.from_numpy(features).requires_grad_()
    theirs = torchvision.ops.roi_align(their_inputs, torch.from_numpy(rois), 7, scale,
                                       sampling_ratio, aligned)
    theirs.backward(torch.from_numpy(grad))
    tolerance = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), atol=tolerance)
    np.testing.assert_allclose(inputs.grad, their_inputs.grad.numpy(), atol=tolerance)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_roi_pool_every_size(torch, torchvision, dtype):
    """Exactly torchvision's output and gradient with the bins in the input's dtype; in
    float32 the float64 bins differ for some sizes, in float64 the two are the same."""
    rng = np.random.default_rng(5)
    scale, map_size = 0.25, 136
    features = rng.standard_normal((2, 3, map_size, map_size)).astype(dtype)
    rois = rois_of_every_size(dtype, map_size, scale, rng)
    grad = rng.standard_normal((len(rois), 3, 7, 7)).astype(dtype)
    their_inputs = torch.from_numpy(features).requires_grad_()
    theirs = torchvision.ops.roi_pool(their_inputs, torch.from_numpy(rois), 7, scale)
    theirs.backward(torch.from_numpy(grad))
    inputs = tm.Tensor(features, requires_grad=True)
    ours = roi_pool(inputs, rois, 7, scale, bins_in_input_dtype=True)
    ours.backward(grad)
    np.testing.assert_array_equal(ours.data, theirs.detach().numpy())
    np.testing.assert_allclose(inputs.grad, their_inputs.grad.numpy(), rtol=1e-6, atol=1e-6)
    in_float64 = roi_pool(features, rois, 7, scale, bins_in_input_dtype=False).data
    differs = (in_float64 != theirs.detach().numpy()).any(axis=(1, 2, 3))
    assert differs.any() == (dtype == np.float32)


def tied_boxes(rng, count, dtype):
    centres, sizes = rng.uniform(0, 200, (count, 2)), rng.uniform(5, 60, (count, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(dtype)
    scores = (rng.integers(0, 5, count) / 4).astype(dtype)  # five values: many ties
    return boxes, scores, rng.integers(0, 3, count)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_nms_and_batched_nms_with_tied_scores(torch, torchvision, dtype):
    rng = np.random.default_rng(7)
    for count in (50, 1000):
        boxes, scores, groups = tied_boxes(rng, count, dtype)
        boxes_t, scores_t, groups_t = (torch.from_numpy(a) for a in (boxes, scores, groups))
        for threshold in (0.3, 0.5, 0.7):
            np.testing.assert_array_equal(
                nms(boxes, scores, threshold), torchvision.ops.nms(boxes_t, scores_t, threshold))
            np.testing.assert_array_equal(
                batched_nms(boxes, scores, groups, threshold),
                torchvision.ops.batched_nms(boxes_t, scores_t, groups_t, threshold))


def test_batched_nms_above_a_thousand_boxes_keeps_the_same_set(torch, torchvision):
    """Above 1000 boxes torchvision's CPU batched_nms runs NMS per group and sorts the kept
    boxes again, with a sort that may reorder equal scores: the same boxes, in score order,
    but ties in another order."""
    boxes, scores, groups = tied_boxes(np.random.default_rng(8), 3000, np.float32)
    ours = batched_nms(boxes, scores, groups, 0.5)
    theirs = torchvision.ops.batched_nms(*(torch.from_numpy(a) for a in (boxes, scores, groups)),
                                         0.5).numpy()
    np.testing.assert_array_equal(np.sort(ours), np.sort(theirs))
    np.testing.assert_array_equal(scores[ours], scores[theirs])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_box_iou(torch, torchvision, dtype):
    boxes, _, _ = tied_boxes(np.random.default_rng(9), 300, dtype)
    theirs = torchvision.ops.box_iou(torch.from_numpy(boxes[:100]), torch.from_numpy(boxes))
    np.testing.assert_allclose(box_iou(boxes[:100], boxes), theirs.numpy(), rtol=1e-6, atol=1e-7)
