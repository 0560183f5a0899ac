"""Non-maximum suppression on the CPU: a Numba kernel (REFERENCE.md §6).

Same result as ``nms_reference``; same algorithm as torchvision's CPU kernel: sort by score,
then walk the boxes in that order and let each box that is still alive suppress the later
boxes it overlaps too much. The work is about N x (number kept) IoUs, since a suppressed box
never suppresses anything.

Shape letters:
    N   number of boxes

Twin of ``nms_cuda``: the same ``iou_exceeds`` (one source, ``nms_iou``), the same names
(``sorted_boxes``, ``i`` the higher-scored box, ``j`` a later one, ``keep``) and the same
loop order, so the two files can be read
side by side. There, the pairwise tests run in parallel into bit masks and a second pass
walks the masks; here one loop does both.
"""

from __future__ import annotations

import numpy
from numba import njit

from tinymask.ops import nms_iou

# the shared overlap test, compiled for the CPU from the same source as the GPU's.
# error_model="numpy": 0 / 0 (two boxes of zero area) gives NaN, which suppresses nothing,
# as in C++, instead of raising ZeroDivisionError as Python would.
iou_exceeds = njit(error_model="numpy")(nms_iou.iou_exceeds)


@njit(cache=True, error_model="numpy")
def nms_kernel(sorted_boxes, iou_threshold):
    """Positions, in ``sorted_boxes``, of the boxes NMS keeps.

    sorted_boxes:  ``(N, 4)`` xyxy, C-contiguous, in decreasing score order.
    Returns ``(K,)`` int64 positions into ``sorted_boxes``, increasing.
    """
    num_boxes = sorted_boxes.shape[0]
    # --- task 4.2: greedy NMS ---
    suppressed = numpy.zeros(num_boxes, dtype=numpy.bool_)
    keep = numpy.empty(num_boxes, dtype=numpy.int64)
    num_kept = 0
    for i in range(num_boxes):
        if suppressed[i]:
            continue
        # Nothing scored higher suppressed box i, so it is kept for good.
        keep[num_kept] = i
        num_kept += 1
        for j in range(i + 1, num_boxes):
            if not suppressed[j] and iou_exceeds(sorted_boxes[i], sorted_boxes[j], iou_threshold):
                suppressed[j] = True
    return keep[:num_kept]
    # --- end task ---


def nms(boxes, scores, iou_threshold: float):
    """Indices of the boxes NMS keeps, in decreasing score order, as int64 (NumPy arrays).

    boxes:   ``(N, 4)`` xyxy, float32 or float64.
    scores:  ``(N,)``.
    Inputs are not checked here; ``tinymask.ops.nms`` checks them and dispatches.
    """
    # --- task 4.2: greedy NMS ---
    order = numpy.argsort(-scores, kind="stable")  # stable: ties keep input order
    # Gathered once into score order, so the kernel reads boxes in sequence.
    sorted_boxes = numpy.ascontiguousarray(boxes[order])
    # The threshold in the boxes' dtype, like the IoU it is compared with (see nms_reference).
    keep = nms_kernel(sorted_boxes, sorted_boxes.dtype.type(iou_threshold))
    return order[keep].astype(numpy.int64, copy=False)
    # --- end task ---
