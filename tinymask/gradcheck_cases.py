"""Every differentiable op a student writes or extends, on tiny float64 inputs: what
``tinymask gradcheck`` checks by central differences (``tinymask.gradcheck``).

The engine's ops (tensor arithmetic, convolution, pooling, normalisation, activations,
losses), the RoI ops of Table 2c (RoIAlign avg and max, RoIWarp, RoIPool) and the model's
losses (RPN, Fast R-CNN, the mask loss both ways). Inputs of the max-based ops have
well-separated values, so a finite step never changes which element wins.
"""

from __future__ import annotations

import numpy


def gradcheck_cases(seed: int = 0) -> dict:
    """``{name: (fn, inputs)}``: ``fn(*Tensors) -> Tensor``, ``inputs`` float64 arrays."""
    import tinymask as tm
    import tinymask.functional as F
    from tinymask.keypoints import keypoint_loss
    from tinymask.losses import fast_rcnn_losses, mask_loss, rpn_losses
    from tinymask.ops import roi_align, roi_pool, roi_warp

    rng = numpy.random.default_rng(seed)

    def randn(*shape):
        return rng.standard_normal(shape)

    def spaced(*shape):  # distinct values 0.1 apart: a max has one clear winner
        return rng.permutation(int(numpy.prod(shape))).reshape(shape) * 0.1

    def away_from_zero(*shape):  # keeps relu's kink out of the finite differences
        return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 1.1, size=shape)

    # fixed, drawn once: a checked fn must be deterministic
    targets = rng.integers(0, 3, size=4)
    soft_targets = tm.Tensor(rng.uniform(size=(2, 3)))
    rois = numpy.array([[0, 0.6, 1.2, 4.7, 5.1], [0, 2.0, 0.5, 5.5, 3.5]])
    mask_targets = (rng.uniform(size=(2, 4, 4)) > 0.5).astype(numpy.float64)
    mask_labels = numpy.array([1, 2])
    roi_labels = numpy.array([0, 2, 1, 0])
    box_targets = rng.standard_normal((4, 4)) * 0.3
    anchor_labels = numpy.array([1, 0, -1, 1, 0, 0])
    anchor_targets = rng.standard_normal((6, 4)) * 0.3
    keypoint_cells = numpy.array([[0, 5, 15], [7, 3, 9]])  # flat cells of 4x4 heatmaps
    keypoint_valid = numpy.array([[True, False, True], [True, True, False]])

    def sum_of(pair):
        return pair[0] + pair[1]

    return {
        "mul (broadcast)": (lambda a, b: a * b, [randn(2, 3), randn(3)]),
        "matmul (batched)": (lambda a, b: a @ b, [randn(2, 3, 4), randn(4, 2)]),
        "conv2d 3x3 stride 1": (lambda x, w: F.conv2d(x, w, padding=1),
                                [randn(1, 2, 5, 5), randn(3, 2, 3, 3)]),
        "conv2d 3x3 stride 2": (lambda x, w: F.conv2d(x, w, padding=1, stride=2),
                                [randn(1, 2, 5, 5), randn(3, 2, 3, 3)]),
        "conv2d dilated": (lambda x, w: F.conv2d(x, w, padding=2, dilation=2),
                           [randn(1, 2, 6, 6), randn(2, 2, 3, 3)]),
        "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, stride=2),
                             [randn(1, 2, 3, 3), randn(2, 3, 2, 2)]),
        "linear": (F.linear, [randn(3, 4), randn(2, 4), randn(2)]),
        "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), [spaced(1, 2, 5, 5)]),
        "interpolate": (lambda x: F.interpolate(x, scale_factor=2), [randn(1, 2, 3, 3)]),
        "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                       [randn(3, 2, 2, 2), randn(2), randn(2)]),
        "group_norm": (lambda x, w, b: F.group_norm(x, 2, w, b),
                       [randn(2, 4, 2, 2), randn(4), randn(4)]),
        "relu": (F.relu, [away_from_zero(5)]),
        "sigmoid": (F.sigmoid, [randn(4)]),
        "softmax": (lambda x: F.softmax(x, dim=1), [randn(2, 3)]),
        "binary_cross_entropy_with_logits": (
            lambda x: F.binary_cross_entropy_with_logits(x, soft_targets), [randn(2, 3)]),
        "cross_entropy": (lambda x: F.cross_entropy(x, targets), [randn(4, 3)]),
        "smooth_l1_loss": (lambda x: F.smooth_l1_loss(x, tm.Tensor(numpy.zeros((2, 3))),
                                                       beta=1 / 9), [randn(2, 3)]),
        "roi_align avg": (lambda f: roi_align(f, rois, 3, 1.0, 2, aligned=True),
                          [randn(1, 2, 7, 7)]),
        "roi_align max": (lambda f: roi_align(f, rois, 3, 1.0, 2, aligned=True,
                                              aggregation="max"), [spaced(1, 2, 7, 7)]),
        "roi_warp avg": (lambda f: roi_warp(f, rois, 3, 1.0, 2, aggregation="avg"),
                         [randn(1, 2, 7, 7)]),
        "roi_warp max": (lambda f: roi_warp(f, rois, 3, 1.0, 2), [spaced(1, 2, 7, 7)]),
        "roi_pool": (lambda f: roi_pool(f, rois, 3, 1.0), [spaced(1, 2, 7, 7)]),
        "mask_loss sigmoid": (lambda x: mask_loss(x, mask_targets, mask_labels),
                              [randn(2, 3, 4, 4)]),
        "mask_loss softmax": (lambda x: mask_loss(x, mask_targets, mask_labels, "softmax"),
                              [randn(2, 3, 4, 4)]),
        "keypoint_loss": (lambda x: keypoint_loss(x, keypoint_cells, keypoint_valid),
                          [randn(2, 3, 4, 4)]),
        "fast_rcnn_losses": (lambda logits, deltas: sum_of(fast_rcnn_losses(
            logits, deltas, roi_labels, box_targets)), [randn(4, 3), randn(4, 12) * 0.1]),
        "rpn_losses": (lambda logits, deltas: sum_of(rpn_losses(
            logits, deltas, anchor_labels, anchor_targets, numpy.array([0, 3]),
            numpy.array([1, 4, 5]))), [randn(6), randn(6, 4) * 0.1]),
    }
