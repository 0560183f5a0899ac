"""What every RoI op does before its kernel runs: check and convert the arguments.

The contract is torchvision's (``torchvision.ops.roi_align``): features ``(N, C, H, W)``;
boxes either one ``(K, 5)`` array of rows ``[batch_index, x1, y1, x2, y2]`` or a list of
``(Ki, 4)`` arrays ``[x1, y1, x2, y2]``, one per image; ``output_size`` an int or
``(PH, PW)``. The kernels get one shape of input only: ``rois``, a C-contiguous ``(K, 5)``
float64 array on the features' device.

Why float64 RoIs for every feature dtype: the sample positions are then computed in float64
everywhere (reference loop, CPU, GPU), so the implementations agree exactly on which cells a
sample reads. torchvision computes them in the feature dtype; in float32 the two can differ
where a bin edge falls within float32 rounding of a cell boundary.
"""

from __future__ import annotations

import numpy

from tinymask.backend import array_module, to_numpy
from tinymask.tensor import unwrap

ROI_OPS = ("pool", "warp", "align")  # Table 2c's rows: RoIPool, RoIWarp, RoIAlign
AGGREGATIONS = ("avg", "max")  # Table 2c's "agg." column: how a bin's samples combine


def _on_module(array, xpm):
    """``array`` as an array of module ``xpm`` (copied between host and device if needed)."""
    array = unwrap(array)
    return to_numpy(array) if xpm is numpy else xpm.asarray(array)


def check_features(features, op_name: str):
    """features: an xp array (N, C, H, W) of float32 or float64."""
    if features.ndim != 4:
        raise ValueError(
            f"{op_name} expects features of shape (N, C, H, W), got shape {features.shape}"
        )
    if features.dtype not in (numpy.float32, numpy.float64):
        raise TypeError(
            f"{op_name} supports float32 and float64 features, got {features.dtype}; "
            "convert with .astype(numpy.float32)"
        )


def rois_from_boxes(boxes, features, op_name: str):
    """``(K, 5)`` float64 rows ``[batch_index, x1, y1, x2, y2]`` on the features' device.

    boxes: a ``(K, 5)`` array (or Tensor), or a list of ``(Ki, 4)`` arrays, one per image,
    whose batch index is their position in the list. Boxes get no gradient.
    """
    xpm = array_module(features)
    if isinstance(boxes, (list, tuple)):
        rows = []
        for image_index, image_boxes in enumerate(boxes):
            image_boxes = _on_module(image_boxes, xpm).astype(numpy.float64)
            if image_boxes.ndim != 2 or image_boxes.shape[1] != 4:
                raise ValueError(
                    f"{op_name}: boxes[{image_index}] must have shape (Ki, 4) with rows "
                    f"[x1, y1, x2, y2], got shape {image_boxes.shape}"
                )
            batch_column = xpm.full((image_boxes.shape[0], 1), image_index, numpy.float64)
            rows.append(xpm.concatenate([batch_column, image_boxes], axis=1))
        rois = xpm.concatenate(rows, axis=0) if rows else xpm.zeros((0, 5), numpy.float64)
    else:
        rois = _on_module(boxes, xpm).astype(numpy.float64, copy=False)
        if rois.ndim != 2 or rois.shape[1] != 5:
            raise ValueError(
                f"{op_name}: boxes must be a (K, 5) array of rows [batch_index, x1, y1, x2, y2] "
                f"or a list of (Ki, 4) arrays, one per image; got shape {rois.shape}"
            )
    if rois.shape[0] > 0:
        batch_indices = rois[:, 0]
        # a wrong batch index would make the kernel read outside the features. The test is
        # one reduction where the RoIs live; on a GPU the host reads back that one flag.
        wrong = ((batch_indices < 0) | (batch_indices >= features.shape[0])
                 | (batch_indices != xpm.floor(batch_indices)))
        if bool(wrong.any()):
            lowest, highest = float(batch_indices.min()), float(batch_indices.max())
            raise ValueError(
                f"{op_name}: the batch indices in boxes[:, 0] must be whole numbers in "
                f"[0, {features.shape[0]}) for features of shape {features.shape}; got values "
                f"from {lowest} to {highest}"
            )
    return xpm.ascontiguousarray(rois)


def pooled_size(output_size, op_name: str) -> tuple[int, int]:
    """``(PH, PW)`` from an int or a pair, as torchvision's ``_pair``."""
    if isinstance(output_size, (int, numpy.integer)):
        sizes = (output_size, output_size)
    else:
        sizes = tuple(output_size) if hasattr(output_size, "__len__") else ()
    if len(sizes) != 2 or any(int(size) != size or size <= 0 for size in sizes):
        raise ValueError(
            f"{op_name}: output_size must be a positive int or a pair (PH, PW) of them, "
            f"got {output_size}"
        )
    return int(sizes[0]), int(sizes[1])


def check_roi_op(op: str, caller: str) -> None:
    if op not in ROI_OPS:
        raise ValueError(f"{caller}: op must be one of {ROI_OPS} (Table 2c), got {op!r}")


def check_aggregation(aggregation: str, op_name: str) -> None:
    if aggregation not in AGGREGATIONS:
        raise ValueError(
            f"{op_name}: aggregation must be one of {AGGREGATIONS} (Table 2c's 'agg.' column), "
            f"got {aggregation!r}"
        )
