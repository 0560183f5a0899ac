"""The Region Proposal Network (Faster R-CNN §3.1; REFERENCE.md §2, §4, §5, §7).

Shape letters: N images, L feature levels, A anchors per location, Hi x Wi level i,
R = sum_i Hi*Wi*A anchors per image, M ground-truth boxes of an image.

    features --head--> objectness (N, A, Hi, Wi), deltas (N, 4A, Hi, Wi)   per level
             --flatten [H, W, A] order, levels concatenated--> (N, R), (N, R, 4)
    training: anchors --match (IoU >= 0.7 fg, < 0.3 bg, low-quality matches)--> labels
              --sample 256 per image, <= half positive--> BCE + smooth L1 (beta 1/9)
    always:   decode deltas on anchors --top-k per level, clip, drop tiny, NMS 0.7 per
              level--> at most post_nms_top_n proposals per image, *detached*.

Proposals are detached (plain arrays): no gradient flows from the RoI heads back into
the RPN's deltas, as in Faster R-CNN's approximate joint training.
"""

from __future__ import annotations

import numpy

from tinymask import nn
from tinymask.anchors import AnchorGenerator
from tinymask.backend import array_module
from tinymask.box_coder import BoxCoder
from tinymask.boxes import box_iou, clip_boxes_to_image, remove_small_boxes
from tinymask.functional.activation import stable_sigmoid
from tinymask.losses import rpn_losses
from tinymask.matching import BalancedPositiveNegativeSampler, Matcher
from tinymask.model.heads import RPNHead
from tinymask.ops import batched_nms
from tinymask.tensor import cat


def flatten_predictions(objectness, deltas):
    """Per-level head outputs -> (N, R) logits and (N, R, 4) deltas in anchor order.

    (N, A, H, W) -> (N, H, W, A) and (N, 4A, H, W) -> (N, A, 4, H, W) -> (N, H, W, A, 4):
    the anchor generator lays anchors out [H, W, A], so position r of both matches anchor r.
    """
    flat_logits, flat_deltas = [], []
    for level_logits, level_deltas in zip(objectness, deltas):
        n, a, h, w = level_logits.shape
        flat_logits.append(level_logits.permute(0, 2, 3, 1).reshape(n, h * w * a))
        flat_deltas.append(level_deltas.reshape(n, a, 4, h, w).permute(0, 3, 4, 1, 2)
                           .reshape(n, h * w * a, 4))
    return cat(flat_logits, dim=1), cat(flat_deltas, dim=1)


def top_k_indices(scores, k):
    """Indices of the k largest scores, best first (ties: lower index first)."""
    xpm = array_module(scores)
    order = xpm.argsort(-scores, kind="stable")
    return order[:k]


class RPN(nn.Module):
    def __init__(self, in_channels, anchor_generator: AnchorGenerator, *, fg_iou_thresh=0.7,
                 bg_iou_thresh=0.3, batch_size_per_image=256, positive_fraction=0.5,
                 pre_nms_top_n=(2000, 1000), post_nms_top_n=(2000, 1000), nms_thresh=0.7,
                 min_size=1e-3, smooth_l1_beta=1.0 / 9):
        super().__init__()
        self.anchor_generator = anchor_generator
        num_anchors = anchor_generator.num_anchors_per_location()
        if len(set(num_anchors)) != 1:
            raise ValueError(
                f"the shared RPN head needs the same A on every level, got {num_anchors}")
        self.head = RPNHead(in_channels, num_anchors[0])
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.pre_nms_top_n, self.post_nms_top_n = pre_nms_top_n, post_nms_top_n  # (train, test)
        self.nms_thresh, self.min_size, self.smooth_l1_beta = nms_thresh, min_size, smooth_l1_beta

    def forward(self, features, image_sizes, gt_boxes=None, generator=None, padded_size=None):
        """features: list of (N, F, Hi, Wi) Tensors; image_sizes: [(h, w)] inside the padding;
        gt_boxes: list of (M, 4) arrays (training); padded_size: the batch's (H, W), from
        which an anchor generator with ``strides_from_image_size`` infers its strides.
        Returns (proposals, losses, details):
        proposals a list of (P_i, 4) arrays, losses a dict (empty in eval), details the
        intermediate values for a student to look at."""
        objectness, deltas = self.head(features)
        level_shapes = [tuple(level.shape[-2:]) for level in features]
        anchors = self.anchor_generator(level_shapes, numpy.float32, padded_size)  # (R, 4)
        anchors_per_level = [h * w * a for (h, w), a in
                             zip(level_shapes, self.anchor_generator.num_anchors_per_location())]
        logits, pred_deltas = flatten_predictions(objectness, deltas)  # (N, R), (N, R, 4)

        proposals = self.propose(anchors, logits.data, pred_deltas.data, anchors_per_level,
                                 image_sizes)
        details = {"anchors": anchors, "anchors_per_level": anchors_per_level,
                   "objectness_logits": logits.data, "proposals": proposals}
        losses = {}
        if self.training:
            if gt_boxes is None:
                raise ValueError("the RPN needs ground-truth boxes in training mode")
            labels, targets = self.assign_targets(anchors, gt_boxes)
            positive, negative = self.sampler(labels, generator or numpy.random.default_rng())
            xpm = array_module(anchors)
            num_anchors = anchors.shape[0]
            # indices into the batch-flattened (N * R) anchors
            sampled_positive = xpm.concatenate(
                [xpm.flatnonzero(mask) + i * num_anchors for i, mask in enumerate(positive)])
            sampled_negative = xpm.concatenate(
                [xpm.flatnonzero(mask) + i * num_anchors for i, mask in enumerate(negative)])
            loss_objectness, loss_box = rpn_losses(
                logits.reshape(-1), pred_deltas.reshape(-1, 4), xpm.concatenate(labels),
                xpm.concatenate(targets), sampled_positive, sampled_negative,
                beta=self.smooth_l1_beta)
            losses = {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_box}
            details.update(labels=labels, sampled_positive=positive, sampled_negative=negative)
        return proposals, losses, details

    def assign_targets(self, anchors, gt_boxes):
        """Per image: labels (R,) in {1 fg, 0 bg, -1 ignore} and regression targets (R, 4)."""
        xpm = array_module(anchors)
        labels, targets = [], []
        for boxes in gt_boxes:
            if boxes.shape[0] == 0:  # no object: every anchor is background
                labels.append(xpm.zeros(anchors.shape[0], dtype=xpm.int64))
                targets.append(xpm.zeros(anchors.shape, dtype=anchors.dtype))
                continue
            matched = self.matcher(box_iou(boxes, anchors))  # (R,)
            image_labels = (matched >= 0).astype(xpm.int64)
            image_labels[matched == Matcher.BETWEEN_THRESHOLDS] = -1
            matched_boxes = boxes[xpm.clip(matched, 0, None)]  # background rows: any box, unused
            labels.append(image_labels)
            targets.append(self.box_coder.encode(matched_boxes, anchors).astype(anchors.dtype))
        return labels, targets

    def propose(self, anchors, logits, pred_deltas, anchors_per_level, image_sizes):
        """Decode and filter, per image: top-k per level, clip, drop tiny, NMS per level."""
        xpm = array_module(logits)
        mode = 0 if self.training else 1
        pre_nms_top_n, post_nms_top_n = self.pre_nms_top_n[mode], self.post_nms_top_n[mode]
        level_of_anchor = xpm.concatenate([xpm.full(count, level) for level, count in
                                           enumerate(anchors_per_level)])
        starts = numpy.cumsum([0] + list(anchors_per_level))
        proposals = []
        for image_index, image_size in enumerate(image_sizes):
            scores = logits[image_index]
            keep = xpm.concatenate([
                starts[level] + top_k_indices(scores[starts[level] : starts[level + 1]],
                                              pre_nms_top_n)
                for level in range(len(anchors_per_level))])
            boxes = self.box_coder.decode(pred_deltas[image_index][keep], anchors[keep])
            boxes = clip_boxes_to_image(boxes, image_size)
            probabilities = stable_sigmoid(scores[keep])
            levels = level_of_anchor[keep]
            big_enough = remove_small_boxes(boxes, self.min_size)
            boxes = boxes[big_enough]
            probabilities, levels = probabilities[big_enough], levels[big_enough]
            kept = batched_nms(boxes, probabilities, levels, self.nms_thresh)[:post_nms_top_n]
            proposals.append(boxes[kept])
        return proposals
