"""The overlap test NMS runs on one pair of boxes: one source for both kernels (REFERENCE §6).

``iou_exceeds`` is plain Python: ``nms_cpu`` compiles this very function with ``njit`` and
``nms_cuda`` with ``cuda.jit(device=True)``, so the CPU and the GPU decide "does box i
suppress box j" by the same lines (``nms_reference`` reads the same IoU from
``boxes.box_iou``, vectorised).

Note for editors: Numba's on-disk cache (``cache=True``) watches only the file of a kernel,
not the files it calls. After editing this file, delete ``tinymask/ops/__pycache__`` so that
the kernels are compiled again.
"""

from __future__ import annotations


def iou_exceeds(box_i, box_j, iou_threshold):
    """True when IoU(box_i, box_j) > iou_threshold; boxes are 4-element xyxy rows.

    Areas are ``(x2 - x1) * (y2 - y1)`` with no +1, all arithmetic in the boxes' dtype."""
    # max(x, 0) with a bare 0 would promote float32 to float64 and round differently.
    zero = box_i.dtype.type(0)
    left = max(box_i[0], box_j[0])
    top = max(box_i[1], box_j[1])
    right = min(box_i[2], box_j[2])
    bottom = min(box_i[3], box_j[3])
    width = max(right - left, zero)  # boxes apart: no intersection, not a negative one
    height = max(bottom - top, zero)
    inter = width * height
    area_i = (box_i[2] - box_i[0]) * (box_i[3] - box_i[1])
    area_j = (box_j[2] - box_j[0]) * (box_j[3] - box_j[1])
    return inter / (area_i + area_j - inter) > iou_threshold
