"""Box geometry: areas, IoU, clipping and format changes. No weights, no autograd.

Shape letters:
    N, M   numbers of boxes in the two sets being compared

Conventions (REFERENCE.md, opening note and §6):
    * A box is a row ``(x1, y1, x2, y2)`` in absolute pixels ("xyxy"), with x1 <= x2 and y1 <= y2.
    * Width is ``x2 - x1`` with no "+1": a box is a continuous region, not a set of pixels.
      (Old Detectron and the original Fast R-CNN code added 1; torchvision and Detectron2 do not.)
    * COCO files store boxes as ``(x, y, w, h)`` ("xywh"); convert at the edge of the program.

Every function takes and returns plain arrays and runs on whichever backend owns its input
(NumPy on the CPU, CuPy on the GPU), so none of them moves data between host and device.
"""

from __future__ import annotations

from tinymask.backend import array_module


def check_boxes_shape(boxes, name: str = "boxes") -> None:
    """Raise a ValueError unless ``boxes`` is a 2-d array with 4 columns, ``(N, 4)``.

    Shape mistakes are the ones a user makes (a single box passed as ``(4,)``, boxes with a
    score column, a batch dimension left on), so the message names the shape that came in.
    """
    shape = getattr(boxes, "shape", None)
    if shape is None or len(shape) != 2 or shape[1] != 4:
        raise ValueError(
            f"{name} must be an array of shape (N, 4) holding (x1, y1, x2, y2) rows, "
            f"got shape {shape}; a single box needs a leading axis: box[None, :]"
        )


def box_area(boxes):
    """Area of each box, ``(N, 4) -> (N,)``, as ``(x2 - x1) * (y2 - y1)`` (no +1)."""
    check_boxes_shape(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1, boxes2):
    """Pairwise intersection over union, ``(N, 4), (M, 4) -> (N, M)``.

    ``iou[n, m] = inter / (area1[n] + area2[m] - inter)`` with areas as in ``box_area``,
    the same expression and order of operations as torchvision's ``box_iou`` and as the NMS
    kernels in ``tinymask.ops``, so all of them round the same way in float32.

    Where the union is 0 (two boxes of zero area) the IoU is defined as 0. torchvision returns
    NaN there; a NaN would slip through the matcher's comparisons and count as a match.
    """
    check_boxes_shape(boxes1, "boxes1")
    check_boxes_shape(boxes2, "boxes2")
    xpm = array_module(boxes1, boxes2)
    # --- task 4.1: the IoU matrix ---
    area1 = box_area(boxes1)  # (N,)
    area2 = box_area(boxes2)  # (M,)

    # The intersection of two boxes is the box from the larger top-left corner
    # to the smaller bottom-right corner, or nothing if those cross.
    top_left = xpm.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
    bottom_right = xpm.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2)
    width_height = xpm.maximum(bottom_right - top_left, 0)  # (N, M, 2)
    inter = width_height[..., 0] * width_height[..., 1]  # (N, M)

    union = area1[:, None] + area2[None, :] - inter  # (N, M)
    safe_union = xpm.where(union > 0, union, 1)  # inter is 0 wherever union is 0
    return xpm.where(union > 0, inter / safe_union, 0).astype(inter.dtype, copy=False)
    # --- end task ---


def clip_boxes_to_image(boxes, image_size):
    """Clamp boxes to lie inside an image of ``image_size = (height, width)``.

    x coordinates go to ``[0, width]`` and y to ``[0, height]`` (torchvision's
    ``clip_boxes_to_image``). Works on any shape ``(..., 4)``, e.g. the ``(N, K, 4)``
    class-specific boxes of the box head. Returns a new array; the input is left alone.
    """
    shape = getattr(boxes, "shape", None)
    if shape is None or len(shape) < 1 or shape[-1] != 4:
        raise ValueError(f"boxes must have shape (..., 4) in xyxy order, got shape {shape}")
    height, width = image_size
    xpm = array_module(boxes)
    clipped = boxes.copy()
    clipped[..., 0::2] = xpm.clip(boxes[..., 0::2], 0, width)  # x1, x2
    clipped[..., 1::2] = xpm.clip(boxes[..., 1::2], 0, height)  # y1, y2
    return clipped


def remove_small_boxes(boxes, min_size: float):
    """Indices of the boxes whose width and height are both at least ``min_size``.

    ``(N, 4) -> (K,)`` int64 indices into ``boxes``, in increasing order. The RPN drops
    proposals with a side below 1e-3 (REFERENCE.md §5) and inference drops detections with a
    side below 0.01 (§9); a box that thin has no area for RoIAlign to sample.
    """
    check_boxes_shape(boxes)
    xpm = array_module(boxes)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    keep = (widths >= min_size) & (heights >= min_size)
    return xpm.flatnonzero(keep).astype(xpm.int64, copy=False)


def box_xyxy_to_xywh(boxes):
    """``(x1, y1, x2, y2) -> (x, y, w, h)``, the COCO layout, ``(N, 4) -> (N, 4)``."""
    check_boxes_shape(boxes)
    xpm = array_module(boxes)
    top_left = boxes[:, :2]
    size = boxes[:, 2:] - boxes[:, :2]
    return xpm.concatenate([top_left, size], axis=1)


def box_xywh_to_xyxy(boxes):
    """``(x, y, w, h) -> (x1, y1, x2, y2)``, COCO's layout back to tinymask's, ``(N, 4)``."""
    check_boxes_shape(boxes)
    xpm = array_module(boxes)
    top_left = boxes[:, :2]
    bottom_right = boxes[:, :2] + boxes[:, 2:]
    return xpm.concatenate([top_left, bottom_right], axis=1)
