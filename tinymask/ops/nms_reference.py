"""Non-maximum suppression, the slow loop that defines it (REFERENCE.md §6).

A detector proposes many boxes around each object. NMS keeps the best of each cluster:
take the highest-scoring box, delete every remaining box that overlaps it by more than the
threshold, and repeat with what is left (R-CNN §2.2, "greedy non-maximum suppression";
Faster R-CNN §3.3 runs it at IoU 0.7 on the proposals).

Shape letters:
    N   number of boxes

This is the version to read; ``nms_cpu`` (Numba) and ``nms_cuda`` (Numba CUDA) compute the
same thing fast, and the tests hold both to this loop. The exact contract, shared by all
three and by torchvision:

* visit boxes by decreasing score; equal scores keep their input order (a stable sort);
* suppress when IoU > threshold, strictly: a box overlapping a kept one by exactly the
  threshold survives;
* IoU with areas ``(x2 - x1) * (y2 - y1)``, no +1, computed in the boxes' dtype, and
  compared with the threshold rounded to that dtype. With float32 boxes, an IoU of exactly
  0.1 and a threshold of 0.1 both round to the same float32, so the box is kept, as the
  strict ">" promises. (torchvision's CUDA kernel compares in float32 too; its CPU kernel
  compares in float64, where float32(0.1) > 0.1, and drops it.)
"""

from __future__ import annotations

import numpy

from tinymask.backend import to_numpy
from tinymask.boxes import box_iou


def nms(boxes, scores, iou_threshold: float):
    """Indices of the boxes NMS keeps, in decreasing score order, as int64.

    boxes:   ``(N, 4)`` xyxy, float32 or float64 (CuPy arrays are copied to the host).
    scores:  ``(N,)``.
    """
    boxes, scores = to_numpy(boxes), to_numpy(scores)
    iou_threshold = boxes.dtype.type(iou_threshold)  # in the dtype of the IoUs
    # Stable, so that among equal scores the earlier box is visited first.
    remaining = numpy.argsort(-scores, kind="stable")  # indices, best first
    keep = []
    while remaining.size > 0:
        best, rest = remaining[0], remaining[1:]
        keep.append(best)
        overlaps = box_iou(boxes[best][None, :], boxes[rest])[0]  # (len(rest),)
        # A box that overlaps the kept one this much is taken as another detection of the
        # same object; the rest may be other objects and stay in the running.
        remaining = rest[overlaps <= iou_threshold]
    return numpy.asarray(keep, dtype=numpy.int64)
