"""The RoI pooler: which feature map each RoI is read from, and with which RoI op.

With FPN (Lin et al. 2017) there are four maps, P2..P5 at strides 4, 8, 16, 32. A small RoI
is read from the fine P2, a large one from the coarse P5, so that every RoI covers about the
same number of cells (FPN paper, Eqn. 1):

    k = floor(k0 + log2(sqrt(w * h) / 224)),   k0 = 4, clamped to [2, 5]

224 is the ImageNet pre-training size: a 224 x 224 RoI is read from P4, the map the C4
detector would use. Without FPN there is one map: C4 at stride 16 (the ResNet-C4 rows of
Table 2c) or C5 at stride 32 (Table 2d), and every RoI is read from it.

Shape letters:
    N, C         images, channels (the same C on every level)
    Hl, Wl       height and width of level l's map
    K            RoIs, rows ``[batch_index, x1, y1, x2, y2]`` in image pixels
    PH, PW       output bins per RoI (7 x 7 for the box head, 14 x 14 for the mask head)

The RoI op is a config string (Table 2c): ``op="align" | "warp" | "pool"``, with
``aggregation``, ``aligned`` and ``sampling_ratio``. The pooler has no weights, so it is a
plain callable, not a Module.
"""

from __future__ import annotations

import math

import numpy

from tinymask.autograd import Function
from tinymask.backend import array_module
from tinymask.ops.roi_align import roi_align_on_rois
from tinymask.ops.roi_inputs import (
    check_aggregation,
    check_features,
    check_roi_op,
    pooled_size,
    rois_from_boxes,
)
from tinymask.ops.roi_pool import roi_pool_on_rois
from tinymask.ops.roi_warp import roi_warp_on_rois
from tinymask.tensor import Tensor, unwrap


def assign_fpn_levels(boxes, min_level=2, max_level=5, canonical_box_size=224,
                      canonical_level=4):
    """The FPN level of each box, FPN Eqn. 1 as torchvision's ``LevelMapper`` computes it.

    boxes: ``(K, 4)`` xyxy in image pixels (NumPy or CuPy). Returns ``(K,)`` int64 levels in
    ``[min_level, max_level]``. The box size is ``sqrt(w * h)`` with no +1.
    """
    xpm = array_module(boxes)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    # a degenerate box (zero or negative area) goes to the finest level
    box_sizes = xpm.sqrt(xpm.maximum(areas, 0.0))
    with numpy.errstate(divide="ignore"):  # log2(0) = -inf, clamped below
        # + 1e-6: a box of exactly 112, 224 or 448 pixels must not fall a level short
        # because log2 rounded down
        levels = xpm.floor(canonical_level + xpm.log2(box_sizes / canonical_box_size) + 1e-6)
    return xpm.clip(levels, min_level, max_level).astype(numpy.int64)


class RoIPooler:
    """Pool RoIs from one feature map or from the FPN levels, with the chosen RoI op.

    output_size:     ``PH`` or ``(PH, PW)``: 7 for the box head, 14 for the mask head.
    strides:         the stride of each map passed at call time: ``(4, 8, 16, 32)`` for
                     P2..P5 (levels assigned by FPN Eqn. 1), or a single map, ``(16,)`` for
                     C4 or ``(32,)`` for C5 (every RoI read from it).
    op:              ``"align"`` (RoIAlign), ``"warp"`` (RoIWarp) or ``"pool"`` (RoIPool):
                     the rows of Table 2c.
    aggregation:     ``"avg"`` or ``"max"`` over a bin's samples (align and warp; RoIPool
                     always takes the max and ignores it).
    aligned:         RoIAlign's half-cell shift (align only: RoIWarp is defined with
                     aligned=False, RoIPool has no samples; REFERENCE §1).
    warp_aligned:    RoIWarp's rounded box sampled with the half-cell shift: a control,
                     not the paper's RoIWarp (warp only; ``roi_warp``'s docstring).
    sampling_ratio:  samples per bin along each axis, ``<= 0`` adaptive (align, warp).
    roi_pool_bins_in_input_dtype: RoIPool's bin edges in the features' dtype, as
                     torchvision, instead of float64 (pool only; see ``roi_pool``).
    canonical_box_size, canonical_level: Eqn. 1's 224 and k0 = 4.
    """

    def __init__(self, output_size, strides, op="align", aggregation="avg", aligned=True,
                 sampling_ratio=0, canonical_box_size=224, canonical_level=4,
                 roi_pool_bins_in_input_dtype=False, warp_aligned=False):
        check_roi_op(op, "RoIPooler")
        check_aggregation(aggregation, "RoIPooler")
        self.output_size = pooled_size(output_size, "RoIPooler")
        self.strides = tuple(int(stride) for stride in strides)
        levels = [math.log2(stride) for stride in self.strides if stride > 0]  # stride 2**level
        consecutive_levels = len(levels) == len(self.strides) and all(
            level == int(level) and later == level + 1 for level, later in zip(levels, levels[1:]))
        if not self.strides or min(self.strides) <= 0 or not (
                len(self.strides) == 1 or consecutive_levels):
            raise ValueError(
                "RoIPooler: strides must be one stride, or the strides of consecutive FPN "
                f"levels, finest first, such as (4, 8, 16, 32); got {strides}"
            )
        # P2..P5 for strides 4..32; a single map needs no levels
        self.levels = tuple(int(level) for level in levels) if len(self.strides) > 1 else ()
        self.op, self.aggregation = op, aggregation
        self.aligned, self.sampling_ratio = aligned, sampling_ratio
        self.warp_aligned = bool(warp_aligned)
        self.roi_pool_bins_in_input_dtype = roi_pool_bins_in_input_dtype
        self.canonical_box_size, self.canonical_level = canonical_box_size, canonical_level

    def __call__(self, features, boxes) -> Tensor:
        """features: one Tensor ``(N, C, Hl, Wl)`` per stride, finest first; boxes: a list of
        ``(Ki, 4)`` arrays, one per image (the RoI heads' proposals), or ``(K, 5)`` rows
        ``[batch_index, x1, y1, x2, y2]``. Returns ``(K, C, PH, PW)``, row i for RoI i;
        gradients flow to every level used."""
        if len(features) != len(self.strides):
            raise ValueError(
                f"RoIPooler: got {len(features)} feature maps for strides {self.strides}"
            )
        for feature_map in features:
            check_features(unwrap(feature_map), "RoIPooler")
        # the one conversion to the kernels' RoI array, checked here once for every level
        rois = rois_from_boxes(boxes, unwrap(features[0]), "RoIPooler")  # (K, 5) float64
        if len(features) == 1:
            return self.pool_one_map(features[0], rois, 1.0 / self.strides[0])

        xpm = array_module(rois)
        levels = assign_fpn_levels(rois[:, 1:], self.levels[0], self.levels[-1],
                                   self.canonical_box_size, self.canonical_level)
        pooled_per_level, rows_of_level = [], []
        for feature_map, stride, level in zip(features, self.strides, self.levels):
            # every level is pooled, even with no RoI, so each one gets a gradient (zeros)
            in_level = xpm.nonzero(levels == level)[0]
            pooled_per_level.append(self.pool_one_map(feature_map, rois[in_level], 1.0 / stride))
            rows_of_level.append(in_level)
        # back to the input order: row j of level l's output is RoI rows_of_level[l][j]
        return InRoIOrder.apply(*pooled_per_level, rows_of_level=rows_of_level)

    def pool_one_map(self, feature_map, rois, spatial_scale) -> Tensor:
        """The configured RoI op on one map: ``(K, C, PH, PW)``. rois: the checked ``(K, 5)``
        float64 array, passed to the op as it is."""
        if self.op == "align":
            return roi_align_on_rois(feature_map, rois, self.output_size, spatial_scale,
                                     self.sampling_ratio, self.aligned, self.aggregation)
        if self.op == "warp":
            return roi_warp_on_rois(feature_map, rois, self.output_size, spatial_scale,
                                    self.sampling_ratio, self.aggregation, self.warp_aligned)
        return roi_pool_on_rois(feature_map, rois, self.output_size, spatial_scale,
                                self.roi_pool_bins_in_input_dtype)

    def __repr__(self) -> str:
        return (f"RoIPooler(output_size={self.output_size}, strides={self.strides}, "
                f"op={self.op!r}, aggregation={self.aggregation!r}, aligned={self.aligned}, "
                f"sampling_ratio={self.sampling_ratio}"
                + (", warp_aligned=True" if self.warp_aligned else "") + ")")


class InRoIOrder(Function):
    """The levels' outputs merged into one ``(K, C, PH, PW)``, row ``rows_of_level[l][j]``
    being row j of level l's output: each row written once forward and read once backward.
    What it computes is ``cat(pooled_per_level)[argsort(concatenate(rows_of_level))]``
    (tested against it), which takes two copies forward and, backward, a zero-filled
    gradient and a scatter."""

    @staticmethod
    def forward(ctx, *pooled_per_level, rows_of_level):
        xpm = array_module(*pooled_per_level)
        num_rois = sum(int(rows.shape[0]) for rows in rows_of_level)
        merged = xpm.empty((num_rois, *pooled_per_level[0].shape[1:]),
                           dtype=xpm.result_type(*pooled_per_level))
        for pooled, rows in zip(pooled_per_level, rows_of_level):
            merged[rows] = pooled
        ctx.rows_of_level = rows_of_level
        return merged

    @staticmethod
    def backward(ctx, grad):
        return tuple(grad[rows] for rows in ctx.rows_of_level)
