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


def rois_with_batch_index(boxes_per_image):
    """[(R_i, 4)] -> (R, 5) rows [image index, x1, y1, x2, y2] (the RoI ops' format)."""
    xpm = array_module(*boxes_per_image)
    rows = [xpm.concatenate([xpm.full((len(boxes), 1), index, dtype=boxes.dtype), boxes], axis=1)
            for index, boxes in enumerate(boxes_per_image)]
    return xpm.concatenate(rows, axis=0) if rows else xpm.zeros((0, 5), dtype=numpy.float32)


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
    def __init__(self, config, box_pooler, box_head, box_predictor, mask_pooler=None,
                 mask_head=None, mask_predictor=None, res5_head=None):
        super().__init__()
        self.config = config
        self.box_pooler, self.mask_pooler = box_pooler, mask_pooler  # no weights: plain callables
        self.res5_head = res5_head  # C4 only: shared by the box and mask branches
        self.box_head, self.box_predictor = box_head, box_predictor
        self.mask_head, self.mask_predictor = mask_head, mask_predictor
        self.box_coder = BoxCoder(config.bbox_reg_weights)
        self.matcher = Matcher(config.box_fg_iou_thresh, config.box_bg_iou_thresh, False)
        self.sampler = BalancedPositiveNegativeSampler(config.box_batch_size_per_image,
                                                       config.box_positive_fraction)

    @property
    def has_mask(self) -> bool:
        return self.mask_predictor is not None or self.mask_head is not None

    # ------------------------------------------------------------------ training targets
    def select_training_samples(self, proposals, targets, generator):
        """Per image: append the ground-truth boxes to the proposals (so every object has at
        least one perfect RoI), match at IoU 0.5, sample. Returns, per image, the sampled
        RoIs (R_i, 4), their class labels (R_i,), regression targets (R_i, 4) and the index
        of each RoI's matched ground truth (R_i,)."""
        candidates = []
        for image_proposals, target in zip(proposals, targets):
            xpm = array_module(image_proposals)
            gt_boxes, gt_labels = target["boxes"], target["labels"]
            rois = xpm.concatenate([image_proposals, gt_boxes.astype(image_proposals.dtype)])
            if gt_boxes.shape[0] == 0:  # no object: every RoI is background
                matched = xpm.full(rois.shape[0], Matcher.BELOW_LOW_THRESHOLD, dtype=xpm.int64)
                labels = xpm.zeros(rois.shape[0], dtype=xpm.int64)
            else:
                matched = self.matcher(box_iou(gt_boxes, rois))  # (R_i,)
                labels = gt_labels[xpm.clip(matched, 0, None)].astype(xpm.int64)
                labels[matched == Matcher.BELOW_LOW_THRESHOLD] = 0
                labels[matched == Matcher.BETWEEN_THRESHOLDS] = -1
            candidates.append((rois, matched, labels))
        positive, negative = self.sampler([labels for _, _, labels in candidates], generator)

        sampled_rois, sampled_labels, regression_targets, matched_gt = [], [], [], []
        for (rois, matched, labels), pos, neg, target in zip(candidates, positive, negative,
                                                             targets):
            xpm = array_module(rois)
            keep = xpm.flatnonzero(pos | neg)
            rois, labels = rois[keep], labels[keep]
            matched = xpm.clip(matched[keep], 0, None)  # background rows point at box 0, unused
            gt_boxes = target["boxes"]
            if gt_boxes.shape[0]:
                encoded = self.box_coder.encode(gt_boxes[matched].astype(rois.dtype), rois)
            else:
                encoded = xpm.zeros_like(rois)
            sampled_rois.append(rois)
            sampled_labels.append(labels)
            regression_targets.append(encoded.astype(numpy.float32))
            matched_gt.append(matched)
        return sampled_rois, sampled_labels, regression_targets, matched_gt

    # ------------------------------------------------------------------ branches
    def box_branch(self, features, rois_per_image):
        """-> class logits (R, K+1), deltas (R, 4(K+1)), and the res5 features (C4) or None."""
        rois = rois_with_batch_index(rois_per_image)
        pooled = self.box_pooler(features, rois)  # (R, F, s, s)
        if self.res5_head is not None:
            res5 = self.res5_head(pooled)  # (R, C5, 7, 7)
            return (*self.box_predictor(res5.mean(dim=(2, 3))), res5)
        return (*self.box_predictor(self.box_head(pooled)), None)

    def mask_branch(self, features, rois_per_image, res5=None):
        """-> mask logits (P, K+1, m, m) for the given RoIs."""
        if res5 is not None:
            return self.mask_predictor(res5)
        pooled = self.mask_pooler(features, rois_with_batch_index(rois_per_image))
        mask_features = self.mask_head(pooled)
        return self.mask_predictor(mask_features) if self.mask_predictor is not None \
            else mask_features

    # ------------------------------------------------------------------ forward
    def forward(self, features, proposals, image_sizes, targets=None, generator=None):
        details = {}
        if self.training:
            rois, labels, regression_targets, matched_gt = self.select_training_samples(
                proposals, targets, generator)
            details.update(sampled_rois=rois, sampled_labels=labels)
            class_logits, box_deltas, res5 = self.box_branch(features, rois)
            xpm = array_module(labels[0]) if labels else numpy
            all_labels = xpm.concatenate(labels)
            loss_classifier, loss_box_reg = fast_rcnn_losses(
                class_logits, box_deltas, all_labels, xpm.concatenate(regression_targets),
                beta=self.config.box_smooth_l1_beta)
            losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
            if self.has_mask:
                losses["loss_mask"], mask_details = self.mask_training_loss(
                    features, rois, labels, matched_gt, targets, res5)
                details.update(mask_details)
            return [], losses, details

        class_logits, box_deltas, _ = self.box_branch(features, proposals)
        detections = self.postprocess_detections(class_logits.data, box_deltas.data, proposals,
                                                 image_sizes)
        if self.has_mask:
            self.add_mask_probabilities(features, detections)
        return detections, {}, details

    def mask_training_loss(self, features, rois, labels, matched_gt, targets, res5):
        """The mask loss on the positive sampled RoIs, with its targets."""
        xpm = array_module(labels[0])
        positive_rois, positive_labels, mask_targets = [], [], []
        offset, positive_rows = 0, []
        for image_rois, image_labels, image_matched, target in zip(rois, labels, matched_gt,
                                                                   targets):
            positive = xpm.flatnonzero(image_labels > 0)
            positive_rows.append(positive + offset)
            offset += image_rois.shape[0]
            positive_rois.append(image_rois[positive])
            positive_labels.append(image_labels[positive])
            mask_targets.append(crop_mask_targets(
                target["masks"], image_matched[positive], image_rois[positive],
                self.config.mask_size, self.config.binarize_mask_targets,
                self.config.mask_target_aligned))
        gt_labels = xpm.concatenate(positive_labels)
        targets_array = xpm.concatenate(mask_targets)
        if res5 is not None:
            rows = xpm.concatenate(positive_rows)
            logits = self.mask_branch(features, positive_rois, res5[rows])
        else:
            logits = self.mask_branch(features, positive_rois)
        details = {"mask_rois": positive_rois, "mask_targets": targets_array,
                   "mask_labels": gt_labels}
        return mask_loss(logits, targets_array, gt_labels, self.config.mask_loss), details

    def postprocess_detections(self, class_logits, box_deltas, proposals, image_sizes):
        """Per image: softmax scores, per-class boxes, score > thresh, NMS per class, top k."""
        config = self.config
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
            keep = xpm.flatnonzero(scores > config.box_score_thresh)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = remove_small_boxes(boxes, config.box_min_size)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms(boxes, scores, labels, config.box_nms_thresh)
            keep = keep[: config.detections_per_img]
            detections.append({"boxes": boxes[keep], "scores": scores[keep],
                               "labels": labels[keep].astype(numpy.int64)})
        return detections

    def add_mask_probabilities(self, features, detections):
        """The paper's test-time order: the mask branch on the final detections only."""
        boxes = [d["boxes"] for d in detections]
        total = sum(b.shape[0] for b in boxes)
        if total == 0:
            for detection in detections:
                size = self.config.mask_size
                detection["masks"] = array_module(detection["boxes"]).zeros((0, size, size),
                                                                           numpy.float32)
            return
        if self.res5_head is not None:
            pooled = self.box_pooler(features, rois_with_batch_index(boxes))
            logits = self.mask_branch(features, boxes, self.res5_head(pooled)).data
        else:
            logits = self.mask_branch(features, boxes).data  # (D, K+1, m, m)
        xpm = array_module(logits)
        labels = xpm.concatenate([d["labels"] for d in detections])
        rows = xpm.arange(total)
        if self.config.mask_loss == "softmax":
            probabilities = xpm.exp(stable_log_softmax(logits, axis=1))[rows, labels]
        else:
            probabilities = stable_sigmoid(logits[rows, labels])
        start = 0
        for detection in detections:
            count = detection["boxes"].shape[0]
            detection["masks"] = probabilities[start : start + count]
            start += count
