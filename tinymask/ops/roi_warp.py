"""RoIWarp (MNC, Dai et al. 2016), the middle row of Mask R-CNN's Table 2c.

RoIWarp samples the RoI bilinearly, as RoIAlign does, but first rounds its corners to whole
feature cells, as RoIPool does. It keeps RoIPool's misalignment, and in Table 2c it lands
next to RoIPool (27.2 vs 26.9 mask AP, both with max; RoIAlign with max: 30.2): bilinear
sampling alone does not help, alignment does. Neither torchvision nor Detectron2 ships it,
so this file is the reference, and its definition is tinymask's (REFERENCE.md §1):

    RoIWarp(features, rois, spatial_scale) =
        RoIAlign(features, quantize_rois(rois, spatial_scale), spatial_scale=1, aligned=False)

1. Quantize exactly as RoIPool: ``start_x = round(x1 * spatial_scale)``, ``end_x =
   round(x2 * spatial_scale)`` (C's round, half away from zero), same for y.
2. Run RoIAlign, unchanged, on the box ``(start_x, start_y, end_x, end_y)``, which is
   already in feature cells: bins of ``(end_x - start_x) / PW`` cells (raised to one cell
   in all, as RoIAlign with aligned=False does), samples at sub-bin centres, average or max.

So the box is *not* end-inclusive: its width is ``end_x - start_x``, not RoIPool's
``end_x - start_x + 1``. With that choice RoIWarp and RoIAlign(aligned=False) differ in one
thing only, the rounding of the corners, which is exactly the comparison Table 2c makes;
and it is what MNC's forward pass computes (caffe-mnc's ``roi_warping_layer.cu`` samples
``[round(x1 * s), round(x2 * s)]`` bilinearly, one sample per bin at the bin's start, where
RoIAlign's grid of sub-bin centres is used here).

``aligned=True`` is not MNC's RoIWarp and not the paper's row: it samples the rounded box
with RoIAlign's half-cell shift (``RoIAlign(quantized_rois, 1, aligned=True)``), so the
rounding of the corners is the only misalignment left. It is the control that separates the
two costs of RoIWarp, the rounding and the half-cell offset that aligned=False adds to it
(lesson 6 measures it; ``MaskRCNNConfig.warp_aligned``).

Shape letters: features (N, C, H, W), K RoIs, PH x PW bins, as ``roi_align``.
"""

from __future__ import annotations

from tinymask.ops.roi_align import RoIAlignFunction
from tinymask.ops.roi_geometry import quantize_rois
from tinymask.ops.roi_inputs import check_aggregation, check_features, pooled_size, rois_from_boxes
from tinymask.tensor import Tensor, unwrap


def roi_warp_as_roi_align(rois, spatial_scale, aligned=False):
    """The RoIAlign call that RoIWarp is: ``(quantized_rois, spatial_scale=1.0, aligned)``
    for RoIAlign's arguments ``(rois, spatial_scale, aligned)``; aligned is False for MNC's
    RoIWarp (the control with True: module docstring). rois: (K, 5) image pixels."""
    return quantize_rois(rois, spatial_scale), 1.0, bool(aligned)


def roi_warp(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1,
             aggregation="max", aligned=False) -> Tensor:
    """Round the RoI's corners to feature cells, then pool it as RoIAlign does.

    input:          features ``(N, C, H, W)``, a Tensor (gradients flow back to it) or an
                    array; float32 or float64, NumPy or CuPy.
    boxes:          ``(K, 5)`` rows ``[batch_index, x1, y1, x2, y2]`` in image pixels, or a list
                    of ``(Ki, 4)`` arrays ``[x1, y1, x2, y2]``, one per image. No gradient.
    output_size:    ``PH`` (square) or ``(PH, PW)``.
    spatial_scale:  feature cells per image pixel, 1 / stride.
    sampling_ratio: samples per bin along each axis; ``<= 0`` adapts to the (rounded) RoI.
    aggregation:    ``"max"`` (Table 2c's RoIWarp row) or ``"avg"``.
    aligned:        False: MNC's RoIWarp. True: the rounded box sampled with RoIAlign's
                    half-cell shift, a control that is not the paper's op (module docstring).

    Returns a Tensor ``(K, C, PH, PW)``; the definition is in the module docstring.
    """
    features = unwrap(input)
    check_features(features, "roi_warp")
    check_aggregation(aggregation, "roi_warp")
    rois = rois_from_boxes(boxes, features, "roi_warp")
    return roi_warp_on_rois(input, rois, pooled_size(output_size, "roi_warp"), spatial_scale,
                            sampling_ratio, aggregation, aligned)


def roi_warp_on_rois(input, rois, output_size, spatial_scale, sampling_ratio,
                     aggregation, aligned=False) -> Tensor:
    """``roi_warp`` on RoIs that ``rois_from_boxes`` has already checked and converted, with
    ``output_size`` a pair ``(PH, PW)`` (the pooler's per-level call)."""
    pooled_h, pooled_w = output_size
    quantized_rois, align_scale, align_aligned = roi_warp_as_roi_align(
        rois, float(spatial_scale), aligned)
    return RoIAlignFunction.apply(input, quantized_rois, pooled_h, pooled_w, align_scale,
                                  int(sampling_ratio), align_aligned, aggregation)
