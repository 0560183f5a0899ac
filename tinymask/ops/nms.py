"""Non-maximum suppression, the public functions: check the inputs, pick the kernel (§6).

``nms`` keeps, from each cluster of overlapping boxes, the one with the highest score;
``batched_nms`` does the same within groups (classes at inference, feature levels in the
RPN) so that boxes of different groups never suppress each other.

Shape letters:
    N   number of boxes

Where each call runs:
    * NumPy arrays   -> ``nms_cpu`` (Numba, on the host);
    * CuPy arrays    -> ``nms_cuda`` (Numba CUDA, on the device, nothing copied to the host
      but the kept indices);
    * a tinymask ``Tensor`` is unwrapped to its array (NMS has no gradient).
``nms_reference`` is the readable loop that both are tested against.

The contract is torchvision's ``torchvision.ops.nms``: boxes xyxy, areas without +1, boxes
visited by decreasing score with ties in input order, suppression when IoU > threshold.
"""

from __future__ import annotations

from tinymask.backend import array_module, is_cupy_array
from tinymask.boxes import check_boxes_shape
from tinymask.ops import nms_cpu
from tinymask.tensor import unwrap


def _check_nms_inputs(boxes, scores):
    check_boxes_shape(boxes)
    scores_shape = getattr(scores, "shape", None)
    if scores_shape is None or len(scores_shape) != 1 or scores_shape[0] != boxes.shape[0]:
        raise ValueError(
            f"scores must have shape (N,) with one score per box, got scores of shape "
            f"{scores_shape} for boxes of shape {boxes.shape}"
        )
    if is_cupy_array(boxes) != is_cupy_array(scores):
        raise ValueError(
            "boxes and scores must be on the same backend (both NumPy or both CuPy), got "
            f"{type(boxes).__module__}.{type(boxes).__name__} boxes and "
            f"{type(scores).__module__}.{type(scores).__name__} scores"
        )
    for name, array in (("boxes", boxes), ("scores", scores)):
        if array.dtype.kind != "f" or array.dtype.itemsize < 4:
            raise TypeError(
                f"{name} must be float32 or float64, got {array.dtype}; "
                f"convert with {name}.astype(numpy.float32)"
            )


def nms(boxes, scores, iou_threshold: float):
    """Indices of the boxes kept by non-maximum suppression, best first.

    boxes:          ``(N, 4)`` xyxy, float32 or float64, NumPy or CuPy (or a Tensor).
    scores:         ``(N,)`` float, on the same backend.
    iou_threshold:  a box is dropped when its IoU with a kept, higher-scored box is
                    strictly greater than this (0.7 for RPN proposals, 0.5 for detections).

    Returns ``(K,)`` int64 indices into ``boxes``, sorted by decreasing score, on the same
    backend as the input; empty input gives an empty array.
    """
    boxes, scores = unwrap(boxes), unwrap(scores)
    _check_nms_inputs(boxes, scores)
    if boxes.shape[0] == 0:
        xpm = array_module(boxes)
        return xpm.zeros((0,), dtype=xpm.int64)
    if is_cupy_array(boxes):
        # numba.cuda comes with the "gpu" extra and takes a moment to import: only GPU
        # callers pay for it.
        from tinymask.ops import nms_cuda  # noqa: PLC0415

        return nms_cuda.nms(boxes, scores, iou_threshold)
    return nms_cpu.nms(boxes, scores, iou_threshold)


def batched_nms(boxes, scores, idxs, iou_threshold: float):
    """NMS within each group: boxes with different ``idxs`` never suppress each other.

    boxes, scores, iou_threshold: as in ``nms``.
    idxs:  ``(N,)`` integer group of each box (a class label, or an FPN level).

    Returns ``(K,)`` int64 indices into ``boxes``, sorted by decreasing score across all
    groups. torchvision's coordinate trick: shift each group's boxes by
    ``group * (max coordinate + 1)`` along both axes, so that boxes of different groups
    cannot overlap, and run one ``nms`` on the shifted boxes instead of one per group.
    This assumes coordinates >= -1 (clipped boxes are >= 0): a box reaching further left
    could overlap the previous group's range. Large shifts cost float32 a little precision,
    which can move an IoU within rounding of the threshold.
    """
    boxes, scores, idxs = unwrap(boxes), unwrap(scores), unwrap(idxs)
    _check_nms_inputs(boxes, scores)
    idxs_shape = getattr(idxs, "shape", None)
    if idxs_shape is None or tuple(idxs_shape) != (boxes.shape[0],):
        raise ValueError(
            f"idxs must have shape (N,) with one group per box, got idxs of shape "
            f"{idxs_shape} for boxes of shape {boxes.shape}"
        )
    xpm = array_module(boxes)
    if boxes.shape[0] == 0:
        return xpm.zeros((0,), dtype=xpm.int64)
    max_coordinate = boxes.max()
    offsets = idxs.astype(boxes.dtype) * (max_coordinate + 1)  # (N,)
    boxes_for_nms = boxes + offsets[:, None]  # (N, 4)
    return nms(boxes_for_nms, scores, iou_threshold)
