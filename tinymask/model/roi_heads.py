"""The second stage: box and mask heads on RoIs (paper §3; REFERENCE.md §4, §7, §8, §9).

Shape letters: N images, R RoIs (all images), P positive RoIs, D detections, K+1 classes
(0 = background), m the mask size, F feature channels.

Training (the three branches run in parallel on the same sampled RoIs):
    proposals + ground-truth boxes --match (IoU >= 0.5 fg)--> sample 512 per image, <= 25%
    foreground --pool 7x7--> box head --> class logits (R, K+1), deltas (R, 4(K+1))
    positives --pool 14x14--> mask head --> mask logits (P, K+1, m, m); targets are the
    ground-truth masks cropped to each positive RoI by RoIAlign at m x m.
Inference (the mask branch runs *after* the box branch, on the final detections only):
    proposals --box head--> per-class boxes and scores --score > 0.05, NMS 0.5 per class,
    top 100--> detections --mask head--> m x m probabilities of the detected class.

The C4 model (Detectron2's Res5ROIHeads) pools 14x14 from res4 and runs res5 on every RoI;
the box predictor reads res5's spatial mean and the mask predictor deconvolves the same res5
features (no extra convs).
"""

from __future__ import annotations

import numpy

from tinymask import nn
from tinymask.backend import array_module
from tinymask.box_coder import BoxCoder
from tinymask.boxes import box_iou, clip_boxes_to_image, remove_small_boxes
from tinymask.functional.activation import stable_log_softmax, stable_sigmoid
from tinymask.losses import fast_rcnn_losses, mask_loss
from tinymask.matching import BalancedPositiveNegativeSampler, Matcher
from tinymask.ops import batched_nms, roi_align


def crop_mask_targets(gt_masks, matched_gt, rois, mask_size, binarize=True, aligned=True):
    """The paper's mask target: the intersection of a RoI and its ground-truth mask, at m x m.

    gt_masks: (M, H, W) of one image; matched_gt: (P,) index of each positive RoI's ground
    truth; rois: (P, 4). RoIAlign with adaptive sampling reads the binary mask as a
    one-channel image: ``aligned=True`` with ``binarize=True`` (a threshold at 0.5) is
    Detectron2's crop_and_resize and gives a binary target; ``aligned=False`` with
    ``binarize=False`` is torchvision's project_masks_on_boxes and keeps the soft values,
    read half a pixel off towards the bottom right. Returns (P, m, m) float32.
    """
    xpm = array_module(rois)
    if rois.shape[0] == 0:
        return xpm.zeros((0, mask_size, mask_size), dtype=numpy.float32)
    # --- task 8.1: mask targets: the ground truth cropped to each RoI ---
    masks = gt_masks[:, None].astype(numpy.float32)  # (M, 1, H, W): each mask its own "image"
    boxes = xpm.concatenate([matched_gt[:, None].astype(numpy.float32),
                             rois.astype(numpy.float32)], axis=1)
    cropped = roi_align(masks, boxes, (mask_size, mask_size), spatial_scale=1.0,
                        sampling_ratio=0, aligned=aligned).data[:, 0]
    return (cropped >= 0.5).astype(numpy.float32) if binarize else cropped
    # --- end task ---


class RoIHeads(nn.Module):
    """The box and mask branches and their training targets. Every knob is a keyword, set
    by ``MaskRCNN`` from its config (``build_roi_heads``).

    The poolers, heads and predictors are built by the caller (``res5_head``: C4 only,
    shared by both branches). Training: ``fg_iou_thresh``/``bg_iou_thresh`` match
    proposals to ground truth, ``batch_size_per_image`` proposals are sampled per image with
    at most ``positive_fraction`` foreground; box deltas are encoded with
    ``bbox_reg_weights``, the box loss is smooth L1 with ``smooth_l1_beta``; mask targets are
    ``mask_size`` x ``mask_size`` crops (``mask_target_aligned``, ``binarize_mask_targets``)
    for the ``mask_loss`` ("sigmoid" or "softmax"). Inference: ``score_thresh``,
    ``min_size``, ``nms_thresh`` per class, then the best ``detections_per_img``.
    """

    def __init__(self, *, box_pooler, box_head, box_predictor, mask_pooler=None,
                 mask_head=None, mask_predictor=None, res5_head=None,
                 fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=512,
                 positive_fraction=0.25, bbox_reg_weights=(10.0, 10.0, 5.0, 5.0),
                 smooth_l1_beta=1.0 / 9, mask_size=28, mask_loss="sigmoid",
                 mask_target_aligned=True, binarize_mask_targets=True, score_thresh=0.05,
                 min_size=1e-2, nms_thresh=0.5, detections_per_img=100):
        super().__init__()
        self.box_pooler, self.mask_pooler = box_pooler, mask_pooler  # no weights: plain callables
        self.res5_head = res5_head  # C4 only: shared by the box and mask branches
        self.box_head, self.box_predictor = box_head, box_predictor
        self.mask_head, self.mask_predictor = mask_head, mask_predictor
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, False)
        self.sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.smooth_l1_beta = smooth_l1_beta
        self.mask_size, self.mask_loss = mask_size, mask_loss
        self.mask_target_aligned = mask_target_aligned
        self.binarize_mask_targets = binarize_mask_targets
        self.score_thresh, self.min_size = score_thresh, min_size
        self.nms_thresh, self.detections_per_img = nms_thresh, detections_per_img

    @property
    def has_mask(self) -> bool:
        return self.mask_predictor is not None or self.mask_head is not None

    # ------------------------------------------------------------------ training targets
    def select_training_samples(self, proposals, targets, generator):
        """Per image: append the ground-truth boxes to the proposals (so every object has at
        least one perfect RoI), match at IoU 0.5, sample. Returns, per image, the sampled
        proposals (R_i, 4), their class labels (R_i,), regression targets (R_i, 4) and the
        index of each one's matched ground truth (R_i,)."""
        candidates = []
        for image_proposals, target in zip(proposals, targets):
            xpm = array_module(image_proposals)
            gt_boxes, gt_labels = target["boxes"], target["labels"]
            image_proposals = xpm.concatenate([image_proposals,
                                               gt_boxes.astype(image_proposals.dtype)])
            if gt_boxes.shape[0] == 0:  # no object: every proposal is background
                matched = xpm.full(image_proposals.shape[0], Matcher.BELOW_LOW_THRESHOLD,
                                   dtype=xpm.int64)
                labels = xpm.zeros(image_proposals.shape[0], dtype=xpm.int64)
            else:
                matched = self.matcher(box_iou(gt_boxes, image_proposals))  # (R_i,)
                labels = gt_labels[xpm.clip(matched, 0, None)].astype(xpm.int64)
                labels[matched == Matcher.BELOW_LOW_THRESHOLD] = 0
                labels[matched == Matcher.BETWEEN_THRESHOLDS] = -1
            candidates.append((image_proposals, matched, labels))
        positive, negative = self.sampler([labels for _, _, labels in candidates], generator)

        sampled_proposals, sampled_labels, regression_targets, matched_gt = [], [], [], []
        for (image_proposals, matched, labels), pos, neg, target in zip(candidates, positive,
                                                                        negative, targets):
            xpm = array_module(image_proposals)
            keep = xpm.flatnonzero(pos | neg)
            image_proposals, labels = image_proposals[keep], labels[keep]
            matched = xpm.clip(matched[keep], 0, None)  # background rows point at box 0, unused
            gt_boxes = target["boxes"]
            if gt_boxes.shape[0]:
                encoded = self.box_coder.encode(gt_boxes[matched].astype(image_proposals.dtype),
                                                image_proposals)
            else:
                encoded = xpm.zeros_like(image_proposals)
            sampled_proposals.append(image_proposals)
            sampled_labels.append(labels)
            regression_targets.append(encoded.astype(numpy.float32))
            matched_gt.append(matched)
        return sampled_proposals, sampled_labels, regression_targets, matched_gt

    # ------------------------------------------------------------------ branches
    def box_branch(self, features, proposals):
        """proposals: one (R_i, 4) array per image -> class logits (R, K+1), deltas
        (R, 4(K+1)), and the res5 features (C4) or None."""
        pooled = self.box_pooler(features, proposals)  # (R, F, s, s)
        if self.res5_head is not None:
            res5 = self.res5_head(pooled)  # (R, C5, 7, 7)
            return (*self.box_predictor(res5.mean(dim=(2, 3))), res5)
        return (*self.box_predictor(self.box_head(pooled)), None)

    def mask_branch(self, features, proposals, res5=None):
        """-> mask logits (P, K+1, m, m) for the given proposals (one (P_i, 4) array per
        image); C4 passes their res5 features instead of pooling again."""
        if res5 is not None:
            return self.mask_predictor(res5)
        pooled = self.mask_pooler(features, proposals)  # (P, F, 14, 14)
        mask_features = self.mask_head(pooled)
        return self.mask_predictor(mask_features) if self.mask_predictor is not None \
            else mask_features

    # ------------------------------------------------------------------ forward
    def forward(self, features, proposals, image_sizes, targets=None, generator=None):
        details = {}
        if self.training:
            proposals, labels, regression_targets, matched_gt = self.select_training_samples(
                proposals, targets, generator)
            details.update(sampled_proposals=proposals, sampled_labels=labels)
            class_logits, box_deltas, res5 = self.box_branch(features, proposals)
            xpm = array_module(labels[0]) if labels else numpy
            all_labels = xpm.concatenate(labels)
            loss_classifier, loss_box_reg = fast_rcnn_losses(
                class_logits, box_deltas, all_labels, xpm.concatenate(regression_targets),
                beta=self.smooth_l1_beta)
            losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
            if self.has_mask:
                losses["loss_mask"], mask_details = self.mask_training_loss(
                    features, proposals, labels, matched_gt, targets, res5)
                details.update(mask_details)
            return [], losses, details

        class_logits, box_deltas, _ = self.box_branch(features, proposals)
        detections = self.postprocess_detections(class_logits.data, box_deltas.data, proposals,
                                                 image_sizes)
        if self.has_mask:
            self.add_mask_probabilities(features, detections)
        return detections, {}, details

    def mask_training_loss(self, features, proposals, labels, matched_gt, targets, res5):
        """The mask loss on the positive sampled proposals, with its targets."""
        xpm = array_module(labels[0])
        positive_proposals, positive_labels, mask_targets = [], [], []
        offset, positive_rows = 0, []
        for image_proposals, image_labels, image_matched, target in zip(proposals, labels,
                                                                        matched_gt, targets):
            positive = xpm.flatnonzero(image_labels > 0)
            positive_rows.append(positive + offset)
            offset += image_proposals.shape[0]
            positive_proposals.append(image_proposals[positive])
            positive_labels.append(image_labels[positive])
            mask_targets.append(crop_mask_targets(
                target["masks"], image_matched[positive], image_proposals[positive],
                self.mask_size, self.binarize_mask_targets, self.mask_target_aligned))
        gt_labels = xpm.concatenate(positive_labels)
        targets_array = xpm.concatenate(mask_targets)
        if res5 is not None:
            rows = xpm.concatenate(positive_rows)
            logits = self.mask_branch(features, positive_proposals, res5[rows])
        else:
            logits = self.mask_branch(features, positive_proposals)
        details = {"mask_proposals": positive_proposals, "mask_targets": targets_array,
                   "mask_labels": gt_labels}
        return mask_loss(logits, targets_array, gt_labels, self.mask_loss), details

    def postprocess_detections(self, class_logits, box_deltas, proposals, image_sizes):
        """Per image: softmax scores, per-class boxes, score > thresh, NMS per class, top k."""
        detections, start = [], 0
        for image_proposals, image_size in zip(proposals, image_sizes):
            xpm = array_module(image_proposals)
            count = image_proposals.shape[0]
            logits = class_logits[start : start + count]
            deltas = box_deltas[start : start + count]
            start += count
            num_classes = logits.shape[1]
            boxes = self.box_coder.decode(deltas, image_proposals).reshape(count, num_classes, 4)
            boxes = clip_boxes_to_image(boxes, image_size)
            scores = xpm.exp(stable_log_softmax(logits, axis=1))  # (R, K+1)
            labels = xpm.broadcast_to(xpm.arange(num_classes), scores.shape)
            # drop the background column, then treat every (RoI, class) pair as a candidate
            boxes = boxes[:, 1:].reshape(-1, 4)
            scores, labels = scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
            keep = xpm.flatnonzero(scores > self.score_thresh)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = remove_small_boxes(boxes, self.min_size)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms(boxes, scores, labels, self.nms_thresh)
            keep = keep[: self.detections_per_img]
            detections.append({"boxes": boxes[keep], "scores": scores[keep],
                               "labels": labels[keep].astype(numpy.int64)})
        return detections

    def add_mask_probabilities(self, features, detections):
        """The paper's test-time order: the mask branch on the final detections only."""
        proposals = [detection["boxes"] for detection in detections]  # the mask branch's input
        total = sum(image_proposals.shape[0] for image_proposals in proposals)
        if total == 0:
            for detection in detections:
                detection["masks"] = array_module(detection["boxes"]).zeros(
                    (0, self.mask_size, self.mask_size), numpy.float32)
            return
        if self.res5_head is not None:
            pooled = self.box_pooler(features, proposals)
            logits = self.mask_branch(features, proposals, self.res5_head(pooled)).data
        else:
            logits = self.mask_branch(features, proposals).data  # (D, K+1, m, m)
        xpm = array_module(logits)
        labels = xpm.concatenate([d["labels"] for d in detections])
        rows = xpm.arange(total)
        if self.mask_loss == "softmax":
            probabilities = xpm.exp(stable_log_softmax(logits, axis=1))[rows, labels]
        else:
            probabilities = stable_sigmoid(logits[rows, labels])
        start = 0
        for detection in detections:
            count = detection["boxes"].shape[0]
            detection["masks"] = probabilities[start : start + count]
            start += count
