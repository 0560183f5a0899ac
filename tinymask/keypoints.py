"""Keypoints as one-hot masks (paper §5; REFERENCE.md §12): targets, loss, decoding.

The paper models a keypoint's location as a one-hot m x m mask and predicts one mask per
keypoint type; torchvision's Keypoint R-CNN fixes the details this module follows:

    ground-truth keypoint (x, y, v) + its positive RoI --keypoints_to_heatmap--> the index
    j*m + i of the one heatmap cell it falls in (or "not valid")
    --keypoint_loss--> a softmax cross-entropy over the m^2 cells, one per valid
    (RoI, keypoint) pair: each keypoint type's cells compete for the single true location
    (unlike the mask head's per-pixel sigmoid, where pixels are independent)
    predicted (D, K, m, m) logits on the detections --heatmaps_to_keypoints--> (x, y, 1)
    in image pixels and a score per keypoint.

Shape letters: R RoIs (positive proposals in training, detections at test time), K keypoint
types, m the heatmap side (56). Keypoints are ``(x, y, v)`` in image pixels, COCO's
visibility v: 0 not labelled, 1 labelled but hidden, 2 visible; v > 0 is trained. Boxes are
``(x1, y1, x2, y2)``. Pure functions: no weights.
"""

from __future__ import annotations

import math

import numpy

from tinymask import functional as F
from tinymask.backend import array_module, to_numpy
from tinymask.functional.interpolation import bicubic_matrix


def keypoints_to_heatmap(keypoints, rois, heatmap_size: int):
    """The one-hot target of each keypoint in its RoI (torchvision's keypoints_to_heatmap).

    keypoints: (R, K, 3) ``(x, y, v)``, the keypoints of each RoI's matched ground truth;
    rois: (R, 4) xyxy. The cell is ``i = floor((x - x1) * m / (x2 - x1))``, j likewise
    (a continuous coordinate x falls in the cell that covers it); a keypoint exactly on the
    right (bottom) edge goes to the last cell instead of one past it. A pair is valid when
    its cell lies inside the m x m grid and v > 0. Computed in float64 (torchvision: in the
    keypoints' dtype), so float32 and float64 keypoints give the same cells.

    Returns (targets (R, K) int64 flat cell indices ``j * m + i``, 0 where not valid;
    valid (R, K) bool).
    """
    xpm = array_module(rois)
    # --- task 12.1: keypoint targets, one heatmap cell per keypoint ---
    rois = rois.astype(numpy.float64)
    x1, y1 = rois[:, 0:1], rois[:, 1:2]
    scale_x = heatmap_size / (rois[:, 2:3] - x1)
    scale_y = heatmap_size / (rois[:, 3:4] - y1)
    x, y = keypoints[..., 0].astype(numpy.float64), keypoints[..., 1].astype(numpy.float64)
    with numpy.errstate(invalid="ignore", divide="ignore"):  # a degenerate RoI is not valid
        column = xpm.floor((x - x1) * scale_x)
        row = xpm.floor((y - y1) * scale_y)
    column = xpm.where(x == rois[:, 2:3], heatmap_size - 1, column)
    row = xpm.where(y == rois[:, 3:4], heatmap_size - 1, row)
    inside = (column >= 0) & (row >= 0) & (column < heatmap_size) & (row < heatmap_size)
    valid = inside & (keypoints[..., 2] > 0)
    targets = xpm.where(valid, row * heatmap_size + column, 0).astype(numpy.int64)
    return targets, valid
    # --- end task ---


def keypoint_loss(keypoint_logits, targets, valid):
    """The keypoint loss (paper §5): for each valid (RoI, keypoint) pair, the softmax
    cross-entropy of its m^2 logits against the one true cell, averaged over the valid
    pairs (torchvision's keypointrcnn_loss).

    keypoint_logits: Tensor (R, K, m, m); targets, valid: (R, K) from
    ``keypoints_to_heatmap``. With no valid pair the loss is a zero that keeps the logits on
    the tape (see ``tinymask.losses``), not NaN.
    """
    xpm = array_module(targets)
    num_rois, num_keypoints, height, width = keypoint_logits.shape
    if height != width:
        raise ValueError(f"keypoint_logits must be square heatmaps, got {height} x {width}")
    # --- task 12.2: the keypoint loss, a softmax over the heatmap ---
    rows = xpm.flatnonzero(valid.reshape(-1))
    if rows.size == 0:
        return keypoint_logits.sum() * 0.0
    flat = keypoint_logits.reshape(num_rois * num_keypoints, height * width)  # (R*K, m^2)
    return F.cross_entropy(flat[rows], targets.reshape(-1)[rows])
    # --- end task ---


def heatmaps_to_keypoints(heatmaps, rois, resize_to_box: bool = True):
    """Keypoint locations from predicted heatmaps (torchvision's heatmaps_to_keypoints).

    heatmaps: (R, K, m, m) logits; rois: (R, 4) xyxy, the detections they were predicted
    on. Each RoI's maps are resized (bicubic, as torchvision) to ``ceil(w) x ceil(h)``
    cells of about one pixel each (w, h at least 1), the arg-max cell (ix, iy) of each
    keypoint is mapped back to ``x = x1 + (ix + 0.5) * w / ceil(w)`` (Heckbert's continuous
    coordinate d + 0.5 of cell d, the inverse of ``keypoints_to_heatmap``'s floor), and its
    score is the resized map's value there (a logit, not a probability).

    ``resize_to_box=False`` takes the arg-max of the m x m map itself, ``x = x1 + (ix + 0.5)
    * w / m``. On a box narrower than m pixels the resize *down*samples, without a
    low-pass first: a one-cell peak between two samples is read through the cubic
    kernel's negative lobes and can lose to a lower, broader bump elsewhere in the map.
    COCO's persons are mostly larger than 56 pixels, the small synthetic figures mostly
    smaller (``MaskRCNNConfig.keypoint_resize_to_box``).

    Returns (keypoints (R, K, 3) float32 ``(x, y, 1)``, scores (R, K) float32). Runs on
    the host, one RoI at a time (at most ``detections_per_img`` of them).
    """
    heatmaps = to_numpy(heatmaps).astype(numpy.float32)
    rois = to_numpy(rois).astype(numpy.float32)
    num_rois, num_keypoints = heatmaps.shape[:2]
    keypoints = numpy.zeros((num_rois, num_keypoints, 3), dtype=numpy.float32)
    scores = numpy.zeros((num_rois, num_keypoints), dtype=numpy.float32)
    widths = numpy.maximum(rois[:, 2] - rois[:, 0], 1.0)
    heights = numpy.maximum(rois[:, 3] - rois[:, 1], 1.0)
    for index in range(num_rois):
        if resize_to_box:
            map_width, map_height = math.ceil(widths[index]), math.ceil(heights[index])
            rows = bicubic_matrix(heatmaps.shape[2], map_height).astype(numpy.float32)
            cols = bicubic_matrix(heatmaps.shape[3], map_width).astype(numpy.float32)
            resized = rows @ heatmaps[index] @ cols.T  # (K, ceil(h), ceil(w))
        else:
            map_height, map_width = heatmaps.shape[2:]
            resized = heatmaps[index]  # (K, m, m)
        best = resized.reshape(num_keypoints, -1).argmax(axis=1)
        best_row, best_column = numpy.divmod(best, map_width)
        keypoints[index, :, 0] = (best_column + 0.5) * (widths[index] / map_width) + rois[index, 0]
        keypoints[index, :, 1] = (best_row + 0.5) * (heights[index] / map_height) + rois[index, 1]
        keypoints[index, :, 2] = 1.0
        scores[index] = resized[numpy.arange(num_keypoints), best_row, best_column]
    return keypoints, scores


def keypoint_flip_index(names) -> numpy.ndarray:
    """Which keypoint each one becomes in a mirrored image: "left_x" and "right_x" swap,
    every other name stays. names: the K keypoint names; returns (K,) int64 indices."""
    names = list(names)
    position = {name: index for index, name in enumerate(names)}
    flip = numpy.arange(len(names), dtype=numpy.int64)
    for index, name in enumerate(names):
        for side, other in (("left_", "right_"), ("right_", "left_")):
            if name.startswith(side) and other + name[len(side):] in position:
                flip[index] = position[other + name[len(side):]]
    return flip
