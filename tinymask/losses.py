"""The Mask R-CNN losses, L = L_cls + L_box + L_mask (paper §3), plus the RPN's two.

Pure functions of predictions and targets (REFERENCE.md §7). Shape letters: S sampled
anchors, R sampled RoIs, P positive RoIs, K+1 classes with 0 = background, m the mask size.

"Losses over nothing are 0, not NaN": an image without objects still trains (its RoIs
are all background), and the box and mask losses then have no positive to average. Each
loss that could divide by zero returns ``0 * (sum of its inputs)`` instead, a zero that
keeps the inputs on the tape so every parameter still gets a (zero) gradient.
"""

from __future__ import annotations

import numpy

from tinymask import functional as F
from tinymask.backend import array_module
from tinymask.tensor import Tensor


def _zero_like(prediction: Tensor) -> Tensor:
    return prediction.sum() * 0.0


def rpn_losses(objectness_logits, pred_deltas, labels, regression_targets, sampled_positive,
               sampled_negative, beta=1.0 / 9):
    """Objectness and box-regression losses of the RPN over the sampled anchors.

    objectness_logits: Tensor (A_all,), every anchor of the batch, flattened;
    pred_deltas: Tensor (A_all, 4); labels: array (A_all,) in {1, 0, -1};
    regression_targets: array (A_all, 4), encoded boxes of each anchor's matched ground truth;
    sampled_positive, sampled_negative: int arrays of anchor indices (the sampler's choice).

    loss_objectness = mean BCE over the S sampled anchors;
    loss_rpn_box_reg = smooth L1 (beta 1/9) summed over positives, divided by S (not by the
    positives: torchvision's normalisation, which weights it by the positive fraction).
    """
    xpm = array_module(labels)
    sampled = xpm.concatenate([sampled_positive, sampled_negative])
    if sampled.size == 0:
        return _zero_like(objectness_logits), _zero_like(pred_deltas)
    logits = objectness_logits[sampled]
    targets = labels[sampled].astype(objectness_logits.dtype)
    loss_objectness = F.binary_cross_entropy_with_logits(logits, Tensor(targets))
    if sampled_positive.size == 0:
        return loss_objectness, _zero_like(pred_deltas)
    box_loss = F.smooth_l1_loss(pred_deltas[sampled_positive],
                                Tensor(regression_targets[sampled_positive]), beta=beta,
                                reduction="sum")
    return loss_objectness, box_loss * (1.0 / sampled.size)


def fast_rcnn_losses(class_logits, box_deltas, labels, regression_targets, beta=1.0 / 9):
    """Classification and class-specific box loss of the box head over the R sampled RoIs.

    class_logits: Tensor (R, K+1); box_deltas: Tensor (R, 4(K+1)); labels: int array (R,);
    regression_targets: array (R, 4), encoded with weights (10, 10, 5, 5).
    Only the deltas of each foreground RoI's ground-truth class are trained; the box loss is
    summed over foreground RoIs and divided by R.
    """
    xpm = array_module(labels)
    num_rois = labels.shape[0]
    if num_rois == 0:
        return _zero_like(class_logits), _zero_like(box_deltas)
    # --- task 7.1: the Fast R-CNN loss ---
    loss_classifier = F.cross_entropy(class_logits, labels)
    positive = xpm.flatnonzero(labels > 0)
    if positive.size == 0:
        return loss_classifier, _zero_like(box_deltas)
    per_class = box_deltas.reshape(num_rois, -1, 4)  # (R, K+1, 4)
    pred = per_class[positive, labels[positive]]  # (P, 4): the ground-truth class's deltas
    box_loss = F.smooth_l1_loss(pred, Tensor(regression_targets[positive]), beta=beta,
                                reduction="sum")
    return loss_classifier, box_loss * (1.0 / num_rois)
    # --- end task ---


def mask_loss(mask_logits, mask_targets, gt_labels, kind="sigmoid"):
    """The mask loss over the P positive RoIs (paper §3, "L_mask"; Table 2b).

    mask_logits: Tensor (P, K+1, m, m), one m x m map per class; mask_targets: array
    (P, m, m) in [0, 1], the ground-truth mask cropped to each RoI; gt_labels: (P,) ints.

    "sigmoid" (the paper's choice): only the ground-truth class's map is trained, with a
    per-pixel binary cross-entropy, mean over the P*m*m pixels. Masks of different classes
    never compete: classification is left to the box head.
    "softmax" (the multinomial alternative): a softmax over the class maps at each pixel,
    the target being the ground-truth class inside the mask and background outside, so the
    classes compete for every pixel.
    """
    xpm = array_module(gt_labels)
    num_positive = gt_labels.shape[0]
    if num_positive == 0:
        return _zero_like(mask_logits)
    # --- task 8.2: the mask loss, per-class sigmoid or softmax ---
    if kind == "sigmoid":
        picked = mask_logits[xpm.arange(num_positive), gt_labels]  # (P, m, m)
        return F.binary_cross_entropy_with_logits(picked, Tensor(mask_targets.astype(
            mask_logits.dtype)))
    if kind == "softmax":
        inside = mask_targets >= 0.5
        pixel_labels = xpm.where(inside, gt_labels[:, None, None], 0).astype(numpy.int64)
        return F.cross_entropy(mask_logits, pixel_labels)  # softmax over the K+1 maps
    # --- end task ---
    raise ValueError(f"unknown mask loss {kind!r}; choose 'sigmoid' or 'softmax'")
