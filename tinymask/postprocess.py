"""From predictions on the resized batch back to the original images (REFERENCE.md §9).

* ``paste_masks_in_image``: each detection's m x m mask probabilities are resized to its box
  and placed into a full-size (H, W) image, torchvision's way: the mask is padded by one
  pixel to (m+2) x (m+2) and the box scaled by (m+2)/m about its centre first, so that the
  bilinear resize has a zero border to fade into instead of a hard edge.
* ``resize_boxes``, ``resize_keypoints``: from the resized image back to the original's
  pixels.
"""

from __future__ import annotations

import numpy

from tinymask.backend import array_module, to_numpy
from tinymask.functional.interpolation import bilinear_matrix


def resize_boxes(boxes, original_size, new_size):
    """Scale xyxy boxes (N, 4) from an image of ``original_size`` (h, w) to ``new_size``."""
    ratio_h = new_size[0] / original_size[0]
    ratio_w = new_size[1] / original_size[1]
    scale = array_module(boxes).asarray([ratio_w, ratio_h, ratio_w, ratio_h], dtype=boxes.dtype)
    return boxes * scale


def resize_keypoints(keypoints, original_size, new_size):
    """Scale (N, K, 3) keypoints ``(x, y, v)`` from an image of ``original_size`` (h, w) to
    ``new_size``, as ``resize_boxes``; the visibility is kept."""
    xpm = array_module(keypoints)
    scale = xpm.asarray([new_size[1] / original_size[1], new_size[0] / original_size[0], 1.0],
                        dtype=keypoints.dtype)
    return keypoints * scale


def _expand_boxes(boxes, scale):
    """Scale boxes (N, 4) about their centres by ``scale``."""
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    centre_x = (boxes[:, 2] + boxes[:, 0]) * 0.5
    centre_y = (boxes[:, 3] + boxes[:, 1]) * 0.5
    return numpy.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w,
                        centre_y + half_h], axis=1)


def resize_bilinear(image, size):
    """A 2-D array resized to ``size`` (h, w), bilinear with align_corners=False."""
    rows = bilinear_matrix(image.shape[0], size[0], align_corners=False)
    cols = bilinear_matrix(image.shape[1], size[1], align_corners=False)
    return rows @ image @ cols.T


def paste_mask(mask, box, image_size):
    """One (m, m) mask into an (H, W) image at the integer box (x1, y1, x2, y2), both ends
    inclusive (torchvision's ``paste_mask_in_image``)."""
    image_h, image_w = image_size
    # --- task 10.1: pasting a mask into the image ---
    x1, y1, x2, y2 = (int(v) for v in box)
    width, height = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    resized = resize_bilinear(mask, (height, width))
    out = numpy.zeros((image_h, image_w), dtype=mask.dtype)
    x_0, x_1 = max(x1, 0), min(x2 + 1, image_w)
    y_0, y_1 = max(y1, 0), min(y2 + 1, image_h)
    if x_0 < x_1 and y_0 < y_1:
        out[y_0:y_1, x_0:x_1] = resized[y_0 - y1 : y_1 - y1, x_0 - x1 : x_1 - x1]
    # --- end task ---
    return out


def paste_masks_in_image(masks, boxes, image_size, padding=1):
    """masks (D, m, m) probabilities, boxes (D, 4) in the image's pixels -> (D, H, W).

    Runs on the host, one detection at a time (at most ``detections_per_img`` of them).
    """
    masks, boxes = to_numpy(masks), to_numpy(boxes)
    num, m = masks.shape[0], masks.shape[-1]
    out = numpy.zeros((num, *image_size), dtype=masks.dtype)
    if num == 0:
        return out
    scale = (m + 2 * padding) / m
    padded = numpy.pad(masks, ((0, 0), (padding, padding), (padding, padding)))
    # truncation toward zero, as torchvision's .to(int64)
    expanded = _expand_boxes(boxes.astype(numpy.float64), scale).astype(numpy.int64)
    for index in range(num):
        out[index] = paste_mask(padded[index], expanded[index], image_size)
    return out
